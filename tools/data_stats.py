"""Synthetic vs real dataset statistics, side by side (crack share, width, contrast, ...).

python tools/data_stats.py                          # fresh samples from conf/synth
python tools/data_stats.py synthetic=outputs/synthetic
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console

from gan.cli import register_resolvers, run_cli
from synth.stats import compare_stats, compute_stats, real_pairs, synthetic_pairs

register_resolvers()


def compare(cfg: DictConfig) -> None:
    """Print the synthetic-vs-real statistics table (a bad folder fails with its name)."""
    syn = compute_stats(synthetic_pairs(cfg.synthetic, cfg.synth, cfg.num_synthetic, cfg.seed))
    real = compute_stats(real_pairs(cfg.real_images, cfg.real_masks, cfg.max_real))
    Console().print(compare_stats(syn, real))


@hydra.main(version_base="1.3", config_path="../conf", config_name="data_stats")
def main(cfg: DictConfig) -> None:
    run_cli(compare, cfg)


if __name__ == "__main__":
    main()
