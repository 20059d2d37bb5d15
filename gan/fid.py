"""How close translated images are to real photos.

FID/KID (torchmetrics) need Inception weights; they are used only from a local file
(``inception_weights``), never downloaded. Without them the report says FID is unavailable and
gives ``proxy_colour_texture_distance`` instead: a Frechet distance between hand-made colour
and texture statistics. It tracks domain gap on surfaces like these but is not FID and is not
comparable with published FID numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from gan.checkpoint import UnsafeCheckpointError
from gan.data import open_samples

PROXY_NAME = "proxy_colour_texture_distance"


def load_images(path: str | Path, max_images: int, size: int) -> list[np.ndarray]:
    """Up to ``max_images`` RGB uint8 images (sharded dataset or folder), resized to size^2."""
    samples = open_samples(path)
    n = min(max_images, len(samples))
    idx = np.linspace(0, len(samples) - 1, n).round().astype(int) if n else []
    return [
        cv2.resize(samples[int(i)].image, (size, size), interpolation=cv2.INTER_AREA) for i in idx
    ]


def colour_texture_features(image: np.ndarray) -> np.ndarray:
    """Colour moments, gray-level histogram, gradient and multi-scale Laplacian energy."""
    rgb = image.astype(np.float32) / 255.0
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32) / 255.0
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    grad = np.sqrt(gx**2 + gy**2)
    local_mean = cv2.blur(gray, (5, 5))
    local_std = np.sqrt(np.maximum(cv2.blur(gray**2, (5, 5)) - local_mean**2, 0))
    lap, g = [], gray
    for _ in range(3):
        lap.append(np.abs(cv2.Laplacian(g, cv2.CV_32F)).mean())
        g = cv2.pyrDown(g)
    hist = np.histogram(gray, bins=8, range=(0, 1))[0] / gray.size
    return np.concatenate(
        [
            rgb.reshape(-1, 3).mean(0),
            rgb.reshape(-1, 3).std(0),
            hsv[..., 1:].reshape(-1, 2).mean(0),
            hsv[..., 1:].reshape(-1, 2).std(0),
            [grad.mean(), grad.std(), *np.percentile(grad, [50, 90])],
            [local_std.mean(), *lap],
            hist,
        ]
    ).astype(np.float64)


class NotMeasurable(Exception):
    """A domain gap that cannot be measured (a set of one image): said, and the set kept."""


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||^2 + Tr(Sx + Sy - 2 (Sx Sy)^1/2) between Gaussian fits of two sets."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    sx, sy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    eig = np.linalg.eigvals(sx @ sy)
    tr_sqrt = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * tr_sqrt)


#: The least spread a feature is standardized by. The features are fractions and statistics
#: of [0, 1] images; on DeepCrack's photos the smallest spread is 0.014. A feature (near)
#: constant over the real photos, such as the saturation of grey ones or an empty histogram
#: bin, was divided by 1e-6 and any fake set scored about 1e10.
MIN_FEATURE_SPREAD = 0.01


def proxy_distance(fake: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> float:
    """Frechet distance of colour/texture features, each standardized on the real set so no
    single statistic dominates by its units."""
    f = np.stack([colour_texture_features(i) for i in fake])
    r = np.stack([colour_texture_features(i) for i in real])
    mu, sd = r.mean(0), np.maximum(r.std(0), MIN_FEATURE_SPREAD)
    return frechet_distance((f - mu) / sd, (r - mu) / sd)


def check_inception_weights(weights: str | Path | None) -> None:
    """A given Inception file exists and holds plain tensors, checked before any translating:
    a mistyped path fell back to the proxy distance as if none had been given, and a file of
    another kind failed only once the whole set was translated. None: the proxy is wanted."""
    if not weights:
        return
    if not Path(weights).is_file():
        raise FileNotFoundError(
            f"inception_weights={weights}: file not found (null measures the named proxy "
            "distance instead of FID)"
        )
    try:
        torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling error types vary across torch versions
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeCheckpointError(
            f"{weights}: not a plain tensor state dict, refusing to load it ({first})"
        ) from err


def inception_scores(fake, real, weights: str) -> dict[str, float]:
    """FID and KID from torchmetrics with Inception weights read from a local file.

    The file is opened with ``weights_only=True`` first (torch-fidelity itself loads it
    unrestricted), and both metrics get uint8 images: KID with a shared Inception module skips
    its own float-to-uint8 conversion.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    check_inception_weights(weights)
    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=weights)
    kid = KernelInceptionDistance(
        feature=fid.inception, subset_size=max(2, min(len(fake), len(real), 100))
    )

    def batch(images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()

    for metric in (fid, kid):
        metric.update(batch(real), real=True)
        metric.update(batch(fake), real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}


def domain_gap(
    translated_dir: str | Path,
    real_dir: str | Path,
    inception_weights: str | None = None,
    max_images: int = 200,
    size: int = 128,
    quiet: bool = False,
) -> dict[str, float | str | bool]:
    """FID/KID when ``inception_weights`` is a local file, otherwise the named proxy."""
    fake = load_images(translated_dir, max_images, size)
    real = load_images(real_dir, max_images, size)
    if min(len(fake), len(real)) < 2:  # a covariance of one image: numpy's LinAlgError
        raise NotMeasurable(
            f"a distance between image sets needs two or more in each ({len(real)} in "
            f"{real_dir}, {len(fake)} in {translated_dir}): not measured"
        )
    report: dict[str, float | str | bool] = {"num_fake": len(fake), "num_real": len(real)}
    if inception_weights:  # inception_scores checks the file
        report.update(inception_scores(fake, real, str(inception_weights)), fid_available=True)
        return report
    if not quiet:  # a caller measuring twice (before / after) says it once
        print(
            "FID unavailable: no local Inception weights (inception_weights=null); "
            f"reporting {PROXY_NAME}, which is not FID"
        )
    report.update({PROXY_NAME: proxy_distance(fake, real), "fid_available": False})
    return report
