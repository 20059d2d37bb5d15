"""Speed of the task model per memory layout, in one process (variants interleaved).

    python tools/bench_task.py

Training: one forward + backward of ``CrackSegmenter`` on random crops, contiguous (NCHW) vs
channels_last (NHWC). Inference: full images through the module as trained (NHWC weights and
input, the default), the same module contiguous (NCHW), and ``inference_net()`` (BatchNorm
folded, NHWC), which evaluation and prediction use: the speed-ups are against the first, so
folding is credited with its own share, not the layout's (until session 49 the baseline was
the contiguous module, and the README credited folding with 1.75x).
Scoring: a batch of full-image predictions added to the product's metrics
(``build_metrics``), with torchmetrics' per-batch input checks and without them, each metric
set built once and warmed up, as evaluation adds every batch to one set (a set built in each
timed call had counted its first update's one-off work).
"""

from __future__ import annotations

import statistics
import time

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
import torch
from omegaconf import DictConfig

from gan.cli import run_cli
from gan.data import checked_size
from gan.task import CrackSegmenter, build_metrics
from synth.distributions import ConfigError


def median_seconds(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up (oneDNN primitive creation)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def training_steps(cfg: DictConfig) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.train_batch, 3, cfg.train_crop, cfg.train_crop, generator=g) * 2 - 1
    y = (torch.rand(cfg.train_batch, cfg.train_crop, cfg.train_crop, generator=g) > 0.95).long()
    fns = {}
    for layout in (False, True):
        torch.manual_seed(0)
        model = CrackSegmenter(net=dict(cfg.net), channels_last=layout)
        model.setup("fit")

        def step(model=model):
            model.zero_grad(set_to_none=True)
            model.compute_loss(model(x), y).backward()

        fns["channels_last" if layout else "contiguous"] = step
    return fns


def inference_passes(cfg: DictConfig) -> dict:
    x = torch.rand(cfg.eval_batch, 3, *cfg.eval_size) * 2 - 1
    torch.manual_seed(0)
    model = CrackSegmenter(net=dict(cfg.net))
    model.setup("fit")  # as trained: NHWC weights
    model.eval()
    fast = model.inference_net()
    torch.manual_seed(0)
    plain_model = CrackSegmenter(net=dict(cfg.net), channels_last=False).eval()

    def run(net):
        with torch.inference_mode():
            net(x)

    return {
        "module as trained (NHWC)": lambda: run(model),
        "module, contiguous (NCHW)": lambda: run(plain_model),
        "inference_net (folded BN, NHWC)": lambda: run(fast),
    }


def scoring_passes(cfg: DictConfig) -> dict:
    g = torch.Generator().manual_seed(0)
    pred = (torch.rand(cfg.eval_batch, *cfg.eval_size, generator=g) < 0.05).long()
    mask = (torch.rand(cfg.eval_batch, *cfg.eval_size, generator=g) < 0.03).long()
    mask[:, :2] = 255  # a strip of ignored padding, as a padded batch has

    checked, unchecked = build_metrics(validate_args=True), build_metrics(validate_args=False)
    return {  # median_seconds' warm-up call makes each set's first, one-off update
        "checked (torchmetrics' validate_args)": lambda: checked.update(pred, mask),
        "unchecked (build_metrics' default)": lambda: unchecked.update(pred, mask),
    }


def print_against_first(
    what: str, seconds: dict[str, float], per_image: int | None = None, digits: int = 0
) -> None:
    """One line per variant, its time (per image when ``per_image`` images were timed) and
    its speed-up over the first variant, the baseline."""
    base = next(iter(seconds.values()))
    for name, s in seconds.items():
        ms = s / (per_image or 1) * 1e3
        unit = "ms/image" if per_image else "ms"
        print(f"{what}, {name}: {ms:.{digits}f} {unit} ({base / s:.2f}x)")


def bench(cfg: DictConfig) -> None:
    if checked_size(cfg.eval_size, "eval_size") is None:  # a traceback at the first pass
        raise ConfigError("eval_size=null: the benchmark needs a size, [H, W]")
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    print(f"net={dict(cfg.net)} threads={torch.get_num_threads()} repeats={cfg.repeats}")
    train = median_seconds(training_steps(cfg), cfg.repeats)
    print_against_first(f"train step, batch {cfg.train_batch} x {cfg.train_crop}px", train)
    h, w = cfg.eval_size
    images = f"{cfg.eval_batch} images {h}x{w}"
    infer = median_seconds(inference_passes(cfg), cfg.repeats)
    print_against_first(f"inference, {images}", infer, per_image=cfg.eval_batch)
    scoring = median_seconds(scoring_passes(cfg), cfg.repeats)
    print_against_first(f"scoring, {images}", scoring, per_image=cfg.eval_batch, digits=1)


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench_task")
def main(cfg: DictConfig) -> None:
    run_cli(bench, cfg, resumes=False)


if __name__ == "__main__":
    main()
