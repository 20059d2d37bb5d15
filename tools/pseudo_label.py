"""Pseudo-label the unlabeled real photos with a trained task model (one self-training round).

python tools/pseudo_label.py run_name=task_adapted      # teacher: checkpoints/task_adapted
python tools/train_task.py source=selftrained           # student: adapted + pseudo-labeled
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.pseudo_label import pseudo_label_with_checkpoint

register_resolvers()


def pseudo_label(cfg: DictConfig) -> None:
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="pseudo_label")
def main(cfg: DictConfig) -> None:
    run_cli(pseudo_label, cfg)


if __name__ == "__main__":
    main()
