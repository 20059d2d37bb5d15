"""Bring your own renders: a labeled image + mask folder pair imported as a sharded dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from _synth_fixtures import ROOT, tiny_config, tree_digest

from synth import digests, render
from synth import imported as imported_module
from synth.digests import listing_digest
from synth.imported import import_changes, import_renders
from synth.io import (
    CARD,
    DataError,
    ImageFolder,
    ShardedDataset,
    read_card,
    read_image,
    shard_name,
)
from synth.render import render_dataset
from synth.toy import write_toy_real_folder


def renders(root: Path, n: int = 6) -> tuple[Path, Path]:
    """A user's renders: ``n`` 48x64 images and their 0/255 masks, paired by stem."""
    write_toy_real_folder(root, n=n, h=48, w=64)
    return root / "train_img", root / "train_lab"


def imported(images: Path, masks: Path, out: Path, shard_size: int = 4, **kwargs) -> dict:
    return import_renders(images, masks, out, shard_size, progress=False, **kwargs)


def settled(*folders: Path) -> None:
    """Files last changed a minute ago: the digest cache keeps only files settled before
    they were hashed (synth.digests.SETTLED_NS), as a user's renders are."""
    past = os.stat(folders[0]).st_mtime - 60
    for folder in folders:
        for path in folder.iterdir():
            os.utime(path, (past, past))


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_workers_import_in_processes_and_the_bytes_are_the_same_whatever_their_count(
    tmp_path: Path, monkeypatch
) -> None:
    """An import read and wrote every shard in one process, whatever ``workers`` said: one
    core decoded and encoded a 100,000-render import. The pool reads the shards' pairs, then
    writes them, one pool for both."""
    pools: list[list[str]] = []

    class Pool(render.ProcessPoolExecutor):  # the render's pool, its tasks counted
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pools.append([])

        def submit(self, fn, /, *args, **kwargs):
            pools[-1].append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(render, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    images, masks = renders(tmp_path / "mine", n=7)
    one = imported(images, masks, tmp_path / "one", shard_size=2, workers=1)
    assert pools == []  # one worker: in this process, no pool
    two = imported(images, masks, tmp_path / "two", shard_size=2, workers=2)
    assert pools == [["_bad_pairs"] * 4 + ["_import_shard"] * 4]
    assert one["imported_samples"] == two["imported_samples"] == 7
    assert file_bytes(tmp_path / "one") == file_bytes(tmp_path / "two")  # every file's bytes
    assert len(file_bytes(tmp_path / "one")) == 4 + 7 * 2 + 2  # manifests, PNGs, spec, card


def test_a_rerun_over_a_complete_import_reads_no_render_and_still_sees_a_changed_one(
    tmp_path: Path, monkeypatch
) -> None:
    """The tool hashed every render on every run to check the import was the same files; the
    digest cache (the pipeline's) vouches for the files whose stat still holds."""
    images, masks = renders(tmp_path / "mine")
    settled(images, masks)
    cache = tmp_path / "file_digests.json"
    imported(images, masks, tmp_path / "a", digest_cache=cache)
    read: list[str] = []
    hashed = digests.file_digest
    monkeypatch.setattr(digests, "file_digest", lambda path: read.append(path) or hashed(path))

    digests.forget_file_digests()  # a new process
    assert imported(images, masks, tmp_path / "a", digest_cache=cache)["imported_shards"] == 0
    assert read == []
    cv2.imwrite(str(masks / "5.png"), np.zeros((48, 64), np.uint8))  # a mask corrected
    digests.forget_file_digests()
    with pytest.raises(DataError, match=r"was imported from other files or settings"):
        imported(images, masks, tmp_path / "a", digest_cache=cache)
    assert read == [str((masks / "5.png").resolve())]  # that file alone read


def test_an_import_is_deterministic_and_resumes_only_missing_shards(tmp_path: Path) -> None:
    images, masks = renders(tmp_path / "mine")
    first = imported(images, masks, tmp_path / "a")
    assert (first["num_shards"], first["imported_samples"], first["complete"]) == (2, 6, True)
    imported(images, masks, tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    data = ShardedDataset(tmp_path / "a")
    names = sorted(p.name for p in images.iterdir())
    assert [rec["source_image"] for _, rec in data.records] == names  # sample i: i-th file
    for i, name in enumerate(names):
        assert np.array_equal(data[i].image, read_image(images / name))
        mask = cv2.imread(str(masks / name.replace(".jpg", ".png")), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(data[i].semantic, (mask > 127).astype(np.uint8))

    # Lost shard: only it is written again, byte-identical; a complete set is left alone.
    want = tree_digest(tmp_path / "a")
    kept = (tmp_path / "a" / shard_name(0) / "manifest.jsonl").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "a" / shard_name(1))
    again = imported(images, masks, tmp_path / "a")
    assert (again["imported_shards"], again["skipped_shards"], again["imported_samples"]) == (
        1,
        1,
        2,
    )
    assert tree_digest(tmp_path / "a") == want
    assert (tmp_path / "a" / shard_name(0) / "manifest.jsonl").stat().st_mtime_ns == kept
    assert imported(images, masks, tmp_path / "a")["imported_shards"] == 0


def test_the_card_names_the_source_folders_by_listing_with_the_render_cards_statistics(
    tmp_path: Path,
) -> None:
    images, masks = renders(tmp_path / "mine")
    imported(images, masks, tmp_path / "a")
    card = read_card(tmp_path / "a")
    assert card["kind"] == "imported" and card["num_samples"] == 6
    source = card["imported_from"]
    assert (source["images"], source["masks"]) == (str(images.resolve()), str(masks.resolve()))
    assert source["listings"] == {
        "image_dir": listing_digest(images),
        "mask_dir": listing_digest(masks),
    }
    render_dataset(tiny_config(), tmp_path / "r", 2, 2, seed=0, progress=False)
    rendered = read_card(tmp_path / "r")["statistics"]
    assert card["statistics"].keys() == rendered.keys()
    assert card["statistics"]["samples"] == 6 and 0 < card["statistics"]["crack_share_mean"] < 1


@pytest.mark.parametrize("workers", [1, 2])
def test_every_bad_pair_is_said_in_one_line_before_any_shard_is_written(
    tmp_path: Path, workers: int
) -> None:
    """Read by workers, a shard's pairs a task, the bad pairs still come in one line, in the
    folder's order."""
    images, masks = renders(tmp_path / "mine")
    (masks / "1.png").unlink()  # a render without its mask
    (images / "3.jpg").write_bytes(b"not an image")  # a file cut short
    cv2.imwrite(str(masks / "4.png"), np.zeros((40, 64), np.uint8))  # a mask of another size
    with pytest.raises(DataError) as err:
        imported(images, masks, tmp_path / "a", shard_size=2, workers=workers)
    said = str(err.value)
    assert "\n" not in said and "(and 2 more bad files:" in said
    found = [
        said.index(name)
        for name in ("1.jpg: no mask of its stem", "3.jpg: unreadable", "4.png: mask size 40x64")
    ]
    assert found == sorted(found), said
    assert not list((tmp_path / "a").glob("shard-*"))


def test_importing_other_files_into_the_folder_is_refused_and_the_same_files_moved_resume(
    tmp_path: Path,
) -> None:
    images, masks = renders(tmp_path / "mine")
    imported(images, masks, tmp_path / "a")
    shutil.rmtree(tmp_path / "a" / shard_name(1))
    cv2.imwrite(str(masks / "5.png"), np.zeros((48, 64), np.uint8))  # a mask corrected
    assert import_changes(tmp_path / "a", images, masks, 4) != []
    with pytest.raises(DataError, match=r"render_spec.json: .* was imported from other files"):
        imported(images, masks, tmp_path / "a")
    assert not (tmp_path / "a" / shard_name(1)).exists()  # not mixed into the old import
    imported(images, masks, tmp_path / "b", shard_size=4)
    with pytest.raises(DataError, match=r"imported from other files or settings \(shard_size\)"):
        imported(images, masks, tmp_path / "b", shard_size=3)
    # the same files elsewhere are the same import: resumed, not refused
    shutil.copytree(tmp_path / "mine", tmp_path / "moved")
    moved = imported(
        tmp_path / "moved" / "train_img", tmp_path / "moved" / "train_lab", tmp_path / "b"
    )
    assert moved["skipped_shards"] == 2
    # a render into the imported folder, and an import into a rendered one: refused too
    with pytest.raises(DataError, match=r"was imported from other files or settings"):
        render_dataset(tiny_config(), tmp_path / "b", 2, 2, seed=0, progress=False)
    render_dataset(tiny_config(), tmp_path / "r", 2, 2, seed=0, progress=False)
    with pytest.raises(DataError, match=r"was rendered with other settings"):
        imported(images, masks, tmp_path / "r")


def test_the_tool_prints_its_summary_and_says_a_missing_setting_in_one_line(
    tmp_path: Path,
) -> None:
    images, masks = renders(tmp_path / "mine")
    settled(images, masks)
    tool = [sys.executable, str(ROOT / "tools" / "import_renders.py"), f"paths.log_dir={tmp_path}"]
    out = f"out_dir={tmp_path / 'a'}"
    done = subprocess.run(
        [*tool, f"image_dir={images}", f"mask_dir={masks}", out, "shard_size=4", "progress=false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported_samples"] == 6 and (tmp_path / "a" / CARD).is_file()
    # the renders' digests kept beside the set, as the pipeline keeps its beside its stages
    kept = json.loads((tmp_path / "file_digests.json").read_text())["files"]
    assert sorted(Path(row[0]).name for row in kept) == sorted(
        [p.name for p in images.iterdir()] + [p.name for p in masks.iterdir()]
    )
    missing = subprocess.run(
        [*tool, f"image_dir={images}", out], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("error: mask_dir=None: name the")


def test_an_anti_aliased_render_mask_is_crack_from_half_way_to_white(tmp_path: Path) -> None:
    """Renders' masks are often anti-aliased: their grey edge pixels were refused as 'outside
    the class map', where our own scenes label a pixel crack when half covered."""
    images, masks = renders(tmp_path / "mine", n=2)
    name = sorted(masks.iterdir())[0]
    mask = cv2.imread(str(name), cv2.IMREAD_GRAYSCALE)
    mask[0, :4] = [127, 128, 1, 254]
    cv2.imwrite(str(name), mask)
    imported(images, masks, tmp_path / "out")
    assert ShardedDataset(tmp_path / "out")[0].semantic[0, :4].tolist() == [0, 1, 0, 1]


def test_renders_masks_stored_0_1_are_refused_before_any_shard_not_imported_as_no_crack(
    tmp_path: Path,
) -> None:
    """A render's mask exported 0/1 (a common 'binary' export) read every crack pixel as an
    anti-aliased edge's faint grey, background: the whole set was imported, and the GAN and
    the rows trained, on no crack at all, without a word."""
    images, masks = renders(tmp_path / "mine", n=2)
    for name in masks.iterdir():
        mask = cv2.imread(str(name), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(name), (mask == 255).astype(np.uint8))
    with pytest.raises(DataError, match=r"mask values \[0, 1\]: a 0/1 mask\? store crack as 255"):
        imported(images, masks, tmp_path / "out")
    assert not list((tmp_path / "out").glob("shard-*"))


@pytest.mark.parametrize("workers", [1, 2])
def test_renders_whose_masks_mark_no_crack_at_all_are_refused_before_any_shard(
    tmp_path: Path, workers: int
) -> None:
    """Masks of label ids (crack stored as 2, as a simulator's segmentation export may) are
    each a valid mask of background and faint edge greys: the whole set imported with no
    crack, and the GAN and every row trained on none. Refused as a set, in one line."""
    images, masks = renders(tmp_path / "mine", n=5)
    for name in masks.iterdir():
        mask = cv2.imread(str(name), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(name), (mask == 255).astype(np.uint8) * 2)
    with pytest.raises(DataError, match=r"none of the 5 masks marks a crack pixel"):
        imported(images, masks, tmp_path / "out", shard_size=2, workers=workers)
    assert not list((tmp_path / "out").glob("shard-*"))
    one = sorted(masks.iterdir())[3]  # one mask with a crack: the set is taken
    cv2.imwrite(str(one), (cv2.imread(str(one), cv2.IMREAD_GRAYSCALE) > 0).astype(np.uint8) * 255)
    assert imported(images, masks, tmp_path / "out", shard_size=2)["imported_samples"] == 5


def test_grey_renders_with_the_folders_swapped_are_refused_before_any_shard(
    tmp_path: Path,
) -> None:
    """Grey renders given as the masks (image_dir and mask_dir swapped) passed every mask
    check, grey being a mask's anti-aliased edge, and imported as crack wherever brighter
    than mid-grey, masks as the images: the GAN and every row trained on them."""
    images, masks = renders(tmp_path / "mine", n=5)
    for name in images.iterdir():
        grey = cv2.cvtColor(cv2.imread(str(name)), cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(name.with_suffix(".png")), grey)
        if name.suffix != ".png":
            name.unlink()
    with pytest.raises(
        DataError,
        match=r"5 of 5 masks read have more than half their pixels "
        r"grey.*are image_dir and mask_dir swapped\?",
    ):
        imported(masks, images, tmp_path / "out", shard_size=2, workers=2)
    assert not list((tmp_path / "out").glob("shard-*"))
    assert imported(images, masks, tmp_path / "out", shard_size=2)["imported_samples"] == 5


def test_render_masks_drawn_black_on_white_are_refused_before_any_shard(tmp_path: Path) -> None:
    """Masks exported crack-dark on a white background read as crack nearly everywhere: the
    set imported, and the rows learnt to call everything crack, without a word."""
    images, masks = renders(tmp_path / "mine", n=5)
    for name in masks.iterdir():
        cv2.imwrite(str(name), 255 - cv2.imread(str(name), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(
        DataError,
        match=r"5 of 5 masks read mark more than half their pixels "
        r"as crack \(median 9\d%\): masks drawn black on white need inverting",
    ):
        imported(images, masks, tmp_path / "out", shard_size=2)
    assert not list((tmp_path / "out").glob("shard-*"))


def test_a_16_bit_render_mask_is_said_in_a_short_line_with_its_hint(tmp_path: Path) -> None:
    """A 16-bit render mask's error listed the render map's 256 values before its hint, in
    each bad file's part of the line."""
    images, masks = renders(tmp_path / "mine", n=2)
    name = sorted(masks.iterdir())[0]
    mask = cv2.imread(str(name), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(name), mask.astype(np.uint16) * 257)
    with pytest.raises(DataError) as err:
        imported(images, masks, tmp_path / "out")
    assert "outside the class map [0-255]; a 16-bit mask: save it as 8-bit" in str(err.value)
    assert len(str(err.value)) < 300


def test_a_folder_of_renders_given_as_a_sharded_set_says_how_to_import_it(tmp_path: Path) -> None:
    """``data_stats synthetic=/my/renders/img`` said "no complete shards" of a folder full of
    images, with no word of the import that makes the set it asks for."""
    images, _ = renders(tmp_path / "mine", n=2)
    with pytest.raises(DataError, match=r"holds 2 image\(s\) .*tools/import_renders\.py"):
        ShardedDataset(images)


def decoded_in(monkeypatch) -> list[str]:
    """The image names ``ImageFolder`` decodes in this process, in order."""
    read: list[str] = []
    getitem = ImageFolder.__getitem__

    def counted(self: ImageFolder, i: int):
        read.append(self.images[i].name)
        return getitem(self, i)

    monkeypatch.setattr(ImageFolder, "__getitem__", counted)
    return read


def checked_parts(monkeypatch) -> list[list[str]]:
    """The image names of each shard's worth of pairs sent to be checked (``_bad_pairs``),
    whether the jobs run in this process or in workers."""
    parts: list[list[str]] = []
    run_jobs = imported_module.run_jobs

    def counted(pool, task, jobs, finished):
        if task.__name__ == "_bad_pairs":
            parts.extend([p.name for p in job[0].images] for job in jobs)
        return run_jobs(pool, task, jobs, finished)

    monkeypatch.setattr(imported_module, "run_jobs", counted)
    return parts


def corrupted_in_place(path: Path) -> bytes:
    """``path``'s bytes zeroed, its inode, size and modification time kept (bits rotted on
    disk: the digest cache still vouches for it); returns the bytes it had."""
    kept, stat = path.read_bytes(), path.stat()
    with open(path, "r+b") as f:
        f.write(bytes(len(kept)))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return kept


@pytest.mark.parametrize("workers", [1, 2])
def test_a_resumed_import_decodes_only_the_missing_shards_pairs_and_ends_byte_identical(
    tmp_path: Path, monkeypatch, workers: int
) -> None:
    """A rerun after a kill (180 of 200 shards complete) decoded all 100,000 pairs, ~20
    minutes on one core, before writing the last 20 shards (2 minutes)."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    images, masks = renders(tmp_path / "mine", n=7)  # shards of 2: 0-1, 2-3, 4-5, 6
    imported(images, masks, tmp_path / "whole", shard_size=2, workers=workers)
    imported(images, masks, tmp_path / "a", shard_size=2, workers=workers)
    for s in (1, 3):  # lost to a kill
        shutil.rmtree(tmp_path / "a" / shard_name(s))
    parts, decoded = checked_parts(monkeypatch), decoded_in(monkeypatch)
    again = imported(images, masks, tmp_path / "a", shard_size=2, workers=workers)
    assert (again["imported_shards"], again["skipped_shards"]) == (2, 2)
    assert parts == [["2.jpg", "3.jpg"], ["6.jpg"]]
    if workers == 1:  # each missing pair checked, then written; the complete ones never read
        assert sorted(decoded) == sorted(["2.jpg", "3.jpg", "6.jpg"] * 2)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "whole")
    parts.clear()
    assert imported(images, masks, tmp_path / "a", shard_size=2)["imported_shards"] == 0
    assert parts == []  # a complete set reads no pair


def test_a_resume_refuses_bad_pairs_of_the_missing_shards_and_leaves_the_complete_ones_unread(
    tmp_path: Path,
) -> None:
    """A resume reads the pairs it still has to write: theirs are said in one line as a fresh
    import's are; a pair inside a complete shard was checked when it was written, and is not
    decoded again (the spec's digests, from the cache, vouch for its file)."""
    images, masks = renders(tmp_path / "mine", n=7)
    settled(images, masks)
    cache = tmp_path / "file_digests.json"
    imported(images, masks, tmp_path / "whole", shard_size=2, digest_cache=cache)
    imported(images, masks, tmp_path / "a", shard_size=2, digest_cache=cache)
    for s in (1, 3):
        shutil.rmtree(tmp_path / "a" / shard_name(s))
    corrupted_in_place(images / "0.jpg")  # in complete shard 0
    kept = {name: corrupted_in_place(images / name) for name in ("3.jpg", "6.jpg")}
    digests.forget_file_digests()  # a new process
    with pytest.raises(DataError) as err:
        imported(images, masks, tmp_path / "a", shard_size=2, digest_cache=cache)
    said = str(err.value)
    assert "\n" not in said and "(and 1 more bad files:" in said
    assert "3.jpg: unreadable" in said and "6.jpg: unreadable" in said and "0.jpg" not in said
    assert sorted(p.name for p in (tmp_path / "a").glob("shard-*")) == [
        shard_name(0),
        shard_name(2),
    ]
    for name, data in kept.items():  # the missing shards' files mended, in place
        stat = (images / name).stat()
        (images / name).write_bytes(data)
        os.utime(images / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    digests.forget_file_digests()
    imported(images, masks, tmp_path / "a", shard_size=2, digest_cache=cache)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "whole")


def test_a_resume_refuses_a_set_of_no_crack_from_the_complete_shards_record(
    tmp_path: Path, monkeypatch
) -> None:
    """A resume decides "no mask marks a crack" from the pairs it reads and the complete
    shards' manifests (``has_crack``), without decoding those shards' masks again."""
    images, masks = renders(tmp_path / "mine", n=4)  # shards of 2: 0-1, 2-3
    for name in ("2.png", "3.png"):  # shard 1 has no crack; shard 0 has
        cv2.imwrite(str(masks / name), np.zeros((48, 64), np.uint8))
    imported(images, masks, tmp_path / "a", shard_size=2)
    shutil.rmtree(tmp_path / "a" / shard_name(1))
    decoded = decoded_in(monkeypatch)
    assert imported(images, masks, tmp_path / "a", shard_size=2)["imported_shards"] == 1
    assert sorted(decoded) == ["2.jpg", "2.jpg", "3.jpg", "3.jpg"]  # shard 0's record decides

    manifest = tmp_path / "a" / shard_name(0) / "manifest.jsonl"  # a record of no crack
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({**r, "has_crack": False}) + "\n" for r in records))
    shutil.rmtree(tmp_path / "a" / shard_name(1))
    with pytest.raises(DataError, match=r"none of the 4 masks marks a crack pixel"):
        imported(images, masks, tmp_path / "a", shard_size=2)
    assert not (tmp_path / "a" / shard_name(1)).exists()


def test_a_shard_folder_without_its_manifest_is_written_again(tmp_path: Path) -> None:
    """A shard folder without its manifest (a copy of the set cut short, a manifest deleted)
    was rewritten, the rewrite thrown away as a concurrent writer's, and the import failed
    on the missing manifest with a traceback. It is written again, as if never there."""
    images, masks = renders(tmp_path / "mine", n=5)
    imported(images, masks, tmp_path / "whole", shard_size=2)
    imported(images, masks, tmp_path / "cut", shard_size=2)
    (tmp_path / "cut" / shard_name(1) / "manifest.jsonl").unlink()
    assert imported(images, masks, tmp_path / "cut", shard_size=2)["imported_shards"] == 1
    assert file_bytes(tmp_path / "cut") == file_bytes(tmp_path / "whole")
