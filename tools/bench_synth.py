"""Rendering throughput: images rendered *and written* per second per core, at 256x256.

    python tools/bench_synth.py --num 300 --repeats 5

Runs ``render_dataset`` with workers=1 (one core) several times into fresh temp folders and
prints the median. Wall-clock img/s is the headline; CPU-time img/s is printed too because on
a shared machine other processes steal wall time from a single-core run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from synth.render import render_dataset

CONF = Path(__file__).resolve().parents[1] / "conf" / "synth" / "default.yaml"


def positive(text: str) -> int:
    """A whole number >= 1, refused by argparse in one line (0 repeats failed in the median,
    0 images in the renderer, each with a traceback)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(  # the whole docstring: what it does, the examples
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num", type=positive, default=300, help="images per run")
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--size", type=positive, default=256)
    parser.add_argument("--shard-size", type=positive, default=100)
    args = parser.parse_args()
    cfg = OmegaConf.load(CONF)
    cfg.size = args.size
    wall, cpu = [], []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), time.process_time()
            render_dataset(cfg, tmp, args.num, args.shard_size, seed=r, workers=1, progress=False)
            wall.append(args.num / (time.perf_counter() - t0))
            cpu.append(args.num / (time.process_time() - c0))
        print(f"run {r}: {wall[-1]:.1f} img/s wall, {cpu[-1]:.1f} img/s cpu")
    print(
        f"median: {statistics.median(wall):.1f} img/s/core (wall), "
        f"{statistics.median(cpu):.1f} img/s/core (cpu time), {args.size}x{args.size}, workers=1"
    )


if __name__ == "__main__":
    main()
