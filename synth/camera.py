"""Camera model: viewpoint (perspective), optics (defocus), sensor noise, JPEG compression.

The warp is applied to image and labels together (instance ids with nearest-neighbour, the crack
mask as 0/1 with bilinear then thresholded), so geometry never separates a crack from its mask;
blur, noise and compression touch only the image, as in a real photo whose label was drawn on
the scene.
"""

from __future__ import annotations

import cv2
import numpy as np

from synth.distributions import Knobs
from synth.surface import white_noise

#: A warped pixel is crack where the bilinear sample of the 0/1 crack mask reaches this.
#: Warping the float coverage and thresholding it afterwards cut thin cracks (centre coverage
#: below 1) into dots wherever the sampling grid fell between pixel centres: 519 mask pieces
#: where the unwarped cracks had 276 (300 default scenes at 256 px). At a half, a 1 px line
#: still breaks where the grid steps past it: its diagonal pixels touch at a corner whose
#: bilinear value is exactly a half, and the homography shrinks parts of half the warped
#: scenes (magnification down to 0.80 in 2000 draws of the default camera.perspective):
#: 394 pieces. At 0.4 the band across a 1 px line, straight or diagonal, is at least 1.17 px
#: along every row and column, so steps up to that (magnification 0.86; lower in 0.002 % of
#: warped pixels) land on it: 285 pieces, the rest cracks the view's edge cuts, for a mask
#: 0.10 px wider a side than the thresholded coverage's (docs/experiments.md, session 55).
WARPED_LABEL_THRESHOLD = 0.4


def homography(k: Knobs, size: int) -> np.ndarray | None:
    """Random perspective: a quad inside the scene mapped onto the output (no empty borders)."""
    amount = k("perspective")
    if amount <= 0 or k.rng.random() >= k("p_perspective"):
        return None
    s = float(size)
    dst = np.float32([[0, 0], [s, 0], [s, s], [0, s]])
    inward = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    src = dst + inward * k.rng.uniform(0.0, amount * s, (4, 2)).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def warp(
    h: np.ndarray | None, image: np.ndarray, mask: np.ndarray, instance: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply one homography to the image (bilinear), the boolean crack mask (bilinear on 0/1,
    then ``WARPED_LABEL_THRESHOLD``: thin cracks stay lines) and the instances (nearest)."""
    if h is None:
        return image, mask, instance
    size = (image.shape[1], image.shape[0])
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_REFLECT
    image = cv2.warpPerspective(image, h, size, flags=flags, borderMode=border)
    share = cv2.warpPerspective(mask.astype(np.float32), h, size, flags=flags, borderMode=border)
    mask = share >= WARPED_LABEL_THRESHOLD
    if instance is not None:
        instance = cv2.warpPerspective(
            instance, h, size, flags=cv2.INTER_NEAREST, borderMode=border
        )
    return image, mask, instance


def degrade(k: Knobs, image: np.ndarray) -> np.ndarray:
    """Defocus, sensor noise, quantisation and JPEG: float RGB in [0, 255] -> uint8 RGB.

    ``cv2.add(..., dtype=CV_8U)`` adds the noise, rounds and saturates in one pass.
    """
    rng = k.rng
    if rng.random() < k("p_blur"):
        image = cv2.GaussianBlur(image, (0, 0), k("blur_sigma"))
    sigma = np.float32(255.0 * k("noise_sigma"))
    if sigma > 0:
        noise = white_noise(rng, image.shape[0]) * sigma
        out = cv2.add(image, cv2.merge([noise, noise, noise]), dtype=cv2.CV_8U)
    else:
        out = cv2.add(image, np.zeros_like(image), dtype=cv2.CV_8U)
    if rng.random() < k("p_jpeg"):
        quality = int(k("jpeg_quality"))
        bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
