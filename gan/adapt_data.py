"""Unpaired data for the GAN: synthetic images with masks (domain A) and real photos (domain B).

A and B are drawn independently at random from an endless stream, so the epoch length means
nothing and ``trainer.max_steps`` decides how long training runs. Augmentation runs on the
batch after it reaches the device (GPU when present).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gan.augment import PairedAugment, check_preset
from gan.data import (
    RecordsTrainingData,
    check_crop_fits,
    in_range,
    loader_workers,
    quiet_workers,
    random_crop,
    resolved,
    resumable_loader,
    source_listing,
    to_tensor,
)
from gan.networks import PAD_MULTIPLE
from synth.distributions import ConfigError, checked_count
from synth.io import DataError, ImageFolder, ShardedDataset, refuse_unfinished


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
    """Endless {a_image, a_mask, b_image} crops; each rank draws its own stream.

    Small crops of large synthetic images often miss the crack, which starves the semantic
    loss; ``crack_crop_prob`` of the A crops are therefore placed over a crack pixel.

    Sample ``i`` of a rank's stream is drawn from (seed, rank, i) alone, and the loader's
    workers take whole batches in turn (batch ``j`` from worker ``j mod workers``, the order
    the DataLoader reads them in), so the stream is the same whatever the worker count, and a
    resumed run continues it at the batch it stopped at (``resume_at``) instead of starting
    over. ``batch_size`` must be the loader's.
    """

    def __init__(
        self,
        a: ShardedDataset,
        b: ImageFolder,
        crop_size: int,
        seed: int = 0,
        crack_crop_prob: float = 0.5,
        batch_size: int = 1,
    ) -> None:
        self.a, self.b, self.crop_size, self.seed = a, b, crop_size, seed
        self.crack_crop_prob, self.batch_size = crack_crop_prob, batch_size
        self.epoch, self.start_batch = 0, 0  # one endless epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """Begin the next iteration at sample ``start`` (a multiple of the batch size)."""
        self.start_batch = int(start) // self.batch_size

    def sample(self, index: int, rank: int = 0) -> dict:
        """Sample ``index`` of rank ``rank``'s stream."""
        state = np.random.SeedSequence([self.seed, rank, index]).generate_state(2, np.uint64)
        rng = random.Random(int(state[0]))
        gen = torch.Generator().manual_seed(int(state[1]) >> 1)
        sample_a = self.a[rng.randrange(len(self.a))]
        image_b = self.b[rng.randrange(len(self.b))].image
        crop = None
        if rng.random() < self.crack_crop_prob:
            crop = crack_crop(sample_a.image, sample_a.semantic, self.crop_size, rng)
        img_a, mask_a = crop or random_crop(sample_a.image, sample_a.semantic, self.crop_size, gen)
        dummy = np.zeros(image_b.shape[:2], np.uint8)
        img_b, _ = random_crop(image_b, dummy, self.crop_size, gen)
        return {
            "a_image": to_tensor(img_a),
            "a_mask": torch.from_numpy(np.ascontiguousarray(mask_a)).long(),
            "b_image": to_tensor(img_b),
        }

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        for batch in itertools.count(self.start_batch + worker, workers):
            for k in range(self.batch_size):
                yield self.sample(batch * self.batch_size + k, rank)


def open_domains(
    synthetic_dir: str | Path, real_dir: str | Path, crop_size: int = 0
) -> tuple[ShardedDataset, ImageFolder]:
    """Both inputs opened, the scenes' first sample decoded and every photo (each no smaller
    than ``crop_size``), so a wrong path, an empty folder or a bad photo fails before
    training with a DataError that names it: a photo that could not be read failed the run
    at the step that drew it, and one smaller than the crop passed where it was not first."""
    a = ShardedDataset(synthetic_dir)
    refuse_unfinished(a, "training on it")
    try:
        a[0]
    except DataError as err:
        raise DataError(f"{synthetic_dir}: synthetic dataset (domain A) unusable: {err}") from err
    b = ImageFolder(real_dir)  # a missing or empty folder said before any size
    check_crop_fits(crop_size or None, a, "gan_data.crop_size", "scenes")
    return a, read_real_photos(b, crop_size)


def read_real_photos(photos: ImageFolder, crop_size: int = 0) -> ImageFolder:
    """Every photo of domain B decoded and sized against the GAN's crop (the pipeline does it
    before any work too, where the GAN is still to train)."""
    check_crop_fits(crop_size or None, photos, "gan_data.crop_size", "photos")  # the first: the fix
    photos.validate(min_side=crop_size, needed_by="the GAN's crops take (gan_data.crop_size)")
    return photos


class UnpairedDataModule(RecordsTrainingData, pl.LightningDataModule):
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
        self.crop_size = checked_count(crop_size, "gan_data.crop_size", PAD_MULTIPLE)
        if self.crop_size % PAD_MULTIPLE:  # it failed mid-step, once the logs were begun
            raise ConfigError(
                f"gan_data.crop_size={crop_size}: expected a multiple of {PAD_MULTIPLE}, "
                "which the generators halve twice and double back"
            )
        self.batch_size = checked_count(batch_size, "gan_data.batch_size")
        self.num_workers = checked_count(num_workers, "gan_data.num_workers", 0)
        self.seed = seed
        in_range(crack_crop_prob, "gan_data.crack_crop_prob", 0, 1)
        self.crack_crop_prob = crack_crop_prob
        check_preset(augment, "gan_data.augment")
        self.augment = PairedAugment(augment)
        self.stream: UnpairedStream | None = None
        self._trained_on: dict | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.stream is None:
            a, b = open_domains(self.synthetic_dir, self.real_dir, self.crop_size)
            self.stream = UnpairedStream(
                a, b, self.crop_size, self.seed, self.crack_crop_prob, self.batch_size
            )

    def trained_on(self) -> dict[str, dict]:
        """What the GAN trains on, kept in its checkpoints (``state_dict``) so that a resume
        on other data is refused (``gan.runner.check_same_data``): a resume with another
        ``gan_data.real_dir`` had carried a model on over two photo sets, saved as one run.
        Each input's folder, and its listing (names and sizes, no file read:
        gan.data.source_listing), which alone says whether it is the same data: a moved
        folder holds the same files. The scenes' listing is that of each shard's images and
        masks. Taken once, on each rank alike (no rank waits on another)."""
        if self._trained_on is None:
            self.setup()
            self._trained_on = {
                "gan_data.synthetic_dir": {
                    "folder": resolved(self.synthetic_dir),
                    "listing": source_listing(self.stream.a),
                },
                "gan_data.real_dir": {
                    "folder": resolved(self.real_dir),
                    "listing": source_listing(self.real_dir),
                },
            }
        return self._trained_on

    def train_dataloader(self) -> DataLoader:
        """Resumable where it stopped: every rank's stream continues at the batch the
        checkpoint recorded (all ranks train the same number of batches)."""
        self.setup()
        workers = loader_workers(self.num_workers)
        kwargs = dict(
            batch_size=self.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            # worker seeds from their own generator, not the global RNG the augmentation
            # draws from, so a resumed run augments as the uninterrupted one did
            generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=quiet_workers(self.trainer),
        )
        trainer = self.trainer
        if trainer is not None:
            return resumable_loader(trainer, self.stream, **kwargs)
        return DataLoader(self.stream, **kwargs)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Flips/turns on the device; A's image and mask share one draw, B gets its own."""
        if self.trainer is None or not self.trainer.training:
            return batch
        self.augment.to(batch["a_image"].device)
        batch["a_image"], batch["a_mask"] = self.augment(batch["a_image"], batch["a_mask"])
        dummy = torch.zeros_like(batch["b_image"][:, 0], dtype=torch.long)
        batch["b_image"], _ = self.augment(batch["b_image"], dummy)
        return batch
