"""Train the crack segmenter on one source, then test it on the real test set.

python tools/train_task.py source=oracle trainer.max_steps=300
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.task_training import train_task

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_task")
def main(cfg: DictConfig) -> dict:
    return run_cli(train_task, cfg)


if __name__ == "__main__":
    main()
