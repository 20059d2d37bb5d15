"""Fourier domain adaptation (FDA, Yang & Soatto, CVPR 2020): the training-free baseline the
GAN has to beat.

Each synthetic image keeps its Fourier phase (edges, the crack's shape) and takes the
low-frequency amplitude (mean colour, illumination, the coarsest texture) of a same-size crop
of a real photo. Nothing is learned, so it costs seconds where the GAN costs minutes; masks are
carried unchanged, as with the generator.

Measured on DeepCrack (README): both betas tried scored below source-only, all of it in
precision: the swap lifts the scenes to the lighter photos' level and the crack pixels more
than the background, so the carried masks label fainter lines than the photos show.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from gan.translate import ImageSource, source_shards, write_translated_dataset
from synth.digests import contents_digest, listing_digest
from synth.distributions import ConfigError
from synth.io import list_images, read_image

MAX_BETA = 0.5  # the window's half-width as a share of the shorter side: 0.5 is the whole image
# a third seed word, so scene i's photo and crop are not drawn from the stream that rendered it
FDA_STREAM = 0xFDA


def swap_low_amplitude(source: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """``source`` (uint8 HxWx3) with the centred (2b+1) x (2b+1) block of its shifted Fourier
    amplitude, b = floor(beta * min(H, W)), taken from ``target`` (same shape); per channel.

    beta 0 swaps only the mean of each channel; the paper's segmentation runs use 0.01-0.09.
    """
    if source.shape != target.shape:
        raise ValueError(f"source {source.shape} and target {target.shape} differ in shape")
    check_beta(beta)
    spectra = [
        np.fft.fftshift(np.fft.fft2(x.astype(np.float64), axes=(0, 1)), axes=(0, 1))
        for x in (source, target)
    ]
    amplitude, phase = np.abs(spectra[0]), np.angle(spectra[0])
    h, w = source.shape[:2]
    b, ch, cw = math.floor(min(h, w) * beta), h // 2, w // 2
    window = (slice(ch - b, ch + b + 1), slice(cw - b, cw + b + 1))
    amplitude[window] = np.abs(spectra[1])[window]
    mixed = np.fft.ifftshift(amplitude * np.exp(1j * phase), axes=(0, 1))
    return np.clip(np.real(np.fft.ifft2(mixed, axes=(0, 1))).round(), 0, 255).astype(np.uint8)


def check_beta(beta: float) -> None:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta <= MAX_BETA:
        raise ConfigError(
            f"beta={beta!r}: the swapped window's share of the image, 0 to {MAX_BETA}"
        )


def photo_crop(photo: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``height`` x ``width`` window of ``photo``, scaled up first (aspect kept) when
    the photo is smaller than the window."""
    scale = max(height / photo.shape[0], width / photo.shape[1])
    if scale > 1:
        size = (math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_LINEAR)
    y = int(rng.integers(photo.shape[0] - height + 1))
    x = int(rng.integers(photo.shape[1] - width + 1))
    return photo[y : y + height, x : x + width]


def fda_image(
    image: np.ndarray, photos: list[Path], beta: float, seed: int, index: int
) -> np.ndarray:
    """Scene ``index`` swapped with a crop of one photo, both drawn from (seed, index) alone:
    any scene comes out the same whatever shard or run renders it."""
    rng = np.random.default_rng([int(seed), int(index), FDA_STREAM])
    photo = read_image(photos[int(rng.integers(len(photos)))])
    return swap_low_amplitude(image, photo_crop(photo, *image.shape[:2], rng), beta)


def fda_images(photos: list[Path], beta: float, seed: int) -> ImageSource:
    """An ImageSource (``gan.translate``) that swaps every scene of a shard."""

    def images(shard: Path, records: list[dict]) -> Iterator[tuple[str, np.ndarray]]:
        for r in records:
            image = read_image(shard / "image" / f"{r['stem']}.png")
            yield r["stem"], fda_image(image, photos, beta, seed, int(r["index"]))

    return images


def fda_translation(real_dir: str | Path, beta: float, seed: int) -> dict:
    """What makes an FDA set: the dataset card's ``translation`` entry, and what the pipeline
    compares to decide whether a set on disk is current."""
    check_beta(beta)
    photos = list_images(real_dir)  # a missing or empty folder: DataError, before any digest
    return {
        "method": "fda",
        "beta": float(beta),
        "seed": int(seed),
        "real_dir": str(Path(real_dir).resolve()),
        "photos_sha256": listing_digest(real_dir),
        "photos_contents_sha256": contents_digest(real_dir),
        "real_images": len(photos),
    }


def fda_dataset(
    src_dir: str | Path,
    out_dir: str | Path,
    real_dir: str | Path,
    beta: float = 0.01,
    seed: int = 0,
    show_progress: bool = True,
    replace_stale: bool = False,
) -> dict:
    """Every scene of ``src_dir`` with a real photo's low-frequency amplitude, into
    ``out_dir`` (shard by shard, resumable: ``gan.translate.write_translated_dataset``)."""
    translation = fda_translation(real_dir, beta, seed)
    say_if_the_window_is_the_mean(Path(src_dir), beta)
    images = fda_images(list_images(real_dir), beta, seed)
    return write_translated_dataset(
        images, src_dir, out_dir, translation, show_progress, replace_stale
    )


def say_if_the_window_is_the_mean(src_dir: Path, beta: float) -> None:
    """A beta under 1 / side floors to a window of one frequency, the mean: 0.01 on 48 px
    scenes made the set beta 0 makes, without a word (the tiny pipeline's own setting)."""
    first = min((source_shards(src_dir)[0] / "image").glob("*.png"), default=None)
    if beta == 0 or first is None:
        return
    side = min(read_image(first).shape[:2])
    if math.floor(side * beta) == 0:
        print(
            f"note: beta={beta} on {side} px scenes swaps each channel's mean alone, as "
            f"beta=0 does (the window's half-width is floor({beta} x {side}) = 0); "
            f"beta={math.ceil(1000 / side) / 1000} or more swaps low frequencies too"
        )
