"""Self-training labels: confident pixels become classes, the uncertain band is ignored, and the
output is a resumable sharded dataset the task model trains on."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from _cli_fixtures import common_overrides, run_tool, task_overrides, tool_exit_code
from _task_fixtures import make_shards
from torch import nn

from gan.pseudo_label import check_band, pseudo_label_folder, pseudo_mask, score_labels
from gan.task_data import SegmentationDataModule
from synth.digests import listing_digest
from synth.distributions import ConfigError
from synth.io import (
    CARD,
    IGNORE_INDEX,
    DataError,
    ShardedDataset,
    read_card,
    write_json_atomic,
    write_png,
)
from synth.toy import write_toy_real_folder


class BrightnessTeacher(nn.Module):
    """Crack probability = image brightness in [0, 1]: a teacher whose answer is known."""

    device = torch.device("cpu")

    def inference_net(self) -> nn.Module:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = ((x.mean(1) + 1) / 2).clamp(1e-4, 1 - 1e-4)
        return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], 1)


def make_photos(folder, n: int = 5, h: int = 12, w: int = 18) -> None:
    """Each photo: a dark left third, a mid-grey middle third, a bright right third."""
    folder.mkdir(parents=True)
    for i in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        image[:, w // 3 : 2 * w // 3] = 128
        image[:, 2 * w // 3 :] = 250
        write_png(folder / f"photo{i}.png", image, rgb=True)


def test_pseudo_mask_keeps_confident_pixels_and_ignores_the_band():
    prob = torch.tensor([[0.0, 0.3, 0.31, 0.5, 0.69, 0.7, 1.0]])
    assert pseudo_mask(prob, 0.3, 0.7).tolist() == [[0, 0, 255, 255, 255, 1, 1]]


@pytest.mark.parametrize(("low", "high"), [(0.7, 0.3), (0.5, 0.5), (-0.1, 0.7), (0.3, 1.2)])
def test_a_band_that_is_not_an_interval_of_probabilities_is_refused(low, high):
    with pytest.raises(ConfigError, match="need 0 <= low < high <= 1"):
        check_band(low, high)


def test_pseudo_labels_are_a_sharded_dataset_the_task_model_trains_on(tmp_path):
    make_photos(tmp_path / "photos")
    out = tmp_path / "pseudo"
    card = pseudo_label_folder(
        BrightnessTeacher(), tmp_path / "photos", out, 0.3, 0.7, shard_size=2, teacher={"id": 1}
    )
    data = ShardedDataset(out)
    assert len(data) == 5 and len(list(out.glob("shard-*"))) == 3
    mask = data[0].semantic
    assert set(np.unique(mask[:, :6])) == {0}  # dark: background
    assert set(np.unique(mask[:, 6:12])) == {IGNORE_INDEX}  # grey, p ~ 0.5: ignored
    assert set(np.unique(mask[:, 12:])) == {1}  # bright: crack
    assert card["crack_share"] == pytest.approx(1 / 3) and card["ignore_share"] == pytest.approx(
        1 / 3
    )
    assert card["pseudo_labels"]["teacher"] == {"id": 1} and read_card(out) == card
    assert data[4].meta["source_image"] == "photo4.png"

    dm = SegmentationDataModule(
        train_dir=[str(out)], test_img=str(tmp_path / "photos"), test_lab="unused", crop_size=8
    )
    batch = dm.open_train()[1]
    assert batch.semantic.shape == (12, 18)


def test_a_lost_shard_is_redone_alone_and_other_labels_are_refused_or_replaced(tmp_path):
    make_photos(tmp_path / "photos")
    out = tmp_path / "pseudo"
    teacher = BrightnessTeacher()
    pseudo_label_folder(teacher, tmp_path / "photos", out, shard_size=2)
    kept = out / "shard-00000" / "manifest.jsonl"
    stamp = kept.stat().st_mtime_ns
    lost = out / "shard-00001"
    for f in sorted(lost.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    lost.rmdir()
    pseudo_label_folder(teacher, tmp_path / "photos", out, shard_size=2)
    assert lost.is_dir() and kept.stat().st_mtime_ns == stamp
    assert len(ShardedDataset(out)) == 5

    with pytest.raises(DataError, match=r"made otherwise \(high, low differ\); delete it, or give"):
        pseudo_label_folder(teacher, tmp_path / "photos", out, 0.1, 0.9, shard_size=2)
    card = pseudo_label_folder(
        teacher, tmp_path / "photos", out, 0.1, 0.9, shard_size=2, replace_stale=True
    )
    assert card["pseudo_labels"]["low"] == 0.1 and card["ignore_share"] == pytest.approx(1 / 3)
    assert kept.stat().st_mtime_ns != stamp

    # Another shard size, a shard lost: the resume read the old layout's shards as the new
    # one's (photos twice, or, here, the last photo never labeled).
    shutil.rmtree(out / "shard-00002")
    with pytest.raises(DataError, match=r"made otherwise \(shard_size differs\)"):
        pseudo_label_folder(teacher, tmp_path / "photos", out, 0.1, 0.9, shard_size=3)
    pseudo_label_folder(
        teacher, tmp_path / "photos", out, 0.1, 0.9, shard_size=3, replace_stale=True
    )
    stems = [s.meta["stem"] for s in ShardedDataset(out)]
    assert stems == [f"{i:08d}" for i in range(5)]


def test_labels_are_scored_against_held_back_masks_with_ignored_pixels_as_background(tmp_path):
    make_photos(tmp_path / "photos", n=3)
    pseudo_label_folder(BrightnessTeacher(), tmp_path / "photos", tmp_path / "pseudo")
    (tmp_path / "masks").mkdir()
    truth = np.zeros((12, 18), np.uint8)
    truth[:, 6:] = 255  # crack: the grey (ignored) and the bright (crack) thirds
    for i in range(3):
        write_png(tmp_path / "masks" / f"photo{i}.png", truth)
    score = score_labels(tmp_path / "pseudo", tmp_path / "photos", tmp_path / "masks")
    assert score["num_images"] == 3
    assert score["precision"] == 1.0 and score["recall"] == 0.5
    assert score["f1"] == pytest.approx(2 / 3, abs=1e-4)

    (tmp_path / "masks" / "photo2.png").unlink()
    with pytest.raises(DataError, match="no mask for 1 image"):
        score_labels(tmp_path / "pseudo", tmp_path / "photos", tmp_path / "masks")


def test_a_label_score_survives_a_rerun_but_not_relabeled_shards(tmp_path):
    make_photos(tmp_path / "photos")
    out = tmp_path / "pseudo"
    card = pseudo_label_folder(BrightnessTeacher(), tmp_path / "photos", out, shard_size=2)
    write_json_atomic(out / "dataset_card.json", {**card, "scored_against": {"f1": 0.7}})
    again = pseudo_label_folder(BrightnessTeacher(), tmp_path / "photos", out, shard_size=2)
    assert again["scored_against"] == {"f1": 0.7} and read_card(out) == again
    shutil.rmtree(out / "shard-00001")
    redone = pseudo_label_folder(BrightnessTeacher(), tmp_path / "photos", out, shard_size=2)
    assert "scored_against" not in redone and "scored_against" not in read_card(out)


def test_an_empty_photo_folder_is_a_clear_error(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    with pytest.raises(DataError, match="photos: no images"):
        pseudo_label_folder(BrightnessTeacher(), tmp_path / "photos", tmp_path / "pseudo")


def test_pseudo_label_tool_feeds_train_task_source_selftrained(tmp_path, capsys):
    """The commands for real; the pseudo-label tool's refusals in this process."""
    write_toy_real_folder(tmp_path / "real", n=3, h=32, w=48)
    make_shards(tmp_path / "out" / "adapted", n=4, h=32, w=48)
    task = [o for o in task_overrides(tmp_path) if not o.startswith("source=")]
    teacher = run_tool("train_task", *task, "source=adapted", "run_name=teacher")
    assert teacher.returncode == 0, teacher.stderr[-2000:]
    paths = [o for o in common_overrides(tmp_path) if o.startswith("paths.")]
    masks = f"score_against={tmp_path / 'real' / 'train_lab'}"
    labeled = run_tool("pseudo_label", *paths, "run_name=teacher", "device=cpu", masks)
    assert labeled.returncode == 0, labeled.stderr[-2000:]
    assert "3 photos pseudo-labeled" in labeled.stdout
    assert "labels vs " in labeled.stdout and "crack F1 " in labeled.stdout
    card = read_card(tmp_path / "out" / "pseudo" / "adapted")
    assert card["pseudo_labels"]["teacher"]["checkpoint"].endswith("teacher/last.ckpt")
    assert card["scored_against"]["num_images"] == 3
    assert 0.0 <= card["scored_against"]["f1"] <= 1.0
    student = run_tool("train_task", *task, "source=selftrained", "run_name=student")
    assert student.returncode == 0, student.stderr[-2000:]
    assert (tmp_path / "out" / "runs" / "student" / "metrics.json").is_file()

    assert tool_exit_code("pseudo_label", *paths, "run_name=nobody", "device=cpu") == 1
    missing = capsys.readouterr().err
    assert missing.startswith("error: ") and "teacher checkpoint not found" in missing
    assert missing.count("\n") == 1
    # masks to score against that are not there: said before any photo is labeled
    gone, out = tmp_path / "nowhere", f"out_dir={tmp_path / 'out' / 'pseudo2'}"
    assert (
        tool_exit_code("pseudo_label", *paths, "run_name=teacher", f"score_against={gone}", out)
        == 1
    )
    unscored = capsys.readouterr().err
    assert unscored.startswith("error: ") and f"{gone}" in unscored
    assert not (tmp_path / "out" / "pseudo2").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({CARD: '{"translation": {"step": 800}}'}, "holds a translated dataset, not pseudo"),
        ({CARD: '{"kind": "synthetic"}'}, "holds a synthetic dataset, not pseudo-labels"),
        # a stopped render: its shards come before its card
        ({"shard-00000/manifest.jsonl": "{}\n"}, "holds files but no pseudo-label card"),
    ],
)
def test_a_folder_holding_another_dataset_is_never_written_into(tmp_path, files, message):
    """Not even to replace stale labels (the pipeline's way): a rendered set was said to
    hold "pseudo-labels made otherwise", and a stopped render's shards would have been read
    as labels."""
    make_photos(tmp_path / "photos")
    other = tmp_path / "other"
    for name, text in files.items():
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_text(text)
    for replace_stale in (False, True):
        with pytest.raises(DataError, match=f"^{other}: {message}"):
            teacher = BrightnessTeacher()
            pseudo_label_folder(teacher, tmp_path / "photos", other, replace_stale=replace_stale)
    assert sorted(str(p.relative_to(other)) for p in other.rglob("*") if p.is_file()) == sorted(
        files
    )


def test_labels_of_a_moved_teacher_are_kept_but_another_teachers_are_redone(tmp_path):
    """A teacher with a digest is that digest: the same checkpoint at a new path (a copied
    checkpoints folder) keeps the labels and records the new path; another digest relabels."""
    make_photos(tmp_path / "photos")
    out = tmp_path / "pseudo"

    def label(path: str, digest: str) -> dict:
        teacher = {"checkpoint": path, "checkpoint_sha256": digest}
        return pseudo_label_folder(
            BrightnessTeacher(), tmp_path / "photos", out, teacher=teacher, replace_stale=True
        )

    label("/old/last.ckpt", "a")
    kept = out / "shard-00000" / "manifest.jsonl"
    stamp = kept.stat().st_mtime_ns
    moved = label("/new/last.ckpt", "a")
    assert kept.stat().st_mtime_ns == stamp
    assert moved["pseudo_labels"]["teacher"]["checkpoint"] == "/new/last.ckpt"
    label("/new/last.ckpt", "b")
    assert kept.stat().st_mtime_ns != stamp


def test_labels_follow_the_photos_not_their_folder(tmp_path):
    """The photos are their listing digest: moved (a remounted data folder) they keep their
    labels; one replaced in place, same name and count, relabels. A card from before the
    digest is valid where its photos still are, and gets the digest."""
    make_photos(tmp_path / "photos")
    out = tmp_path / "pseudo"

    def label(folder) -> dict:
        return pseudo_label_folder(BrightnessTeacher(), folder, out, replace_stale=True)

    label(tmp_path / "photos")
    kept = out / "shard-00000" / "manifest.jsonl"
    stamp = kept.stat().st_mtime_ns
    shutil.copytree(tmp_path / "photos", tmp_path / "mounted")
    assert label(tmp_path / "mounted")["pseudo_labels"]["image_dir"].endswith("mounted")
    assert kept.stat().st_mtime_ns == stamp
    card = read_card(out)
    card["pseudo_labels"].pop("photos_sha256")  # as written before the digest
    write_json_atomic(out / "dataset_card.json", card)
    assert "photos_sha256" in label(tmp_path / "mounted")["pseudo_labels"]
    assert kept.stat().st_mtime_ns == stamp
    card["pseudo_labels"].pop("photos_sha256", None)
    write_json_atomic(out / "dataset_card.json", card)
    label(tmp_path / "photos")  # an old card, another place: nothing vouches for the photos
    assert kept.stat().st_mtime_ns != stamp
    stamp, before = kept.stat().st_mtime_ns, read_card(out)["crack_share"]
    dark = np.zeros((12, 18, 3), np.uint8)  # no bright third: no crack pixel in its label
    write_png(tmp_path / "photos" / "photo0.png", dark, rgb=True)
    assert label(tmp_path / "photos")["crack_share"] < before
    assert kept.stat().st_mtime_ns != stamp


def test_a_photo_replaced_by_one_of_the_same_size_relabels(tmp_path):
    """Every BMP of one image size has one byte size, so names and sizes cannot vouch for
    the labels: the photos' bytes do."""
    photos, out = tmp_path / "photos", tmp_path / "pseudo"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"photo{i}.bmp"), np.full((12, 18, 3), 250, np.uint8))
    before = pseudo_label_folder(BrightnessTeacher(), photos, out, replace_stale=True)
    listed = listing_digest(photos)
    cv2.imwrite(str(photos / "photo0.bmp"), np.zeros((12, 18, 3), np.uint8))
    assert listing_digest(photos) == listed
    after = pseudo_label_folder(BrightnessTeacher(), photos, out, replace_stale=True)
    assert after["crack_share"] < before["crack_share"]
    card = read_card(out)
    card["pseudo_labels"].pop("photos_contents_sha256")  # as written before that digest
    write_json_atomic(out / "dataset_card.json", card)
    stamp = (out / "shard-00000" / "manifest.jsonl").stat().st_mtime_ns
    pseudo_label_folder(BrightnessTeacher(), photos, out)  # same listing: kept, digested
    assert (out / "shard-00000" / "manifest.jsonl").stat().st_mtime_ns == stamp
    assert "photos_contents_sha256" in read_card(out)["pseudo_labels"]
