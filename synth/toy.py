"""A toy real-data folder, shaped like DeepCrack's, for smoke runs that need no download.

The tests' end-to-end runs and ``tools/soak_stops.py`` run the pipeline on it in seconds;
its photos are flat grey with one dark line, each mask that line.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_toy_real_folder(root: Path, n: int = 3, h: int = 32, w: int = 40) -> Path:
    """``{train,test}_img/<i>.jpg`` photos and ``{train,test}_lab/<i>.png`` 0/255 masks, the
    same for the same arguments."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / f"{split}_img").mkdir(parents=True, exist_ok=True)
        (root / f"{split}_lab").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(110, 170, (h, w, 3), dtype=np.uint8)
            mask = np.zeros((h, w), np.uint8)
            cv2.line(
                mask, (0, int(rng.integers(4, h - 4))), (w - 1, int(rng.integers(4, h - 4))), 255, 2
            )
            img[mask > 0] = 40
            cv2.imwrite(str(root / f"{split}_img" / f"{i}.jpg"), img)
            cv2.imwrite(str(root / f"{split}_lab" / f"{i}.png"), mask)
    return root
