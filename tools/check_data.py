"""Validate the real-domain folders (decode every image and mask) before training.

    python tools/check_data.py paths.data_dir=/data/deepcrack

Exits 1 with one ``error: <file>: <problem>`` line (no traceback) for each bad folder,
naming the first bad file of the folder and listing the others; every folder is checked,
so one run finds all there is to mend.
"""

from __future__ import annotations

import sys
from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig, ListConfig

from gan.cli import register_resolvers, run_cli
from synth.distributions import ConfigError, checked_count, is_count
from synth.io import DataError, ImageFolder, unread_entries

register_resolvers()


KEYS = ("images", "masks", "optional", "masks_optional", "min_side")


def checked_folders(folders: object) -> list[dict]:
    """``folders`` as ``{images, masks}`` entries, ``masks`` optional (an unlabeled folder
    left it out, a traceback), refused in one line when empty (the check passed on nothing)
    or not such entries. ``optional``: the entry may be missing whole; ``masks_optional``:
    its masks folder may (the oracle's train_lab/, which most users do not have);
    ``min_side``: each photo's shorter side at least that (the GAN's crops)."""
    form = (
        "folders=[{images: <folder>, masks: <folder or null>, optional: <bool>, "
        "masks_optional: <bool>, min_side: <px>}, ...]"
    )
    if not isinstance(folders, ListConfig) or not folders:
        raise ConfigError(f"folders={folders!r}: expected one folder or more, as {form}")
    entries = []
    for entry in folders:
        keys = set(entry) if isinstance(entry, DictConfig) else set()
        if "images" not in keys or keys - set(KEYS):
            raise ConfigError(f"folders: {entry!r} is not a folder entry; expected {form}")
        side = entry.get("min_side")
        if side is not None and not is_count(side, 0):  # a traceback once the photos were read
            raise ConfigError(
                f"folders: min_side={side!r} of {entry.get('images')}: expected a whole "
                "number of px >= 0 (or null)"
            )
        entries.append({k: entry.get(k) for k in KEYS})
    return entries


def check(cfg: DictConfig) -> int:
    """Decode every listed folder; returns the number of images checked. A bad folder does
    not stop the check: each gets its error line, the last one raised for the exit code."""
    total, errors = 0, []
    if cfg.get("gan_data") is not None:  # the folders' min_side, named by the key typed
        checked_count(cfg.gan_data.get("crop_size"), "gan_data.crop_size", 1)
    for folder in checked_folders(cfg.folders):
        if folder["optional"] and not any(
            Path(f).exists() for f in (folder["images"], folder["masks"]) if f
        ):  # the test pairs of a user with photos alone
            print(
                f"note: no {folder['images']}: nothing to score; the pipeline runs on photos "
                "without labels with experiment=label_free (or task_data.test_lab=null)"
            )
            continue
        if folder["masks_optional"] and folder["masks"] and not Path(folder["masks"]).exists():
            print(
                f"note: no {folder['masks']}: the oracle row (real labels, the upper bound) "
                "cannot run; no other row needs labels"
            )
            folder["masks"] = None
        try:
            images = ImageFolder(folder["images"], folder["masks"], require_masks=False)
            count = images.validate(
                progress=True,
                min_side=folder["min_side"] or 0,
                needed_by="the GAN's crops take (gan_data.crop_size)",
            )
        except DataError as err:
            errors.append(err)
            continue
        pairs = " with masks" if folder["masks"] else ""
        print(f"ok: {folder['images']}: {count} images{pairs}")
        for note in unread_entries(folder["images"], folder["masks"]):
            print(f"  note: {note}")
        total += count
    for err in errors[:-1]:
        print(f"error: {err}", file=sys.stderr, flush=True)
    if errors:
        raise errors[-1]
    return total


@hydra.main(version_base="1.3", config_path="../conf", config_name="check_data")
def main(cfg: DictConfig) -> int:
    return run_cli(check, cfg, resumes=False)


if __name__ == "__main__":
    main()
