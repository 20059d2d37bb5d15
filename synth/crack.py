"""Crack geometry and appearance.

Geometry: each crack is a correlated random walk (a slow meander plus per-step zigzag jitter,
the signature of real cracks following aggregate boundaries) grown both ways from a seed point,
with tapered branches. Every centreline point carries a half-width (radius) that varies
smoothly along the crack and tapers at free ends.

Rasterisation uses one distance transform to the centreline pixels plus a grey dilation of
their radii, so coverage is ``radius - distance`` (anti-aliased, round caps, no
self-intersection artefacts at zigzags, and joins between cracks and branches come for free).
A noise field added to that difference chips the rims, bounded so that it never cuts a crack
or sets a piece of one apart. The same coverage both darkens the image and defines the label,
which is what keeps masks aligned with the drawn crack.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synth.distributions import ConfigError, Knobs
from synth.surface import value_noise

#: Coverage at or above this is labelled crack: the label edge sits where the drawn crack
#: covers half a pixel, so labels and darkened pixels coincide.
LABEL_THRESHOLD = 0.5
#: The most of a crack's half-width the rim noise (crack.edge_roughness) may chip away.
#: Unbounded, it cut through thin cracks: 76 of 300 default scenes at 256 px had centreline
#: pixels cut, 72 of 100 at crack.edge_roughness=2, which drew dotted lines. Chipping down to
#: the centreline alone left a faint thread between dark dots; half keeps a solid core.
RIM_ERODE = 0.5
#: px: from this reach on, a crack's radius dilation runs as a running max (``window_max``),
#: where OpenCV's square dilation took longer (0.36 s at 2048 px, and growing with the reach)
RUNNING_MAX_FROM = 256


@dataclass
class CrackPath:
    """A centreline polyline (N x 2, x/y in pixels) with a radius per point and an instance id."""

    points: np.ndarray
    radius: np.ndarray
    instance: int


@dataclass
class CrackLayer:
    """Rasterised cracks: coverage in [0, 1], instance ids, and the radius of the nearest crack.

    ``instance`` is None when the scene holds a single crack (id 1 wherever there is crack),
    which spares a full-image lookup and warp in the common case.
    """

    coverage: np.ndarray
    instance: np.ndarray | None
    radius: np.ndarray
    inner: np.ndarray  # 0 on the rim, rising to 1 one radius inside it (edge_fade's ramp)


def smooth_series(rng: np.random.Generator, n: int, knot_every: float, sigma: float) -> np.ndarray:
    """Smooth 1-D noise over ``n`` steps: Gaussian values at knots, linearly interpolated."""
    knots = int(n / max(knot_every, 1.0)) + 2
    values = rng.normal(0.0, sigma, knots)
    return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), values)


def walk(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    length: float,
    step: float,
    meander: float,
    jitter: float,
) -> np.ndarray:
    """Correlated random walk of ``length`` px; returns (n+1) x 2 points starting at ``start``."""
    n = max(2, int(length / step))
    angles = heading + smooth_series(rng, n, 40.0 / step, meander) + rng.normal(0.0, jitter, n)
    steps = step * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.vstack([start[None], start + np.cumsum(steps, axis=0)])


def radius_profile(
    rng: np.random.Generator, n: int, width: float, variation: float, taper: float
) -> np.ndarray:
    """Half-widths along a crack: smooth log-normal variation, thinning towards both ends."""
    r = 0.5 * width * np.exp(smooth_series(rng, n, 12.0, variation))
    t = np.linspace(0.0, 1.0, n)
    ends = np.clip(np.minimum(t, 1.0 - t) / max(taper, 1e-3), 0.0, 1.0)
    return r * (0.25 + 0.75 * np.sqrt(ends))


def main_path(k: Knobs, size: int, width: float, instance: int) -> CrackPath:
    """One crack grown both ways from a seed point, so it usually crosses the whole image."""
    rng = k.rng
    centre = rng.uniform(0.15, 0.85, 2) * size
    heading = rng.uniform(0, 2 * np.pi)
    half = 0.5 * k("length") * size
    step, meander, jitter = k("step"), k("meander"), k("jitter")
    fwd = walk(rng, centre, heading, half, step, meander, jitter)
    bwd = walk(rng, centre, heading + np.pi, half, step, meander, jitter)
    pts = np.vstack([bwd[::-1], fwd[1:]])
    radius = radius_profile(rng, len(pts), width, k("width_variation"), k("taper"))
    return CrackPath(pts, radius, instance)


def branch_path(k: Knobs, parent: CrackPath) -> CrackPath:
    """A side branch leaving the parent at an angle, starting at the parent's width."""
    rng = k.rng
    n = len(parent.points)
    i = int(rng.integers(n // 8, max(n // 8 + 1, 7 * n // 8)))
    tangent = parent.points[min(i + 1, n - 1)] - parent.points[max(i - 1, 0)]
    angle = np.arctan2(tangent[1], tangent[0]) + rng.choice([-1, 1]) * np.deg2rad(
        rng.uniform(20, 70)
    )
    length = k("branch_length") * n * k("step")
    pts = walk(rng, parent.points[i], angle, length, k("step"), k("meander"), k("jitter"))
    r0 = parent.radius[i]
    ratio = k("branch_width_ratio")
    s = np.arange(len(pts)) * k("step")  # arc length from the junction, px
    t = s / max(s[-1], 1.0)
    # Full parent width only within ~one crack width of the junction (a flared join), then
    # the branch's own width, thinning over its last third.
    radius = r0 * (ratio + (1 - ratio) * np.exp(-s / (r0 + 0.5)))
    radius *= np.clip((1.0 - t) / 0.35, 0.25, 1.0)
    return CrackPath(pts, radius, parent.instance)


def crack_paths(k: Knobs, size: int) -> list[CrackPath]:
    """All crack centrelines of a scene: a few cracks (one instance each) with branches."""
    paths = []
    width, count = k("width"), int(k("num_cracks"))
    if count < 1 or width <= 0:  # a crack scene with an empty mask, recorded as has_crack
        raise ConfigError(
            f"synth.crack: drew num_cracks={count}, width={width:g}; a crack scene needs at "
            "least 1 crack of a width above 0 (synth.p_no_crack sets the crack-free share)"
        )
    for c in range(count):
        w = width if c == 0 else width * k.rng.uniform(0.3, 0.9)
        main = main_path(k, size, w, instance=c + 1)
        paths.append(main)
        for _ in range(int(k("num_branches"))):
            paths.append(branch_path(k, main))
    return paths


def densify(path: CrackPath, size: int, spacing: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline every ``spacing`` px so its rounded points form a connected line,
    where it crosses the ``size`` px image alone (the only points drawn).

    A crack's length off the image was resampled too: crack.step=1e5 with branch_length=1000
    (a few walk steps, legal) asked for 7.5 GB of points for a 256 px scene. The points kept
    are those of the whole line's resampling (arc lengths ``spacing`` apart from its start).
    """
    xy = path.points
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    enter, leave = box_span(xy[:-1], xy[1:], -2.0, size + 1.0)  # a pixel's margin
    first = np.maximum(np.ceil(s[:-1] / spacing), np.ceil((s[:-1] + enter * seg) / spacing))
    last = np.minimum(np.ceil(s[1:] / spacing), np.floor((s[:-1] + leave * seg) / spacing) + 1)
    count = np.where(enter <= leave, np.maximum(last - first, 0), 0).astype(np.int64)
    offset = first.astype(np.int64) - np.cumsum(count) + count
    q = (np.arange(count.sum()) + np.repeat(offset, count)) * spacing
    pts = np.stack([np.interp(q, s, xy[:, 0]), np.interp(q, s, xy[:, 1])], 1)
    return pts, np.interp(q, s, path.radius)


def box_span(a: np.ndarray, b: np.ndarray, low: float, high: float) -> tuple[np.ndarray, ...]:
    """Where each segment ``a``-``b`` (N x 2) runs inside the square [low, high]^2, as the
    fractions (0-1) of its length at which it enters and leaves; enter > leave: it misses."""
    d = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        to_low, to_high = (low - a) / d, (high - a) / d
    still = d == 0  # not moving along this axis: inside it throughout, or never
    inside = (a >= low) & (a <= high)
    enter = np.where(still, np.where(inside, 0.0, 2.0), np.minimum(to_low, to_high))
    leave = np.where(still, np.where(inside, 1.0, -1.0), np.maximum(to_low, to_high))
    return np.clip(enter.max(axis=1), 0.0, 2.0), np.clip(leave.min(axis=1), -1.0, 1.0)


def rasterize(paths: list[CrackPath], size: int, rough: np.ndarray) -> CrackLayer:
    """Coverage from one labelled distance transform; ``rough`` (px) chips the rims."""
    radius_img = np.zeros((size, size), np.float32)
    inst_img = np.zeros((size, size), np.uint16)
    single = all(p.instance == 1 for p in paths)
    for path in paths:
        pts, r = densify(path, size)
        ix = np.rint(pts[:, 0]).astype(np.intp)
        iy = np.rint(pts[:, 1]).astype(np.intp)
        keep = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
        order = np.argsort(r[keep])
        ix, iy, r = ix[keep][order], iy[keep][order], r[keep][order].astype(np.float32)
        # Where lines overlap keep the wider one, so a branch start never dents its parent
        # (ascending order: the last, widest write wins among duplicates).
        radius_img[iy, ix] = np.maximum(radius_img[iy, ix], r)
        if not single:
            inst_img[iy, ix] = path.instance
    rmax = float(radius_img.max())
    if rmax <= 0:
        zero = np.zeros((size, size), np.float32)
        return CrackLayer(zero, None, zero, zero)
    centre = radius_img > 0
    dist = cv2.distanceTransform(np.uint8(1) - centre.view(np.uint8), cv2.DIST_L2, 5)
    # Radius of the crack nearby: grey dilation (max over a window that covers the widest
    # crack's reach). Near a junction or crossing the thin crack takes the wide one's radius,
    # which flares the join like real spalling; 3x cheaper than a labelled distance transform.
    # A window twice the image wide already covers all of it from every pixel: a wider crack
    # (crack.width=30000) asked for a 3.6 GB kernel and 7 s a 256 px scene, to the same mask.
    reach = int(min(np.ceil(rmax + 1.5), size))
    near_r = window_max(radius_img, reach)
    rough *= 0.4 + 0.12 * near_r
    # The noise chips away at most RIM_ERODE of a crack's half-width, so the core stays (at
    # crack.edge_roughness=3 a crack's mask fell into 11.6 pieces at 256 px, 1.4 smooth).
    np.maximum(rough, np.float32(-RIM_ERODE) * near_r, out=rough)
    rough += near_r
    rough -= dist
    inner = np.clip(rough / np.maximum(near_r, np.float32(1.0)), 0.0, 1.0)
    rough += np.float32(0.5)
    cov = np.clip(rough, 0.0, 1.0, out=rough)
    drop_islands(cov, centre)
    instance = None if single else nearest_ids(inst_img, centre)
    return CrackLayer(cov, instance, near_r, inner)


def nearest_ids(inst_img: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Each pixel's crack id: that of its nearest centreline pixel (``centre``), by the same
    5x5 chamfer distance that draws the coverage.

    The highest id within the widest crack's reach (a square dilation) cut a crack's instance
    mask in two where a later crack crossed or passed near it, with a band as wide as the
    widest crack whatever the later one's width: a thin crack took a wide one's pixels far from
    its own. Labels number the centreline pixels in row-major order, as ``inst_img[centre]``.
    """
    background = np.uint8(1) - centre.view(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(
        background, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ids = np.concatenate([np.zeros(1, inst_img.dtype), inst_img[centre]])
    return ids[labels]


def window_max(image: np.ndarray, reach: int) -> np.ndarray:
    """Max over the (2 ``reach`` + 1)-pixel square round each pixel of a non-negative image,
    as ``cv2.dilate`` with that square draws it, to the bit.

    OpenCV's cost grows with the window: a crack as wide as a 2048 px scene (crack.width=1e5,
    or crack.width_variation=10 at the default width) took 18 s a dilation, two a scene of
    several cracks (32-42 s). Past ``RUNNING_MAX_FROM`` px the window's max runs in two
    passes a pixel whatever its width (0.2-0.9 s at 2048 px), and a window that reaches
    across the whole image is its max.
    """
    size = max(image.shape)
    if reach >= size - 1:
        return np.full_like(image, image.max())
    if reach < RUNNING_MAX_FROM:
        return cv2.dilate(image, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    return running_max(running_max(image, reach, 0), reach, 1)


def running_max(image: np.ndarray, reach: int, axis: int) -> np.ndarray:
    """Max over 2 ``reach`` + 1 pixels along ``axis``, zero beyond the image (van Herk /
    Gil-Werman): within blocks of the window's length, maxima accumulated forwards and
    backwards, of which any window spans two."""
    k = 2 * reach + 1
    rows = np.moveaxis(image, axis, -1)
    count, n = rows.shape
    padded = np.zeros((count, -(-(n + 2 * reach) // k) * k), image.dtype)
    padded[:, reach : reach + n] = rows
    blocks = padded.reshape(count, -1, k)
    ahead = np.maximum.accumulate(blocks, axis=2).reshape(padded.shape)
    behind = np.maximum.accumulate(blocks[:, :, ::-1], axis=2)[:, :, ::-1].reshape(padded.shape)
    out = np.maximum(behind[:, :n], ahead[:, 2 * reach : 2 * reach + n])
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def drop_islands(cov: np.ndarray, centre: np.ndarray) -> None:
    """Erase, in place, crack pieces the rim noise set apart from every crack's centreline.

    Steep noise beyond the rim draws blobs off the crack (3.4 a crack at 256 px at
    crack.edge_roughness=3, in 26 of 300 default scenes), which would teach the task model
    crack shapes no crack has. Every drawn crack holds centreline pixels (``rasterize``
    measures distances to those inside the image alone). The pieces' faint anti-aliased ring
    goes too, except where it borders a crack that stays.
    """
    label = (cov >= LABEL_THRESHOLD).view(np.uint8)
    count, parts = cv2.connectedComponents(label, connectivity=8)
    if count <= 2:  # background and at most one piece, which holds the centreline
        return
    kept = np.zeros(count, bool)
    kept[parts[centre]] = True
    kept[0] = False
    if kept[1:].all():
        return
    square = np.ones((3, 3), np.uint8)
    keep = kept[parts].view(np.uint8)
    dropped = cv2.dilate(label - keep, square).view(bool)
    cov[dropped & ~cv2.dilate(keep, square).view(bool)] = 0.0


def render_cracks(k: Knobs, size: int) -> CrackLayer:
    """Sample crack geometry and rasterise it (coverage, instances, nearest radius)."""
    rough = value_noise(k.rng, size, max(4, size // 4), scale=k("edge_roughness"))
    return rasterize(crack_paths(k, size), size, rough)


def shade(k: Knobs, rgb: np.ndarray, layer: CrackLayer) -> tuple[np.ndarray, np.ndarray]:
    """Crack appearance: dark core (deeper for wider cracks), soft halo, light chipped rim.

    Returns the albedo (changed only for filled cracks) and a single-channel multiplicative
    shading factor, which the scene merges with the lighting so the RGB image is touched once.
    Rarely (``p_filled``) the crack is filled with light dust or sealant, as in some real photos.
    """
    rng, size = k.rng, rgb.shape[0]
    cov = layer.coverage
    blurred = cv2.GaussianBlur(cov, (0, 0), k("halo_sigma"))
    rim = np.clip(blurred - cov, 0.0, 1.0)
    if rng.random() < k("p_filled"):
        fill = np.float32(0.8 * k("fill_brightness"))
        mix = (0.8 * cov)[..., None]
        return rgb * (1 - mix) + fill * mix, 1.0 - 0.6 * rim
    depth = value_noise(rng, size, 6, scale=k("depth_variation")) + 1.0
    depth *= np.float32(k("depth")) * (0.55 + 0.45 * np.clip(layer.radius / 2.5, 0.0, 1.0))
    fade = k("edge_fade")
    if fade:  # a V-shaped section: labelled rims much fainter than the core, as in DeepCrack
        depth *= 1.0 - np.float32(fade) * np.square(1.0 - layer.inner)
    dark = np.clip(depth, 0.0, 0.97) * cov
    dark += k("halo_strength") * blurred * (1.0 - cov)
    dark -= k("rim_brightness") * rim
    return rgb, 1.0 - dark
