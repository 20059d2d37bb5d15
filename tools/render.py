"""Render the synthetic crack dataset (resumable; disjoint shard blocks for cluster jobs).

python tools/render.py num_samples=20000 workers=8
python tools/render.py -m hydra/launcher=local_jobs num_samples=20000 shard_start=0,20 shard_count=20
"""

from __future__ import annotations

import json

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from synth.render import render_dataset

register_resolvers()


def render(cfg: DictConfig) -> dict:
    """Render (or resume) the selected shard block; returns the render summary."""
    summary = render_dataset(
        cfg.synth,
        cfg.out_dir,
        cfg.num_samples,
        cfg.shard_size,
        cfg.seed,
        cfg.workers,
        cfg.shard_start,
        cfg.shard_count,
        progress=cfg.progress,
    )
    print(json.dumps(summary, indent=2))
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="render")
def main(cfg: DictConfig) -> dict:
    return run_cli(render, cfg)


if __name__ == "__main__":
    main()
