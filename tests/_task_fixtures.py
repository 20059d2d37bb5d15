"""Tiny crack datasets made on the fly (never the real data): dark lines on noisy gray."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.io import Sample, write_png, write_shard


def crack_sample(seed: int, h: int = 48, w: int = 64) -> Sample:
    """Gray noisy image with a dark 2-px crack line; the mask marks the line (class 1)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(140, 200, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        x = int(rng.integers(4, w - 4))
        mask[:, x : x + 2] = 1
    else:
        y = int(rng.integers(4, h - 4))
        mask[y : y + 2, :] = 1
    image[mask == 1] = rng.integers(20, 60, (int(mask.sum()), 3), dtype=np.uint8)
    return Sample(image, mask, meta={"index": seed})


def make_shards(root: Path, n: int = 8, h: int = 48, w: int = 64) -> Path:
    write_shard(root, 0, [crack_sample(i, h, w) for i in range(n)])
    return root


def make_folder(
    root: Path, n: int = 4, h: int = 48, w: int = 64, prefix: str = "img"
) -> tuple[Path, Path]:
    """DeepCrack layout: img/<stem>.jpg + lab/<stem>.png with 0/255 masks."""
    img_dir, lab_dir = root / "img", root / "lab"
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = crack_sample(100 + i, h, w)
        write_png(img_dir / f"{prefix}{i}.png", s.image, rgb=True)
        write_png(lab_dir / f"{prefix}{i}.png", s.semantic * 255)
    return img_dir, lab_dir
