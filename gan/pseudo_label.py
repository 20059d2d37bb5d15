"""Self-training: label the unlabeled real photos with a trained task model's confident pixels.

The user has a folder of real photos and no labels. A task model trained on adapted (or raw)
synthetic data already reads most of them right; its confident pixels become labels, the
uncertain band between ``low`` and ``high`` is written as ignore, and a student trained on the
synthetic set pooled with these photos sees real texture with real-looking labels. No real
label is read at any point.

The output is a sharded dataset like the simulator's, so every task-data path reads it; shards
are written atomically and a killed run resumes at the first missing one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from gan.evaluate import crack_probabilities
from gan.provenance import with_added_digests, without_locations
from gan.task import CrackSegmenter
from synth.digests import contents_digest, file_digest, listing_digest
from synth.distributions import ConfigError
from synth.io import (
    BINARY_MASK_VALUES,
    CARD,
    IGNORE_INDEX,
    DataError,
    ImageFolder,
    Sample,
    ShardedDataset,
    clean_partial_shards,
    is_shard_complete,
    num_shards,
    read_card,
    read_manifests,
    read_mask,
    shard_range,
    write_json_atomic,
    write_shard,
)

CLASS_MAP = {"0": "background", "1": "crack", str(IGNORE_INDEX): "ignore"}


def pseudo_mask(prob: torch.Tensor, low: float, high: float) -> np.ndarray:
    """Class ids from a crack probability map: 1 at >= high, 0 at <= low, ignore between."""
    mask = np.full(prob.shape, IGNORE_INDEX, dtype=np.uint8)
    p = prob.numpy()
    mask[p <= low] = 0
    mask[p >= high] = 1
    return mask


def check_band(low: float, high: float) -> None:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not 0.0 <= low < high <= 1.0:  # low=abc failed in the comparison
        raise ConfigError(f"pseudo-label band low={low}, high={high}: need 0 <= low < high <= 1")


def pseudo_label_folder(
    model: CrackSegmenter,
    image_dir: str | Path,
    out_dir: str | Path,
    low: float = 0.3,
    high: float = 0.7,
    shard_size: int = 100,
    batch_size: int = 4,
    teacher: dict | None = None,
    replace_stale: bool = False,
) -> dict:
    """Write ``out_dir`` as a sharded dataset of ``image_dir``'s photos with pseudo-labels.

    ``teacher`` (e.g. the checkpoint and its digest) goes into the dataset card with the band,
    so a task model trained on these labels records where they came from. The card is written
    before the first shard, so a resumed run can tell its own shards from another teacher's:
    labels made otherwise raise, or are deleted and redone with ``replace_stale``.
    Returns the card.
    """
    check_band(low, high)
    folder = ImageFolder(image_dir)  # a missing or empty folder raises, naming it
    out = Path(out_dir)
    spec = {
        "image_dir": str(Path(image_dir).resolve()),
        "photos_sha256": listing_digest(image_dir),
        "photos_contents_sha256": contents_digest(image_dir),
        "num_images": len(folder),
        "low": low,
        "high": high,
        "teacher": teacher or {},
        # the shards' layout: resumed with another, shard k held other photos (duplicated)
        "shard_size": shard_size,
    }
    card_before = read_card(out)
    refuse_other_sets(out, card_before)
    made = card_before.get("pseudo_labels")
    if made is not None and "shard_size" not in made and same_labels(made, spec):
        del spec["shard_size"]  # labels from before it was recorded: their card stays as it is
    if card_before and not same_labels(made, spec):  # another teacher's, or not pseudo-labels
        if not replace_stale:
            differ = sorted(k for k in {*spec, *(made or {})} if (made or {}).get(k) != spec.get(k))
            verb = "differs" if len(differ) == 1 else "differ"
            what = f" ({', '.join(differ)} {verb})" if made and differ else ""
            raise DataError(
                f"{out}: holds pseudo-labels made otherwise{what}; delete it, or give "
                "out_dir=<another folder>"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    clean_partial_shards(out)
    if made != spec:
        write_json_atomic(out / CARD, {"class_map": CLASS_MAP, "pseudo_labels": spec})
    shards = num_shards(len(folder), shard_size)
    todo = [k for k in range(shards) if not is_shard_complete(out, k)]
    for k in todo:
        indices = list(shard_range(k, shard_size, len(folder)))
        label = f"pseudo-label {k + 1}/{shards}"
        write_shard(out, k, label_shard(model, folder, indices, low, high, batch_size, label))
    card = {"class_map": CLASS_MAP, "pseudo_labels": spec, **label_shares(out)}
    if not todo and same_labels(made, spec) and "scored_against" in card_before:
        card["scored_against"] = card_before["scored_against"]  # same labels: score holds
    write_json_atomic(out / CARD, card)
    return card


def refuse_other_sets(out: Path, card: dict) -> None:
    """A folder holding another set is neither labelled into nor deleted (``replace_stale`` is
    for this tool's own stale labels): ``out_dir=<a rendered set>`` was said to hold
    "pseudo-labels made otherwise", and a stopped render (shards, no card yet) would have been
    read as labels, since labels get their card before their first shard."""
    if card and "pseudo_labels" not in card:
        kind = "translated" if "translation" in card else card.get("kind", "another")
        raise DataError(f"{out}: holds a {kind} dataset, not pseudo-labels; pick another out_dir")
    if not card and out.is_dir() and any(out.iterdir()):
        raise DataError(
            f"{out}: holds files but no pseudo-label card; pick an empty or new out_dir"
        )


def same_labels(made: dict | None, spec: dict) -> bool:
    """Labels made as ``spec`` asks: same photos, band and teacher. The teacher is its
    checkpoint's digest and the photos their folder's listing digest; paths are only where
    they were, so labels made from a checkpoint or photos since moved (a copied outputs,
    checkpoints or data folder) are kept, not redone. Labels made before the photos were
    digested count as made from the photos now in the same place."""
    if made is None:
        return False
    if "shard_size" in spec:  # recorded since session 43: a card from before is trusted
        made = {"shard_size": spec["shard_size"], **made}
    return without_locations(with_added_digests(made, spec)) == without_locations(spec)


def label_shard(
    model: CrackSegmenter,
    folder: ImageFolder,
    indices: list[int],
    low: float,
    high: float,
    batch_size: int,
    description: str,
) -> list[Sample]:
    photos = [folder[i] for i in indices]
    samples = []
    for j, prob, _ in crack_probabilities(model, photos, None, batch_size, 0, description):
        semantic = pseudo_mask(prob, low, high)
        meta = {
            "index": indices[j],
            "source_image": folder.images[indices[j]].name,
            "crack_share": round(float((semantic == 1).mean()), 6),
            "ignore_share": round(float((semantic == IGNORE_INDEX).mean()), 6),
        }
        samples.append(Sample(photos[j].image, semantic, None, meta))
    return samples


def label_shares(out: Path) -> dict:
    """Mean share of crack and of ignore pixels per pseudo-labeled photo (from the manifests)."""
    records = [rec for _, rec in read_manifests(out)]
    return {
        key: round(sum(r[key] for r in records) / len(records), 6)
        for key in ("crack_share", "ignore_share")
    }


def score_labels(out_dir: str | Path, image_dir: str | Path, mask_dir: str | Path) -> dict:
    """Crack F1, precision and recall of ``out_dir``'s pseudo-labels against held-back masks of
    the same photos (``mask_dir``, matched to ``image_dir`` by stem).

    A development check of a teacher, never an input to training: it tells whether better
    labels are worth buying before a student is trained on them. Ignored pixels count as not
    crack, since the student is never told they are.
    """
    from torchmetrics import MetricCollection
    from torchmetrics.classification import BinaryF1Score, BinaryPrecision, BinaryRecall

    folder = ImageFolder(image_dir, mask_dir)  # a photo without a mask raises, naming it
    mask_of = {image.name: mask for image, mask in zip(folder.images, folder.masks)}
    labels = ShardedDataset(out_dir)
    if not len(labels):
        raise DataError(f"{out_dir}: no pseudo-labels to score")
    metrics = MetricCollection(
        {"f1": BinaryF1Score(), "precision": BinaryPrecision(), "recall": BinaryRecall()}
    )
    for i, (_, rec) in enumerate(labels.records):
        if rec.get("source_image") not in mask_of:
            raise DataError(
                f"{out_dir}: label of {rec.get('source_image')} has no photo in {image_dir}"
            )
        label = read_mask(labels.paths(i)["semantic"])
        truth = read_mask(mask_of[rec["source_image"]], BINARY_MASK_VALUES, label.shape)
        metrics.update(torch.from_numpy(label == 1), torch.from_numpy(truth == 1))
    scores = {k: round(float(v), 4) for k, v in metrics.compute().items()}
    return {"mask_dir": str(Path(mask_dir).resolve()), "num_images": len(labels), **scores}


def pseudo_label_with_checkpoint(
    ckpt: str | Path, image_dir: str | Path, out_dir: str | Path, device: str = "auto", **options
) -> dict:
    """``pseudo_label_folder`` (``options``: its band, shard and batch sizes, ``replace_stale``)
    with the teacher loaded from a task checkpoint, whose path and content digest go into the
    card (a retrained teacher at the same path is a new teacher)."""
    from gan.devices import pick_device
    from gan.evaluate import load_segmenter

    if not Path(ckpt).is_file():
        raise DataError(f"{ckpt}: teacher checkpoint not found (train a task model first)")
    model = load_segmenter(ckpt, pick_device(device))
    teacher = {"checkpoint": str(Path(ckpt).resolve()), "checkpoint_sha256": file_digest(ckpt)}
    return pseudo_label_folder(model, image_dir, out_dir, teacher=teacher, **options)
