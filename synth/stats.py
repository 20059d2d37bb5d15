"""Image/label statistics used to tune the simulator against real data (and to report it).

Definitions (identical for synthetic and real sets, so only the comparison matters):

* crack share: fraction of labelled crack pixels per image (mean over images);
* width: ``2 * d`` at skeleton pixels of the mask, ``d`` being the distance transform
  (distance to the nearest background pixel centre; a 5-px band measures 6, a 1-px line 2),
  pooled over all skeleton pixels of the set; DeepCrack's median is about 4.5 by this measure;
* wide-crack area: share of the crack area in cracks wider than ``WIDE_PX`` (skeleton widths
  weighted by width, i.e. by the area they stand for). Pixel F1 counts area, and wide gaps
  hold much of it while being a small share of the skeleton;
* contrast: mean grey of background pixels 3-8 px from the crack minus mean grey of crack
  pixels, per image with cracks, then averaged;
* rim / core darkness: per image with a crack interior, (ring - grey of the crack's edge
  pixels) / (ring - grey of pixels 2.5 px or more inside), then the median over images. Below
  1 is a V-shaped section, whose labelled rims are faint although the crack is dark; it says
  whether a set's faint crack pixels are rims or whole faint cracks (conf/synth/soft_rims.yaml);
* section fall-off (no labels): how dark a crack is 2 px beside its darkest line, as a share
  of that line's darkness, read from the image alone (``section_falloff``), so a folder of
  unlabelled photos has it too. DeepCrack's photos fall off faster than the simulator's
  cracks (docs/experiments.md, session 26);
* background brightness/std: grey mean and std of pixels labelled background;
* texture level: per image, the median |grey - its 15 x 15 neighbourhood mean| over all pixels
  (grey = channel mean), then the median over images. Thin cracks barely move it; what it
  reads is grain, pores and relief. The simulator draws more than the real photos on purpose
  (conf/synth/default.yaml says why).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.table import Table

from synth.io import ImageFolder, ShardedDataset, say_if_unfinished

CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
BLACK_HAT = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
WIDE_PX = 11.0
#: Shortest dark line (bounding-box side, px) the label-free section fall-off reads.
MIN_SPAN = 40
TEXTURE_WINDOW = 15


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Morphological (Lantuejoul) skeleton by an erode/open loop: no ximgproc or skimage needed.

    It keeps the ridge of the distance transform, where ``2d`` measures the local width; it need not be connected for width statistics.
    """
    img = (mask > 0).astype(np.uint8)
    skel = np.zeros_like(img)
    while img.any():
        eroded = cv2.erode(img, CROSS)
        opened = cv2.dilate(eroded, CROSS)
        skel |= img & (1 - opened)
        img = eroded
    return skel.astype(bool)


def crack_widths(mask: np.ndarray) -> np.ndarray:
    """Local crack widths (px) at skeleton pixels of a binary mask."""
    crack = (mask == 1).astype(np.uint8)
    if not crack.any():
        return np.zeros(0, np.float32)
    dist = cv2.distanceTransform(np.pad(crack, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return 2.0 * dist[skeleton(crack)]


def ring_grey(grey: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean grey of the background 3-8 px from the cracks: the surface a crack is seen against."""
    crack = mask == 1
    if not crack.any():
        return None
    dist = cv2.distanceTransform((~crack).astype(np.uint8), cv2.DIST_L2, 5)
    ring = (dist >= 3) & (dist <= 8) & (mask == 0)
    return float(grey[ring].mean()) if ring.any() else None


def contrast(grey: np.ndarray, mask: np.ndarray, ring: float) -> float:
    """``ring`` (the image's ``ring_grey``) minus the mean grey of crack pixels. The caller
    passes the ring because its distance transform is the costly part of both statistics."""
    return ring - float(grey[mask == 1].mean())


def rim_core_ratio(
    grey: np.ndarray, mask: np.ndarray, ring: float, min_core: int = 10
) -> float | None:
    """How dark a crack's labelled edge pixels are against its interior (2.5 px or more in),
    each as ``ring`` (the image's ``ring_grey``) minus its own mean; None without
    ``min_core`` interior pixels."""
    inside = cv2.distanceTransform((mask == 1).astype(np.uint8), cv2.DIST_L2, 5)
    rim, core = (inside > 0) & (inside < 1.5), inside >= 2.5
    if core.sum() < min_core:
        return None
    core_dark = ring - float(grey[core].mean())
    return (ring - float(grey[rim].mean())) / core_dark if core_dark > 1 else None


def channel_grey(image: np.ndarray) -> np.ndarray:
    """The plain channel mean: the grey the texture and section statistics read, so they match
    the GAN side's tensor arithmetic (labels' statistics use ``cvtColor``'s weighted grey)."""
    return image.astype(np.float32).mean(axis=2)


def texture_level(image: np.ndarray, window: int = TEXTURE_WINDOW) -> float:
    """Median |grey - local mean| of one RGB image, the local mean taken over the ``window``
    square's pixels inside the image (as ``avg_pool2d(count_include_pad=False)``)."""
    return grey_texture_level(channel_grey(image), window)


def grey_texture_level(grey: np.ndarray, window: int = TEXTURE_WINDOW) -> float:
    """``texture_level`` of an image already made ``channel_grey``."""
    size, border = (window, window), cv2.BORDER_CONSTANT
    total = cv2.boxFilter(grey, -1, size, normalize=False, borderType=border)
    count = cv2.boxFilter(np.ones_like(grey), -1, size, normalize=False, borderType=border)
    return float(np.median(np.abs(grey - total / count)))


def dark_lines(
    grey: np.ndarray, min_span: int = MIN_SPAN, quantile: float = 97.0
) -> tuple[np.ndarray, np.ndarray]:
    """Black-hat darkness (grey below its 17 px closing) and a mask of the darkest long
    structures: above both 30 grey levels and the image's ``quantile``, spanning ``min_span``
    px or more. On the median train photo 99 % of what it keeps lies within 2 px of a
    labelled crack; the 30-level threshold alone kept the simulator's grain (60 % of its
    pixels)."""
    dark = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, BLACK_HAT) - grey
    found = (dark >= max(30.0, float(np.percentile(dark, quantile)))).astype(np.uint8)
    _, labels, box, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    span = np.maximum(box[:, cv2.CC_STAT_WIDTH], box[:, cv2.CC_STAT_HEIGHT])
    keep = span >= min_span
    keep[0] = False
    return dark, keep[labels]


def section_falloff(image: np.ndarray, at: float = 2.0, min_span: int = MIN_SPAN) -> float | None:
    """Median darkness ``at`` px from the skeleton of ``dark_lines`` over its darkness on the
    skeleton (3 x 3 max of the nearest skeleton pixel): low for a sharp V, near 1 for a wide
    flat crack. No labels: it compares a simulator's images with a folder of real photos."""
    return grey_section_falloff(channel_grey(image), at, min_span)


def grey_section_falloff(
    grey: np.ndarray, at: float = 2.0, min_span: int = MIN_SPAN
) -> float | None:
    """``section_falloff`` of an image already made ``channel_grey``."""
    dark, lines = dark_lines(grey, min_span)
    if not lines.any():
        return None
    skel = skeleton(lines)
    dist, nearest = cv2.distanceTransformWithLabels(
        (~skel).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(skel)
    core = np.zeros(int(nearest.max()) + 1, np.float32)
    core[nearest[ys, xs]] = cv2.dilate(dark, np.ones((3, 3), np.uint8))[ys, xs]
    ring = np.abs(dist - at) < 0.5
    return float(np.median(dark[ring] / core[nearest[ring]])) if ring.any() else None


@dataclass
class SetStats:
    """Aggregated statistics of a set of (image, mask) pairs."""

    images: int = 0
    crack_free: int = 0
    shares: list[float] = field(default_factory=list)
    widths: list[np.ndarray] = field(default_factory=list)
    contrasts: list[float] = field(default_factory=list)
    bg_mean: list[float] = field(default_factory=list)
    bg_std: list[float] = field(default_factory=list)
    textures: list[float] = field(default_factory=list)
    rim_ratios: list[float] = field(default_factory=list)
    falloffs: list[float] = field(default_factory=list)

    def add(self, image: np.ndarray, mask: np.ndarray) -> None:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        crack = mask == 1
        self.images += 1
        self.crack_free += int(not crack.any())
        self.shares.append(float(crack.mean()))
        self.widths.append(crack_widths(mask))
        ring = ring_grey(grey, mask)
        if ring is not None:
            self.contrasts.append(contrast(grey, mask, ring))
            r = rim_core_ratio(grey, mask, ring)
            if r is not None:
                self.rim_ratios.append(r)
        bg = grey[mask == 0]
        if bg.size:
            self.bg_mean.append(float(bg.mean()))
            self.bg_std.append(float(bg.std()))
        flat = channel_grey(image)
        self.textures.append(grey_texture_level(flat))
        falloff = grey_section_falloff(flat)
        if falloff is not None:
            self.falloffs.append(falloff)

    def summary(self) -> dict[str, float]:
        w = np.concatenate(self.widths) if self.widths else np.zeros(0)
        mean = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
        pct = lambda q: float(np.percentile(w, q)) if w.size else float("nan")  # noqa: E731
        return {
            "images": float(self.images),
            "crack-free fraction": self.crack_free / max(self.images, 1),
            "crack share %": 100 * mean(self.shares),
            "width median px": pct(50),
            "width p90 px": pct(90),
            "width max px": float(w.max()) if w.size else float("nan"),
            f"crack area > {WIDE_PX:g} px wide": float(w[w > WIDE_PX].sum() / w.sum())
            if w.size
            else float("nan"),
            "contrast (ring - crack) grey": mean(self.contrasts),
            # the faint tail: a simulator whose mean matches can still lack faint cracks
            "contrast p10 grey": float(np.percentile(self.contrasts, 10))
            if self.contrasts
            else float("nan"),
            "rim / core darkness": float(np.median(self.rim_ratios))
            if self.rim_ratios
            else float("nan"),
            "section fall-off at 2 px (no labels)": float(np.median(self.falloffs))
            if self.falloffs
            else float("nan"),
            "background grey mean": mean(self.bg_mean),
            "background grey std": mean(self.bg_std),
            "texture level grey": float(np.median(self.textures))
            if self.textures
            else float("nan"),
        }


_NO_CRACK = "no crack pixel in any mask"
_NO_RING = "no crack with background 3-8 px around it"
#: Why a statistic of a set with images is NaN: a table reader sees ``nan`` otherwise and
#: cannot tell a bug from a set that has nothing to measure (a 64 px render's cracks rarely
#: span the fall-off's 40 px).
WHY_UNMEASURED = {
    "width median px": _NO_CRACK,
    "width p90 px": _NO_CRACK,
    "width max px": _NO_CRACK,
    f"crack area > {WIDE_PX:g} px wide": _NO_CRACK,
    "contrast (ring - crack) grey": _NO_RING,
    "contrast p10 grey": _NO_RING,
    "rim / core darkness": "no crack with a core (10 pixels 2.5 px or more inside its edge) "
    "darker than its surroundings: cracks under about 5 px wide",
    "section fall-off at 2 px (no labels)": f"no dark line spans {MIN_SPAN} px in any image "
    "(small images, short or faint cracks)",
    "background grey mean": "no background pixel",
    "background grey std": "no background pixel",
}


def unmeasured(stats: dict[str, float], name: str, keys: Iterable[str] | None = None) -> list[str]:
    """One line for each NaN statistic of ``stats`` among ``keys`` (all by default), saying
    why the set had nothing to measure."""
    return [
        f"{name} {key}: nan, {WHY_UNMEASURED[key]}"
        for key in (stats if keys is None else keys)
        if key in WHY_UNMEASURED and np.isnan(stats[key])
    ]


def compute_stats(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Statistics of (RGB uint8 image, class-id mask) pairs; see the module docstring."""
    acc = SetStats()
    for image, mask in pairs:
        acc.add(image, mask)
    return acc.summary()


#: What compute_stats reads from the images alone: all a folder of unlabelled photos has.
LABEL_FREE = ("images", "section fall-off at 2 px (no labels)", "texture level grey")


def label_free(stats: dict[str, float]) -> dict[str, float]:
    """``stats`` of images read without masks: every statistic that needs labels is NaN
    (shown as ``nan`` and no ratio), not the zero crack share an empty mask would give."""
    return {k: v if k in LABEL_FREE else float("nan") for k, v in stats.items()}


def compare_stats(
    synthetic: dict[str, float],
    real: dict[str, float],
    names: tuple[str, str] = ("synthetic", "real"),
) -> Table:
    """Side-by-side rich table of two ``compute_stats`` results, with their ratio."""
    table = Table(title="Dataset statistics")
    table.add_column("statistic")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("ratio", justify="right")
    for key in synthetic:
        a, b = synthetic[key], real.get(key, float("nan"))
        ratio = f"{a / b:.2f}" if b and np.isfinite(a) and np.isfinite(b) else "-"
        table.add_row(key, f"{a:.3g}", f"{b:.3g}", ratio)
    return table


def synthetic_pairs(
    dataset: str | Path | None, cfg_synth: object, num: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, mask) pairs of a sharded dataset, or of ``num`` freshly rendered samples, their
    settings checked as render's are, at the call (synth.size=0 was a cv2 traceback, 5000 px
    and p_no_crack=2 went through)."""
    if dataset is not None:
        samples = ShardedDataset(dataset)
        say_if_unfinished(samples)
        return ((sample.image, sample.semantic) for sample in samples)
    from synth.render import checked_scene_config
    from synth.scene import render_crack_scene

    cfg = checked_scene_config(cfg_synth)
    scenes = (render_crack_scene(cfg, seed, i) for i in range(num))
    return ((sample.image, sample.semantic) for sample in scenes)


def real_pairs(
    images: str | Path, masks: str | Path | None, limit: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, class-id mask) pairs of a real folder pair such as DeepCrack train_img/train_lab;
    empty masks where ``masks`` is None (then only LABEL_FREE statistics mean anything)."""
    folder = ImageFolder(images, masks)
    for i in range(len(folder) if limit is None else min(limit, len(folder))):
        sample = folder[i]
        yield sample.image, sample.semantic
