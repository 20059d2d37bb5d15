"""Data for the task model: train on any labeled source, always validate/test on real images.

The train source is a sharded dataset (synthetic, randomized or GAN-adapted) or, for the oracle,
a real image folder with its masks. Inputs are checked in ``setup`` so a wrong path or a bad
mask fails in seconds with a DataError naming the file, not after an hour of training.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader

from gan.data import (
    EpochSampler,
    RecordsTrainingData,
    SegmentationSamples,
    ShareSampler,
    check_crop_fits,
    checked_size,
    is_sharded,
    loader_workers,
    open_samples,
    quiet_workers,
    resolved,
    resumable_loader,
    source_listing,
)
from synth.distributions import ConfigError, checked_count
from synth.io import (
    IGNORE_INDEX,
    DataError,
    ImageFolder,
    Sample,
    ShardedDataset,
    missing_folder,
    refuse_unfinished,
)


def pad_collate(items: list[dict]) -> dict:
    """Batch images of different sizes: pad to the largest (masks padded with ignore, so the
    padding never counts in a metric); ``size`` keeps each original (H, W)."""
    h = max(it["image"].shape[-2] for it in items)
    w = max(it["image"].shape[-1] for it in items)

    def pad(t: torch.Tensor, value: float) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2]), value=value)

    return {
        "image": torch.stack([pad(it["image"], 0.0) for it in items]),
        "mask": torch.stack([pad(it["mask"], IGNORE_INDEX) for it in items]),
        "index": torch.tensor([it["index"] for it in items]),
        "size": torch.tensor([list(it["image"].shape[-2:]) for it in items]),
    }


def forward_by_size(
    net: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, sizes: torch.Tensor | None
) -> torch.Tensor:
    """``net`` on a padded batch (pad_collate), each group of same-size images cropped to
    its size first, so that no image's output depends on what shares its batch: convolutions
    near the border, instance and batch statistics all see the padding otherwise. One call
    where every image has the batch's size. Outside each image the output is zero."""
    if sizes is None:
        return net(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for j, (h, w) in enumerate(sizes.tolist()):
        groups.setdefault((h, w), []).append(j)
    if len(groups) == 1 and next(iter(groups)) == tuple(images.shape[-2:]):
        return net(images)
    out = None
    for (h, w), rows in groups.items():
        y = net(images[rows, :, :h, :w])
        if out is None:
            out = y.new_zeros(len(images), y.shape[1], *images.shape[-2:])
        out[rows, :, :h, :w] = y
    return out


def tiled(
    net: Callable[[torch.Tensor], torch.Tensor], tile: int | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` run on overlapping ``tile`` x ``tile`` windows of a larger input, the windows'
    outputs blended where they overlap (each weighted down over its outer quarter, where it saw
    the least context). A photo in one pass takes about 0.5 GB a megapixel (the default
    U-Net): a 12-megapixel phone photo, 6 GB; windows need what one window needs. ``None``:
    ``net``."""
    if tile is None:
        return net
    ramp = max(tile // 4, 1)

    def forward(images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h <= tile and w <= tile:
            return net(images)
        out = weights = None
        for y in window_starts(h, tile, tile - ramp):
            for x in window_starts(w, tile, tile - ramp):
                part = net(images[..., y : y + tile, x : x + tile])
                th, tw = part.shape[-2:]
                weight = torch.outer(edge_ramp(th, ramp), edge_ramp(tw, ramp)).to(part)
                if out is None:
                    out = part.new_zeros(*part.shape[:2], h, w)
                    weights = part.new_zeros(h, w)
                out[..., y : y + th, x : x + tw] += part * weight
                weights[y : y + th, x : x + tw] += weight
        return out / weights

    return forward


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Where windows of ``tile`` start along ``length``: every ``stride``, the last flush
    with the end."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def edge_ramp(length: int, ramp: int) -> torch.Tensor:
    """1 inside, falling linearly to 1/ramp over the ``ramp`` outermost pixels of each end."""
    i = torch.arange(length, dtype=torch.float32)
    return torch.minimum(torch.minimum(i + 1, length - i), torch.tensor(float(ramp))) / ramp


def load_indices(
    indices: Sequence[int] | str | Path | None, n: int, source: str
) -> list[int] | None:
    """Training indices from a list or a JSON file (``{"kept": [...]}`` as written by pruning)."""
    if indices is None:
        return None
    if isinstance(indices, (str, Path)):
        path = Path(indices)
        if not path.is_file():
            raise DataError(f"{path}: train indices file not found")
        data = json.loads(path.read_text())
        indices = data["kept"] if isinstance(data, dict) else data
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < n]
    if bad or not indices:
        raise DataError(f"{source}: train indices {bad[:5] or '[]'} outside its {n} samples")
    return indices


def indices_record(given: Sequence[int] | str | Path | None, indices: list[int], n: int) -> dict:
    """``task_data.train_indices`` as ``trained_on`` records it: a hash of the indices
    selected from the ``n`` samples, compared (None: every sample, in order, however given);
    ``shown``, how a refusal names the selection (no ``folder``: a selection is not moved)."""
    said = (
        "null" if given is None else resolved(given) if isinstance(given, (str, Path)) else "a list"
    )
    return {
        "listing": selection_hash(indices, n),
        "shown": f"{said} ({len(indices)} of {n} samples)",
        "differs": "selects other samples",
    }


def selection_hash(indices: Sequence[int], n: int) -> str | None:
    """How ``trained_on`` tells selections apart: None for every sample in order."""
    if list(indices) == list(range(n)):
        return None
    return hashlib.sha256(json.dumps(list(indices)).encode()).hexdigest()


def check_train_source(samples: Sequence[Sample], source: str, crop_size: int = 0) -> None:
    """Cheap check of a training source: a real folder needs masks; the first sample decodes.

    Real folders are fully decoded (hundreds of files), each photo no smaller than the crop
    (one that was passed where it was not the first); large shard sets only have their first
    and last sample read, since each was already validated when written.
    """
    if isinstance(samples, ImageFolder):
        if not samples.has_masks:
            raise DataError(f"{source}: a real image folder needs train_mask_dir (its labels)")
        key, hint = "task_data.crop_size", ", or null for whole images"
        check_crop_fits(crop_size or None, samples, key, "training images", hint)  # the first
        samples.validate(min_side=crop_size, needed_by="the crops take (task_data.crop_size)")
    elif isinstance(samples, ShardedDataset):
        refuse_unfinished(samples, "training on it")
        samples[0], samples[len(samples) - 1]


def has_labels(test_lab: str | None) -> bool:
    """Whether ``task_data.test_lab`` names the test photos' masks; null: they have none. An
    empty value is refused: it was read as the current folder, its PNGs taken as labels."""
    if test_lab == "":
        raise ConfigError("task_data.test_lab is empty: a mask folder, or null for photos alone")
    return test_lab is not None


def train_dirs(train_dir: str | Sequence[str]) -> list[str]:
    """One training folder, or several whose samples are pooled (e.g. synthetic + adapted)."""
    dirs = [str(train_dir)] if isinstance(train_dir, (str, Path)) else [str(d) for d in train_dir]
    if not dirs:
        raise DataError("task_data.train_dir: no training folder given")
    return dirs


class SegmentationDataModule(RecordsTrainingData, pl.LightningDataModule):
    """Random ``crop_size`` crops for training; whole real test images for val/test.

    ``train_dir`` may list several sharded folders: their samples are pooled, so the
    'mixed' source sees each synthetic scene both raw and adapted.

    ``eval_size`` [H, W] resizes every evaluation image (default [384, 544], DeepCrack's native
    size, i.e. no resize); null keeps each image's own size (batches are padded).

    ``test_lab`` null: the test photos have no labels (the product's user, with a folder of
    unlabeled photos and none labelled): nothing is validated or tested, where a folder of
    that name was required and refused as missing.
    """

    def __init__(
        self,
        train_dir: str | Sequence[str],
        test_img: str,
        test_lab: str | None = None,
        train_mask_dir: str | None = None,
        val_img: str | None = None,
        val_lab: str | None = None,
        crop_size: int = 128,
        batch_size: int = 8,
        eval_batch_size: int = 4,
        eval_size: Sequence[int] | None = (384, 544),
        num_workers: int = 2,
        train_indices: Sequence[int] | str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.train_dirs = train_dirs(train_dir)
        self.train_dir = " + ".join(self.train_dirs)  # names the source in messages
        self.train_mask_dir = train_mask_dir
        self.test_img = str(test_img)
        self.test_lab = str(test_lab) if has_labels(test_lab) else None
        # Validation defaults to the test set: it is for watching curves, not model selection.
        self.val_img = str(val_img or test_img)
        val_lab = val_lab or test_lab
        self.val_lab = None if val_lab is None else str(val_lab)
        if crop_size is not None:  # null: whole images
            checked_count(crop_size, "task_data.crop_size")
        self.crop_size = crop_size
        self.batch_size = checked_count(batch_size, "task_data.batch_size")
        self.eval_batch_size = checked_count(eval_batch_size, "task_data.eval_batch_size")
        self.eval_size = checked_size(eval_size, "task_data.eval_size")
        self.num_workers = checked_count(num_workers, "task_data.num_workers", 0)
        self.train_set: SegmentationSamples | None = None
        self.train_indices = train_indices
        self._seed = seed

    @property
    def seed(self) -> int:
        """The training order and crops follow this seed (default: the one seed_everything
        set when the loader is made, as Lightning's own distributed sampler does; read at
        construction, a datamodule built before its run's seeding took the last run's)."""
        return int(os.environ.get("PL_GLOBAL_SEED", 0)) if self._seed is None else int(self._seed)

    @property
    def train_indices(self) -> Sequence[int] | str | None:
        return self._train_indices

    @train_indices.setter
    def train_indices(self, indices: Sequence[int] | str | None) -> None:
        """A new selection (EL2N pruning's, made after the set was opened and scored) drops
        the training set built without it: setup kept that one, and pruning selected nothing."""
        self._train_indices = indices
        self.train_set = None
        self._trained_on: dict | None = None

    # ----------------------------------------------------------------- datasets

    def open_train(self) -> Sequence[Sample]:
        """The training samples (no crops), validated: also what EL2N pruning scores."""
        if len(self.train_dirs) > 1 and self.train_mask_dir is not None:
            raise DataError(f"{self.train_dir}: train_mask_dir needs a single training folder")
        parts = [self.open_train_dir(d) for d in self.train_dirs]
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)  # type: ignore[return-value]

    def open_train_dir(self, train_dir: str) -> Sequence[Sample]:
        if not Path(train_dir).is_dir():
            raise missing_folder(train_dir, "training data folder")
        if self.train_mask_dir is not None and is_sharded(train_dir):
            raise DataError(f"{train_dir}: sharded dataset given a train_mask_dir")
        samples = open_samples(train_dir, self.train_mask_dir)
        check_train_source(samples, train_dir, self.crop_size or 0)
        return samples

    def open_eval(self, image_dir: str, mask_dir: str) -> SegmentationSamples:
        """A real labeled folder, fully decoded once so a size mismatch names its file now."""
        if not Path(image_dir).is_dir():
            raise missing_folder(image_dir, "test image folder")
        if not Path(mask_dir).is_dir():
            raise missing_folder(mask_dir, "test mask folder")
        folder = ImageFolder(image_dir, mask_dir)
        folder.validate()
        return SegmentationSamples(folder, crop_size=None, resize=self.eval_size)

    def open_train_set(self) -> SegmentationSamples:
        """The training set (crops of the selected samples), opened and checked once."""
        if self.train_set is None:
            samples = self.open_train()
            key, hint = "task_data.crop_size", ", or null for whole images"
            check_crop_fits(self.crop_size, samples, key, "training images", hint)
            indices = load_indices(self.train_indices, len(samples), self.train_dir)
            self.train_set = SegmentationSamples(samples, self.crop_size, indices=indices)
        return self.train_set

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.open_train_set()
        if stage in (None, "fit", "validate"):
            self.val_set = self.open_eval(self.val_img, self.val_lab) if self.val_lab else None
        if stage == "test" or (stage is None and self.scores):  # None: whatever there is
            if self.test_lab is None:
                raise DataError(
                    f"{self.test_img}: no test labels (task_data.test_lab=null), nothing to "
                    "score; tools/predict.py segments the photos"
                )
            self.test_set = self.open_eval(self.test_img, self.test_lab)

    def trained_on(self) -> dict[str, dict]:
        """What the model trains on, kept in its checkpoints (``state_dict``) so that a resume
        on other data is refused (``gan.runner.check_same_data``), as the GAN's is: resumed
        with another ``task_data.train_dir``, a model was carried on over two data sets and
        saved as one run. Each training folder's listing (names and sizes, no file read:
        gan.data.source_listing, a sharded set's shard by shard), in order, which alone says
        whether it is the same data (a moved folder holds the same files); the mask folder's
        (the oracle's); and which samples are trained on, as a hash of the selected indices
        (EL2N pruning's, in order: they place each sample in the epoch's order), not of the
        file naming them, so that the same selection passed as a list or another file is the
        same. The validation and test folders are no part of it: they score the model, and a
        trained model is scored again on new test photos. Taken once per selection, on each
        rank alike (no rank waits on another)."""
        if self._trained_on is None:
            train = self.open_train_set()
            parts = getattr(train.samples, "datasets", [train.samples])  # ConcatDataset: pooled
            self._trained_on = {
                "task_data.train_dir": {
                    "folder": " + ".join(resolved(d) for d in self.train_dirs),
                    "listing": [source_listing(part) for part in parts],
                },
                "task_data.train_indices": indices_record(
                    self.train_indices, train.indices, len(train.samples)
                ),
            }
            if self.train_mask_dir is not None:  # none: a sharded set holds its masks
                self._trained_on["task_data.train_mask_dir"] = {
                    "folder": resolved(self.train_mask_dir),
                    "listing": source_listing(self.train_mask_dir),
                }
        return self._trained_on

    @property
    def scores(self) -> bool:
        """Whether the test photos have labels to score a model against."""
        return self.test_lab is not None

    @property
    def validates(self) -> bool:
        """Whether there are labels to validate against (val_lab, or the test set's)."""
        return self.val_lab is not None

    # ----------------------------------------------------------------- loaders

    def _loader(self, dataset, batch_size: int, train: bool, trainer=None) -> DataLoader:
        workers = loader_workers(self.num_workers)
        kwargs = dict(
            batch_size=batch_size,
            sampler=self._train_sampler(len(dataset), trainer)
            if train
            else self._eval_sampler(len(dataset), trainer),
            drop_last=train and len(dataset) >= batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            # whole training images (crop_size null) may differ in size, as test photos do
            collate_fn=None if train and self.crop_size is not None else pad_collate,
            # Worker seeds from their own generator, not the global RNG: a resumed run then
            # draws its augmentations exactly where the uninterrupted one did.
            generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=quiet_workers(trainer or self.trainer),
        )
        if train and trainer is not None:
            return resumable_loader(trainer, dataset, **kwargs)
        return DataLoader(dataset, **kwargs)

    def _train_sampler(self, size: int, trainer) -> EpochSampler:
        """This rank's share of each epoch's order (all of it in a single process)."""
        if trainer is None:
            return EpochSampler(size, self.seed)
        return EpochSampler(size, self.seed, trainer.world_size, trainer.global_rank)

    def _eval_sampler(self, size: int, trainer) -> ShareSampler | None:
        """Under DDP, this rank's share of the test set, no image scored twice."""
        if trainer is None or trainer.world_size == 1:
            return None
        return ShareSampler(size, trainer.world_size, trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        """Resumable mid-epoch, under DDP too: each rank resumes its share of the epoch."""
        return self._loader(self.train_set, self.batch_size, True, self.trainer)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:  # no labels to validate against: no validation
            return []
        return self._loader(self.val_set, self.eval_batch_size, False, self.trainer)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, False, self.trainer)
