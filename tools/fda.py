"""Swap every synthetic scene's low frequencies for a real photo's (FDA; masks copied).

python tools/fda.py beta=0.01
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gan.cli import measure_translated_set, register_resolvers, run_cli
from gan.data import checked_count
from gan.fda import fda_dataset
from gan.fid import check_inception_weights

register_resolvers()


def fda(cfg: DictConfig) -> dict:
    """Write the FDA set (resuming at the first missing shard); returns its dataset card."""
    if cfg.evaluate:  # checked before any image is made
        check_inception_weights(cfg.inception_weights)
        checked_count(cfg.eval_size, "eval_size", 16)
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
        card = {**card, "domain_gap": measure_translated_set(cfg)}
    return card


@hydra.main(version_base="1.3", config_path="../conf", config_name="fda")
def main(cfg: DictConfig) -> dict:
    return run_cli(fda, cfg)


if __name__ == "__main__":
    main()
