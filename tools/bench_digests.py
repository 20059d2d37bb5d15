"""What the digest cache saves a pipeline rerun: one folder hashed as a new process would,
reading every file, and with the cache a previous run left (variants interleaved).

    python tools/bench_digests.py folder=/my/photos

A file modified less than SETTLED_NS before the cache was opened is read by both variants.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from synth.digests import contents_digest, digest_cache, forget_file_digests
from synth.io import DataError, file_names, missing_folder

register_resolvers()


def hash_as_a_new_run(folder: str, cache: Path | None) -> float:
    """Seconds for one digest of ``folder`` in a run that remembers nothing but ``cache``."""
    forget_file_digests()
    start = time.perf_counter()
    with digest_cache(cache):
        contents_digest(folder)
    return time.perf_counter() - start


def bench(cfg: DictConfig) -> None:
    folder = str(cfg.folder)
    if not Path(folder).is_dir():
        raise missing_folder(folder, "folder to hash")
    names = file_names(folder)
    if not names:  # it timed nothing and printed a ratio of it
        raise DataError(f"{folder}: no files to hash (folder)")
    size = sum(Path(folder, n).stat().st_size for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "file_digests.json"
        hash_as_a_new_run(folder, cache)  # the run before: writes the cache, warms the disk
        times: dict[str, list[float]] = {"no cache": [], "cache": []}
        for _ in range(cfg.repeats):
            times["no cache"].append(hash_as_a_new_run(folder, None))
            times["cache"].append(hash_as_a_new_run(folder, cache))
    plain, cached = (statistics.median(times[k]) for k in ("no cache", "cache"))
    print(f"{folder}: {len(names)} files, {size / 1e6:.1f} MB")
    print(f"no cache: {plain:.3f} s ({size / 1e9 / plain:.2f} GB/s), median of {cfg.repeats}")
    print(f"cache:    {cached:.3f} s ({plain / cached:.1f}x faster)")


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench_digests")
def main(cfg: DictConfig) -> None:
    run_cli(bench, cfg, resumes=False)


if __name__ == "__main__":
    main()
