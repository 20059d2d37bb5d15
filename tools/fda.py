"""Swap every synthetic scene's low frequencies for a real photo's (FDA; masks copied).

python tools/fda.py beta=0.01
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import check_measure_settings, measure_translated_set, register_resolvers, run_cli
from gan.fda import fda_dataset

register_resolvers()


def fda(cfg: DictConfig) -> dict:
    """Write the FDA set (resuming at the first missing shard); returns its dataset card."""
    check_measure_settings(cfg)  # before any image is made
    card = fda_dataset(
        cfg.src_dir,
        cfg.out_dir,
        cfg.real_dir,
        cfg.beta,
        cfg.seed,
        replace_stale=cfg.replace_stale,
    )
    print(f"fda: {cfg.src_dir} -> {cfg.out_dir} (beta {cfg.beta})")
    if cfg.evaluate:
        card = {**card, "domain_gap": measure_translated_set(cfg, "FDA")}
    return card


@hydra.main(version_base="1.3", config_path="../conf", config_name="fda")
def main(cfg: DictConfig) -> dict:
    return run_cli(fda, cfg)


if __name__ == "__main__":
    main()
