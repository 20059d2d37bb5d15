"""Translate the synthetic dataset with a trained generator (masks copied byte-identical).

python tools/translate.py checkpoint=checkpoints/adapt/last.ckpt
"""

from __future__ import annotations

import json

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import check_measure_settings, measure_translated_set, register_resolvers, run_cli
from gan.translate import is_complete, translate_dataset
from synth.io import read_card

register_resolvers()


def translate(cfg: DictConfig) -> dict:
    """Translate (resuming at the first missing shard); returns the dataset card."""
    check_measure_settings(cfg)  # before any image is made
    before = read_card(cfg.out_dir)
    card = translate_dataset(
        cfg.checkpoint, cfg.src_dir, cfg.out_dir, cfg.batch_size, cfg.device, cfg.direction
    )
    # a rerun on a finished set said "translated" of a set it only measured
    done = is_complete(before) and before.get("translation") == card.get("translation")
    said = "already complete, nothing translated:" if done else "translated"
    print(f"{said} {cfg.src_dir} -> {cfg.out_dir} (step {card['translation']['step']})")
    if cfg.evaluate:
        gap = measure_translated_set(cfg)
        card = read_card(cfg.out_dir)
        if gap:
            print(json.dumps(gap, indent=2))
    return card


@hydra.main(version_base="1.3", config_path="../conf", config_name="translate")
def main(cfg: DictConfig) -> dict:
    return run_cli(translate, cfg)


if __name__ == "__main__":
    main()
