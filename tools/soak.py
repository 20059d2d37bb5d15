"""Soak test: kill -9 a short GAN run at random moments, rerun it, and check nothing was lost.

    python tools/soak.py --cycles 5 --steps 12

Tiny data and a tiny model are made in a temp dir; each cycle starts ``tools/train_gan.py``
(checkpoint every step, ``ckpt_path=last``) and SIGKILLs it after a random delay. A last
uninterrupted rerun must then finish, and the run's files are verified: the checkpoint loads
with ``weights_only=True`` at the target step with finite weights, metrics.csv holds exactly
one finite row per step, one image grid per step, and no temp file is left anywhere.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.checkpoint import load_checkpoint  # noqa: E402
from synth.io import Sample, write_png, write_shard  # noqa: E402

RUN = "soak"
METRIC = "train/total"


def make_data(root: Path, n: int = 4, size: int = 40) -> tuple[Path, Path]:
    """Synthetic shards (image + crack mask) and a folder of 'real' photos."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        image = rng.integers(150, 210, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        x = int(rng.integers(4, size - 6))
        mask[:, x : x + 2] = 1
        image[mask == 1] = 30
        samples.append(Sample(image, mask, meta={"index": i}))
    syn, real = root / "synthetic", root / "real"
    write_shard(syn, 0, samples[: n // 2])
    write_shard(syn, 1, samples[n // 2 :])
    real.mkdir(parents=True)
    for i in range(n):
        write_png(real / f"{i}.png", rng.integers(40, 120, (size, size, 3), dtype=np.uint8), True)
    return syn, real


def train_command(work: Path, syn: Path, real: Path, steps: int) -> list[str]:
    overrides = [
        f"paths.root_dir={work}",
        f"run_name={RUN}",
        "trainer=cpu",
        f"trainer.max_steps={steps}",
        "trainer.log_every_n_steps=1",
        "+trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "+logger.csv.flush_logs_every_n_steps=1",
        f"gan_data.synthetic_dir={syn}",
        f"gan_data.real_dir={real}",
        "experiment=tiny_gan",
    ]
    return [sys.executable, str(ROOT / "tools" / "train_gan.py"), *overrides]


def checkpoint_step(path: Path) -> int | None:
    return load_checkpoint(path)["global_step"] if path.is_file() else None


def run_cycle(
    cmd: list[str], ckpt: Path, kill_step: int, jitter: float, env: dict[str, str], log
) -> bool:
    """Start the run; once last.ckpt reaches ``kill_step``, wait ``jitter`` s (so the kill lands
    anywhere in a step: forward, backward, checkpoint write) and SIGKILL the process group.
    Returns True if it was killed, False if it finished first."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    while proc.poll() is None:
        if (checkpoint_step(ckpt) or 0) >= kill_step:
            time.sleep(jitter)
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    return False


def check_metrics(path: Path, steps: int) -> int:
    """One finite row per step 0..steps-1: nothing lost, nothing duplicated by a rerun."""
    with path.open(newline="") as file:
        rows = [r for r in csv.DictReader(file) if r.get(METRIC)]
    found = [int(r["step"]) for r in rows]
    if found != list(range(steps)):
        raise SystemExit(f"FAIL: {path}: steps {found}, expected 0..{steps - 1}")
    for row in rows:
        bad = {k: v for k, v in row.items() if v and k != "step" and not math.isfinite(float(v))}
        if bad:
            raise SystemExit(f"FAIL: {path}: non-finite values at step {row['step']}: {bad}")
    return len(rows)


def check_files(work: Path, steps: int) -> tuple[int, int, int]:
    """Checkpoint, metrics, images and temp leftovers; returns (tensors, rows, files)."""
    ckpt = load_checkpoint(work / "checkpoints" / RUN / "last.ckpt")  # weights_only=True
    if ckpt["global_step"] != steps:
        raise SystemExit(f"FAIL: last.ckpt at step {ckpt['global_step']}, expected {steps}")
    tensors = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    if not all(bool(v.isfinite().all()) for v in tensors):
        raise SystemExit("FAIL: last.ckpt holds non-finite weights")
    rows = check_metrics(work / "logs" / RUN / "metrics.csv", steps)
    images = sorted(p.stem[-6:] for p in (work / "logs" / RUN / "images").glob("*.png"))
    if images != [f"{s:06d}" for s in range(steps)]:  # at the steps of the rows
        raise SystemExit(f"FAIL: image grids for steps {images}, expected 0..{steps - 1}")
    files = [p for p in work.rglob("*") if p.is_file()]
    leftovers = [p for p in work.rglob("*") if ".tmp" in p.name or p.name.startswith("tmp")]
    if leftovers:
        raise SystemExit(f"FAIL: temp files left: {leftovers[:5]}")
    return len(tensors), rows, len(files)


def main() -> None:
    parser = argparse.ArgumentParser(  # the whole docstring: what it does, the examples
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=5, help="kill/rerun cycles")
    parser.add_argument("--steps", type=int, default=12, help="target generator steps")
    parser.add_argument("--max-jitter", type=float, default=0.2, help="s of random kill delay")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir for inspection")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rng = random.Random(args.seed)
    cmd = train_command(work, *make_data(work / "data"), args.steps)
    last = work / "checkpoints" / RUN / "last.ckpt"
    seen: list[int] = []
    stride = max(1, args.steps // max(1, args.cycles))
    with open(work / "soak.log", "w") as log:
        for cycle in range(1, args.cycles + 1):
            start = seen[-1] if seen else 0
            if start >= args.steps:  # a kill now would land in a rerun with nothing to do
                print(f"cycle {cycle}/{args.cycles}: the run is complete, nothing to kill")
                continue
            kill_step = min(args.steps - 1, rng.randint(start + 1, start + 2 * stride))
            jitter = rng.uniform(0.0, args.max_jitter)
            killed = run_cycle(cmd, last, kill_step, jitter, env, log)
            step = checkpoint_step(last) or 0
            if step < start:
                raise SystemExit(f"FAIL: step went back from {start} to {step} (restarted)")
            seen.append(step)
            what = f"killed {jitter:.2f} s after step {kill_step}" if killed else "finished"
            if killed and step >= args.steps:  # the jitter outlasted the run's last step
                what += ", as it ended"
            print(f"cycle {cycle}/{args.cycles}: {what}; last.ckpt at step {step}", flush=True)
        final = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    if final.returncode != 0:
        raise SystemExit(f"FAIL: final rerun exited {final.returncode}; see {work / 'soak.log'}")
    (work / "soak.log").unlink()
    tensors, rows, files = check_files(work, args.steps)
    print(
        f"ok: {args.cycles} cycles ({sum(s < args.steps for s in seen)} killed mid-run, each "
        f"rerun resumed: steps at the kills {seen}), "
        f"target {args.steps} steps reached; checked last.ckpt (weights_only, {tensors} finite "
        f"tensors), {rows} metrics rows, {args.steps} image grids, {files} files with no temp "
        "leftovers: nothing lost or corrupted"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
