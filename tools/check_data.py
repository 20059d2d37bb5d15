"""Validate the real-domain folders (decode every image and mask) before training.

    python tools/check_data.py paths.data_dir=/data/deepcrack

Exits 1 with a one-line ``error: <file>: <problem>`` message (no traceback) on bad input.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from synth.io import DataError, ImageFolder


@hydra.main(version_base="1.3", config_path="../conf", config_name="check_data")
def main(cfg: DictConfig) -> None:
    try:
        for folder in cfg.folders:
            count = ImageFolder(folder.images, folder.masks).validate()
            pairs = " with masks" if folder.masks else ""
            print(f"ok: {folder.images}: {count} images{pairs}")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
