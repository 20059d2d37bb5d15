"""Which crack pixels a task model misses: recall by the pixels' contrast, and whether a missed
faint pixel lies beside a crack the model found (a rim) or away from any (a whole crack missed).

Development diagnostics on a labeled real set; they explain an F1 figure, they are not one.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from gan.evaluate import crack_probabilities
from gan.task import CrackSegmenter
from synth.distributions import ConfigError
from synth.io import Sample


def crack_contrast(image: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """Per labelled crack pixel (row-major order): how much darker it is than the surface
    around it, the photo's grey with the cracks inpainted (Telea) minus its own grey."""
    crack = (semantic == 1).astype(np.uint8)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    hole = cv2.dilate(crack, np.ones((5, 5), np.uint8))
    surface = cv2.inpaint(grey, hole, 7, cv2.INPAINT_TELEA).astype(np.float32)
    return (surface - grey.astype(np.float32))[crack == 1]


def sample_contrasts(samples: Sequence[Sample]) -> list[np.ndarray]:
    """:func:`crack_contrast` of every sample: computed once, shared by all models scored."""
    return [crack_contrast(samples[i].image, samples[i].semantic) for i in range(len(samples))]


def recall_by_contrast(
    model: CrackSegmenter,
    samples: Sequence[Sample],
    contrasts: Sequence[np.ndarray],
    eval_size: Sequence[int] | None,
    batch_size: int = 4,
    threshold: float = 0.5,
    near_px: int = 2,
    edges: Sequence[float] | None = None,
) -> dict:
    """Recall per contrast quarter (faintest first, edges over all labelled pixels), and the
    faintest quarter split into found / missed within ``near_px`` of a found crack / missed.
    ``contrasts``: :func:`sample_contrasts` of ``samples``. ``edges``: three fixed band
    edges instead of this set's quarters, to compare two sets (synthetic scenes against
    the photos) band for band."""
    if not any(len(c) for c in contrasts):  # np.quantile of nothing: an IndexError
        raise ConfigError("no crack pixel in the test masks: no recall to measure")
    if not 0 < threshold < 1:  # 1.5 found nothing and reported a recall of 0
        raise ConfigError(f"threshold={threshold}: a crack probability between 0 and 1")
    if edges is None:
        edges = np.quantile(np.concatenate(contrasts), [0.25, 0.5, 0.75])
    elif len(edges) != 3 or list(edges) != sorted(edges):
        raise ConfigError(f"quarter_edges={list(edges)}: three increasing contrast values expected")
    edges = np.asarray(edges, dtype=np.float64)
    near_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * near_px + 1,) * 2)
    found, quarter, near = [], [], []
    for i, prob, _ in crack_probabilities(model, samples, eval_size, batch_size):
        crack = samples[i].semantic == 1
        pred = (prob.numpy() >= threshold).astype(np.uint8)
        found.append(pred[crack].astype(bool))
        quarter.append(np.searchsorted(edges, contrasts[i], side="right"))
        near.append(cv2.dilate(pred, near_kernel)[crack].astype(bool))
    found, quarter, near = (np.concatenate(a) for a in (found, quarter, near))
    faint = quarter == 0
    share = faint.sum() or 1
    return {
        "recall": float(found.mean()),
        "share_by_quarter": [float((quarter == q).mean()) for q in range(4)],
        "quarter_edges": [round(float(e), 1) for e in edges],
        "recall_by_quarter": [  # nan: no crack pixel in that band (fixed edges)
            float(found[quarter == q].mean()) if (quarter == q).any() else float("nan")
            for q in range(4)
        ],
        "faintest": {
            "found": float(found[faint].sum() / share),
            "missed_near": float((~found & near)[faint].sum() / share),
            "missed_away": float((~found & ~near)[faint].sum() / share),
        },
    }
