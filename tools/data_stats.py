"""Synthetic vs real dataset statistics, side by side (crack share, width, contrast, ...).

python tools/data_stats.py                          # fresh samples from conf/synth
python tools/data_stats.py synthetic=outputs/synthetic
python tools/data_stats.py real_masks=null       # unlabelled photos: label-free rows only
"""

from __future__ import annotations

from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig
from rich.console import Console

from gan.cli import register_resolvers, run_cli
from synth.stats import (
    LABEL_FREE,
    compare_stats,
    compute_stats,
    label_free,
    real_pairs,
    synthetic_pairs,
    unmeasured,
)

register_resolvers()


def compare(cfg: DictConfig) -> None:
    """Print the synthetic-vs-real statistics table (a bad folder fails with its name)."""
    syn = compute_stats(synthetic_pairs(cfg.synthetic, cfg.synth, cfg.num_synthetic, cfg.seed))
    masks = cfg.real_masks
    if masks is None:  # said too: the nan rows of the real column were left unexplained
        print("real_masks=null: the real column has the label-free statistics only")
    elif not Path(masks).is_dir():
        print(f"no masks at {masks}: the real column has the label-free statistics only")
        masks = None
    real = compute_stats(real_pairs(cfg.real_images, masks, cfg.max_real))
    if masks is None:
        real = label_free(real)
    Console().print(compare_stats(syn, real))
    notes = unmeasured(syn, "synthetic") + unmeasured(
        real, "real", None if masks is not None else LABEL_FREE
    )
    for note in notes:
        print(f"note: {note}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="data_stats")
def main(cfg: DictConfig) -> None:
    run_cli(compare, cfg, resumes=False)


if __name__ == "__main__":
    main()
