"""What a folder of real photos holds, as digests that records and cards compare.

Two digests per folder: a listing (names and sizes, no file read) and the files' bytes. A
file's hash is remembered by its FileKey (path, device, inode, size, mtime) for the process
and, inside ``digest_cache``, across processes, so rerunning a pipeline over a large photo
folder reads only the files that changed since, the way git's index trusts a file's stat.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from synth.io import image_names, write_json_atomic

#: Unread bytes above which contents_digest shows a progress bar (about a second's hashing).
PROGRESS_BYTES = 512 * 2**20

#: A file modified less than this long before it was hashed is not kept across processes:
#: on a filesystem with a coarse clock (1 s on ext3, 2 s on FAT) an edit of the same size a
#: moment later could keep its mtime, and the cache would vouch for the old bytes.
SETTLED_NS = 3 * 10**9

CACHE_VERSION = 1


class FileKey(NamedTuple):
    """What says a file is as it was: read once while it stays so."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int


#: FileKey -> file_digest, for the process (and what digest_cache loaded).
_FILE_DIGESTS: dict[FileKey, str] = {}
#: The keys hashed or looked up since the cache was opened: what it keeps on closing.
_USED: set[FileKey] = set()


def forget_file_digests() -> None:
    """Know no file's hash, as a new process (benchmarks: a run without the cache)."""
    _FILE_DIGESTS.clear()


def folder_files(folder: str | Path) -> list[Path]:
    """A folder's photos or masks (synth.io.image_names), as paths: a Thumbs.db that Windows
    rewrites as the folder is browsed, or a notes.txt, changed the digest, and the pipeline
    retrained every model on the same photos."""
    return [Path(folder, name) for name in image_names(folder)]


def listing_digest(folder: str | Path) -> str:
    """sha256 of the sorted (name, size) of a folder's files: what photos a folder holds,
    cheap on thousands of them (no file is read), and changed when one is added, removed or
    replaced by one of another size. Records keep it beside the folder's path, which is then
    only where the photos were (a moved or remounted data folder holds the same photos)."""
    lines = "".join(f"{p.name}\t{p.stat().st_size}\n" for p in folder_files(folder))
    return hashlib.sha256(lines.encode()).hexdigest()


def contents_digest(folder: str | Path, progress_bytes: int = PROGRESS_BYTES) -> str:
    """sha256 of the sorted (name, sha256 of the bytes) of a folder's files: the photos
    themselves, so one replaced by another of the same size is seen too (every BMP or raw
    TIFF of one image size has one byte size; a mask corrected in place keeps its size).
    Hashing is about 0.7 GB/s on one core, with a progress bar past ``progress_bytes`` not
    yet read; a file is read once while its FileKey holds."""
    from rich.progress import Progress

    root = str(Path(folder).resolve())
    files = {name: file_key(os.path.join(root, name)) for name in image_names(root)}
    _USED.update(files.values())
    unread = sum(key.size for key in files.values() if key not in _FILE_DIGESTS)
    with Progress(disable=unread <= progress_bytes) as bar:
        task = bar.add_task(f"hashing {Path(folder).name}", total=unread)
        for key in files.values():
            if key not in _FILE_DIGESTS:
                _FILE_DIGESTS[key] = file_digest(key.path)
                bar.advance(task, key.size)
    lines = "".join(f"{name}\t{_FILE_DIGESTS[key]}\n" for name, key in files.items())
    return hashlib.sha256(lines.encode()).hexdigest()


def file_key(path: str) -> FileKey:
    """``path`` resolved by the caller (once per folder, not per file)."""
    stat = os.stat(path)
    return FileKey(path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, read 1 MiB at a time: a checkpoint retrained at the same
    path and step, or a photo replaced in place, is known as another file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def digest_cache(path: str | Path | None) -> Iterator[None]:
    """Remember file digests across processes in the JSON file ``path`` (None: only for the
    process). Loaded on entry; on exit, even after an error, it keeps the files used since,
    where they had settled (SETTLED_NS) before being hashed, and the files it held that
    are still as they were (a deleted or edited photo drops out). An unreadable cache is
    read as empty: it only ever saves reading files again."""
    if path is None:
        yield
        return
    path = Path(path)
    loaded = read_digest_cache(path)
    _FILE_DIGESTS.update(loaded)
    _USED.clear()
    opened_ns = time.time_ns()
    try:
        yield
    finally:
        kept = {k: _FILE_DIGESTS[k] for k in _USED if k.mtime_ns < opened_ns - SETTLED_NS}
        used_paths = {key.path for key in _USED}
        kept.update((k, d) for k, d in loaded.items() if k.path not in used_paths and still_is(k))
        if kept != loaded:
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [[*key, digest] for key, digest in sorted(kept.items())]
            write_json_atomic(path, {"version": CACHE_VERSION, "files": rows})


def still_is(key: FileKey) -> bool:
    """Whether the file ``key`` names is still there, as it was."""
    try:
        return file_key(key.path) == key
    except OSError:
        return False


def read_digest_cache(path: Path) -> dict[FileKey, str]:
    """The FileKey -> digest rows of a cache file; {} when missing, unreadable or of
    another version."""
    try:
        data = json.loads(path.read_text())
        if data.get("version") != CACHE_VERSION:
            return {}
        return {FileKey(*row[:5]): row[5] for row in data["files"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return {}
