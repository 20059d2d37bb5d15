"""Unpaired data for the GAN: synthetic images with masks (domain A) and real photos (domain B).

A and B are drawn independently at random from an endless stream, so the epoch length means
nothing and ``trainer.max_steps`` decides how long training runs. Augmentation runs on the
batch after it reaches the device (GPU when present).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gan.augment import PairedAugment
from gan.data import random_crop, to_tensor
from synth.io import DataError, ImageFolder, ShardedDataset


def crack_crop(
    image: np.ndarray, mask: np.ndarray, size: int, rng: random.Random
) -> tuple[np.ndarray, np.ndarray] | None:
    """A size x size window around a random crack pixel (None when there is no crack or the
    image is smaller than the window)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask == 1)
    if not len(ys) or h < size or w < size:
        return None
    k = rng.randrange(len(ys))
    y = min(max(0, ys[k] - rng.randrange(size)), h - size)
    x = min(max(0, xs[k] - rng.randrange(size)), w - size)
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


class UnpairedStream(IterableDataset):
    """Endless {a_image, a_mask, b_image} crops; each worker and rank draws its own stream.

    Small crops of large synthetic images often miss the crack, which starves the semantic
    loss; ``crack_crop_prob`` of the A crops are therefore placed over a crack pixel.
    """

    def __init__(
        self,
        a: ShardedDataset,
        b: ImageFolder,
        crop_size: int,
        seed: int = 0,
        crack_crop_prob: float = 0.5,
    ) -> None:
        self.a, self.b, self.crop_size, self.seed = a, b, crop_size, seed
        self.crack_crop_prob = crack_crop_prob

    def _rng(self) -> random.Random:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        return random.Random(hash((self.seed, torch.initial_seed(), rank, worker)))

    def __iter__(self) -> Iterator[dict]:
        rng = self._rng()
        gen = torch.Generator().manual_seed(rng.getrandbits(63))
        while True:
            sample_a = self.a[rng.randrange(len(self.a))]
            image_b = self.b[rng.randrange(len(self.b))].image
            crop = None
            if rng.random() < self.crack_crop_prob:
                crop = crack_crop(sample_a.image, sample_a.semantic, self.crop_size, rng)
            img_a, mask_a = crop or random_crop(
                sample_a.image, sample_a.semantic, self.crop_size, gen
            )
            dummy = np.zeros(image_b.shape[:2], np.uint8)
            img_b, _ = random_crop(image_b, dummy, self.crop_size, gen)
            yield {
                "a_image": to_tensor(img_a),
                "a_mask": torch.from_numpy(np.ascontiguousarray(mask_a)).long(),
                "b_image": to_tensor(img_b),
            }


def open_domains(
    synthetic_dir: str | Path, real_dir: str | Path
) -> tuple[ShardedDataset, ImageFolder]:
    """Both inputs opened and their first sample decoded, so a wrong path or an empty or
    corrupt folder fails before training with a DataError that names the folder."""
    a = ShardedDataset(synthetic_dir)
    try:
        a[0]
    except DataError as err:
        raise DataError(f"{synthetic_dir}: synthetic dataset (domain A) unusable: {err}") from err
    b = ImageFolder(real_dir)
    b[0]
    return a, b


class UnpairedDataModule(pl.LightningDataModule):
    """Domain A = sharded synthetic dataset (image + semantic mask), B = folder of real images
    (their labels are never read)."""

    def __init__(
        self,
        synthetic_dir: str,
        real_dir: str,
        crop_size: int = 128,
        batch_size: int = 4,
        num_workers: int = 2,
        augment: str = "light",
        seed: int = 0,
        crack_crop_prob: float = 0.5,
    ) -> None:
        super().__init__()
        self.synthetic_dir, self.real_dir = str(synthetic_dir), str(real_dir)
        self.crop_size, self.batch_size = crop_size, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.crack_crop_prob = crack_crop_prob
        self.augment = PairedAugment(augment)
        self.stream: UnpairedStream | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.stream is None:
            a, b = open_domains(self.synthetic_dir, self.real_dir)
            self.stream = UnpairedStream(a, b, self.crop_size, self.seed, self.crack_crop_prob)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(
            self.stream,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Flips/turns on the device; A's image and mask share one draw, B gets its own."""
        if self.trainer is None or not self.trainer.training:
            return batch
        self.augment.to(batch["a_image"].device)
        batch["a_image"], batch["a_mask"] = self.augment(batch["a_image"], batch["a_mask"])
        dummy = torch.zeros_like(batch["b_image"][:, 0], dtype=torch.long)
        batch["b_image"], _ = self.augment(batch["b_image"], dummy)
        return batch
