"""Contact sheets: samples side by side with their crack masks overlaid, to eyeball realism.

torch/torchvision are imported inside the function only, so the simulator itself stays free
of torch (rendering workers never load it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from synth.distributions import ConfigError, checked_count
from synth.io import IGNORE_INDEX, Sample, write_png


def contact_sheet(
    samples: Sequence[Sample],
    out_path: str | Path,
    nrow: int = 4,
    overlay: bool = True,
    alpha: float = 0.45,
    tile: int | None = None,
) -> Path:
    """Write a PNG grid: each sample's image, then (if ``overlay``) the image with its mask.

    Crack pixels are drawn red, ignore pixels yellow. Images are resized and centre-cropped
    to ``tile`` x ``tile`` (default: the first sample's height), so real and synthetic sets mix.
    Samples with nothing to draw (unlabeled photos, crack-free scenes) get no overlay tiles:
    the report's sheet of unlabeled photos showed each photo twice.
    """
    import torch
    from torchvision.utils import draw_segmentation_masks, make_grid

    if not samples:
        raise ValueError("contact_sheet needs at least one sample")
    if Path(out_path).suffix.lower() != ".png":  # PNG bytes under a .jpg name
        raise ConfigError(f"out={out_path}: the sheet is written as a PNG; name it .png")
    tile = tile or samples[0].image.shape[0]
    overlay = overlay and any(s.semantic.any() for s in samples)
    tiles = []
    for s in samples:
        image = _fit(s.image, tile, cv2.INTER_AREA)
        semantic = _fit(s.semantic, tile, cv2.INTER_NEAREST)
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        tiles.append(t)
        if overlay:
            masks = torch.from_numpy(np.stack([semantic == 1, semantic == IGNORE_INDEX]))
            tiles.append(draw_segmentation_masks(t, masks, alpha=alpha, colors=["red", "yellow"]))
    grid = make_grid(tiles, nrow=nrow * (2 if overlay else 1), padding=2, pad_value=255)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_png(out_path, grid.permute(1, 2, 0).numpy(), rgb=True)
    return out_path


def _fit(array: np.ndarray, tile: int, interpolation: int) -> np.ndarray:
    """Resize the short side to ``tile`` and centre-crop a square, so any sizes mix."""
    h, w = array.shape[:2]
    if (h, w) != (tile, tile):
        scale = tile / min(h, w)
        size = (max(tile, round(w * scale)), max(tile, round(h * scale)))
        array = cv2.resize(array, size, interpolation=interpolation)
        h, w = array.shape[:2]
    y, x = (h - tile) // 2, (w - tile) // 2
    return np.ascontiguousarray(array[y : y + tile, x : x + tile])


def load_samples(
    dataset: str | Path | None,
    masks: str | Path | None,
    cfg_synth: object,
    num: int,
    start: int = 0,
    seed: int = 0,
) -> list[Sample]:
    """Samples to show: from a sharded dataset, a real image folder, or rendered fresh."""
    from synth.io import ImageFolder, ShardedDataset, say_if_unfinished
    from synth.render import checked_scene_config
    from synth.scene import render_crack_scene

    checked_count(num, "num")
    checked_count(start, "start", 0)
    if dataset is None:
        cfg = checked_scene_config(cfg_synth)  # synth.size=0 was a cv2 traceback
        return [render_crack_scene(cfg, seed, i) for i in range(start, start + num)]
    root = Path(dataset)
    source = ShardedDataset(root) if list(root.glob("shard-?????")) else ImageFolder(root, masks)
    if isinstance(source, ShardedDataset):
        say_if_unfinished(source)
    if start >= len(source):
        raise ConfigError(f"start={start}: past the last of the {len(source)} samples in {root}")
    return [source[i] for i in range(start, min(start + num, len(source)))]
