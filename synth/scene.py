"""One synthetic sample: surface + cracks + lighting + camera, from ``(seed, index)`` only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from synth import camera, crack, surface
from synth.distributions import Knobs
from synth.io import IGNORE_INDEX, Sample
from synth.rng import sample_rng

#: Coverage at or above this is labelled crack (``synth.crack.LABEL_THRESHOLD``).
LABEL_THRESHOLD = crack.LABEL_THRESHOLD

#: The simulator's output version: bump it with any change to the code that alters a scene
#: rendered from the same settings, seed and index. A render records it, so a folder rendered
#: by another version is rendered anew (the pipeline) or refused (``tools/render.py``) rather
#: than resumed into a mix of two simulators' scenes. tests/test_synth_golden.py fails on an
#: output change that comes without a bump. Version 2: rim noise (crack.edge_roughness) no longer
#: cuts a crack into pieces or scatters blobs off it (``synth.crack.RIM_ERODE``,
#: ``drop_islands``), which changed about half the default config's scenes by a few pixels.
#: Version 3: a crack pixel's instance id is its nearest centreline's (``synth.crack.nearest_ids``)
#: where a later crack's id stamped a band across it (the stored instance maps of scenes with
#: several cracks differ), and the camera warps the thresholded crack mask where it warped the
#: coverage, which cut thin cracks into dots (``synth.camera.WARPED_LABEL_THRESHOLD``: the
#: semantic masks of every warped scene with a crack differ, 119 of 300 default scenes at
#: 256 px, mask pieces 519 -> 285 where the unwarped cracks have 276); images are version 2's
#: byte for byte.
SIMULATOR_VERSION = 3


def plain_config(cfg: Any) -> dict:
    """A plain dict from an OmegaConf node or mapping (workers must not carry OmegaConf)."""
    if isinstance(cfg, dict):
        return cfg
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    if isinstance(cfg, Mapping):
        return {k: plain_config(v) if isinstance(v, Mapping) else v for k, v in cfg.items()}
    raise TypeError(f"simulator config must be a mapping, got {type(cfg).__name__}")


def ignore_band(semantic: np.ndarray, band: int) -> np.ndarray:
    """Mark background pixels within ``band`` px of a crack as ignore (uncertain label edge)."""
    if band <= 0:
        return semantic
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    near = cv2.dilate(semantic, kernel) > 0
    out = semantic.copy()
    out[near & (semantic == 0)] = IGNORE_INDEX
    return out


def render_crack_scene(cfg: Any, seed: int, index: int) -> Sample:
    """Render sample ``index`` of the dataset with master ``seed`` (deterministic)."""
    cfg = plain_config(cfg)
    rng = sample_rng(seed, index)
    size = int(cfg["size"])
    has_crack = bool(rng.random() >= float(cfg["p_no_crack"]))
    ks = Knobs(cfg["surface"], rng, "surface")
    kc = Knobs(cfg["crack"], rng, "crack")
    kk = Knobs(cfg["camera"], rng, "camera")

    rgb = surface.albedo(ks, size)
    shading = surface.lighting(ks, size)
    coverage, instance = np.zeros((size, size), np.float32), None
    if has_crack:
        layer = crack.render_cracks(kc, size)
        rgb, factor = crack.shade(kc, rgb, layer)
        shading *= factor
        coverage, instance = layer.coverage, layer.instance
    shading *= np.float32(255.0)  # camera.degrade works in 0-255 units
    rgb *= shading[..., None]

    # The mask is thresholded before the warp: a thin crack's coverage, warped, dotted its label.
    rgb, crack_px, instance = camera.warp(
        camera.homography(kk, size), rgb, coverage >= LABEL_THRESHOLD, instance
    )
    image = camera.degrade(kk, rgb)
    semantic = crack_px.view(np.uint8)
    instance = semantic.astype(np.uint16) if instance is None else instance * semantic
    semantic = ignore_band(semantic, int(cfg.get("ignore_band", 0)))
    meta = {
        "index": int(index),
        "seed": int(seed),
        "has_crack": has_crack,
        "crack_share": round(float(crack_px.mean()), 6),
        "num_instances": int(len(np.unique(instance[crack_px]))) if has_crack else 0,
        "params": {**ks.drawn, **kc.drawn, **kk.drawn},
    }
    return Sample(image, semantic, instance, meta)
