"""Bring your own renders: a labeled folder pair from another simulator as a sharded dataset.

A user's Blender, BlenderProc or Kubric renders (``img/a.png`` + ``mask/a.png``, 0 background
and 255 crack, paired by stem as ``synth.io.ImageFolder`` pairs real photos) become the same
sharded layout ``synth.render`` writes, so every later stage (the GAN's domain A, translation,
the task rows) reads them as it reads our scenes.

* Sample ``i`` is the folder's ``i``-th photo (``ImageFolder``'s order: sorted file names),
  so the bytes on disk depend only on the files, not on ``workers``; shards are written with
  ``io.write_shard`` (temp dir + rename) and a rerun skips the complete ones.
* ``workers`` processes (render's pool: ``shard_workers``/``run_jobs``, with its handling of
  stops) read and write a shard's pairs a task: on one core, reading each pair twice (checked,
  then written) and PNG-encoding it took 14 ms a 384x544 pair, 25 minutes for 100,000.
* ``render_spec.json`` records the files (each folder's listing and contents digests) and the
  shard size: importing other files into the folder is refused, as rendering other settings
  is, and a caller that owns the folder (the pipeline) imports them anew instead.
* The contents digests come from ``synth.digests``' cache where the caller names one (the
  tool's, beside ``out_dir``; the pipeline's, around its run), so a rerun over a complete
  import reads no render to find it the same.
* Every bad pair (a photo without a mask, an unreadable file, a mask of another size) is said
  in one line before any shard is written. A resume (the spec matches, some shards complete)
  decodes only the pairs of the shards still to write: the complete ones were checked when
  written and their files are vouched for by the spec's digests, and their manifests record
  which samples have crack (a resume of 20 of 200 shards read all 100,000 pairs first, ~20
  minutes on one core for 2 minutes of writing).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from synth.digests import contents_digest, digest_cache, listing_digest
from synth.distributions import ConfigError, checked_count
from synth.io import (
    CARD,
    CLASS_MAP,
    DataError,
    ImageFolder,
    Sample,
    clean_partial_shards,
    is_shard_complete,
    num_shards,
    read_manifests,
    read_mask,
    refuse_bad_files,
    shard_range,
    unread_entries,
    write_json_atomic,
    write_shard,
)
from synth.render import (
    card_statistics,
    check_spec,
    folder_spec_changes,
    progress_bar,
    run_jobs,
    shard_workers,
    spec_hash,
    versions,
)

KIND = "imported"
#: A render's mask anti-aliased at crack edges (a pixel partly covered drawn grey) is crack
#: where the grey is at least half way to white: the rule our own scenes are labelled by
#: (``synth.scene.LABEL_THRESHOLD``, coverage 0.5). Real photos' masks stay strictly 0/255.
CRACK_FROM = 128
RENDER_MASK_VALUES = {value: int(value >= CRACK_FROM) for value in range(256)}
#: Masks of each shard read again to judge the set's masks as masks (``mask_shares``): enough
#: for a majority, a few per cent of a 500-pair shard's decoding.
SHARE_SAMPLE = 16


def source_folders(image_dir: str | Path, mask_dir: str | Path | None) -> ImageFolder:
    """The renders, listed and paired by stem (no file read yet); a missing folder, an empty
    one or no mask folder at all is one line. A photo without a mask is left to
    ``ImageFolder.validate``, which names it with every other bad file."""
    named = {
        "image_dir": (image_dir, "the renders"),
        "mask_dir": (
            mask_dir,
            "their masks (the GAN's semantic losses and the task rows use them)",
        ),
    }
    for key, (value, what) in named.items():
        if value is None or not str(value).strip():
            raise ConfigError(f"{key}={value!r}: name the folder of {what}")
    return ImageFolder(image_dir, mask_dir, require_masks=False, value_map=RENDER_MASK_VALUES)


def import_spec(image_dir: str | Path, mask_dir: str | Path, shard_size: int) -> dict:
    """What an import is made from: its files (compared by digest, so a folder moved whole
    is the same import) and the shard layout; the folders' paths recorded beside, unhashed."""
    folders = {"image_dir": image_dir, "mask_dir": mask_dir}
    body = {
        "kind": KIND,
        "listings": {key: listing_digest(path) for key, path in folders.items()},
        "contents": {key: contents_digest(path) for key, path in folders.items()},
        "shard_size": shard_size,
    }
    where = {key: str(Path(path).resolve()) for key, path in folders.items()}
    return {**body, **where, "hash": spec_hash(body)}


def import_changes(
    out_dir: str | Path, image_dir: str | Path, mask_dir: str | Path, shard_size: int
) -> list[str]:
    """What a folder's spec differs in from an import of these files ([]: the same, or no
    spec yet), so a caller that owns the folder can import anew instead of being refused."""
    return folder_spec_changes(out_dir, import_spec(image_dir, mask_dir, shard_size))


def import_renders(
    image_dir: str | Path,
    mask_dir: str | Path,
    out_dir: str | Path,
    shard_size: int = 500,
    progress: bool = True,
    replace_stale: bool = False,
    workers: int = 1,
    digest_cache: str | Path | None = None,
) -> dict:
    """Import (or finish importing) a labeled folder pair into ``out_dir``; returns a
    summary dict shaped as ``render_dataset``'s. A folder made otherwise (other files, a
    render) is refused, or with ``replace_stale`` emptied once the new files have been read
    whole (a bad new file must not cost the old set). ``workers`` processes read and write
    the shards (the bytes do not depend on how many); ``digest_cache``: the file that keeps
    the renders' digests across runs (``synth.digests.digest_cache``), so a rerun over a
    complete import reads no render; None where the caller keeps one (the pipeline)."""
    with cached_digests(digest_cache):
        return import_folder_pair(
            image_dir, mask_dir, out_dir, shard_size, progress, replace_stale, workers
        )


def cached_digests(path: str | Path | None) -> contextlib.AbstractContextManager:
    """``digest_cache(path)``; nothing where ``path`` is None, so a caller's cache (the
    pipeline's, around its whole run) is left to that caller."""
    return contextlib.nullcontext() if path is None else digest_cache(path)


def import_folder_pair(
    image_dir: str | Path,
    mask_dir: str | Path,
    out_dir: str | Path,
    shard_size: int,
    progress: bool,
    replace_stale: bool,
    workers: int,
) -> dict:
    """``import_renders`` under the caller's digest cache."""
    t0 = time.perf_counter()
    checked_count(shard_size, "shard_size")
    checked_count(workers, "workers", 0)
    if out_dir is None or not str(out_dir).strip():
        raise ConfigError(f"out_dir={out_dir!r}: name the folder to import into")
    folder = source_folders(image_dir, mask_dir)
    for note in unread_entries(image_dir, mask_dir):
        print(f"note: {image_dir}: {note}", file=sys.stderr)
    n = len(folder)
    out = Path(out_dir)
    spec = import_spec(image_dir, mask_dir, shard_size)
    total = num_shards(n, shard_size)
    if out.is_dir() and not replace_stale:
        check_spec(out, spec)  # other files' import, or a render: refused before any is read
    stale = replace_stale and bool(folder_spec_changes(out, spec))
    todo = [s for s in range(total) if stale or not is_shard_complete(out, s)]
    with progress_bar(progress) as bar, shard_workers(workers, len(todo), "importing") as pool:
        if todo:  # every bad pair in one line, before any shard is written or removed
            resumed = len(todo) < total  # the other shards complete, of these files
            read_pairs_to_write(pool, folder, todo, shard_size, bar, out, resumed)
        if stale:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        check_spec(out, spec)
        clean_partial_shards(out)
        write_shards(pool, folder, out, todo, shard_size, bar)
    if todo or not (out / CARD).is_file():  # a finished set is left untouched (shared, read-only)
        write_card(out, spec, n)
    return {
        "out_dir": str(out),
        "num_shards": total,
        "imported_shards": len(todo),
        "skipped_shards": total - len(todo),
        "imported_samples": count(todo, shard_size, n),
        "seconds": round(time.perf_counter() - t0, 3),
        "complete": True,
        "card": str(out / CARD),
    }


def read_pairs_to_write(
    pool: Any,
    folder: ImageFolder,
    todo: list[int],
    shard_size: int,
    bar: Any,
    out: Path,
    resumed: bool,
) -> None:
    """Decode the pairs of the ``todo`` shards (every pair, unless resuming), a shard's worth
    a job on ``pool`` (``run_jobs``), and refuse the bad ones in one line, in the folder's
    order whatever order the jobs finished in; then a set whose masks mark no crack at all,
    neither these nor, where ``resumed``, as their manifests record, ``out``'s complete shards;
    then masks that, by a sample of them, are photos or drawn black on white
    (``refuse_unlike_masks``).

    The complete shards' pairs are not decoded again: they were checked when written, and
    ``render_spec.json``'s digests vouch that their files are those. A pair gone bad since
    inside a complete shard is therefore not seen by a resume; re-reading it cost a resume of
    20 of 200 shards the decoding of all 100,000 pairs (~20 minutes on one core)."""
    n = len(folder)
    task = bar.add_task(f"reading {folder.image_dir.name}", total=count(todo, shard_size, n))
    jobs = [(folder.subset(shard_range(s, shard_size, n)),) for s in todo]
    found = run_jobs(pool, _bad_pairs, jobs, lambda bad: bar.advance(task, bad[1]))
    refuse_bad_files([line for bad, *_ in found for line in bad])
    cracked = any(cracked for _, _, cracked, _ in found)
    if n and not cracked and not (resumed and recorded_crack(out)):
        raise DataError(
            f"{folder.mask_dir}: none of the {n} masks marks a crack pixel (crack is 255, or "
            f"grey from {CRACK_FROM} up at an anti-aliased edge): masks of label ids (0, 1, 2, "
            "...) or an empty export? The GAN's semantic losses and every row would train on "
            "no crack"
        )
    refuse_unlike_masks(folder.mask_dir, [share for *_, shares in found for share in shares])


def recorded_crack(out: Path) -> bool:
    """Whether any sample of ``out``'s complete shards (those a resume does not write) has
    crack, as their manifests record it (``imported_sample``'s ``has_crack``): a resume
    decides the no-crack refusal without decoding the masks it already imported."""
    return any(record.get("has_crack") for _, record in read_manifests(out))


def _bad_pairs(part: ImageFolder) -> tuple[list[str], int, bool, list[tuple[float, float]]]:
    """Worker task: what is wrong with a part's pairs, how many it read, whether any of its
    masks marks a crack pixel, and ``mask_shares`` of a few of its masks, evenly spread
    (masks alone decoded again: small, single-channel)."""
    bad = part.bad_files(range(len(part)))
    if bad:
        return bad, len(part), False, []
    cracked = any(marks_crack(part, i) for i in range(len(part)))
    step = max(1, len(part) // SHARE_SAMPLE)
    return bad, len(part), cracked, [mask_shares(part, i) for i in range(0, len(part), step)]


def marks_crack(folder: ImageFolder, i: int) -> bool:
    mask = folder.masks[i]
    return mask is not None and bool(read_mask(mask, folder.value_map).any())


def mask_shares(folder: ImageFolder, i: int) -> tuple[float, float]:
    """The shares of a mask's pixels that are crack and that are neither 0 nor 255 (grey):
    a render's mask is grey at anti-aliased crack edges alone, a few per cent at most."""
    raw = read_mask(folder.masks[i])  # type: ignore[arg-type]
    return float((raw >= CRACK_FROM).mean()), float(((raw > 0) & (raw < 255)).mean())


def refuse_unlike_masks(mask_dir: Path | None, shares: list[tuple[float, float]]) -> None:
    """Masks that most likely are not a render's crack masks, refused as a set before any
    shard: grey renders with image_dir and mask_dir swapped (the photos, grey, pass each
    mask check and read as crack wherever brighter than mid-grey) and masks drawn black on
    white (crack nearly everywhere): the GAN and every row trained on them without a word.
    Cracks and defects cover a few per cent of a scene, so a majority of masks more than half
    grey, or more than half crack, says which; the same rule as evaluate's inverted note."""
    if not shares:
        return
    crack, grey = (np.array(column) for column in zip(*shares, strict=True))
    if (grey > 0.5).sum() * 2 > len(grey):
        raise DataError(
            f"{mask_dir}: {(grey > 0.5).sum()} of {len(grey)} masks read have more than half "
            f"their pixels grey, neither 0 nor 255 (median {np.median(grey):.0%}), as photos "
            "do: are image_dir and mask_dir swapped? A mask is 0 background and 255 crack, "
            "grey only at anti-aliased edges"
        )
    if (crack > 0.5).sum() * 2 > len(crack):
        raise DataError(
            f"{mask_dir}: {(crack > 0.5).sum()} of {len(crack)} masks read mark more than half "
            f"their pixels as crack (median {np.median(crack):.0%}): masks drawn black on "
            "white need inverting (crack is 255, background 0)"
        )


def write_shards(
    pool: Any, folder: ImageFolder, out: Path, todo: list[int], shard_size: int, bar: Any
) -> None:
    """Write the ``todo`` shards, one a job on ``pool``; the bar counts samples, the shards
    already complete counted done."""
    n = len(folder)
    task = bar.add_task("importing", total=n, completed=n - count(todo, shard_size, n))
    jobs = []
    for s in todo:
        indices = shard_range(s, shard_size, n)
        jobs.append((folder.subset(indices), indices.start, str(out), s))
    run_jobs(pool, _import_shard, jobs, lambda written: bar.advance(task, written))


def _import_shard(part: ImageFolder, start: int, out_dir: str, shard_id: int) -> int:
    """Worker task: write one shard of the pairs in ``part`` (the set's samples from
    ``start`` on), atomically; returns its sample count."""
    samples = (imported_sample(part, i, start + i) for i in range(len(part)))
    write_shard(out_dir, shard_id, samples)
    return len(part)


def count(shards: list[int], shard_size: int, n: int) -> int:
    return sum(len(shard_range(s, shard_size, n)) for s in shards)


def imported_sample(folder: ImageFolder, i: int, index: int) -> Sample:
    """The ``i``-th pair of ``folder`` (a part of the renders), named by its ``index`` in
    the set as a rendered scene is, its files in its record."""
    sample = folder[i]
    crack = sample.semantic == 1
    meta = {
        "index": index,
        "source_image": folder.images[i].name,
        "source_mask": folder.masks[i].name,  # type: ignore[union-attr]
        "has_crack": bool(crack.any()),
        "crack_share": round(float(crack.mean()), 6),
    }
    return Sample(sample.image, sample.semantic, None, meta)


def write_card(out: Path, spec: dict, n: int) -> None:
    """Dataset card: which files were imported (folders and digests) and the render card's
    statistics; the stages after read it as they read a render's, so new files are new data."""
    card = {
        "kind": KIND,
        "imported_from": {  # not "image_dir": records would take it for a real photo folder
            "images": spec["image_dir"],
            "masks": spec["mask_dir"],
            "listings": spec["listings"],
            "contents": spec["contents"],
        },
        "num_samples": n,
        "shard_size": spec["shard_size"],
        "versions": versions(),
        "class_map": {str(k): v for k, v in CLASS_MAP.items()},
        "statistics": card_statistics(out, num_shards(n, spec["shard_size"])),
    }
    write_json_atomic(out / CARD, card)
