"""A stopped predict loses nothing: its finished photos stay staged, a rerun with the same model
and settings segments only the rest and ends byte for byte as an uninterrupted run, and the
earlier complete results stay as they were until it does. Before, a predict of 10,000 photos
killed at 90 % kept none of its work and its rerun began at photo 1."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _task_fixtures import make_folder
from torch import nn

import gan.evaluate
import gan.staging
from gan.evaluate import PREDICTION_CODE, SKIPPED, predict_folder
from gan.staging import OWNER, process_identity
from gan.task import CrackSegmenter
from synth.digests import PROGRESS_BYTES
from synth.io import DataError, ImageFolder, read_json

N = 7  # photos; batches of 2: the fourth of one photo


def tiny_model(seed: int = 0) -> CrackSegmenter:
    torch.manual_seed(seed)
    return CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()


def pngs(out: Path) -> dict[str, bytes]:
    """The results a run put in place, by sub-folder and name."""
    return {
        f"{sub}/{p.name}": p.read_bytes()
        for sub in ("masks", "overlays")
        for p in sorted((out / sub).glob("*.png"))
    }


def segmented(monkeypatch) -> list[str]:
    """The names of the masks the network's output is written to from now on."""
    names: list[str] = []
    write = gan.evaluate.write_png

    def counting(path: Path, *args, **kw) -> None:
        if path.parent.name.startswith(".masks"):
            names.append(path.name)
        write(path, *args, **kw)

    monkeypatch.setattr(gan.evaluate, "write_png", counting)
    return names


def stop_after(monkeypatch, photos: int) -> None:
    """A Ctrl-C as the photo after ``photos`` finished ones is written (its mask on disk, its
    overlay not: a kill mid-photo)."""
    write, calls = gan.evaluate.write_png, []

    def stopping(path: Path, *args, **kw) -> None:
        calls.append(path)
        write(path, *args, **kw)
        if len(calls) == 2 * photos + 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(gan.evaluate, "write_png", stopping)


def stopped_run(monkeypatch, model, img: Path, out: Path, photos: int, **settings) -> None:
    stop_after(monkeypatch, photos)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(model, img, out, batch_size=2, **settings)
    monkeypatch.undo()


def test_a_stopped_predict_resumes_with_the_rest_and_ends_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    img, _ = make_folder(tmp_path / "real", n=N)
    old, new = tiny_model(0), tiny_model(1)
    predict_folder(new, img, tmp_path / "clean", batch_size=2)
    out = tmp_path / "out"
    predict_folder(old, img, out, batch_size=2)  # an earlier complete run
    earlier = pngs(out)
    stopped_run(monkeypatch, new, img, out, photos=5)  # 5 done: batches 1 and 2 whole
    assert pngs(out) == earlier  # the earlier results stay as they were while stopped
    assert len(list(out.glob(".masks.tmp-*/*.png"))) == 6  # the finished work is staged
    capsys.readouterr()
    names = segmented(monkeypatch)
    monkeypatch.setattr(gan.evaluate, "PROGRESS_BYTES", 0)  # as for photos of gigabytes
    predict_folder(new, img, out, batch_size=2)
    said = capsys.readouterr().out
    assert "resuming: 4 of 7 photos already segmented" in said
    # the photos are read before the network's first batch: a bar, not a silent wait
    assert "checking staged photos" in said and "hashing photos" in said
    monkeypatch.setattr(gan.evaluate, "PROGRESS_BYTES", PROGRESS_BYTES)
    # the third batch, begun, goes through again whole; the first two are not segmented
    assert sorted(names) == ["img4.png", "img5.png", "img6.png"]
    assert pngs(out) == pngs(tmp_path / "clean") and not list(out.glob(".*"))
    names.clear()
    finished = pngs(out)
    predict_folder(new, img, out, batch_size=2)  # the finished run's photos are all reused
    said = capsys.readouterr().out
    assert not names and "resuming" not in said and pngs(out) == finished
    assert "reusing 7 of 7 photos' masks and overlays from the last run" in said
    assert "hashing" not in said and "checking" not in said  # a second's work: quiet


def test_a_killed_predicts_staging_is_taken_over_by_the_rerun(tmp_path: Path, monkeypatch) -> None:
    """SIGKILL or a power cut: no Python runs after it, the staging folders keep the dead
    process's id; the rerun takes them over (and skips a journal line the kill cut short)."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model = tiny_model()
    predict_folder(model, img, tmp_path / "clean", batch_size=2)
    out = tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)
    dead = 2**22 + 1  # above Linux's pid_max: no process has it
    for sub in ("masks", "overlays"):
        os.rename(out / f".{sub}.tmp-{os.getpid()}", out / f".{sub}.tmp-{dead}")
    with open(out / f".masks.tmp-{dead}" / ".progress.jsonl", "a") as journal:
        journal.write('{"name": "img4.png", "pho')  # the kill came mid-line
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert sorted(names) == ["img4.png", "img5.png", "img6.png"]
    assert pngs(out) == pngs(tmp_path / "clean") and not list(out.glob(".*"))


def changed_photo(img: Path) -> None:
    cv2.imwrite(str(img / "img1.png"), np.full((48, 64, 3), 90, np.uint8))


def damaged_mask(out: Path) -> None:  # a power cut left a staged PNG empty
    next(out.glob(".masks.tmp-*/img3.png")).write_bytes(b"")


@pytest.mark.parametrize(
    "change, settings, redone",
    [
        (changed_photo, {}, ["img0.png", "img1.png", "img4.png", "img5.png", "img6.png"]),
        (damaged_mask, {}, ["img2.png", "img3.png", "img4.png", "img5.png", "img6.png"]),
        (None, {"eval_size": [32, 48]}, None),
        (None, {"tile": 32}, None),
        (None, {"translate_with": nn.Sequential(nn.Conv2d(3, 3, 1), nn.Tanh())}, None),
        (None, {"model": 1}, None),
    ],
    ids=["photo", "staged-png", "eval_size", "tile", "translate_with", "model"],
)
def test_what_changed_since_the_stop_is_segmented_again(
    tmp_path: Path, monkeypatch, capsys, change, settings: dict, redone: list[str] | None
) -> None:
    """A photo changed, a staged PNG damaged: those photos' batches again; another model or
    a setting that changes pixels: every photo again, the stopped run's work discarded."""
    img, _ = make_folder(tmp_path / "real", n=N)
    out = tmp_path / "out"
    stopped_run(monkeypatch, tiny_model(), img, out, photos=4)
    if change is not None:
        change(img if change is changed_photo else out)
    settings = {"batch_size": 2, **settings}
    model = tiny_model(settings.pop("model", 0))
    predict_folder(model, img, tmp_path / "clean", **settings)
    capsys.readouterr()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, **settings)
    said = capsys.readouterr().out
    assert sorted(names) == (redone or sorted(f"img{i}.png" for i in range(N)))
    if redone is None:
        assert "resuming" not in said
        assert "note: 4 photos a stopped run segmented with another model" in said
    else:
        assert f"resuming: {N - len(redone)} of {N} photos already segmented" in said
    assert pngs(out) == pngs(tmp_path / "clean") and not list(out.glob(".*"))


def test_a_rerun_after_a_finished_run_segments_only_new_and_changed_photos(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A finished run kept nothing for the next: 50 photos added to 10,000 were segmented
    with the 10,000 again. Now a rerun with the same model and settings reuses the PNGs of
    each photo unchanged since and replaces the results still only whole (stopped part-way,
    it leaves them as they were); a photo gone loses its PNGs; another model redoes all."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)
    earlier = pngs(out)
    changed_photo(img)
    (img / "img6.png").unlink()
    cv2.imwrite(str(img / "img7.png"), np.full((40, 56, 3), 200, np.uint8))
    predict_folder(model, img, tmp_path / "clean", batch_size=2)
    capsys.readouterr()
    stopped_run(monkeypatch, model, img, out, photos=1)  # img1 done, stopped in img7
    said = capsys.readouterr().out
    reused = "reusing 5 of 7 photos' masks and overlays from the last run (unchanged since)"
    assert f"{reused}; segmenting 2" in said
    assert pngs(out) == earlier  # the earlier results as they were while stopped
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    said = capsys.readouterr().out  # the stopped run reused 5 photos and segmented none
    assert f"{reused}; segmenting 2" in said and "resuming" not in said
    assert sorted(names) == ["img1.png", "img7.png"]  # img1 was in no whole batch yet
    assert pngs(out) == pngs(tmp_path / "clean") and not list(out.glob(".*"))
    names.clear()
    predict_folder(tiny_model(1), img, out, batch_size=2)
    assert len(names) == N


def test_a_resumed_rerun_counts_reused_and_segmented_photos_each_once(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A rerun over a finished run, stopped, then resumed, said `resuming: 7 of 9 photos
    already segmented` of 2 segmented and 5 reused: now each photo is in one count."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)
    changed_photo(img)
    for stem in ("img7", "img8"):
        cv2.imwrite(str(img / f"{stem}.png"), np.full((40, 56, 3), 200, np.uint8))
    stopped_run(monkeypatch, model, img, out, photos=2)  # img1, img7 done; stopped in img8
    capsys.readouterr()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    said = capsys.readouterr().out
    assert names == ["img8.png"]
    assert "resuming: 2 of 9 photos already segmented\n" in said
    reused = "reusing 6 of 9 photos' masks and overlays from the last run (unchanged since)"
    assert f"{reused}; segmenting 1\n" in said


def test_a_resume_after_reused_photos_keeps_the_uninterrupted_runs_batches(
    tmp_path: Path, monkeypatch
) -> None:
    """img1 changed and img4-7 added to a finished run of 4: the rerun segments img1, img4
    | img5, img6 | img7. Stopped in the second batch, its resume grouped photos by their
    place in the folder (img4 with img5) and segmented img4 again in another batch; now the
    stopped run's first batch is kept, and the rest go through as they would have."""
    img, _ = make_folder(tmp_path / "real", n=4)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)
    changed_photo(img)
    for i in range(4, 8):
        cv2.imwrite(str(img / f"img{i}.png"), np.full((40, 56, 3), 20 * i, np.uint8))
    stopped_run(monkeypatch, model, img, out, photos=2)  # img1, img4 done; stopped in img5
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert sorted(names) == ["img5.png", "img6.png", "img7.png"]


def settled(img: Path) -> None:
    """Every photo last written an hour ago, as photos copied in earlier are."""
    for photo in img.iterdir():
        past = photo.stat().st_mtime_ns - 3600 * 10**9
        os.utime(photo, ns=(past, past))


def files_read(monkeypatch) -> list[Path]:
    """The files whose digests are read from now on."""
    read: list[Path] = []
    digest = gan.staging.file_digest

    def reading(path: str | Path) -> str:
        read.append(Path(path))
        return digest(path)

    monkeypatch.setattr(gan.staging, "file_digest", reading)
    monkeypatch.setattr(gan.evaluate, "file_digest", reading)
    return read


def test_a_rerun_reads_no_unchanged_photo_nor_png_again(tmp_path: Path, monkeypatch) -> None:
    """Each reuse of a finished run read every photo and both its PNGs again (minutes on
    10,000 large photos): a photo is now known by its settled look (device, inode, size and
    times), a PNG by its stamp. Photos just written are read until they have settled, then
    not again; a photo added is read (and segmented) alone."""
    img, _ = make_folder(tmp_path / "real", n=4)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)  # photos just written: not yet settled
    settled(img)
    read = files_read(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert sorted(p.name for p in read) == [f"img{i}.png" for i in range(4)]  # the photos
    read.clear()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert read == [] and names == []
    cv2.imwrite(str(img / "img4.png"), np.full((40, 56, 3), 200, np.uint8))
    predict_folder(model, img, out, batch_size=2)
    assert names == ["img4.png"] and {p.name for p in read} == {"img4.png"}


def decoded(monkeypatch) -> list[str]:
    """The photos predict's check of the folder (``validate``) decodes from now on."""
    names: list[str] = []
    problems = ImageFolder.problems

    def counting(self: ImageFolder, indices, *args, **kw) -> list:
        indices = list(indices)
        names.extend(self.images[i].name for i in indices)
        return problems(self, indices, *args, **kw)

    monkeypatch.setattr(ImageFolder, "problems", counting)
    return names


def test_a_rerun_checks_only_new_and_changed_photos(tmp_path: Path, monkeypatch) -> None:
    """A rerun decoded every photo to check it, those whose PNGs it reuses too (0.47 s of a
    0.55 s rerun on 300 DeepCrack photos): the finished run's photos found by their settled
    look as it read them are trusted; a photo added or changed is checked (a truncated one
    refused), and every photo under another model, whose run reuses none."""
    img, _ = make_folder(tmp_path / "real", n=4)
    settled(img)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)
    checked = decoded(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert checked == []
    cv2.imwrite(str(img / "img4.png"), np.full((40, 56, 3), 200, np.uint8))
    break_photos(img, "img1")
    with pytest.raises(DataError, match=r"img1\.png: "):
        predict_folder(model, img, out, batch_size=2)
    assert sorted(checked) == ["img1.png", "img4.png"]
    checked.clear()
    predict_folder(tiny_model(1), img, out, batch_size=2, skip_bad_photos=True)
    assert sorted(checked) == [f"img{i}.png" for i in range(5)]


def test_a_resumed_run_checks_only_photos_the_stopped_run_did_not_finish(
    tmp_path: Path, monkeypatch
) -> None:
    """A resume decoded every photo to check it, those the stopped run had segmented (and
    so decoded) too: the photos in the journal of the staging it takes over, found by their
    settled look, are trusted as a finished run's are; a changed one is checked again."""
    img, _ = make_folder(tmp_path / "real", n=N)
    settled(img)
    model, out = tiny_model(), tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)  # img0-img3 done
    changed_photo(img)
    checked = decoded(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert sorted(checked) == ["img1.png", "img4.png", "img5.png", "img6.png"]


def test_a_photo_rewritten_with_its_time_put_back_is_segmented_again(
    tmp_path: Path, monkeypatch
) -> None:
    """The same device, inode, size and modification time are not enough where a tool puts
    the time back (``touch -r``, ``cp -p`` over the photo): its change time tells it."""
    img = tmp_path / "img"
    img.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # BMPs: one byte size for every photo of one size
        cv2.imwrite(str(img / f"img{i}.bmp"), rng.integers(0, 255, (48, 64, 3), np.uint8))
    settled(img)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)
    photo = img / "img1.bmp"
    before = photo.stat()
    with open(photo, "r+b") as f:  # in place: the same inode
        f.seek(-64 * 3, os.SEEK_END)
        f.write(bytes(64 * 3))
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert photo.stat().st_size == before.st_size and photo.stat().st_ino == before.st_ino
    predict_folder(model, img, tmp_path / "clean", batch_size=2)
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert names == ["img1.png"]
    assert pngs(out) == pngs(tmp_path / "clean")


def valid_outputs(out: Path, img: Path) -> None:
    """Each photo's mask (0/255) and overlay are in place at the photo's size."""
    photos = sorted(img.glob("*.png"))
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == [p.name for p in photos]
    for photo in photos:
        h, w = cv2.imread(str(photo)).shape[:2]
        mask = cv2.imread(str(out / "masks" / photo.name), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / "overlays" / photo.name), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}
        assert overlay.shape == (h, w, 3)


def test_a_rerun_with_a_smaller_batch_keeps_the_stopped_runs_photos(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The usual rerun after a GPU ran out of memory on a large photo lowers batch_size: it
    redid every finished photo (the batch size was in the settings key). Now each photo that
    still holds is kept, not its whole batch of the stopped run (img0 beside the changed
    img1), and the rest go through at the new batch size."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model = tiny_model()
    predict_folder(model, img, tmp_path / "clean2", batch_size=2)
    out = tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)  # img0-3 done at batch_size=2
    changed_photo(img)
    predict_folder(model, img, tmp_path / "clean1", batch_size=1)
    capsys.readouterr()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=1)
    said = capsys.readouterr().out
    assert sorted(names) == ["img1.png", "img4.png", "img5.png", "img6.png"]
    assert (
        "resuming: 3 of 7 photos already segmented (those at batch_size=2; the rest at "
        "batch_size=1)" in said
    )
    assert "discarded" not in said
    kept = {f"{sub}/img{i}.png" for sub in ("masks", "overlays") for i in (0, 2, 3)}
    clean2, clean1 = pngs(tmp_path / "clean2"), pngs(tmp_path / "clean1")
    assert pngs(out) == {n: (clean2 if n in kept else clean1)[n] for n in clean1}
    assert not list(out.glob(".*"))


def test_each_kept_photo_keeps_its_batch_size_over_several_reruns(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Stopped at batch_size=2, then at 1, then finished at 2: the journal, rewritten by
    each rerun under its own key, still says which photos went through at which size."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model = tiny_model()
    out = tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)  # img0-3 at batch_size=2
    stop_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(model, img, out, batch_size=1)  # img4 at batch_size=1
    monkeypatch.undo()
    staged = {p.name: p.read_bytes() for p in out.glob(".masks.tmp-*/img[0-4].png")}
    capsys.readouterr()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    said = capsys.readouterr().out
    assert sorted(names) == ["img5.png", "img6.png"]
    assert (
        "resuming: 5 of 7 photos already segmented (4 at batch_size=2, 1 at batch_size=1; "
        "the rest at batch_size=2)" in said
    )
    assert {n: (out / "masks" / n).read_bytes() for n in staged} == staged
    valid_outputs(out, img)
    assert not list(out.glob(".*"))


def test_a_stopped_runs_work_is_discarded_after_an_upgrade_of_the_code(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The code that makes the PNGs is in the settings key: an upgrade that drew overlays
    otherwise resumed into a mix of old and new PNGs unless PREDICTION_FORMAT was raised by
    hand. Here a module of that code (one made for the test) is edited between the runs."""
    (tmp_path / "_resume_code_probe.py").write_text("LEVEL = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(gan.evaluate, "PREDICTION_CODE", (*PREDICTION_CODE, "_resume_code_probe"))
    img, _ = make_folder(tmp_path / "real", n=N)
    model = tiny_model()
    out = tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)
    monkeypatch.setattr(gan.evaluate, "PREDICTION_CODE", (*PREDICTION_CODE, "_resume_code_probe"))
    (tmp_path / "_resume_code_probe.py").write_text("LEVEL = 2\n")
    capsys.readouterr()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    sys.modules.pop("_resume_code_probe", None)
    said = capsys.readouterr().out
    assert len(names) == N and "resuming" not in said
    assert "note: 4 photos a stopped run segmented with another model, other settings or " in said
    assert not list(out.glob(".*"))


def as_if_of(out: Path, pid: int, owner: dict | None) -> None:
    """This process's staging renamed to ``pid``'s, with ``owner`` as its owner record
    (None: none, as staging made before owners were recorded)."""
    for sub in ("masks", "overlays"):
        folder = out / f".{sub}.tmp-{pid}"
        os.rename(out / f".{sub}.tmp-{os.getpid()}", folder)
        if owner is None:
            (folder / OWNER).unlink()
        else:
            (folder / OWNER).write_text(json.dumps(owner))


@pytest.mark.parametrize("recorded", [True, False], ids=["owner", "no-owner-record"])
def test_a_live_runs_staging_is_left_to_it(tmp_path: Path, monkeypatch, recorded: bool) -> None:
    """Two predicts into one out_dir at once: neither takes over, nor clears, the other's
    staging while its process runs (kept from before resuming existed), whether its owner
    is recorded or the staging is from before owners were."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model = tiny_model()
    out = tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)
    live = os.getppid()  # the process that started this one: running
    as_if_of(out, live, process_identity(live) if recorded else None)
    theirs = {p: p.read_bytes() for p in out.glob(f".*.tmp-{live}/*")}
    names, checked = segmented(monkeypatch), decoded(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert len(names) == N and len(checked) == N  # its journal trusts nothing here
    assert {p: p.read_bytes() for p in out.glob(f".*.tmp-{live}/*")} == theirs
    shutil.rmtree(out / f".masks.tmp-{live}")
    shutil.rmtree(out / f".overlays.tmp-{live}")


@pytest.mark.parametrize("recorded", [True, False], ids=["owner", "no-owner-record"])
def test_a_stopped_runs_staging_is_resumed_though_its_pid_is_now_another_process(
    tmp_path: Path, monkeypatch, recorded: bool
) -> None:
    """After a reboot or a container's restart another process can hold a stopped run's
    pid: its staging read as a live run's, was never resumed nor cleared, and the rerun
    began at photo 1. A process that started at another time is not its owner; nor, for
    staging without an owner record, one that started after the staging last changed."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model = tiny_model()
    predict_folder(model, img, tmp_path / "clean", batch_size=2)
    out = tmp_path / "out"
    stopped_run(monkeypatch, model, img, out, photos=4)
    other = os.getppid()  # running, but not the stopped run
    if recorded:  # the stopped run's record: the same pid and boot, another start
        owner = process_identity(other)
        assert "start" in owner, "this test needs /proc"
        as_if_of(out, other, {**owner, "start": owner["start"] + 1})
    else:
        as_if_of(out, other, None)
        now = time.time()
        monkeypatch.setattr(gan.staging, "started_at", lambda pid: now + 60)
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2)
    assert sorted(names) == ["img4.png", "img5.png", "img6.png"]
    assert pngs(out) == pngs(tmp_path / "clean") and not list(out.glob(".*"))


def break_photos(img: Path, *stems: str) -> None:
    """A truncated file (a copy cut short) for each stem: it does not decode."""
    for stem in stems:
        path = img / f"{stem}.png"
        path.write_bytes(path.read_bytes()[:40])


def test_bad_photos_refuse_predict_unless_skipped_then_are_listed_with_their_reason(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """3 truncated JPEGs among 10,000 photos refused the 9,997 good ones: by default still,
    every bad one named; ``skip_bad_photos`` segments the rest, lists the bad ones in
    skipped.json and removes an earlier run's PNGs of them, which would pass for current."""
    img, _ = make_folder(tmp_path / "real", n=5)
    model, out = tiny_model(), tmp_path / "out"
    predict_folder(model, img, out, batch_size=2)  # an earlier run, every photo good then
    earlier = pngs(out)
    break_photos(img, "img1", "img3")
    refused = r"img1.png: .* \(and 1 more bad files: .*img3.png.*\); skip_bad_photos=true segments"
    with pytest.raises(DataError, match=refused):
        predict_folder(model, img, out, batch_size=2)
    assert pngs(out) == earlier and not (out / SKIPPED).exists()
    capsys.readouterr()
    written = predict_folder(model, img, out, batch_size=2, skip_bad_photos=True)
    said = capsys.readouterr().out
    assert [p.name for p in written] == ["img0.png", "img2.png", "img4.png"]
    good = sorted(p for p in img.glob("*.png") if p.stem not in ("img1", "img3"))
    for sub in ("masks", "overlays"):
        assert sorted(p.name for p in (out / sub).glob("*.png")) == [p.name for p in good]
        assert read_json(out / sub / ".written.json")["names"] == [p.name for p in good]
    for photo in good:
        mask = cv2.imread(str(out / "masks" / photo.name), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 255}
    record = read_json(out / SKIPPED)
    assert [row["photo"] for row in record["skipped"]] == ["img1.png", "img3.png"]
    assert all("unreadable or corrupt image" in row["reason"] for row in record["skipped"])
    assert record["segmented"] == 3
    assert (
        f"2 of 5 photos skipped (unreadable, damaged or too small), each with its reason in {out / SKIPPED}"
        in said
    )
    assert not list(out.glob(".*"))
    # fixed, a rerun segments them alone, and the list of an earlier run's skipped photos goes
    make_folder(tmp_path / "real", n=5)
    names = segmented(monkeypatch)

    def no_links(source: Path, target: Path) -> None:
        raise OSError(f"{target}: links not supported")  # a filesystem without them: copies

    monkeypatch.setattr(os, "link", no_links)
    written = predict_folder(model, img, out, batch_size=2, skip_bad_photos=True)
    assert sorted(names) == ["img1.png", "img3.png"]
    assert len(written) == 5 and not (out / SKIPPED).exists()
    assert pngs(out) == earlier


def listed_without_pngs(out: Path) -> bool:
    """Whether ``SKIPPED``, where there is one, names only photos without PNGs in place."""
    if not (out / SKIPPED).exists():
        return True
    listed = {row["photo"] for row in read_json(out / SKIPPED)["skipped"]}
    return not listed & {p.name for p in (out / "masks").glob("*.png")}


@pytest.mark.parametrize("killed_after", ["masks/img0.png", "overlays/img2.png"])
@pytest.mark.parametrize("then", ["fixed", "broken"])
def test_a_kill_as_the_pngs_go_in_place_leaves_no_other_runs_skipped_list(
    tmp_path: Path, monkeypatch, then: str, killed_after: str
) -> None:
    """skipped.json was written after the PNGs went in place: a kill -9 between left the
    earlier run's list beside the new PNGs (img1 said skipped, its new PNGs there); then it
    was removed before the first PNG moved, and a kill as they moved left no list though
    img1 was skipped. Now this run's list replaces the earlier one before the first PNG
    moves; a stopped run's staged list is not the rerun's (img1 fixed since), and the rerun
    ends with the right list."""
    img, _ = make_folder(tmp_path / "real", n=3)
    model, out = tiny_model(), tmp_path / "out"
    if then == "fixed":
        break_photos(img, "img1")
    predict_folder(model, img, out, batch_size=2, skip_bad_photos=True)
    make_folder(tmp_path / "real", n=3)
    if then == "broken":
        break_photos(img, "img1")
    replace = os.replace

    def killed_as_they_move(source: str | Path, target: str | Path) -> None:
        replace(source, target)
        if Path(target).relative_to(out).as_posix() == killed_after:  # no Python after kill -9
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed_as_they_move)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(model, img, out, batch_size=2, skip_bad_photos=True)
    monkeypatch.undo()
    assert listed_without_pngs(out)
    if then == "broken":  # this run's list, in place before its first PNG
        assert [row["photo"] for row in read_json(out / SKIPPED)["skipped"]] == ["img1.png"]
    else:  # this run skipped none: the earlier run's list is gone
        assert not (out / SKIPPED).exists()
    make_folder(tmp_path / "real", n=3)  # every photo good for the rerun
    predict_folder(model, img, out, batch_size=2, skip_bad_photos=True)
    assert len(list((out / "masks").glob("*.png"))) == 3 and not (out / SKIPPED).exists()
    assert not list(out.glob(".*"))


def test_a_folder_of_bad_photos_alone_is_refused_though_bad_ones_are_skipped(
    tmp_path: Path,
) -> None:
    img, _ = make_folder(tmp_path / "real", n=2)
    break_photos(img, "img0", "img1")
    with pytest.raises(DataError, match=r"none of its 2 photos can be segmented: .*img0.png"):
        predict_folder(tiny_model(), img, tmp_path / "out", skip_bad_photos=True)
    assert not (tmp_path / "out" / "masks").exists() and not (tmp_path / "out" / SKIPPED).exists()
    # refused by default, it is not pointed to skip_bad_photos, which has no rest to segment
    with pytest.raises(DataError, match=r"img1.png") as refused:
        predict_folder(tiny_model(), img, tmp_path / "out")
    assert "skip_bad_photos" not in str(refused.value)


@pytest.mark.parametrize("fixed", [False, True], ids=["still-bad", "fixed"])
def test_a_stopped_predict_that_skips_bad_photos_resumes_by_name(
    tmp_path: Path, monkeypatch, capsys, fixed: bool
) -> None:
    """The skipped photo is left out of the folder the journal counts: the rerun keeps the
    stopped run's photos by name; a photo fixed meanwhile is segmented with its batch."""
    img, _ = make_folder(tmp_path / "real", n=N)
    model, out = tiny_model(), tmp_path / "out"
    break_photos(img, "img1")
    stopped_run(monkeypatch, model, img, out, photos=4, skip_bad_photos=True)  # img0, 2, 3, 4
    if fixed:
        make_folder(tmp_path / "real", n=N)
    predict_folder(model, img, tmp_path / "clean", batch_size=2, skip_bad_photos=True)
    capsys.readouterr()
    names = segmented(monkeypatch)
    predict_folder(model, img, out, batch_size=2, skip_bad_photos=True)
    said = capsys.readouterr().out
    if fixed:  # batches img0-1 and img4-5 again; img2-3's kept
        assert "resuming: 2 of 7 photos" in said and "skipped" not in said
        assert sorted(names) == ["img0.png", "img1.png", "img4.png", "img5.png", "img6.png"]
    else:
        assert "resuming: 4 of 6 photos" in said and "1 of 7 photos skipped" in said
        assert sorted(names) == ["img5.png", "img6.png"]
    assert pngs(out) == pngs(tmp_path / "clean") and not list(out.glob(".*"))
