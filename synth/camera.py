"""Camera model: viewpoint (perspective), optics (defocus), sensor noise, JPEG compression.

The warp is applied to image and labels together (labels with nearest-neighbour, coverage with
bilinear then thresholded), so geometry never separates a crack from its mask; blur, noise and
compression touch only the image, as in a real photo whose label was drawn on the scene.
"""

from __future__ import annotations

import cv2
import numpy as np

from synth.distributions import Knobs
from synth.surface import white_noise


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
    h: np.ndarray | None, image: np.ndarray, coverage: np.ndarray, instance: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply one homography to the image (bilinear), coverage (bilinear), instances (nearest)."""
    if h is None:
        return image, coverage, instance
    size = (image.shape[1], image.shape[0])
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_REFLECT
    image = cv2.warpPerspective(image, h, size, flags=flags, borderMode=border)
    coverage = cv2.warpPerspective(coverage, h, size, flags=flags, borderMode=border)
    if instance is not None:
        instance = cv2.warpPerspective(
            instance, h, size, flags=cv2.INTER_NEAREST, borderMode=border
        )
    return image, coverage, instance


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
