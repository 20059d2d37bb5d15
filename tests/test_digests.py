"""Real folders known by their bytes: digests, read once per process and, inside
digest_cache, once across processes while a file stays as it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import synth.digests
from synth.digests import contents_digest, digest_cache, listing_digest

HOUR_NS = 3600 * 10**9


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files hashed from here on, in a process that remembers none yet."""
    read: list[str] = []
    monkeypatch.setattr(synth.digests, "_FILE_DIGESTS", {})
    monkeypatch.setattr(synth.digests, "_USED", set())
    monkeypatch.setattr(
        synth.digests, "file_digest", lambda p, f=synth.digests.file_digest: read.append(p) or f(p)
    )
    return read


def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what this process hashed, as the next run would."""
    monkeypatch.setattr(synth.digests, "_FILE_DIGESTS", {})


def photo_folder(root: Path, stems: str = "abc", age_ns: int = HOUR_NS) -> Path:
    """Photos of one byte size, last modified ``age_ns`` ago."""
    root.mkdir()
    then = os.stat(root).st_mtime_ns - age_ns
    for stem in stems:
        write_aged(root / f"{stem}.png", stem.encode() * 100, then)
    return root


def write_aged(path: Path, data: bytes, mtime_ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_photo_replaced_by_one_of_the_same_size_changes_the_contents_digest(
    tmp_path: Path,
) -> None:
    """Every BMP of one image size has one byte size: names and sizes cannot tell two such
    photos apart, their bytes can. Where the folder is, and its files' times, do not count."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        cv2.imwrite(str(folder / f"{stem}.bmp"), rng.integers(0, 255, (8, 12, 3), np.uint8))
    (folder / ".DS_Store").write_bytes(b"finder")  # hidden: not a photo
    listing, contents = listing_digest(folder), contents_digest(folder)
    copied = tmp_path / "copied"
    shutil.copytree(folder, copied, copy_function=shutil.copy)  # new inodes and times
    (copied / ".DS_Store").write_bytes(b"finder, later")
    assert (listing_digest(copied), contents_digest(copied)) == (listing, contents)
    cv2.imwrite(str(folder / "a.bmp"), np.zeros((8, 12, 3), np.uint8))
    assert listing_digest(folder) == listing  # same names, same sizes
    assert contents_digest(folder) != contents
    (copied / "a.bmp").rename(copied / "c.bmp")  # same bytes under another name
    assert contents_digest(copied) != contents


def test_files_no_reader_takes_for_a_photo_do_not_count(tmp_path: Path, reads) -> None:
    """Windows rewrites Thumbs.db as a folder is browsed: the pipeline, which says it does not
    read it, called the photos changed and retrained the GAN and every row from scratch."""
    folder = photo_folder(tmp_path / "photos")
    listing, contents = listing_digest(folder), contents_digest(folder)
    (folder / "Thumbs.db").write_bytes(b"thumbnails")
    (folder / "notes.txt").write_bytes(b"site B, north wall")
    assert (listing_digest(folder), contents_digest(folder)) == (listing, contents)
    assert not [p for p in reads if not p.endswith(".png")]  # nor read
    (folder / "d.JPG").write_bytes(b"d" * 100)  # a photo, any letter case: it counts
    assert listing_digest(folder) != listing and contents_digest(folder) != contents


def test_each_file_is_read_once_per_process_and_a_long_read_shows_a_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture, reads: list[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in ("a", "b", "c"):
        (folder / f"{stem}.png").write_bytes(stem.encode() * 100)
    first = contents_digest(folder, progress_bytes=0)
    assert "hashing photos" in capsys.readouterr().out and len(reads) == 3
    assert contents_digest(folder, progress_bytes=0) == first and len(reads) == 3
    assert "hashing" not in capsys.readouterr().out  # nothing left to read: no bar
    (folder / "b.png").write_bytes(b"another photo")
    assert contents_digest(folder) != first and len(reads) == 4
    assert "hashing" not in capsys.readouterr().out  # 13 bytes: under the bar's threshold


def test_the_cache_spares_a_later_run_reading_files_that_stayed_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    folder, cache = photo_folder(tmp_path / "photos"), tmp_path / "out" / "digests.json"
    with digest_cache(cache):
        first = contents_digest(folder)
    assert len(reads) == 3 and cache.is_file()
    new_process(monkeypatch)
    with digest_cache(cache):
        assert contents_digest(folder) == first
    assert len(reads) == 3  # nothing read again
    b = folder / "b.png"  # edited in place, same size, same inode: a new mtime
    write_aged(b, b"x" * 100, b.stat().st_mtime_ns + 10**9)
    new_process(monkeypatch)
    with digest_cache(cache):
        edited = contents_digest(folder)
    assert edited != first and reads[3:] == [str(b.resolve())]
    new_process(monkeypatch)
    with digest_cache(None):  # no cache: every file read again
        assert contents_digest(folder) == edited
    assert len(reads) == 7


def test_a_file_changed_just_before_it_was_hashed_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    """A coarse filesystem clock could give a same-size edit a moment later the same mtime,
    so only files that had settled are vouched for across processes."""
    folder, cache = photo_folder(tmp_path / "photos", age_ns=0), tmp_path / "digests.json"
    for _ in range(2):
        new_process(monkeypatch)
        with digest_cache(cache):
            contents_digest(folder)
    assert len(reads) == 6 and not cache.exists()


def test_the_cache_keeps_what_is_still_there_and_drops_what_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    photos, masks = photo_folder(tmp_path / "photos"), photo_folder(tmp_path / "masks", "xy")
    cache = tmp_path / "digests.json"
    with digest_cache(cache):
        contents_digest(photos), contents_digest(masks)
    (photos / "c.png").unlink()
    new_process(monkeypatch)
    with pytest.raises(KeyboardInterrupt), digest_cache(cache):  # killed, still saved
        contents_digest(photos)
        raise KeyboardInterrupt
    kept = {Path(row[0]).name for row in json.loads(cache.read_text())["files"]}
    assert kept == {"a.png", "b.png", "x.png", "y.png"}  # masks unused, still as they were
    new_process(monkeypatch)
    with digest_cache(cache):
        contents_digest(masks)
    assert len(reads) == 5


@pytest.mark.parametrize("text", ["{not json", '{"version": 0, "files": []}', '{"files": 3}'])
def test_an_unreadable_cache_only_means_reading_the_files_again(
    tmp_path: Path, reads: list[str], text: str
) -> None:
    folder, cache = photo_folder(tmp_path / "photos"), tmp_path / "digests.json"
    cache.write_text(text)
    with digest_cache(cache):
        contents_digest(folder)
    assert len(reads) == 3 and len(json.loads(cache.read_text())["files"]) == 3
