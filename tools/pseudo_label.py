"""Pseudo-label the unlabeled real photos with a trained task model (one self-training round).

python tools/pseudo_label.py run_name=task_adapted      # teacher: checkpoints/task_adapted
python tools/train_task.py source=selftrained           # student: adapted + pseudo-labeled
python tools/pseudo_label.py ... score_against=<masks>  # development: the labels' crack F1
"""

from __future__ import annotations

from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.pseudo_label import pseudo_label_with_checkpoint, score_labels
from synth.io import CARD, ImageFolder, write_json_atomic

register_resolvers()


def pseudo_label(cfg: DictConfig) -> None:
    if cfg.score_against:  # its masks found for every photo now, not after all the labeling
        ImageFolder(cfg.image_dir, cfg.score_against)
    card = pseudo_label_with_checkpoint(
        cfg.ckpt,
        cfg.image_dir,
        cfg.out_dir,
        cfg.device,
        low=cfg.low,
        high=cfg.high,
        shard_size=cfg.shard_size,
        batch_size=cfg.batch_size,
    )
    n = card["pseudo_labels"]["num_images"]
    print(
        f"{n} photos pseudo-labeled -> {cfg.out_dir} (crack {card['crack_share']:.1%}, "
        f"ignore {card['ignore_share']:.1%} of pixels)"
    )
    if cfg.score_against:
        card["scored_against"] = score = score_labels(cfg.out_dir, cfg.image_dir, cfg.score_against)
        write_json_atomic(Path(cfg.out_dir) / CARD, card)
        print(
            f"labels vs {cfg.score_against}: crack F1 {score['f1']:.4f} "
            f"(precision {score['precision']:.4f}, recall {score['recall']:.4f})"
        )


@hydra.main(version_base="1.3", config_path="../conf", config_name="pseudo_label")
def main(cfg: DictConfig) -> None:
    run_cli(pseudo_label, cfg)


if __name__ == "__main__":
    main()
