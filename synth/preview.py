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
from synth.io import IGNORE_INDEX, Sample, unwritable_folder, write_png


def check_sheet_path(out_path: str | Path) -> None:
    """Where the sheet goes, refused before any sample is read or rendered: a name other than
    .png got PNG bytes, and a folder that is a file (``out=afile/x.png``) was said as
    ``afile: File exists`` once the samples were made, as was a folder named .png (``Is a
    directory``)."""
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".png":
        raise ConfigError(f"out={out_path}: the sheet is written as a PNG; name it .png")
    if out_path.is_dir():
        raise ConfigError(
            f"out={out_path}: a folder; name the sheet's file, e.g. out={out_path / 'preview.png'}"
        )
    if why := unwritable_folder(out_path.parent):
        raise ConfigError(f"out={out_path}: its folder {out_path.parent}: {why}")


def contact_sheet(
    samples: Sequence[Sample],
    out_path: str | Path,
    nrow: int = 4,
    overlay: bool = True,
    alpha: float = 0.45,
    tile: int | None = None,
) -> Path:
    """Write a PNG grid: each sample's image, then (if ``overlay``) the image with its mask.

    Crack pixels are drawn red, ignore pixels yellow. Every tile has the first sample's size
    (``tile``: a ``tile`` x ``tile`` square instead); an image of another shape is scaled whole
    into it and padded, so real and synthetic sets mix. Squares cut from the middle hid a
    384 x 544 photo's two ends, where its cracks may run, without a word.
    Samples with nothing to draw (unlabeled photos, crack-free scenes) get no overlay tiles:
    the report's sheet of unlabeled photos showed each photo twice.
    """
    import torch
    from torchvision.utils import draw_segmentation_masks, make_grid

    if not samples:
        raise ValueError("contact_sheet needs at least one sample")
    check_sheet_path(out_path)
    shape = (tile, tile) if tile else samples[0].image.shape[:2]
    overlay = overlay and any(s.semantic.any() for s in samples)
    tiles = []
    for s in samples:
        image = _fit(s.image, shape, cv2.INTER_AREA, 255)
        semantic = _fit(s.semantic, shape, cv2.INTER_NEAREST, 0)
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


def _fit(array: np.ndarray, shape: tuple[int, int], interpolation: int, pad: int) -> np.ndarray:
    """The whole of ``array`` scaled into ``shape`` (aspect kept), centred, padded with ``pad``."""
    h, w = array.shape[:2]
    if (h, w) == tuple(shape):
        return array
    scale = min(shape[0] / h, shape[1] / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    array = cv2.resize(array, size, interpolation=interpolation)
    y, x = (shape[0] - size[1]) // 2, (shape[1] - size[0]) // 2
    fitted = np.full((*shape, *array.shape[2:]), pad, array.dtype)
    fitted[y : y + size[1], x : x + size[0]] = array
    return fitted


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
