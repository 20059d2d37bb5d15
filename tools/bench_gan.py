"""Speed of our GAN training step against the plain-PyTorch reference, in one process.

    python tools/bench_gan.py size=64 ngf=32 blocks=6 batch=4                 # compiled (default)
    python tools/bench_gan.py size=64 ngf=32 blocks=6 batch=4 compile=false   # eager

The reference script's own ``main`` (its step, unchanged) runs between chunks of our real
Lightning ``Trainer.fit`` loop, so both see the same machine load. Ours is timed twice per
step: the whole loop iteration (data fetch, hooks, training_step) and ``training_step`` alone;
their difference is the Lightning overhead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import statistics
import sys
import time
from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, IterableDataset

from gan.cli import run_cli
from gan.cyclegan import SemanticCycleGAN
from gan.networks import PAD_MULTIPLE, PatchDiscriminator
from synth.distributions import ConfigError, checked_count, is_count

ROOT = Path(__file__).resolve().parents[1]

#: The discriminator's stride-2 layers, as the reference's 70x70 PatchGAN has.
DISCRIMINATOR_LAYERS = 3


def load_reference(path: str | None):
    """The reference step's module: from ``path`` where given (a named one missing had fallen
    back to the default, timing a reference the user did not name), else the default places."""
    candidates = (
        [Path(path)] if path else [Path("/work/shared/bench"), ROOT.parent / "shared" / "bench"]
    )
    for folder in candidates:
        file = folder / "reference_cyclegan_step.py" if folder.is_dir() else folder
        if file.is_file():
            return reference_module(file)
    where = ", ".join(map(str, candidates))
    raise FileNotFoundError(f"reference_cyclegan_step.py: not in {where} (reference_path)")


def reference_module(file: Path):
    """The reference script at ``file``, refused in one line where it is not one: a file not
    named ``.py`` had no loader (``'NoneType' object has no attribute 'loader'``), and a
    ``.py`` of no Python or without ``main`` failed with a traceback."""
    spec = importlib.util.spec_from_file_location("reference_cyclegan_step", file)
    if spec is None or spec.loader is None:
        raise ConfigError(
            f"reference_path={file}: not a Python file (.py); name reference_cyclegan_step.py "
            "or the folder holding it"
        )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise ConfigError(
            f"reference_path={file}: not Python code (line {err.lineno}: {err.msg}); name "
            "reference_cyclegan_step.py or the folder holding it"
        ) from err
    if not callable(getattr(module, "main", None)):
        raise ConfigError(
            f"reference_path={file}: has no main() to run; name reference_cyclegan_step.py "
            "or the folder holding it"
        )
    return module


def run_reference(ref, cfg: DictConfig, steps: int) -> float:
    """Seconds per step as the reference itself reports it."""
    argv = [
        "ref",
        "--size",
        str(cfg.size),
        "--ngf",
        str(cfg.ngf),
        "--blocks",
        str(cfg.blocks),
        "--batch",
        str(cfg.batch),
        "--steps",
        str(steps),
        "--warmup",
        "1",
    ]
    out, saved = io.StringIO(), sys.argv
    try:
        sys.argv = argv
        with contextlib.redirect_stdout(out):
            ref.main()
    finally:
        sys.argv = saved
    return printed_seconds_per_step(out.getvalue(), cfg.batch)


def printed_seconds_per_step(printed: str, batch: int) -> float:
    """The reference's ``... 0.012 s/step, 333.33 img/s``: its seconds to 3 decimals, or
    ``batch / img_s`` where that has more digits. At small sizes the seconds alone were
    0.004 for anything from 0.0035 to 0.0045 (a quarter off), or 0.000 and a division by zero."""
    found = re.search(r"([\d.]+) s/step, ([\d.]+) img/s", printed)
    if found is None:
        raise ConfigError(
            f"the reference script printed no '<s> s/step, <n> img/s' line ({printed.strip()!r}): "
            "does reference_path name reference_cyclegan_step.py?"
        )
    step_s, img_s = float(found.group(1)), float(found.group(2))
    # half a unit of the last digit printed, relative to each value
    if img_s > 0 and (step_s == 0 or 0.005 / img_s < 0.0005 / step_s):
        return batch / img_s
    return step_s


class FixedBatches(IterableDataset):
    """The same random batch forever, like the reference's fixed tensors (no decode cost)."""

    def __init__(self, batch: int, size: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.batch = {
            "a_image": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
            "a_mask": (torch.rand(batch, size, size, generator=g) > 0.95).long(),
            "b_image": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
        }

    def __iter__(self):
        while True:
            yield self.batch


class StepTimer(pl.Callback):
    """Full loop time per step; runs the reference every ``chunk`` steps (those intervals are
    dropped from our timings)."""

    def __init__(self, warmup: int, chunk: int, reference=None) -> None:
        self.warmup, self.chunk, self.reference = warmup, chunk, reference
        self.loop: list[tuple[int, float]] = []  # (batch index, loop seconds)
        self.ref: list[float] = []
        self.last: float | None = None
        self.first_step_s: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if batch_idx == 0:
            self.first_step_s = now - self.start  # includes torch.compile when it is on
        if self.last is not None and batch_idx > self.warmup:
            self.loop.append((batch_idx, now - self.last))
        self.last = now
        if (
            self.reference
            and batch_idx >= self.warmup
            and (batch_idx - self.warmup) % self.chunk == 0
        ):
            self.ref.append(self.reference())
            self.last = None  # the next interval contains the reference run


def time_ours(cfg: DictConfig, model_kw: dict, reference=None) -> dict:
    model = SemanticCycleGAN(**model_kw)
    raw: list[float] = []
    step_fn = model.training_step

    def timed_step(batch, batch_idx):
        t = time.perf_counter()
        out = step_fn(batch, batch_idx)
        raw.append(time.perf_counter() - t)
        return out

    model.training_step = timed_step
    timer = StepTimer(cfg.warmup, cfg.chunk, reference)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=cfg.warmup + cfg.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        precision=cfg.precision,
        default_root_dir="/tmp/bench_gan",
    )
    loader = DataLoader(FixedBatches(cfg.batch, cfg.size), batch_size=None)
    trainer.fit(model, train_dataloaders=loader)
    # the training_step times of the same steps the loop's are: over every step they took in
    # those beside a reference run, and the overhead could print below zero
    loop = statistics.median(seconds for _, seconds in timer.loop)
    step = statistics.median(raw[index] for index, _ in timer.loop)
    return {
        "timed": len(timer.loop),
        "img_s": cfg.batch / loop,
        "loop_s": loop,
        "step_s": step,
        "overhead": (loop - step) / loop,
        "ref_s": timer.ref,
        "first_step_s": timer.first_step_s,
    }


def model_config(cfg: DictConfig, semantic: bool, kind: str = "resnet") -> dict:
    kw = dict(
        generator={"kind": kind, "ngf": cfg.ngf, "blocks": cfg.blocks},
        discriminator={"ndf": cfg.ngf, "layers": DISCRIMINATOR_LAYERS},
        segmenter=None,
        lambda_semantic=0.0,
        lambda_mask=0.0,
        pool_size=50,
        compile=cfg.compile,
        channels_last=cfg.channels_last,
        log_images_every_n_steps=0,
    )
    if semantic:
        kw.update(
            segmenter={"base": 16, "depth": 3},
            lambda_semantic=1.0,
            semantic_warmup_steps=0,
            lambda_mask=0.5,
        )
    return kw


def check_timing(steps: object, chunk: object) -> None:
    """The reference runs every ``chunk`` steps and the interval holding it is dropped: with
    ``chunk=1`` (or too few steps) none was left, and the median failed on empty data."""
    checked_count(chunk, "chunk", 2)
    checked_count(steps, "steps", 1)
    if steps < 2 * chunk:
        raise ConfigError(
            f"steps={steps}: at least 2 x chunk ({2 * chunk}), so that intervals without a "
            "reference run are left to time"
        )


def check_size(size: object) -> None:
    """A side both networks take: the discriminator's least (16 px failed inside torch's
    instance norm at the first step) and a multiple of the generators' (26 px came back as
    28 and failed to concatenate)."""
    least = PatchDiscriminator.least_side(DISCRIMINATOR_LAYERS)
    if not is_count(size, least):
        raise ConfigError(
            f"size={size!r}: expected a whole number >= {least}, the least side the "
            f"discriminator's {DISCRIMINATOR_LAYERS} stride-2 layers leave room for"
        )
    if size % PAD_MULTIPLE:
        raise ConfigError(
            f"size={size}: expected a multiple of {PAD_MULTIPLE}, which the generators halve "
            "twice and double back"
        )


def bench(cfg: DictConfig) -> dict:
    check_size(cfg.size)
    check_timing(cfg.steps, cfg.chunk)
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    ref = load_reference(cfg.reference_path)
    plain = time_ours(cfg, model_config(cfg, False), lambda: run_reference(ref, cfg, cfg.chunk))
    ref_s = statistics.median(plain["ref_s"])
    ref_img_s = cfg.batch / ref_s
    print(
        f"size={cfg.size} ngf={cfg.ngf} blocks={cfg.blocks} batch={cfg.batch} "
        f"threads={torch.get_num_threads()} precision={cfg.precision} steps={cfg.steps}"
    )
    print(
        f"reference (its own step, {len(plain['ref_s'])} runs of {cfg.chunk}): {ref_img_s:.2f} img/s"
    )
    print(
        f"ours plain CycleGAN (Trainer loop, median of {plain['timed']} steps without a "
        f"reference run): {plain['img_s']:.2f} img/s  ratio {plain['img_s'] / ref_img_s:.2f}x"
    )
    print(
        f"Lightning overhead: {100 * plain['overhead']:.1f}% "
        f"(loop {plain['loop_s'] * 1e3:.0f} ms/step, training_step {plain['step_s'] * 1e3:.0f} ms)"
    )
    print(f"first step (includes compiling when compile=true): {plain['first_step_s']:.1f} s")
    if cfg.semantic:
        semantic = time_ours(cfg, model_config(cfg, True))
        print(
            f"ours semantic config (f_s + semantic + mask terms): {semantic['img_s']:.2f} img/s, "
            f"overhead {100 * semantic['overhead']:.1f}%"
        )
    if cfg.light:
        light = time_ours(cfg, model_config(cfg, True, "light"))
        print(f"ours light generator, semantic config: {light['img_s']:.2f} img/s")
    return {"ours": plain["img_s"], "reference": ref_img_s}


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench_gan")
def main(cfg: DictConfig) -> dict:
    return run_cli(bench, cfg, resumes=False)


if __name__ == "__main__":
    main()
