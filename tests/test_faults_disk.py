"""Out of disk mid-write: one line from run_cli, exit 1, no partial shard, earlier shards intact.

The disk cannot really be filled in a test, so the PNG writer raises ENOSPC after a few files,
exactly as ``ndarray.tofile`` does when the device is full.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from _cli_fixtures import tree_digest
from _gan_fixtures import make_synthetic, tiny_gan
from _synth_fixtures import tiny_config

import gan.translate
import synth.io
from gan.cli import run_cli
from gan.translate import translate_dataset
from synth.io import read_card, write_json_atomic
from synth.render import render_dataset


def fill_disk_after(monkeypatch, module, writes: int) -> None:
    """``module.write_png`` succeeds ``writes`` times, then fails like a full disk."""
    real = module.write_png
    count = {"n": 0}

    def write_png(path, *args, **kwargs):
        count["n"] += 1
        if count["n"] > writes:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, "write_png", write_png)


def assert_disk_full_exit(capsys, exc: pytest.ExceptionInfo) -> str:
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of disk space writing "), err
    return err[0]


def test_render_out_of_disk(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "synthetic"
    cfg = tiny_config()
    render_dataset(cfg, out, 6, 3, seed=0, workers=1, progress=False, shard_count=1)
    before = tree_digest(out)
    fill_disk_after(monkeypatch, synth.io, writes=2)
    with pytest.raises(SystemExit) as exc:
        run_cli(render_dataset, cfg, out, 6, 3, 0, 1, 0, None, False)
    line = assert_disk_full_exit(capsys, exc)
    assert "shard-00001.tmp-" in line
    assert tree_digest(out) == before  # shard 0 untouched, no shard 1, no temp directory
    assert not list(out.glob("*.tmp-*")) and not (out / "shard-00001").exists()


def test_translate_out_of_disk(tmp_path: Path, monkeypatch, capsys) -> None:
    src = make_synthetic(tmp_path / "syn", n=4, shard_size=2, h=32, w=40)
    out = tmp_path / "adapted"
    gen = tiny_gan()
    translate_dataset(gen, src, out, show_progress=False)
    # As if a first run had stopped after shard 0: shard 1 to come, the card in progress.
    card = read_card(out)
    write_json_atomic(
        out / "dataset_card.json",
        {**card, "translation": {**card["translation"], "in_progress": True}},
    )
    shutil.rmtree(out / "shard-00001")
    before = tree_digest(out)
    fill_disk_after(monkeypatch, gan.translate, writes=1)
    with pytest.raises(SystemExit) as exc:
        run_cli(translate_dataset, gen, src, out, 4, "cpu", "a2b", False)
    assert "shard-00001.tmp-" in assert_disk_full_exit(capsys, exc)
    assert tree_digest(out) == before
    assert not list(out.glob("*.tmp-*")) and not (out / "shard-00001").exists()
