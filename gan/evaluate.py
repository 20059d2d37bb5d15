"""Score a trained task model on real labeled images, and segment unlabeled folders.

Evaluation writes what a person needs to trust one number: per-image rows (CSV) to find the
images that fail, an aggregate JSON (the product's F1), and overlays to look at.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import importlib
import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gan.bn_adapt import recalibrate_batchnorm
from gan.checkpoint import load_checkpoint
from gan.data import (
    SegmentationSamples,
    is_sharded,
    loader_workers,
    open_samples,
    quiet_workers,
    resize_photo,
    to_tensor,
)
from gan.staging import (
    BATCH_SIZE,
    append_progress,
    changed_since,
    look_now,
    progress_file,
    read_progress,
    same_settings,
    staged,
    stamp,
    write_progress,
    written_record,
)
from gan.stalls import StallWatch
from gan.start import StopsHeld
from gan.task import (
    TOLERANCE_SHAPE,
    CrackSegmenter,
    build_metrics,
    confusion_counts,
    f1_from_counts,
    iou_from_counts,
    tolerance_counts,
    tolerance_f1_from_counts,
)
from gan.task_data import forward_by_size, pad_collate, tiled
from gan.translate import load_generator, translate_batch
from gan.visual import grid_rows, overlay_masks, save_grid, to_uint8
from synth.digests import PROGRESS_BYTES, file_digest
from synth.distributions import ConfigError
from synth.io import (
    DataError,
    ImageFolder,
    Sample,
    missing_folder,
    write_json_atomic,
    write_png,
)

#: Pixels (as the network sees them) above which predict suggests ``tile``: a whole pass of the
#: default U-Net (width 16) took about 0.5 GB a megapixel on CPU (peak 3.4 GB on a 4.7 MP photo,
#: 1.3 GB with tile=512; tools/predict.py, session 45).
LARGE_PHOTO = 4_000_000

CSV_FIELDS = ("stem", "f1", "tol_f1", "iou", "crack_share_true", "crack_share_pred")
#: Each photo's crack pixel counts (true positives, false positives, false negatives), so the
#: pooled F1 of any subset of photos can be recomputed: gan.compare's interval of a gain over
#: the test photos resamples them. Absent from scores written before session 51.
COUNT_FIELDS = ("tp", "fp", "fn")


class ThroughGenerator(nn.Module):
    """Test-time translation: photos through a generator (the GAN's real-to-synthetic g_ba)
    before the task network, so a model trained on raw scenes meets scene-like inputs. The
    reverse of adapting the training set, and no model is retrained; the generator runs on
    every image at inference, so deployment needs it too."""

    def __init__(self, generator: nn.Module, net: nn.Module) -> None:
        super().__init__()
        self.generator, self.net = generator, net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(translate_batch(self.generator, images))


def reverse_generator(gan_checkpoint: str | Path | None) -> nn.Module | None:
    """The GAN checkpoint's real-to-synthetic generator (g_ba) for test-time translation, or
    None without a checkpoint (the tools' ``translate_with: null``)."""
    if not gan_checkpoint:
        return None
    return load_generator(gan_checkpoint, "b2a")[0]


def scoring_net(model: CrackSegmenter, translate_with: nn.Module | None = None) -> nn.Module:
    """The network that scores and predicts: the model's eval-only copy, behind the
    generator when ``translate_with`` is given (``ThroughGenerator``)."""
    net = model.inference_net()
    if translate_with is None:
        return net
    return ThroughGenerator(copy.deepcopy(translate_with).to(model.device).eval(), net)


def load_segmenter(ckpt_path: str | Path, device: str | torch.device = "cpu") -> CrackSegmenter:
    """A trained CrackSegmenter in eval mode, loaded safely (tensors and plain data only).

    The model is rebuilt from the checkpoint's hyper-parameters, so evaluation needs no
    config: the checkpoint alone says which network and width it holds.
    """
    checkpoint = load_checkpoint(ckpt_path)
    if not any(key.startswith("net.") for key in checkpoint.get("state_dict", {})):
        raise DataError(
            f"{ckpt_path}: no task model in it; pass a task model's checkpoint "
            "(tools/train_task.py) as ckpt=, and a GAN's as translate_with="
        )
    model = CrackSegmenter(**checkpoint.get("hyper_parameters", {}))
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


def progress_bar(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
        disable=disable,
    )


@contextmanager
def hashing(unread: int, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar of ``total`` photos whose files are hashed, shown where that is real
    work (``unread`` bytes past ``PROGRESS_BYTES``, about a second): a resumed predict of
    10,000 photos read them all before its first batch without a word. Quiet otherwise."""
    with progress_bar(disable=unread <= PROGRESS_BYTES) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)


def batches(loader: DataLoader, description: str) -> Iterator[dict]:
    """Iterate a loader under a rich progress bar counting images, and a line should no
    batch finish for a long while (``gan.stalls``: a hung loader worker had frozen the bar
    without a word)."""
    total, done = len(loader.sampler), 0
    watch = StallWatch(name=description)
    with progress_bar() as bar, watch.running("batch of photos", f"{description}: none done yet"):
        task = bar.add_task(description, total=total)
        for batch in loader:
            yield batch
            bar.advance(task, len(batch["image"]))
            done += len(batch["image"])
            watch.beat("batch of photos", f"{description}: {done} of {total} photos done")


# --------------------------------------------------------------------------- evaluation


def per_image_rows(
    stems: Sequence[str], pred: torch.Tensor, mask: torch.Tensor, tol_counts: torch.Tensor
) -> list[dict]:
    """One CSV row per image from label maps (ignore pixels, e.g. padding, excluded) and their
    ``tolerance_counts``, which the batch's ToleranceF1 took as well."""
    conf = confusion_counts(pred, mask).tolist()
    tol = tol_counts.tolist()
    valid = (mask != 255).flatten(1).sum(1).clamp(min=1).tolist()
    rows = []
    for stem, (tp, fp, fn), counts, n in zip(stems, conf, tol, valid):
        rows.append(
            {
                "stem": stem,
                "f1": round(f1_from_counts(tp, fp, fn), 6),
                "tol_f1": round(tolerance_f1_from_counts(*counts), 6),
                "iou": round(iou_from_counts(tp, fp, fn), 6),
                "crack_share_true": round((tp + fn) / n, 6),
                "crack_share_pred": round((tp + fp) / n, 6),
                **dict(zip(COUNT_FIELDS, (tp, fp, fn))),
            }
        )
    return rows


def save_overlay(
    image: torch.Tensor, mask: torch.Tensor | None, pred: torch.Tensor, path: Path
) -> None:
    """Image, ground truth (if any) and prediction stacked top to bottom, as one PNG."""
    img = image[None]
    rows = [overlay_masks(img, None)]
    if mask is not None:
        rows.append(overlay_masks(img, mask[None]))
    rows.append(overlay_masks(img, pred[None]))
    save_grid(grid_rows(rows), path)


def write_rows(path: Path, rows: list[dict]) -> None:
    """per_image.csv, whole or not at all (a temp file, then renamed)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=(*CSV_FIELDS, *COUNT_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_rows(path: Path) -> list[dict]:
    """The per-image scores ``write_rows`` wrote: the stem, then every score as a float."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not set(CSV_FIELDS) <= set(rows[0]):
        raise DataError(f"{path}: expected per-image columns {list(CSV_FIELDS)}")
    return [{k: r[k] if k == "stem" else float(r[k]) for k in CSV_FIELDS} for r in rows]


def read_counts(path: Path) -> dict[str, tuple[int, int, int]] | None:
    """Each photo's (tp, fp, fn) from per_image.csv; None for scores written without them."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not all(rows[0].get(k) for k in COUNT_FIELDS):
        return None
    return {r["stem"]: tuple(int(r[k]) for k in COUNT_FIELDS) for r in rows}  # type: ignore[misc]


def labeled_samples(
    image_dir: str | Path, mask_dir: str | Path | None
) -> tuple[Sequence, list[str]]:
    """(samples, one name per sample) from a sharded dataset or an image + mask folder pair."""
    sharded = is_sharded(image_dir)
    if not sharded and not Path(image_dir).is_dir():
        raise missing_folder(image_dir, "test image folder")
    if not sharded and mask_dir is None:  # said as a folder named "null" before
        raise DataError(
            f"{image_dir}: a photo folder needs its masks (test_lab); null is for a sharded "
            "set (photos without labels: tools/predict.py segments them)"
        )
    if not sharded and not Path(mask_dir).is_dir():
        raise missing_folder(mask_dir, "test mask folder")
    samples = open_samples(image_dir, mask_dir)
    if sharded:
        return samples, [rec["stem"] for _, rec in samples.records]
    return samples, [path.stem for path in samples.images]


def scoring_record(
    eval_size: Sequence[int] | None, tile: int | None, num_overlays: int | None
) -> dict:
    """The settings a folder's scores or masks were made with, as metrics.json records them:
    the pipeline scores a row again where its settings differ (gan.pipeline.scoring_settings)."""
    return {
        "eval_size": list(eval_size) if eval_size else None,
        "tile": tile,
        "num_overlays": num_overlays,
    }


@torch.no_grad()
def evaluate_folder(
    model: CrackSegmenter,
    image_dir: str | Path,
    mask_dir: str | Path | None,
    out_dir: str | Path,
    eval_size: Sequence[int] | None = (384, 544),
    batch_size: int = 4,
    num_overlays: int = 8,
    num_workers: int = 0,
    extra: dict | None = None,
    translate_with: nn.Module | None = None,
    owned: bool = False,
    tile: int | None = None,
    tolerance: int | None = None,
) -> dict:
    """Score ``model`` on a labeled folder; writes per_image.csv, metrics.json, overlays/.
    ``translate_with``: a generator the photos go through first (``ThroughGenerator``); the
    overlays still show the photos as they are. ``owned``: see ``staged``; ``tile``: see
    ``crack_probabilities``; ``tolerance``: the tolerance F1's radius (None: the model's).

    ``image_dir`` may also be a sharded dataset (synthetic or translated; ``mask_dir`` unused):
    the same model scored on the synthetic and the adapted set shows what translation did to
    the training signal, e.g. how many background textures still read as cracks.
    """
    check_eval_size_fits(eval_size, translate_with)
    samples, names = labeled_samples(image_dir, mask_dir)
    if not owned:  # the pipeline says it once, before any work
        say_if_stretched(samples, eval_size)
    dataset = SegmentationSamples(
        samples, crop_size=None, resize=tuple(eval_size) if eval_size else None
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=loader_workers(num_workers),
        collate_fn=pad_collate,
        worker_init_fn=quiet_workers(),
    )
    out_dir = Path(out_dir)
    device = model.device
    tolerance = model.hparams.tolerance if tolerance is None else tolerance
    metrics = build_metrics(tolerance).to(device)
    net = tiled(scoring_net(model, translate_with), tile)
    rows: list[dict] = []
    start = time.perf_counter()
    with StopsHeld() as stops:  # held from the overlays' commit to the scores' writing
        with staged(out_dir, ["overlays"], "evaluate", owned) as staging:
            if isinstance(samples, ImageFolder):  # every bad file in one line, as predict_folder
                samples.validate(  # (a sharded set was checked when written)
                    progress=not owned, **generators_least_side(translate_with, eval_size)
                )
            for batch in batches(loader, "evaluate"):
                if translate_with is not None:
                    check_generator_fits(samples, batch)
                images, masks = batch["image"].to(device), batch["mask"].to(device)
                with torch.inference_mode():
                    pred = forward_by_size(net, images, batch["size"]).argmax(1)
                tol_counts = tolerance_counts(pred, masks, tolerance)
                metrics.update(pred, masks, tol_counts=tol_counts)
                stems = [names[int(i)] for i in batch["index"]]
                rows += per_image_rows(stems, pred.cpu(), masks.cpu(), tol_counts.cpu())
                for j, (h, w) in enumerate(batch["size"].tolist()):
                    if len(rows) - len(stems) + j < num_overlays:
                        save_overlay(
                            images[j, :, :h, :w],
                            masks[j, :h, :w],
                            pred[j, :h, :w],
                            staging["overlays"] / f"{stems[j]}.png",
                        )
            stops.start()  # the staged overlays go in place whole, then the scores
        seconds = time.perf_counter() - start
        result = {k: round(float(v), 6) for k, v in metrics.compute().items()}
        result.update(
            num_images=len(rows),
            mean_image_f1=round(float(np.mean([r["f1"] for r in rows])), 6),
            mean_image_tol_f1=round(float(np.mean([r["tol_f1"] for r in rows])), 6),
            seconds=round(seconds, 2),
            seconds_per_image=round(seconds / max(1, len(rows)), 4),
            **scoring_record(eval_size, tile, num_overlays),
            tolerance=tolerance,
            tolerance_shape=TOLERANCE_SHAPE,
            image_dir=str(image_dir),
            **(extra or {}),
        )
        write_rows(out_dir / "per_image.csv", rows)
        write_json_atomic(out_dir / "metrics.json", result)
    say_if_masks_look_inverted(mask_dir if mask_dir is not None else image_dir, rows)
    return result


def say_if_stretched(
    samples: Sequence[Sample], eval_size: Sequence[int] | None, key: str = "eval_size"
) -> None:
    """Photos of another shape than ``eval_size`` (DeepCrack's 384x544 by default) are
    stretched to it, their cracks' widths with them, and the per-pixel scores change; said
    where the first photo's aspect differs by more than a fifth, with the setting (``key``)
    that keeps each photo's own size."""
    if not eval_size or not isinstance(samples, ImageFolder) or not len(samples):
        return
    try:
        h, w = samples[0].image.shape[:2]
    except DataError:  # a bad first photo: validate names it with the folder's others
        return
    if abs(math.log((h / w) / (eval_size[0] / eval_size[1]))) > math.log(1.2):
        print(
            f"note: {samples.image_dir}: photos such as {samples.images[0].name} ({h}x{w}) are "
            f"resized to eval_size {eval_size[0]}x{eval_size[1]} (HxW), stretching cracks with "
            f"them; {key}=null scores each photo at its own size"
        )


def say_if_masks_look_inverted(masks: str | Path, rows: list[dict]) -> None:
    """Masks drawn black on white (crack dark, background bright) read as crack nearly
    everywhere and scored a plausible F1 (0.72 on four photos) without a word; cracks are a
    few per cent of a photo, so most masks above half crack point there."""
    shares = [r["crack_share_true"] for r in rows]
    inverted = sum(share > 0.5 for share in shares)
    if inverted * 2 > len(shares):
        print(
            f"note: {masks}: {inverted} of {len(shares)} masks mark more than half their "
            f"pixels as crack (median {float(np.median(shares)):.0%}); crack is the bright "
            "value (255 or 1): masks drawn black on white need inverting"
        )


# --------------------------------------------------------------------------- prediction


class ImagesToSegment(Dataset):
    """Unlabeled images (an ImageFolder, or any samples with ``.image``), optionally resized
    to ``eval_size``; keeps each original size and (``keep_photo``) the decoded photo, so a
    caller that draws on it does not decode the file a second time."""

    def __init__(
        self,
        folder: Sequence[Sample],
        eval_size: Sequence[int] | None = None,
        keep_photo: bool = True,
    ) -> None:
        self.folder, self.eval_size = folder, tuple(eval_size) if eval_size else None
        self.keep_photo = keep_photo

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict:
        photo = self.folder[i].image
        original = list(photo.shape[:2])
        resized = self.eval_size and tuple(original) != self.eval_size
        x = to_tensor(resize_photo(photo, self.eval_size) if resized else photo)
        return {
            "image": x,
            "mask": torch.zeros(x.shape[-2:], dtype=torch.long),
            "index": i,
            "original": original,
            "photo": photo if self.keep_photo else None,
        }


def predict_collate(items: list[dict]) -> dict:
    batch = pad_collate(items)
    batch["original"] = torch.tensor([it["original"] for it in items])
    batch["photo"] = [it["photo"] for it in items]
    return batch


def photo_loader(
    folder: Sequence[Sample],
    eval_size: Sequence[int] | None,
    batch_size: int,
    num_workers: int,
    keep_photo: bool = True,
    indices: Sequence[int] | None = None,
) -> DataLoader:
    """Batches of ImagesToSegment, in folder order: what prediction and BatchNorm
    recalibration both feed the network. ``indices``: those photos alone (a resumed
    prediction's rest), batched in their order."""
    return DataLoader(
        ImagesToSegment(folder, eval_size, keep_photo),
        sampler=indices,
        batch_size=batch_size,
        num_workers=loader_workers(num_workers),
        collate_fn=predict_collate,
        worker_init_fn=quiet_workers(),
    )


#: The smallest side the GAN's generators take: two stride-2 levels, then instance norm,
#: which needs more than one value per channel (a 4 px photo failed inside torch).
MIN_GENERATOR_SIDE = 8


NEEDED_BY_GENERATOR = "the generator needs for test-time translation"


def check_eval_size_fits(eval_size: Sequence[int] | None, translate_with: object) -> None:
    """Every photo resized below the generator's least side: the setting named, not the
    first photo (``eval_size=[6,9]`` was said as a photo of 6x9 px)."""
    if translate_with is not None and eval_size and min(eval_size) < MIN_GENERATOR_SIDE:
        raise ConfigError(
            f"eval_size={list(eval_size)}: smaller than the {MIN_GENERATOR_SIDE} px a side the "
            "generator needs for test-time translation"
        )


def generators_least_side(translate_with: object, eval_size: Sequence[int] | None) -> dict:
    """validate's size check where photos go through a generator at their own size: a photo
    too small was found mid-run, alone, the others' work discarded."""
    if translate_with is None or eval_size:
        return {}
    return {"min_side": MIN_GENERATOR_SIDE, "needed_by": NEEDED_BY_GENERATOR}


def check_generator_fits(folder: Sequence[Sample], batch: dict) -> None:
    """Refuse, by file, a photo too small to go through the generator."""
    for index, (h, w) in zip(batch["index"].tolist(), batch["size"].tolist()):
        if min(h, w) < MIN_GENERATOR_SIDE:
            images = getattr(folder, "images", None)
            name = images[index] if images is not None else f"image {index}"
            raise DataError(
                f"{name}: {h}x{w} px (HxW), smaller than the {MIN_GENERATOR_SIDE} px a side "
                + NEEDED_BY_GENERATOR
            )


@torch.no_grad()
def crack_probabilities(
    model: CrackSegmenter,
    folder: Sequence[Sample],
    eval_size: Sequence[int] | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    description: str = "predict",
    translate_with: nn.Module | None = None,
    tile: int | None = None,
    indices: Sequence[int] | None = None,
) -> Iterator[tuple[int, torch.Tensor, np.ndarray]]:
    """(index, crack probability HxW on CPU, the photo as decoded) for every image of
    ``folder`` (``indices``: those alone), in order; ``tile``: photos larger than it go
    through in overlapping windows (``gan.task_data.tiled``).

    Logits are resized back to each image's own size, so a map always matches its image.
    """
    check_eval_size_fits(eval_size, translate_with)
    loader = photo_loader(folder, eval_size, batch_size, num_workers, indices=indices)
    net = tiled(scoring_net(model, translate_with), tile)
    said = False
    for batch in batches(loader, description):
        if translate_with is not None:
            check_generator_fits(folder, batch)
        largest = int(batch["size"].prod(1).max())
        if tile is None and largest > LARGE_PHOTO and not said:  # before it runs out of memory
            said = True
            print(
                f"note: photos of {largest / 1e6:.1f} megapixels go through the network whole; "
                "should memory run out, tile=512 (the pipeline: stages.evaluate.tile=512) segments "
                "them in overlapping windows"
            )
        with torch.inference_mode():
            logits = forward_by_size(net, batch["image"].to(model.device), batch["size"])
        for j, index in enumerate(batch["index"].tolist()):
            (h, w), (oh, ow) = batch["size"][j].tolist(), batch["original"][j].tolist()
            item_logits = F.interpolate(
                logits[j : j + 1, :, :h, :w], size=(oh, ow), mode="bilinear"
            )
            yield index, item_logits.float().softmax(1)[0, 1].cpu(), batch["photo"][j]


def recalibrate_on_folder(
    model: CrackSegmenter,
    image_dir: str | Path,
    eval_size: Sequence[int] | None = (384, 544),
    batch_size: int = 4,
    num_workers: int = 0,
) -> int:
    """Re-estimate ``model``'s BatchNorm statistics on a folder of unlabeled photos, seen as
    they are scored (resized to ``eval_size``); returns how many photos were used. Without an
    ``eval_size`` photos go one by one, since padding a batch would skew the statistics."""
    folder = ImageFolder(image_dir)  # a missing or empty folder raises DataError
    batch_size = batch_size if eval_size else 1
    loader = photo_loader(folder, eval_size, batch_size, num_workers, keep_photo=False)
    seen: list[int] = []  # the batch in flight's photos, to name the one torch refuses

    def images() -> Iterator[torch.Tensor]:
        for batch in batches(loader, "BatchNorm statistics"):
            seen[:] = batch["index"].tolist()
            yield batch["image"].to(model.device)

    try:
        return recalibrate_batchnorm(model, images())
    except ValueError as err:  # torch's BatchNorm on one value per channel
        if "more than 1 value per channel" not in str(err):
            raise
        which = (  # one by one without eval_size: the photo; with it, every photo that size
            f"{folder.images[seen[0]]}: a photo"
            if not eval_size and seen
            else f"eval_size={list(eval_size or [])}: photos"
        )
        raise DataError(
            f"{which} too small for BatchNorm statistics (one value per channel at the "
            "network's deepest level); set eval_size=[H, W] or leave out tiny photos"
        ) from err


def predict_folder(
    model: CrackSegmenter,
    image_dir: str | Path,
    out_dir: str | Path,
    eval_size: Sequence[int] | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    translate_with: nn.Module | None = None,
    tile: int | None = None,
    skip_bad_photos: bool = False,
) -> list[Path]:
    """Segment every image of a folder: masks/<stem>.png (0/255) and overlays/<stem>.png
    (``translate_with``: see ``ThroughGenerator``). Results go to hidden staging folders and
    replace an earlier run's only once every photo is done, so a run that fails on its fifth
    photo (or is interrupted) leaves the earlier results as they were.

    A run that fails or is stopped (Ctrl-C, SIGTERM, SIGKILL, a power cut) keeps its finished
    photos staged: a rerun with the same model and settings (``prediction_key``; another
    ``batch_size`` too) segments only the photos not done, or changed since
    (``reuse_staged``); a killed 10,000-photo run started over from photo 1.

    A bad photo (unreadable, damaged, too small) refuses the run, every one named; with
    ``skip_bad_photos`` the rest are segmented and the bad ones listed in ``SKIPPED`` (the option
    is not in the key: a photo's PNGs do not depend on the others being there)."""
    folder = ImageFolder(image_dir)
    out_dir = Path(out_dir)
    subs = {sub: out_dir / sub for sub in ("masks", "overlays")}
    photos = Path(image_dir).resolve()
    if any(photos == path.resolve() for path in subs.values()):
        raise ConfigError(
            f"input_dir={image_dir} is where this run writes its {photos.name}: the "
            "predictions would replace the photos; choose another out_dir"
        )
    key = prediction_key(model, translate_with, eval_size, tile, batch_size, None)
    least_side = generators_least_side(translate_with, eval_size)
    skipped: dict[str, str] = {}
    with StopsHeld() as stops:
        with staged(out_dir, list(subs), "predict", resume=key, records=[SKIPPED]) as staging:
            # every bad file in one line, before the network runs: one unreadable photo ended
            # a run with the others' work discarded, naming it alone, so each fix meant another
            # run (a decode per photo, small beside the network's pass); skipping them, the
            # good photos alone go on, by name, as the journal and the PNGs know them
            # (bar the photos the finished run, or the stopped run whose staging this run
            # took over, decoded and unchanged since: trusted_photos; a live run's staging
            # is never taken over, so its journal is not read)
            trusted = trusted_photos(subs, folder, key) | trusted_photos(staging, folder, key)
            if skip_bad_photos:
                folder, skipped = folder.without_bad(True, trusted=trusted, **least_side)
            else:
                folder.validate(True, rest_hint=SKIP_HINT, trusted=trusted, **least_side)
            counts = write_predictions(
                model,
                folder,
                staging,
                eval_size,
                batch_size,
                num_workers,
                translate_with,
                tile,
                resume=key,
                earlier=subs,
            )
            if skipped:
                record = skipped_record(image_dir, skipped, len(counts))
                write_json_atomic(staging["masks"] / SKIPPED, record)
            stops.start()  # the staged results go in place whole, the skipped list with them
    if skipped:
        print(
            f"{len(skipped)} of {len(skipped) + len(counts)} photos skipped (unreadable, damaged "
            f"or too small), each with its reason in {out_dir / SKIPPED}; fixed, a rerun "
            "segments them"
        )
    return [subs["overlays"] / name for name in counts]


#: predict's refusal of bad photos ends with it where some photos are good.
SKIP_HINT = "skip_bad_photos=true segments the rest"

#: In predict's out_dir, beside masks/ and overlays/: the photos its last run skipped
#: (``skip_bad_photos``), each with why; none where it skipped none, so the list always says
#: of the PNGs there which photos have none (a skipped photo's earlier PNGs go with the rest
#: of other names: an earlier result for it is not left looking current). Staged with the
#: PNGs and put in place with them (``staged``'s ``records``): written after them, a kill -9
#: between left the earlier run's list beside the new PNGs.
SKIPPED = "skipped.json"


def skipped_record(image_dir: str | Path, skipped: dict[str, str], segmented: int) -> dict:
    """``SKIPPED``'s content: the input folder, how many photos were segmented, and each
    skipped photo with its reason."""
    rows = [{"photo": name, "reason": why} for name, why in skipped.items()]
    return {"input_dir": str(image_dir), "segmented": segmented, "skipped": rows}


#: Part of every ``prediction_key``: raised where the same model, settings and photo give
#: other PNGs for a reason neither ``PREDICTION_CODE``'s source nor the libraries' versions
#: in the key show, so staged work of older code is segmented again, not mixed with the new.
PREDICTION_FORMAT = 1

#: The modules whose code decides a photo's PNGs besides the weights and settings: decoding
#: and writing (synth.io), resizing and tensors (gan.data), batching and tiles (task_data),
#: the networks and their inference copy (networks, task, translate), the threshold and
#: overlays (evaluate, visual). Their source is in every ``prediction_key``.
PREDICTION_CODE = (
    "gan.data",
    "gan.evaluate",
    "gan.networks",
    "gan.task",
    "gan.task_data",
    "gan.translate",
    "gan.visual",
    "synth.io",
)


def prediction_key(
    model: CrackSegmenter,
    translate_with: nn.Module | None,
    eval_size: Sequence[int] | None,
    tile: int | None,
    batch_size: int,
    num_overlays: int | None,
) -> dict:
    """What decides a photo's PNGs besides the photo: the networks' weights and layers, the
    scoring settings (``scoring_record``), the batch size, the device, the code
    (``code_digest``) and the libraries that compute, resize, draw and encode. A stopped
    run's photos are reused only under an equal key but for the batch size
    (``same_settings``). The batch size is in it, and in each journal line, for the resume at
    an unchanged one: it keeps whole batches of the uninterrupted run and the rest goes
    through in that run's batches, so it ends byte for byte as that run (kernels may round
    otherwise for another batch shape; on CPU none did: docs/experiments.md). A
    rerun at another batch size, the usual rerun after a GPU ran out of memory on a large
    photo, keeps every photo that holds, where a strict key redid them all."""
    device = model.device
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    key = {
        "format": PREDICTION_FORMAT,
        "model": modules_digest([model, translate_with]),
        **scoring_record(eval_size, tile, num_overlays),
        "batch_size": batch_size,
        "device": where,
        "torch": torch.__version__,
        "code": code_digest(),
        "libraries": {"opencv": cv2.__version__, "torchvision": torchvision.__version__},
    }
    return json.loads(json.dumps(key))  # as read back from a journal: lists, not tuples


def code_digest(modules: Sequence[str] | None = None) -> str:
    """sha256 of the source files of ``modules`` (``PREDICTION_CODE``'s by default, read at
    the call: a default bound at definition kept the list a test or plugin extends): an
    upgrade that changes how a PNG comes out (another threshold, overlays drawn otherwise)
    resumed a stopped run into a mix of the old code's PNGs and the new, unless
    ``PREDICTION_FORMAT`` was raised by hand. Any edit of those files counts, a comment too:
    a resume after an upgrade redoes work rather than mix (about 170 KB read, under a
    millisecond, once a run). A module without a source file (a frozen build) counts by its
    name alone. The pipeline's report keys its page by its own modules' (gan.pipeline_report)."""
    h = hashlib.sha256()
    for name in PREDICTION_CODE if modules is None else modules:
        h.update(name.encode())
        try:
            h.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
        except OSError:
            continue
    return h.hexdigest()


def modules_digest(modules: Sequence[nn.Module | None]) -> str:
    """sha256 of each module's layers (its repr) and every tensor of its state: the model
    as it computes, whether loaded from a checkpoint, an export's source or made in memory
    (a checkpoint saved again with other optimizer state is the same model)."""
    h = hashlib.sha256()
    for module in modules:
        h.update(repr(module).encode())
        if module is None:
            continue
        h.update(repr(sorted(dict(getattr(module, "hparams", {})).items())).encode())
        for name, tensor in module.state_dict().items():
            value = tensor.detach().cpu().contiguous()
            h.update(f"{name} {value.dtype} {tuple(value.shape)}".encode())
            h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def output_name(folder: ImageFolder, index: int) -> str:
    return f"{folder.images[index].stem}.png"


def reuse_staged(
    into: dict[str, Path], folder: ImageFolder, key: dict, batch_size: int
) -> dict[int, dict]:
    """The photos (index: journal entry) whose PNGs a stopped run staged and this run keeps:
    each the same file (name and content digest, or its settled look: ``photo_unchanged``)
    and each staged PNG the one written (its digest: a power cut can leave a file empty). All
    made at this run's batch size: whole batches of the uninterrupted run alone
    (``resume_groups``; the rest goes through in the same batches, so the run ends byte for
    byte as that one). Some made at another (a rerun with a smaller batch
    after running out of memory): every photo that holds, each keeping the batch size it was
    made at. Every other staged PNG is deleted and the journal rewritten to the kept photos
    under this run's key, so nothing stale is mixed in."""
    journal = progress_file(into)
    made_with, entries = read_progress(journal)
    entries = made_at(entries, made_with) if same_settings(made_with, key) else {}
    kept: dict[int, dict] = {}
    unread = sum(e["stamp"][0] for e in entries.values() if isinstance(e.get("stamp"), list))
    with hashing(unread, "checking staged photos", len(folder)) as advance:
        for group in resume_groups(folder, entries, batch_size):
            kept.update(group_holds(group, entries, folder, into))
            advance(len(group))
    names = {entry["name"] for entry in kept.values()}
    for path in into.values():
        for png in path.glob("*.png"):
            if png.name not in names:
                png.unlink()
    write_progress(journal, key, kept.values())
    return kept


def resume_groups(
    folder: ImageFolder, entries: dict[str, dict], batch_size: int
) -> list[list[int]]:
    """The groups of photos a resume keeps whole or not at all. Those the stopped run took
    from the finished run before (``REUSED``) one by one: they went through in no batch.
    The others, where all went through at this run's batch size, in the batches the
    uninterrupted run made of them (the photos it did not reuse, in order: grouped by their
    place in the whole folder, a kept batch beside a reused photo lost its second photo, then
    segmented in another batch than the uninterrupted run's); one by one where some went
    through at another."""
    reused = [i for i in range(len(folder)) if entries.get(output_name(folder, i), {}).get(REUSED)]
    own = sorted(set(range(len(folder))) - set(reused))
    same = all(e[BATCH_SIZE] == batch_size for e in entries.values() if not e.get(REUSED))
    size = batch_size if same else 1
    return [own[start : start + size] for start in range(0, len(own), size)] + [[i] for i in reused]


def group_holds(
    group: Sequence[int], entries: dict[str, dict], folder: ImageFolder, into: dict[str, Path]
) -> dict[int, dict]:
    """The group's photos (index: entry, its look renewed) where every one still holds
    (``still_holds``), else none."""
    held: dict[int, dict] = {}
    for i in group:
        entry = entries.get(output_name(folder, i))
        if not entry or not (holds := still_holds(entry, folder.images[i], into)):
            return {}
        held[i] = holds
    return held


def reuse_finished(
    into: dict[str, Path],
    earlier: dict[str, Path],
    folder: ImageFolder,
    key: dict,
    done: dict[int, dict],
) -> dict[int, dict]:
    """The photos (index: journal entry) not in ``done`` whose PNGs in the output folders
    ``earlier`` the finished run there made under ``key`` (``same_settings``: any batch size),
    each photo and PNG unchanged since (``still_holds``: the resume's check): their PNGs are
    staged again and journaled, so the run goes in place whole as before while segmenting only
    new and changed photos; a rerun for 50 photos added to 10,000 segmented all 10,050. One by
    one, not by batch: the finished run's batches are not this folder's. A hard link, not a
    copy, where the filesystem has them: nothing writes into a staged PNG, as ``reuse_staged``
    deletes the ones it does not keep before any photo is segmented, and replacing the output
    folders' PNGs renames over them."""
    made_with, entries = read_progress(progress_file(earlier))
    if not same_settings(made_with, key):
        return {}
    entries = made_at(entries, made_with)
    found = {i: entries.get(output_name(folder, i)) for i in range(len(folder)) if i not in done}
    unread = sum(e["stamp"][0] for e in found.values() if e and isinstance(e.get("stamp"), list))
    stamps = {sub: written_record(path).get("stamps", {}) for sub, path in earlier.items()}
    reused: dict[int, dict] = {}
    with hashing(unread, "checking the last run's photos", len(found)) as advance:
        for i, entry in found.items():
            if entry and (holds := still_holds(entry, folder.images[i], earlier, stamps)):
                for sub, written in entry["outputs"].items():
                    if written is not None:
                        link_or_copy(earlier[sub] / entry["name"], into[sub] / entry["name"])
                reused[i] = {**holds, REUSED: True}
            advance(1)
    append_progress(progress_file(into), list(reused.values()))
    return reused


#: In the journal line of a photo whose PNGs a run took from the finished run before it
#: (``reuse_finished``), not segmented: the rerun of a stopped run says those as reused,
#: where it counted them as segmented by the stopped run.
REUSED = "reused"


def say_kept(done: dict[int, dict], batch_size: int, total: int) -> None:
    """What a run keeps rather than segments, each photo counted once: those a stopped run
    segmented (``resuming: ...``), then those whose PNGs come from the finished run before,
    taken by the stopped run or by this one (``reusing ...``), with how many are left to
    segment. A stopped rerun's resume said its reused photos were already segmented."""
    reused = sum(1 for entry in done.values() if entry.get(REUSED))
    resumed = {i: entry for i, entry in done.items() if not entry.get(REUSED)}
    if resumed:
        made = batch_sizes_said(resumed, batch_size, total - reused)
        print(f"resuming: {len(resumed)} of {total} photos already segmented{made}")
    if reused:
        print(
            f"reusing {reused} of {total} photos' masks and overlays from the last run "
            f"(unchanged since); segmenting {total - len(done)}"
        )


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` made the file ``source`` without reading it (a hard link), or a copy with
    its times where the filesystem has no links."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def made_at(entries: dict[str, dict], made_with: dict) -> dict[str, dict]:
    """Journal entries, each with the batch size its photo went through at: its own record,
    else its journal's key's (a journal of one run, before entries recorded it)."""
    return {
        name: {**entry, BATCH_SIZE: entry.get(BATCH_SIZE, made_with.get(BATCH_SIZE))}
        for name, entry in entries.items()
    }


def batch_sizes_said(done: dict[int, dict], batch_size: int, total: int) -> str:
    """`` (those at batch_size=8; the rest at batch_size=4)`` for a resume's line, where kept
    photos were segmented at another batch size than this run's; "" where all at this one."""
    made = Counter(entry[BATCH_SIZE] for entry in done.values())
    if set(made) == {batch_size}:
        return ""
    if len(made) == 1:
        those = f"those at batch_size={next(iter(made))}"
    else:
        those = ", ".join(f"{n} at batch_size={b}" for b, n in sorted(made.items(), reverse=True))
    rest = f"; the rest at batch_size={batch_size}" if len(done) < total else ""
    return f" ({those}{rest})"


def still_holds(
    entry: dict, photo: Path, into: dict[str, Path], stamps: dict[str, dict] | None = None
) -> dict | None:
    """A journal entry, its photo's look renewed (``photo_unchanged``), where its photo is
    unchanged and its PNGs in ``into`` are as written (``png_holds``; ``stamps``: each
    folder's ``WRITTEN`` stamps, of a finished run's PNGs); None where either is not."""
    holds = photo_unchanged(entry, photo)
    if holds is None:
        return None
    for sub, written in entry["outputs"].items():
        known = (stamps or {}).get(sub, {}).get(entry["name"])
        if written is not None and not png_holds(into[sub] / entry["name"], written, known):
            return None
    return holds


#: In a journal line: its photo's ``settled_look`` when it was last read whole (None where
#: it had just been written). A rerun that finds the photo so reads it no more: each
#: reuse read every photo again, seconds to minutes on 10,000 large ones.
SEEN = "seen"


def trusted_photos(earlier: dict[str, Path], folder: ImageFolder, key: dict) -> set[str]:
    """The photos of ``folder`` that ``validate`` need not decode: those the run whose
    journal is in the folders ``earlier`` (the finished run's output folders, or the staging
    a resume took over from a stopped run) journaled under ``key`` (``same_settings``: the
    same code, sizes and so the same checks), each found by its settled look (``SEEN``) as
    that run read it whole. Decoding every photo again was most of a rerun's time; a new or
    changed photo (or one the run skipped as bad: it has no journal line) is decoded as
    before."""
    made_with, entries = read_progress(progress_file(earlier))
    if not same_settings(made_with, key):
        return set()
    trusted = set()
    for i, photo in enumerate(folder.images):
        entry = entries.get(output_name(folder, i))
        try:
            if entry and entry.get("photo") == photo.name and seen_as_is(entry, photo)[0]:
                trusted.add(photo.name)
        except OSError:  # gone since listed: validate names it
            continue
    return trusted


def seen_as_is(entry: dict, photo: Path) -> tuple[bool, os.stat_result, list | None]:
    """Whether ``photo``'s settled look now is the one ``entry`` last read it whole at
    (``SEEN``): the same file, not read; with its stat and look."""
    info, look = look_now(photo)
    return look is not None and entry.get(SEEN) == look, info, look


def photo_unchanged(entry: dict, photo: Path) -> dict | None:
    """``entry`` where ``photo`` is the file its PNGs were made of, else None. The same
    settled look (``SEEN``) is the same file, read no further; otherwise the same name,
    size and digest decide, and the entry gets the photo's look now, so that the next rerun
    does not read it again (photos just copied in, or a folder copied elsewhere)."""
    seen, info, look = seen_as_is(entry, photo)
    if entry.get("photo") != photo.name or info.st_size != entry["stamp"][0]:
        return None
    if seen:
        return entry
    if file_digest(photo) != entry["stamp"][2]:
        return None
    return {**entry, SEEN: look}


def png_holds(path: Path, digest: str, written: list | None) -> bool:
    """Whether a PNG is the one its journal line's ``digest`` names. Where its folder's
    ``WRITTEN`` stamp names that digest, the file is read only where its size or time differ
    from the stamp's (``changed_since``, the trust that tells a user's edit of our PNGs before
    any run); else (a staged PNG, which a power cut can leave empty) its digest is read."""
    if not path.is_file():
        return False
    if isinstance(written, list) and len(written) == 3 and written[2] == digest:
        return not changed_since(path, written)
    return file_digest(path) == digest


def progress_entry(
    name: str, photo_stamp: list, into: dict[str, Path], counts: tuple, batch_size: int
) -> dict:
    """A photo's journal line: its file, stamp and look (taken before it was read, so a
    photo changed while segmented reads as changed), each staged PNG's digest, its counts and
    the batch size it went through at (a rerun at another keeps it: ``reuse_staged``)."""
    outputs = {
        sub: file_digest(path / name) if (path / name).is_file() else None
        for sub, path in into.items()
    }
    return {
        "name": name,
        "photo": photo_stamp[0],
        "stamp": photo_stamp[1],
        SEEN: photo_stamp[2],
        "outputs": outputs,
        "counts": list(counts),
        BATCH_SIZE: batch_size,
    }


def photo_stamps(folder: ImageFolder, todo: Sequence[int]) -> dict[int, list]:
    """Each photo to segment's name, ``stamp`` and ``SEEN`` look, for the journal, taken
    before any is read (the look where the stamp's size and time are the look's)."""
    unread = sum(folder.images[i].stat().st_size for i in todo)
    stamps = {}
    with hashing(unread, "hashing photos", len(todo)) as advance:
        for i in todo:
            photo = folder.images[i]
            info, look = look_now(photo)
            stamped = stamp(photo)
            same = stamped[:2] == [info.st_size, info.st_mtime_ns]
            stamps[i] = [photo.name, stamped, look if same else None]
            advance(1)
    return stamps


def write_predictions(
    model: CrackSegmenter,
    folder: ImageFolder,
    into: dict[str, Path],
    eval_size: Sequence[int] | None,
    batch_size: int,
    num_workers: int,
    translate_with: nn.Module | None,
    tile: int | None = None,
    num_overlays: int | None = None,
    resume: dict | None = None,
    earlier: dict[str, Path] | None = None,
) -> dict[str, tuple[int, int]]:
    """Each photo's mask and overlay as ``<stem>.png`` in ``into['masks']`` and
    ``into['overlays']``; returns each file name's (crack pixels, all pixels) as predicted,
    in the folder's order. ``num_overlays``: only the first that many photos get an overlay,
    the photo above its prediction, as the pipeline's rows show them side by side (None:
    every photo, the prediction drawn over it). ``resume``: the run's ``prediction_key``:
    photos a stopped run staged under it are kept (``reuse_staged``), then, with ``earlier``
    (the output folders), those a finished run there segmented under it and unchanged since
    (``reuse_finished``); the rest are segmented, each batch journaled once its PNGs are
    written."""
    done = reuse_staged(into, folder, resume, batch_size) if resume is not None else {}
    if resume is not None and earlier is not None:
        done |= reuse_finished(into, earlier, folder, resume, done)
    say_kept(done, batch_size, len(folder))
    todo = [i for i in range(len(folder)) if i not in done]
    stamps = photo_stamps(folder, todo) if resume is not None else {}
    counts = {output_name(folder, i): tuple(entry["counts"]) for i, entry in done.items()}
    finished: list[dict] = []
    probs = crack_probabilities(
        model,
        folder,
        eval_size,
        batch_size,
        num_workers,
        translate_with=translate_with,
        tile=tile,
        indices=todo,
    )
    for index, prob, photo in probs:
        pred = (prob > 0.5).long()  # the argmax of two classes
        name = output_name(folder, index)
        write_png(into["masks"] / name, (pred.numpy() * 255).astype(np.uint8))
        image = to_uint8(to_tensor(photo)[None])
        if num_overlays is None:
            overlay = overlay_masks(image, pred[None])[0].permute(1, 2, 0).numpy()
            write_png(into["overlays"] / name, overlay, rgb=True)
        elif index < num_overlays:
            save_overlay(image[0], None, pred, into["overlays"] / name)
        counts[name] = (int(pred.sum()), pred.numel())
        if resume is not None:
            entry = progress_entry(name, stamps[index], into, counts[name], batch_size)
            finished.append(entry)
            if len(finished) == batch_size or index == todo[-1]:  # the batch is whole
                append_progress(progress_file(into), finished)
                finished = []
    names = [output_name(folder, i) for i in range(len(folder))]
    return {name: counts[name] for name in names}


def segment_unlabeled(
    model: CrackSegmenter,
    image_dir: str | Path,
    out_dir: str | Path,
    eval_size: Sequence[int] | None,
    batch_size: int = 4,
    num_overlays: int = 8,
    extra: dict | None = None,
    translate_with: nn.Module | None = None,
    tile: int | None = None,
) -> dict:
    """A pipeline row's model on test photos that have no labels (``task_data.test_lab``
    null, the product's user): each photo's mask in ``masks/``, the first ``num_overlays``
    in ``overlays/`` as the report draws them, and a metrics.json that says what was
    segmented, with no score. Staged as evaluate_folder's outputs are.

    Unlike predict_folder it does not resume a stopped run's photos (``write_predictions``
    could: ``resume``): the pipeline resumes by row, a row's test photos are few (the main
    job scored DeepCrack's 237 in 44 s), evaluate_folder beside it starts over too, and
    metrics.json's ``seconds_per_image`` would time only the photos a resumed run segmented."""
    folder = ImageFolder(image_dir)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    subs = ["masks", "overlays"]
    with StopsHeld() as stops, staged(out_dir, subs, "evaluate", owned=True) as staging:
        folder.validate(**generators_least_side(translate_with, eval_size))
        counts = write_predictions(
            model, folder, staging, eval_size, batch_size, 0, translate_with, tile, num_overlays
        )
        stops.start()  # the staged masks go in place whole, then the record
        seconds = time.perf_counter() - start
        crack, pixels = sum(c for c, _ in counts.values()), sum(n for _, n in counts.values())
        result = {
            "scored": False,
            "num_images": len(counts),
            "crack_share": round(crack / max(1, pixels), 6),
            "seconds": round(seconds, 2),
            "seconds_per_image": round(seconds / max(1, len(counts)), 4),
            **scoring_record(eval_size, tile, num_overlays),
            "image_dir": str(image_dir),
            **(extra or {}),
        }
        write_json_atomic(out_dir / "metrics.json", result)
    return result
