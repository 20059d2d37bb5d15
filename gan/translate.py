"""Translate a synthetic sharded dataset toward the real domain with a trained generator.

Images go through G (full size: the generator is fully convolutional); semantic and instance
masks are copied as files, so they are byte-identical to the source. Output is written shard by
shard through a temp directory renamed into place: a killed run resumes at the first missing
shard.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from gan.checkpoint import UnsafeCheckpointError, load_checkpoint, module_state
from gan.data import open_samples, to_tensor
from gan.devices import pick_device
from gan.fid import PROXY_NAME, NotMeasurable, domain_gap
from gan.losses import far_background, local_contrast
from gan.networks import PAD_MULTIPLE, build_generator
from gan.provenance import MEASURED_ONLY, described_data, with_added_digests, without_locations
from synth.digests import file_digest
from synth.distributions import ConfigError
from synth.io import (
    CARD,
    MANIFEST,
    DataError,
    Sample,
    ShardedDataset,
    clean_partial_shards,
    read_card,
    read_image,
    refuse_unfinished,
    write_dir_atomic,
    write_json_atomic,
    write_png,
)
from synth.stats import texture_level as image_texture_level


def load_generator(
    source: str | Path | nn.Module, direction: str = "a2b"
) -> tuple[nn.Module, dict]:
    """Generator and provenance from a Lightning checkpoint (rebuilt from its saved
    hyperparameters, loaded with ``weights_only=True``) or from a SemanticCycleGAN in memory."""
    names = {"a2b": "g_ab", "b2a": "g_ba"}
    if direction not in names:
        raise ConfigError(
            f"direction={direction!r}: a2b (synthetic to real) or b2a (real to synthetic)"
        )
    name = names[direction]
    if isinstance(source, nn.Module):
        gen = getattr(source, name, source)
        step = (
            getattr(getattr(source, "trainer", None), "global_step", None)
            if _has_trainer(source)
            else None
        )
        return gen, {"checkpoint": None, "step": step, "generator": name}
    ckpt = load_checkpoint(source)
    state = module_state(ckpt, name)
    if not state:  # a task model's checkpoint, say, passed where a GAN's is wanted
        raise DataError(
            f"{source}: no generator {name!r} in it; pass a GAN checkpoint (tools/train_gan.py)"
        )
    hparams = ckpt.get("hyper_parameters", {})
    gen = build_generator(**(hparams.get("generator") or {}))
    try:
        gen.load_state_dict(state)
    except RuntimeError as err:  # torch lists every key: a traceback of hundreds of names
        raise UnsafeCheckpointError(
            f"{source}: its {name} weights are not of the generator its settings describe "
            f"({hparams.get('generator')}); the file was changed or is another model's"
        ) from err
    info = {
        "checkpoint": str(Path(source).resolve()),
        "checkpoint_sha256": file_digest(source),
        "step": ckpt.get("global_step"),
        "generator": name,
        "generator_config": hparams.get("generator"),
    }
    return gen, info


def _has_trainer(module: nn.Module) -> bool:
    try:
        return module.trainer is not None
    except RuntimeError:  # LightningModule.trainer raises when not attached
        return False


def round_up_to_pad_multiple(size: int) -> int:
    return (size + PAD_MULTIPLE - 1) // PAD_MULTIPLE * PAD_MULTIPLE


@torch.no_grad()
def translate_batch(gen: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Reflect-pad to a multiple of 4, translate, crop back to the input size.

    The pad is always the largest one needed, then sliced back to the multiple: the same
    pixels as padding exactly what is missing, but only slices depend on the size, and a
    traced export (``tools/export.py translate_with=``) keeps them dynamic where a
    size-dependent pad width would be frozen at the tracing size.
    """
    h, w = images.shape[-2:]
    most = PAD_MULTIPLE - 1
    padded = F.pad(images, (0, most, 0, most), mode="reflect")
    x = padded[..., : round_up_to_pad_multiple(h), : round_up_to_pad_multiple(w)]
    return gen(x)[..., :h, :w]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (B,3,H,W) -> uint8 (B,H,W,3)."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def source_shards(src: Path) -> list[Path]:
    """The source set's shards, refused where the set is known unfinished: a stopped render's
    complete shards made a translated (or FDA) set that read as whole, 400 of 1000 scenes,
    and a task model trained on it without a word."""
    shards = sorted(p for p in src.glob("shard-?????") if (p / MANIFEST).is_file())
    if not shards:
        raise DataError(f"{src}: no complete shards (shard-*/{MANIFEST}) to translate")
    refuse_unfinished(ShardedDataset(src), "translating it")
    return shards


def batches(records: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


# (source shard, its manifest records) -> (stem, uint8 RGB image) for every record, in order
ImageSource = Callable[[Path, list[dict]], Iterator[tuple[str, np.ndarray]]]


def translate_images(gen: nn.Module, shard: Path, records: list[dict], device, batch_size: int):
    """(stem, uint8 image) for every record, batched by equal image size."""
    for chunk in batches(records, batch_size):
        images = [read_image(shard / "image" / f"{r['stem']}.png") for r in chunk]
        groups: dict[tuple, list[int]] = {}
        for k, img in enumerate(images):
            groups.setdefault(img.shape, []).append(k)
        out: dict[int, np.ndarray] = {}
        for idx in groups.values():
            x = torch.stack([to_tensor(images[k]) for k in idx]).to(device)
            for k, y in zip(idx, to_uint8(translate_batch(gen, x))):
                out[k] = y
        for k, rec in enumerate(chunk):
            yield rec["stem"], out[k]


def translate_shard(
    images: ImageSource, shard: Path, out_dir: Path, progress=None, task=None
) -> Path:
    """One shard into a temp directory, then renamed into place (complete or absent)."""
    return write_dir_atomic(
        out_dir / shard.name, lambda tmp: _write_translated(images, shard, tmp, progress, task)
    )


def _write_translated(
    images: ImageSource, shard: Path, tmp: Path, progress=None, task=None
) -> None:
    """Translated images, copied masks, then the manifest last (it marks the shard complete)."""
    for sub in ("image", "semantic", "instance"):
        (tmp / sub).mkdir(parents=True)
    records = [json.loads(line) for line in (shard / MANIFEST).read_text().splitlines() if line]
    for stem, image in images(shard, records):
        write_png(tmp / "image" / f"{stem}.png", image, rgb=True)
        for sub in ("semantic", "instance"):
            src = shard / sub / f"{stem}.png"
            if src.is_file():
                shutil.copyfile(src, tmp / sub / f"{stem}.png")
        if progress is not None:
            progress.advance(task)
    lines = [
        json.dumps({**r, "translated_from": f"{shard.name}/image/{r['stem']}.png"}, sort_keys=True)
        for r in records
    ]
    (tmp / MANIFEST).write_text("".join(line + "\n" for line in lines))


def made_by(card: dict) -> dict:
    """What a translated set's images were made from: the source's card and the method's
    settings (a generator's digest, a swap's settings), less where the files were and whether
    the set is finished; equal for a partial set and its finished self."""
    translation = card.get("translation", {})
    return {
        **described_data(card, "translation"),
        "translation": without_locations(
            {k: v for k, v in translation.items() if k != "in_progress"}
        ),
    }


def is_complete(card: dict) -> bool:
    """A translated set's card says every shard was written (see write_translated_dataset)."""
    return "translation" in card and not card["translation"].get("in_progress")


def write_translated_dataset(
    images: ImageSource,
    src_dir: str | Path,
    out_dir: str | Path,
    translation: dict,
    show_progress: bool = True,
    replace_stale: bool = False,
) -> dict:
    """Every shard of ``src_dir`` through ``images`` into ``out_dir``, masks carried; the card
    is the source's plus ``translation`` (what made the images). Any image-to-image method (a
    generator, a spectral swap) shares this layout and resume.

    The card is written before the first shard, marked ``in_progress``, so a rerun after a kill
    resumes at the first missing shard only if the shards on disk were made the same way;
    shards made otherwise (another generator, other scenes, no card to vouch for them) raise,
    or are deleted and redone with ``replace_stale``. Returns the finished card.
    """
    src, out = Path(src_dir), Path(out_dir)
    if src.resolve() == out.resolve():
        raise ConfigError(f"out_dir={out_dir}: the source folder itself; choose another out_dir")
    shards = source_shards(src)
    card = {
        **read_card(src),
        "translation": {
            **translation,
            "source_dir": str(src.resolve()),
            "shards": len(shards),
            "masks": "copied byte-identical from source",
        },
    }
    forget_other_translations(out, card, replace_stale)
    out.mkdir(parents=True, exist_ok=True)
    clean_partial_shards(out)
    todo = [s for s in shards if not (out / s.name / MANIFEST).is_file()]
    if todo:
        pending = {**card, "translation": {**card["translation"], "in_progress": True}}
        write_json_atomic(out / CARD, pending)
    counts = {s: sum(1 for line in (s / MANIFEST).read_text().splitlines() if line) for s in todo}
    with Progress(disable=not show_progress) as progress:
        task = progress.add_task("translating", total=sum(counts.values()))
        for shard in todo:
            translate_shard(images, shard, out, progress, task)
    if not todo:  # nothing redone: measurements of these very images still hold
        card |= {k: v for k, v in read_card(out).items() if k in MEASURED_ONLY}
    write_json_atomic(out / CARD, card)
    return card


def forget_other_translations(out: Path, card: dict, replace_stale: bool) -> None:
    """Stop (or, with ``replace_stale``, start over) when ``out`` holds images not made as
    ``card`` says: resuming would mix two translations in one training set."""
    if not out.is_dir():
        return
    before = with_added_digests(read_card(out), card)  # begun before a digest: as the rest vouches
    has_shards = any(out.glob(f"shard-?????/{MANIFEST}"))
    if not (has_shards or before) or (before and made_by(before) == made_by(card)):
        return
    why = "by another method, generator or settings, or from other scenes"
    if not before:
        why = "with no dataset card to say how"
    if not replace_stale:
        raise DataError(
            f"{out}: holds images translated {why}; delete it, or give out_dir=<another folder>"
        )
    shutil.rmtree(out)


def translate_dataset(
    checkpoint_or_module: str | Path | nn.Module,
    src_dir: str | Path,
    out_dir: str | Path,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    direction: str = "a2b",
    show_progress: bool = True,
    replace_stale: bool = False,
) -> dict:
    """Translate every shard of ``src_dir`` into ``out_dir`` with a generator; returns the new
    dataset card (see ``write_translated_dataset``, also for ``replace_stale``)."""
    source_shards(Path(src_dir))  # a bad folder fails before the generator is loaded
    device = pick_device(str(device))  # cuda where there is none: one line, not torch's
    gen, info = load_generator(checkpoint_or_module, direction)
    was_training = gen.training
    home = next(gen.parameters()).device
    gen = gen.to(device).eval()
    images = functools.partial(translate_images, gen, device=device, batch_size=batch_size)
    try:
        return write_translated_dataset(
            images, src_dir, out_dir, {**info, "direction": direction}, show_progress, replace_stale
        )
    finally:
        gen.to(home).train(was_training)  # a live module gets its generator back as it was


def spread_indices(n: int, max_images: int) -> range:
    """About ``max_images`` indices spread over ``n`` samples: rendered sets are ordered by
    index, and their first scenes are no more typical than any others."""
    return range(0, n, max(1, n // max(1, max_images)))


def paired_samples(
    src_dir: str | Path, out_dir: str | Path, max_images: int
) -> Iterator[tuple[Sample, Sample]]:
    """(A, G(A)) for about ``max_images`` scenes spread over the set; a translated set of
    another length than its source is an error, not a silent mismatch of scenes."""
    src, out = ShardedDataset(src_dir), ShardedDataset(out_dir)
    if len(src) != len(out):
        raise DataError(f"{out_dir}: {len(out)} samples, its source {src_dir} has {len(src)}")
    for i in spread_indices(len(src), max_images):
        yield src[i], out[i]


def grey_shift_by_class(
    src_dir: str | Path, out_dir: str | Path, max_images: int = 200
) -> dict[str, float]:
    """Mean grey-level change G(A) - A over crack and over background pixels (pooled).

    The masks are carried unchanged, so a generator that lightens cracks (a positive crack
    shift well above the background one) hands the task model crack labels on pixels that no
    longer look like crack: the failure behind the ``segmenter_on_fake=false`` default.
    """
    totals = {"crack": [0.0, 0], "background": [0.0, 0]}
    for a, b in paired_samples(src_dir, out_dir, max_images):
        diff = b.image.astype(np.float32).mean(2) - a.image.astype(np.float32).mean(2)
        for name, cls in (("crack", 1), ("background", 0)):
            keep = a.semantic == cls
            totals[name][0] += float(diff[keep].sum())
            totals[name][1] += int(keep.sum())
    return {f"grey_shift_{k}": s / n if n else float("nan") for k, (s, n) in totals.items()}


def background_contrast(
    src_dir: str | Path, out_dir: str | Path, max_images: int = 200, margin: int = 4
) -> dict[str, float]:
    """Mean absolute local contrast (``gan.losses.local_contrast``) of background pixels
    farther than ``margin`` px from a crack, in A and in G(A).

    A generator that smooths the background wipes out the stains, joints and mottling the
    simulator drew as unlabeled distractors, so the task model never learns to leave them
    alone. Whether that smoothing is adaptation or damage depends on how rough the real
    photos are: ``texture_level`` says.
    """
    totals = {"source": 0.0, "translated": 0.0}
    count = 0
    for a, b in paired_samples(src_dir, out_dir, max_images):
        far = far_background(torch.from_numpy(a.semantic.astype(np.int64))[None], margin)[0, 0]
        for name, sample in (("source", a), ("translated", b)):
            image = torch.from_numpy(sample.image.astype(np.float32)).permute(2, 0, 1)[None]
            totals[name] += float(local_contrast(image)[0, 0].abs()[far].sum())
        count += int(far.sum())
    return {
        f"background_contrast_{k}": v / count if count else float("nan") for k, v in totals.items()
    }


def texture_level(path: str | Path, max_images: int = 200) -> float:
    """Median over about ``max_images`` images of each one's ``synth.stats.texture_level``
    (median |local contrast|, all pixels, full size): the one texture figure a folder of
    unlabeled photos has too, so a translated set's smoothing reads as toward the real photos
    or away from them.

    Per-image medians, not means: thin cracks barely move a median, while the wide dark
    cracks of some real photos would dominate a mean.
    """
    samples = open_samples(path)
    levels = [
        image_texture_level(samples[i].image) for i in spread_indices(len(samples), max_images)
    ]
    return float(np.median(levels)) if levels else float("nan")


GAP_KEYS = (  # what measure_translation writes; a card missing any of them is measured again
    "before",
    "after",
    "grey_shift_crack",
    "grey_shift_background",
    "background_contrast_source",
    "background_contrast_translated",
    "texture_source",
    "texture_translated",
    "texture_real",
)


def measure_translation(
    src_dir: str | Path,
    out_dir: str | Path,
    real_dir: str | Path,
    inception_weights: str | None = None,
    max_images: int = 200,
    size: int = 128,
    measured_with: dict | None = None,
) -> dict:
    """How far translation moved the set toward the real photos, and what it did to cracks
    and to background texture; stored in the translated set's card as ``domain_gap`` (a
    measurement: it retrains nothing), with ``measured_with`` (the settings a rerun compares).

    The distance alone rewards a generator that lightens cracks into background or smooths
    away distractors; the grey shifts by class and the background contrast show it doing so.
    A set of one photo (or one scene) cannot be measured: said, and {} returned.
    """
    try:
        before = domain_gap(src_dir, real_dir, inception_weights, max_images, size)
    except NotMeasurable as err:  # one photo: the translation stands, unmeasured
        print(f"note: {err}", flush=True)
        return {}
    gap = {
        "before": before,
        "after": domain_gap(out_dir, real_dir, inception_weights, max_images, size, quiet=True),
        **grey_shift_by_class(src_dir, out_dir, max_images),
        **background_contrast(src_dir, out_dir, max_images),
        **{
            f"texture_{name}": texture_level(path, max_images)
            for name, path in (("source", src_dir), ("translated", out_dir), ("real", real_dir))
        },
        **({"measured_with": measured_with} if measured_with is not None else {}),
    }
    write_json_atomic(Path(out_dir) / CARD, {**read_card(out_dir), "domain_gap": gap})
    return gap


#: Grey levels by which translation must lighten crack pixels more than the background for
#: the report to say the carried masks now label fainter lines than the scenes drew.
FAINTER_CRACKS = 2.0


def describe_gap(gap: dict, moved_by: str = "Translation") -> str:
    """Two sentences for a report: distance before -> after, grey shifts, background texture
    (and the real photos' texture, which says whether a drop moved the set toward them);
    ``moved_by`` names what made the set (the GAN's translation, FDA)."""
    metric = "fid" if gap["after"].get("fid_available") else PROXY_NAME
    crack, background = gap["grey_shift_crack"], gap["grey_shift_background"]
    # said where it holds: it was printed after shifts of -1.31 and -1.27 too, and as
    # 'lightened' where both darkened (-7.09 on crack, -12.39 on background)
    moved = "lightened more" if crack > 0 else "darkened less"
    fainter = (
        f"; crack pixels {moved} than the background, so the carried masks label fainter "
        "lines than the simulator drew"
        if crack - background > FAINTER_CRACKS
        else ""
    )
    return (
        f"{moved_by} moved the synthetic set's {metric} to the real photos from "
        f"{gap['before'][metric]:.1f} to {gap['after'][metric]:.1f}, and grey levels by "
        f"{crack:+.2f} on crack pixels, {background:+.2f} on background{fainter}. "
        "Background texture (mean absolute "
        f"local contrast) went from {gap['background_contrast_source']:.1f} to "
        f"{gap['background_contrast_translated']:.1f}, and the median local contrast of all "
        f"pixels from {gap['texture_source']:.1f} to {gap['texture_translated']:.1f}, against "
        f"{gap['texture_real']:.1f} in the real photos (a drop toward the photos' level is "
        "adaptation; below it, the simulator's distractors are being smoothed away)."
    )
