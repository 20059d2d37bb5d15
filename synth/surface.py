"""Procedural background surfaces: concrete, asphalt, plaster and stone lookalikes.

All fields are built from tiny random grids upsampled with ``cv2.resize`` (value noise), which
costs a few hundred microseconds per 256x256 image instead of the milliseconds of Perlin noise;
that speed is what lets one core render >= 100 images/s. Images are float32 RGB in [0, 1].
"""

from __future__ import annotations

import functools
from statistics import NormalDist

import cv2
import numpy as np

from synth.distributions import ConfigError, Knobs

#: Multiplicative RGB tints of common surfaces (grey concrete, beige plaster, pinkish stone...).
TINTS: dict[str, tuple[float, float, float]] = {
    "grey": (1.0, 1.0, 1.0),
    "beige": (1.08, 1.02, 0.86),
    "pink": (1.08, 0.97, 0.95),
    "bluegrey": (0.94, 0.99, 1.06),
    "brown": (1.1, 0.98, 0.84),
    "yellow": (1.08, 1.06, 0.78),
}


def tint_of(name: str) -> tuple[float, float, float]:
    if name not in TINTS:  # a KeyError said only "error: purple"
        raise ConfigError(f"synth.surface.tint: {name!r} is not one of {list(TINTS)}")
    return TINTS[name]


#: Paint-mark colours seen on real pavements and walls (RGB, 0-1).
PAINTS = ((0.9, 0.35, 0.45), (0.95, 0.95, 0.92), (0.95, 0.8, 0.2), (0.3, 0.45, 0.8))


def value_noise(
    rng: np.random.Generator,
    size: int,
    cells: int,
    channels: int = 1,
    aspect: float = 1.0,
    scale: float = 1.0,
) -> np.ndarray:
    """Smooth zero-mean noise of std ~``scale`` with ``cells`` random values across the image.

    ``aspect`` > 1 stretches features along x (streaks, brushed or formwork texture). Scaling
    happens on the tiny grid (free), cubic upsampling runs only to 8x the grid and bilinear
    does the rest: a direct cubic resize of a 4x4 grid to 256x256 costs 10x more and looks
    the same.
    """
    cy = max(2, int(cells))
    cx = max(2, int(round(cells / aspect)))
    shape = (cy, cx, channels) if channels > 1 else (cy, cx)
    grid = rng.standard_normal(shape).astype(np.float32) * np.float32(scale)
    return upsample(grid, size)


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Smoothly resize a small grid to size x size (cubic up to 8x, then bilinear)."""
    mid = (min(size, 8 * grid.shape[1]), min(size, 8 * grid.shape[0]))
    field = cv2.resize(grid, mid, interpolation=cv2.INTER_CUBIC)
    if mid != (size, size):
        field = cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)
    return field


def white_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Zero-mean unit-variance per-pixel noise; uniform draws are 4x faster than Gaussian."""
    return (rng.random((size, size), dtype=np.float32) - np.float32(0.5)) * np.float32(3.4641)


@functools.lru_cache(maxsize=8)
def coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates centred on the image, in image-size units (cached, read-only)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(size) - np.float32(0.5)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def fbm(
    rng: np.random.Generator, size: int, base: int, octaves: int, persistence: float, scale: float
) -> np.ndarray:
    """Multi-octave value noise of std ~``scale``, built as a pyramid on small grids.

    Each octave doubles the grid and adds fresh values, so only the final upsampling touches
    full-resolution pixels (one resize instead of one per octave).
    """
    cells = max(2, int(base))
    acc = rng.standard_normal((cells, cells)).astype(np.float32)
    amp, total = 1.0, 1.0
    for _ in range(1, int(octaves)):
        if cells * 2 > size // 2:
            break
        cells *= 2
        amp *= persistence
        total += amp**2
        acc = cv2.resize(acc, (cells, cells), interpolation=cv2.INTER_CUBIC)
        acc += np.float32(amp) * rng.standard_normal((cells, cells)).astype(np.float32)
    acc *= np.float32(scale / np.sqrt(total))
    return upsample(acc, size)


def grain(rng: np.random.Generator, size: int, blur: float) -> np.ndarray:
    """Per-pixel aggregate grain (sand, cement paste): uniform [0, 1) noise, mean 0.5.

    Left uncentred and unscaled on purpose: the caller folds offset and gain into one
    ``cv2.scaleAdd``; ``GRAIN_GAIN`` gives unit std, blur-compensated.
    """
    g = rng.random((size, size), dtype=np.float32)
    if blur > 0.3:
        g = cv2.GaussianBlur(g, (0, 0), blur)
    return g


def grain_gain(blur: float) -> float:
    """Gain that gives ``grain`` unit standard deviation (blurring lowers it ~1/(1+2 sigma))."""
    return 3.4641 * (1.0 + 1.6 * blur if blur > 0.3 else 1.0)


def speckle(rng: np.random.Generator, size: int, density: float) -> np.ndarray:
    """Sparse aggregate stones: isolated bright or dark dots of 1-3 px, signed in [-1, 1]."""
    n = rng.poisson(density * size * size)
    field = np.zeros((size, size), np.float32)
    if n:
        ys = rng.integers(0, size, n)
        xs = rng.integers(0, size, n)
        field[ys, xs] = rng.uniform(-1.0, 1.0, n).astype(np.float32)
        field = cv2.GaussianBlur(field, (5, 5), 0.8)
        field *= np.float32(3.0)
    return field


def pores(rng: np.random.Generator, size: int, count: int, radius: float) -> np.ndarray:
    """Dark air voids (blob distractors that a crack model must learn to ignore), in [0, 1].

    A pore's axes are half to one and a half ``radius``: from 3 ``size`` on, the shortest
    reaches past every corner from any centre, and the pore covers the scene whatever its
    radius, so the radius is drawn as 3 ``size`` (OpenCV's cost kept growing with the axes:
    100,000 pores of radius 1e5 took 41 s of a 256 px scene).
    """
    radius = min(radius, 3.0 * size)
    field = np.zeros((size, size), np.float32)
    for _ in range(count):
        c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        axes = (
            max(1, int(rng.uniform(0.5, 1.5) * radius)),
            max(1, int(rng.uniform(0.5, 1.5) * radius)),
        )
        cv2.ellipse(
            field,
            c,
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            float(rng.uniform(0.4, 1.0)),
            -1,
            cv2.LINE_AA,
        )
    return cv2.GaussianBlur(field, (0, 0), 0.8) if count else field


def paint_stripe(rng: np.random.Generator, size: int, width: float) -> np.ndarray:
    """Coverage in [0, 1] of one straight, slightly ragged paint line across the image."""
    mask = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.1, 0.9, 2) * size
    d = np.array([np.cos(angle), np.sin(angle)]) * size * 1.5
    p1 = (int(cx - d[0]), int(cy - d[1]))
    p2 = (int(cx + d[0]), int(cy + d[1]))
    # 4 sizes thick paints every pixel (the line runs through the image); wider lines failed
    # in OpenCV (at most 32767 px thick) to the same fully painted image
    cv2.line(mask, p1, p2, 1.0, max(1, int(round(min(width, 4 * size)))), cv2.LINE_AA)
    ragged = 0.6 + 0.4 * (value_noise(rng, size, size // 8) > -0.8).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 1.0) * ragged


def watermark(rng: np.random.Generator, size: int) -> np.ndarray:
    """Faint repeated text (stock-photo watermarks are frequent in real crack datasets)."""
    mask = np.zeros((size, size), np.uint8)  # putText draws on 8-bit images only
    text = str(rng.choice(["depositphotos", "stock photo", "sample", "(c) photo", "shutterstock"]))
    scale = rng.uniform(0.35, 0.7) * size / 256
    step = max(2, int(size * rng.uniform(0.3, 0.5)))
    first = int(rng.integers(min(10, step - 1), step))  # text baseline; tiny images too
    for y in range(first, size, step):
        x = int(rng.integers(-40, 20))
        cv2.putText(mask, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1, cv2.LINE_AA)
    return mask.astype(np.float32) / np.float32(255.0)


def stains(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Blotchy damp or dirt stains: soft-thresholded low-frequency noise, in [0, 1]."""
    n = value_noise(rng, size, cells)
    return np.clip((n - 0.6) * 1.5, 0.0, 1.0)


def mottle(
    rng: np.random.Generator, size: int, cells: int, coverage: float, edge: float
) -> np.ndarray:
    """Patchy dark mottling of weathered or granite-like concrete, in [0, 1].

    ``stains`` are a few large soft patches; on real concrete the zero-label models' false
    cracks sat on many mid-sized blotches (a few to ~30 px) with crisp edges, which they had
    never seen unlabeled. ``coverage`` is the share of the surface mottled and ``edge`` the
    edge softness in noise-std units (small = crisp).
    """
    n = fbm(rng, size, cells, 2, 0.5, 1.0)
    if not 0.0 < coverage < 1.0:  # none or all of it: no quantile (a StatisticsError mid-render)
        return np.full((size, size), float(coverage >= 1.0), np.float32)
    n *= np.float32(1.0 / (float(n.std()) + 1e-6))  # so the threshold sets the coverage
    threshold = NormalDist().inv_cdf(1.0 - coverage)
    gain = np.float32(1.0 / max(edge, 1e-6))  # edge 0: a hard edge (it divided by zero)
    return np.clip((n - np.float32(threshold)) * gain + np.float32(0.5), 0, 1)


def aggregate(rng: np.random.Generator, size: int, radius: float, fill: float) -> np.ndarray:
    """Asphalt chippings: angular stones of random brightness in dark binder, in [-1, 1].

    The dark, connected gaps between stones were the commonest false cracks of
    synthetic-trained models on real asphalt; here they are drawn unlabeled, as background.
    Stones sit on a jittered grid of pitch ``2 * radius`` so the binder forms a network;
    ``fill`` is a stone's size relative to the pitch (about 1 closes the gaps to thin seams).
    """
    field = np.full((size, size), -1.0, np.float32)  # binder: the darkest value
    pitch = 2.0 * radius
    ticks = np.arange(-pitch / 2, size + pitch, pitch)
    centres = np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 1, 2)
    n = len(centres)
    centres = centres + rng.uniform(-0.3, 0.3, (n, 1, 2)) * pitch
    corners = int(rng.integers(5, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, (n, corners)), axis=1)
    radii = fill * radius * rng.uniform(0.7, 1.2, (n, corners))
    offsets = np.stack([np.cos(angles), np.sin(angles)], -1) * radii[..., None]
    stones = np.round(centres + offsets).astype(np.int32)  # (n, corners, 2)
    for stone, shade in zip(stones, rng.uniform(-0.2, 1.0, n).tolist()):
        cv2.fillConvexPoly(field, stone, shade, cv2.LINE_AA)
    return cv2.GaussianBlur(field, (0, 0), 0.7)


def albedo(k: Knobs, size: int) -> np.ndarray:
    """Surface reflectance (before lighting) as float32 RGB in [0, 1].

    Texture terms are relative (multiplicative) so dark asphalt and bright plaster keep the
    same look; everything stays single-channel until the final tint multiply, for speed.
    """
    rng = k.rng
    tex = fbm(
        rng,
        size,
        k("noise_base_cells"),
        k("noise_octaves"),
        k("noise_persistence"),
        k("noise_amplitude"),
    )
    blur = k("grain_blur")
    gain = grain_gain(blur) * k("grain_amplitude")
    tex = cv2.scaleAdd(grain(rng, size, blur), gain, tex)  # one pass: tex += gain * grain
    offset = 1.0 - 0.5 * gain  # grain's mean, removed through the final offset below
    tex = cv2.scaleAdd(speckle(rng, size, k("speckle_density")), k("speckle_contrast"), tex)
    streak = k("streak_amplitude")
    if streak > 0:
        s = value_noise(rng, size, int(k("streak_cells")), aspect=16.0, scale=streak)
        tex += s if rng.random() < 0.5 else s.T
    if rng.random() < k("p_aggregate"):
        stones = aggregate(rng, size, k("aggregate_radius"), k("aggregate_fill"))
        tex = cv2.scaleAdd(stones, k("aggregate_contrast"), tex)
    count = int(k("pore_count"))
    if count:
        tex = cv2.scaleAdd(pores(rng, size, count, k("pore_radius")), -k("pore_depth"), tex)
    if rng.random() < k("p_mottle"):
        blotches = mottle(rng, size, int(k("mottle_cells")), k("mottle_coverage"), k("mottle_edge"))
        tex = cv2.scaleAdd(blotches, -k("mottle_strength"), tex)
    if rng.random() < k("p_stain"):
        patches = stains(rng, size, int(rng.integers(2, 6)))
        tex = cv2.scaleAdd(patches, -k("stain_strength"), tex)
    base = k("base_grey")
    tint = np.asarray(tint_of(k("tint")), np.float32)
    tint = 1.0 + k("tint_strength") * (tint - 1.0) / 0.12
    colour = rng.standard_normal((4, 4, 3)).astype(np.float32) * np.float32(k("colour_noise"))
    colour = upsample((colour + tint) * np.float32(base), size)
    tex += np.float32(offset)
    rgb = tex[..., None] * colour
    if rng.random() < k("p_paint"):
        grey = tex * np.float32(base)
        cover = paint_stripe(rng, size, k("paint_width"))[..., None] * k("paint_opacity")
        paint = np.asarray(PAINTS[int(rng.integers(len(PAINTS)))], np.float32)
        rgb = rgb * (1 - cover) + paint * grey[..., None] * 1.6 * cover
    if rng.random() < k("p_watermark"):
        rgb += (k("watermark_opacity") * watermark(rng, size))[..., None]
    return rgb


def lighting(k: Knobs, size: int) -> np.ndarray:
    """Multiplicative illumination: linear gradient x vignetting x optional cast shadow.

    Gradient and vignetting are smooth, so they are computed on a 32x32 grid and upsampled.
    """
    rng = k.rng
    yy, xx = coords(32)
    angle = rng.uniform(0, 2 * np.pi)
    gx, gy = float(np.cos(angle)), float(np.sin(angle))  # Python floats keep arrays float32
    light = 1.0 + k("illumination_gradient") * (gx * xx + gy * yy)
    light *= 1.0 - k("vignetting") * (xx * xx + yy * yy) * 2.0
    light = cv2.resize(light, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < k("p_shadow"):
        yy, xx = coords(size)
        a = rng.uniform(0, 2 * np.pi)
        edge = float(np.cos(a)) * xx + float(np.sin(a)) * yy - rng.uniform(-0.3, 0.3)
        edge += value_noise(rng, size, 3, scale=0.05)
        soft = max(k("shadow_softness"), 1e-6)  # 0: a hard edge (a division by zero)
        light *= 1.0 - k("shadow_strength") * np.clip(0.5 + edge / soft, 0.0, 1.0)
    amplitude = k("relief_amplitude")
    if amplitude > 0:
        light *= relief(rng, size, int(k("relief_cells")), amplitude)
    return light


def relief(rng: np.random.Generator, size: int, cells: int, amplitude: float) -> np.ndarray:
    """Shading of a bumpy surface under grazing light: a height field's slope along a random
    light direction, scaled to std ``amplitude`` around 1.

    Rough plaster and asphalt photos are full of small dark crescents on the shadowed side of
    every bump; models trained on flat synthetic surfaces mistook them for cracks. The slope
    is taken on the small random grid and upsampled once (smooth interpolation commutes with
    the derivative closely enough), so relief costs one resize per image.
    """
    height = rng.standard_normal((max(2, cells), max(2, cells))).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    slope = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * np.float32(np.cos(angle))
    slope = cv2.scaleAdd(cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3), np.sin(angle), slope)
    slope *= np.float32(amplitude / (float(slope.std()) + 1e-6))
    return upsample(np.clip(slope + np.float32(1.0), 0.25, 1.75), size)
