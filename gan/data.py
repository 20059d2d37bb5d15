"""Torch views of synth.io datasets: tensors in [-1, 1], masks as class ids, random crops.

GAN and task code get data only from here; they never parse file layouts themselves.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from traceback import extract_tb
from types import TracebackType

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from synth.digests import listing_digest
from synth.distributions import ConfigError, is_count
from synth.io import IGNORE_INDEX, ImageFolder, Sample, ShardedDataset, read_manifests
from synth.processes import ignore_stops, kill_daemons_at_exit, usable_cpus


def open_samples(path: str | Path, mask_dir: str | Path | None = None) -> Sequence[Sample]:
    """A sharded dataset folder (has shard-*/manifest.jsonl) or a plain image folder."""
    path = Path(path)
    if path.is_dir() and any(path.glob("shard-?????/manifest.jsonl")):
        return ShardedDataset(path)
    return ImageFolder(path, mask_dir)


def is_sharded(path: str | Path) -> bool:
    try:
        read_manifests(path)
        return True
    except ValueError:
        return False


def resolved(folder: str | Path) -> str:
    """A folder as a record names it: absolute, links resolved."""
    return str(Path(folder).resolve())


def source_listing(source: str | Path | Sequence[Sample]) -> str | dict[str, str]:
    """What a training source holds, as a record that says whether a resume is on the same
    data (``trained_on`` of the GAN's and the task model's data modules): names and sizes,
    no file read (synth.digests.listing_digest). A sharded set's top folder holds no images:
    its listing is that of each shard's images and masks (``shard-00000/image``: digest); an
    image folder's, its own. ``source``: a folder, or what ``open_samples`` opened there."""
    if isinstance(source, (str, Path)):
        if not is_sharded(source):
            return listing_digest(source)
        source = ShardedDataset(source)
    if isinstance(source, ShardedDataset):
        shards = dict.fromkeys(shard for shard, _ in source.records)
        return {
            f"{shard.name}/{sub}": listing_digest(shard / sub)
            for shard in shards
            for sub in ("image", "semantic")
        }
    if isinstance(source, ImageFolder):
        return listing_digest(source.image_dir)
    raise TypeError(f"no listing of a {type(source).__name__}")


class RecordsTrainingData:
    """A data module whose checkpoints keep what it trains on (its ``trained_on()``), so that
    ``gan.runner.check_same_data`` refuses a resume on other data. Put before
    ``LightningDataModule`` among the bases, whose own state is empty."""

    def trained_on(self) -> dict[str, dict]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"trained_on": self.trained_on()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore: the checkpoint's record was compared before the fit, and
        this run's own is saved from now on (a moved folder's new place)."""


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB -> float 3xHxW in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(127.5).sub(1)


def resize_photo(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A uint8 HxWx3 photo at ``size`` (H, W): the one resize of every photo a model scores
    or predicts (INTER_AREA: an average when shrinking, smooth when enlarging), so that
    tools/predict.py, BatchNorm recalibration and evaluation see the same pixels."""
    import cv2

    h, w = size
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def random_crop(
    image: np.ndarray, mask: np.ndarray, size: int, gen: torch.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a size x size window (reflect-pad first when the image is smaller)."""
    h, w = mask.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
        h, w = mask.shape
    y = int(torch.randint(0, h - size + 1, (1,), generator=gen))
    x = int(torch.randint(0, w - size + 1, (1,), generator=gen))
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def checked_size(size: Sequence[int] | None, key: str, null: bool = True) -> tuple[int, int] | None:
    """An [H, W] setting (None: each image at its own size, where ``null``), refused in one
    line before any work where it is not two positive whole numbers (``eval_size=384`` would
    fail only when the first test image is resized, after training)."""
    if size is None and null:
        return None
    values = list(size) if isinstance(size, Sequence) and not isinstance(size, str) else None
    if values is None or len(values) != 2 or not all(is_count(v, 1) for v in values):
        or_null = ", or null" if null else ""
        shown = "null" if size is None else size
        raise ConfigError(f"{key}={shown}: expected [H, W], two positive whole numbers{or_null}")
    return int(values[0]), int(values[1])


def check_crop_fits(
    crop: int | None, samples: Sequence[Sample], key: str, what: str, hint: str = ""
) -> None:
    """Refuse crops larger than the first sample's shorter side: they would be mostly padding
    (a 1000 px GAN crop of 48 px scenes took minutes a step) where the user meant smaller."""
    if crop is None or len(samples) == 0:
        return
    h, w = samples[0].image.shape[:2]
    if crop > min(h, w):
        raise ConfigError(
            f"{key}={crop}: larger than the {what} ({h}x{w}), so crops would be mostly "
            f"padding; at most {min(h, w)}{hint}"
        )


def checked_rate(value: float, key: str, allow_zero: bool = False) -> float:
    """A learning rate: a positive finite number (or zero, where it freezes a network as an
    ablation does), refused at once: torch says only "Invalid learning rate" when the
    optimizer is built, and a string fails deep inside a scheduler."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        wanted = "a number >= 0" if allow_zero else "a positive number"
        raise ConfigError(f"{key}={value!r}: expected {wanted}, e.g. 2e-4")
    return float(value)


def in_range(value: object, key: str, low: float, high: float, high_open: bool = False) -> None:
    """A number from ``low`` to ``high`` (``high`` itself out where ``high_open``)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not low <= value <= high or (high_open and value == high):
        top = "" if high == math.inf else f" and {'<' if high_open else '<='} {high}"
        raise ConfigError(f"{key}={value!r}: expected a number >= {low}{top}")


def as_names(value: str | Sequence[str] | None, key: str = "a list setting") -> list[str]:
    """A list setting given as one word (``formats=onnx``, ``stages.task.sources=oracle``) is
    that one name, not its letters; None is no names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):  # sources=5 failed as "'int' object is not iterable"
        raise ConfigError(f"{key}={value!r}: expected a name or a list of names")
    return [str(v) for v in value]


class ShareSampler(DistributedSampler):
    """This rank's share of an evaluation set: every ``num_replicas``-th image, none twice.
    torch's DistributedSampler pads a set to a multiple of the ranks by repeating images,
    which metrics summed over the ranks would count twice (237 DeepCrack pairs on 2 or 4
    GPUs); being a DistributedSampler, Lightning uses it as it is."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(size), num_replicas, rank, shuffle=False)
        self.size = size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))


class EpochSampler(DistributedSampler):
    """Training order and every crop's seed, drawn from (seed, epoch) alone.

    Yields ``(position, crop_seed)`` for :class:`SegmentationSamples`. A crop then no longer
    depends on which worker loads it or on what else drew from the process's RNG, and a run
    killed mid-epoch can draw the rest of that epoch exactly as the uninterrupted run would
    (``resume_at``), instead of a fresh shuffle that repeats some samples and skips others.

    Under DDP each rank takes every ``num_replicas``-th item of the one epoch order (padded by
    wrapping round, as torch's DistributedSampler pads). Being a DistributedSampler, Lightning
    uses it as it is instead of wrapping it in one whose place a resume cannot restore.
    """

    def __init__(self, size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(size), num_replicas, rank, shuffle=False, seed=int(seed))
        self.size = size
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, start: int) -> None:
        """Begin the next iteration of ``epoch`` at this rank's ``start``-th sample."""
        self.epoch, self._resume = int(epoch), (int(epoch), int(start))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)
        gen = torch.Generator().manual_seed(int(state[0]) >> 1)
        order = torch.randperm(self.size, generator=gen).tolist()
        crop_seeds = torch.randint(0, 2**62, (self.size,), generator=gen).tolist()
        items = list(zip(order, crop_seeds))
        if self.num_replicas > 1:
            items = (items * self.num_replicas)[: self.total_size][self.rank :: self.num_replicas]
        epoch, start = self._resume or (self.epoch, 0)
        self._resume = None
        start = start if epoch == self.epoch else 0
        return iter(items[start:])


class SegmentationSamples(Dataset):
    """Samples as dicts {image, mask, index}; random crops when ``crop_size`` is set.

    ``resize`` (H, W) rescales whole images first, e.g. to evaluate at one fixed resolution.
    An item is a position, or ``(position, crop_seed)`` from :class:`EpochSampler`, which fixes
    the crop; a bare position crops from the process's global RNG.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        crop_size: int | None = None,
        resize: tuple[int, int] | None = None,
        indices: Sequence[int] | None = None,
    ) -> None:
        self.samples = samples
        self.crop_size = crop_size
        self.resize = tuple(resize) if resize else None
        self.indices = list(indices) if indices is not None else list(range(len(samples)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        i, crop_seed = item if isinstance(item, tuple) else (item, None)
        gen = torch.Generator().manual_seed(crop_seed) if crop_seed is not None else None
        index = self.indices[i]
        sample = self.samples[index]
        image, mask = sample.image, sample.semantic
        if self.resize and image.shape[:2] != self.resize:
            import cv2

            h, w = self.resize
            image = resize_photo(image, self.resize)
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        if self.crop_size:
            image, mask = random_crop(image, mask, self.crop_size, gen)
        return {
            "image": to_tensor(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(),
            "index": index,
        }


class ResumableLoader(DataLoader):
    """A training loader whose place Lightning saves in each checkpoint and restores before
    iterating on resume, so a killed run trains on what the uninterrupted run would have,
    sample for sample. The place is kept by the sampler (:class:`EpochSampler`, each rank its
    share) or, for an endless stream (the GAN's unpaired crops, each rank its own), by the
    dataset: either has ``epoch`` and ``resume_at(epoch, start_sample)``."""

    #: batches trained so far in the current epoch (set by :func:`resumable_loader`)
    batches_trained: Callable[[], int] = staticmethod(lambda: 0)

    @property
    def position(self):
        return self.dataset if isinstance(self.dataset, IterableDataset) else self.sampler

    def state_dict(self) -> dict:
        return {"epoch": self.position.epoch, "batches": int(self.batches_trained())}

    def load_state_dict(self, state: dict) -> None:
        self.position.resume_at(state["epoch"], state["batches"] * self.batch_size)


def quiet_worker(worker_id: int, rank: int = 0) -> None:
    """A DataLoader worker's start: it leaves Ctrl-C and SIGTERM to the main process (one
    that died of either broke the polite stop: a connection reset while the step in flight
    fetched, ``DataLoader worker is killed by signal: Terminated`` while the checkpoint was
    saved) and ends with its loader. Then the per-worker seeding Lightning adds to a loader
    without a worker_init_fn of its own. OpenCV's thread count is not set here: in a forked
    worker that waits forever where the tool's process has started OpenCV's pool."""
    ignore_stops()
    quiet_lost_handover()
    pl_worker_init_function(worker_id, rank)


def quiet_lost_handover() -> None:
    """A worker hands each batch's tensors to the main process through multiprocessing's
    resource sharer; when a stop ends the main process mid-handover, that thread printed
    ``ConnectionResetError`` with its traceback after the tool's last line (it reports through
    ``sys.excepthook``). That one error is dropped; any other is said as before."""
    said = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        lost = issubclass(kind, ConnectionError | EOFError)
        if lost and any(f.filename.endswith("resource_sharer.py") for f in extract_tb(tb)):
            return
        said(kind, value, tb)

    sys.excepthook = hook


def quiet_workers(trainer: pl.Trainer | None = None) -> Callable[[int], None]:
    """``worker_init_fn`` for this process's loaders (quiet_worker with its global rank).
    Workers that ignore SIGTERM are killed as this process exits, not waited on."""
    kill_daemons_at_exit()
    return functools.partial(quiet_worker, rank=trainer.global_rank if trainer else 0)


#: The (asked, given) worker counts already said lowered in this process: said once a run.
_LOWERED_SAID: set[tuple[int, int]] = set()


def loader_workers(num_workers: int) -> int:
    """The DataLoader workers to start for ``num_workers`` asked (gan_data, task_data,
    predict, evaluate): at most one a CPU this process may use (``usable_cpus``: a Slurm or
    cgroup share or CPU quota, not the node's). ``experiment=full``'s 8 on a 2-CPU machine made torch
    warn at every loader and ran 8 workers and the main process on 2 CPUs. 0 (load in the
    main process) is kept. Lowered, it is said in one line, once a process (a pipeline's
    loaders, train, validation and scoring, share it) and by rank zero alone under DDP.

    The cap is this process's CPUs, not a share of them a DDP rank: a Slurm task bound to
    its cores already sees its share, and dividing again would starve it; ranks started by
    Lightning on one node share its CPUs, so there ranks x workers may still exceed them, as
    torch's own check (per process) allows. Which worker loads which batch never changes
    what is drawn (``EpochSampler``, ``gan.adapt_data.UnpairedStream``): the cap changes
    speed alone."""
    cpus = usable_cpus()
    if num_workers <= cpus:
        return num_workers
    if (num_workers, cpus) not in _LOWERED_SAID and getattr(rank_zero_only, "rank", 0) == 0:
        said = f"num_workers={num_workers} lowered to {cpus}: this machine gives the run"
        print(f"{said} {cpus} CPUs", file=sys.stderr, flush=True)
    _LOWERED_SAID.add((num_workers, cpus))
    return cpus


def resumable_loader(trainer: pl.Trainer, *args, **kwargs) -> ResumableLoader:
    """A ResumableLoader that reads its progress from ``trainer``'s fit loop."""
    loader = ResumableLoader(*args, **kwargs)
    loader.batches_trained = lambda: trainer.fit_loop.epoch_loop.batch_progress.current.completed
    return loader
