"""Validate the real-domain folders (decode every image and mask) before training.

    python tools/check_data.py paths.data_dir=/data/deepcrack

Exits 1 with a one-line ``error: <file>: <problem>`` message (no traceback) on bad input,
naming the first bad file of a folder and counting the others.
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from synth.io import ImageFolder, unread_entries

register_resolvers()


def check(cfg: DictConfig) -> int:
    """Decode every listed folder; returns the number of images checked."""
    total = 0
    for folder in cfg.folders:
        count = ImageFolder(folder.images, folder.masks).validate(progress=True)
        pairs = " with masks" if folder.masks else ""
        print(f"ok: {folder.images}: {count} images{pairs}")
        for note in unread_entries(folder.images, folder.masks):
            print(f"  note: {note}")
        total += count
    return total


@hydra.main(version_base="1.3", config_path="../conf", config_name="check_data")
def main(cfg: DictConfig) -> int:
    return run_cli(check, cfg, resumes=False)


if __name__ == "__main__":
    main()
