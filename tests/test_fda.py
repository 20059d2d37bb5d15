"""FDA, the training-free baseline: the spectral swap itself, the translated set it writes
(masks carried, deterministic by scene, resumable, stale sets refused) and its command."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from _cli_fixtures import run_tool, tool_exit_code
from _gan_fixtures import make_real, make_synthetic

from gan.fda import fda_dataset, photo_crop, swap_low_amplitude
from gan.translate import is_complete
from synth.distributions import ConfigError
from synth.io import DataError, ShardedDataset, read_card, write_json_atomic


def noise(seed: int, shape=(32, 40, 3), low: int = 0, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.uint8)


def test_the_swap_takes_the_photos_low_frequencies_and_keeps_the_scenes_detail():
    scene, photo = noise(0, low=150, high=230), noise(1, low=20, high=100)
    assert (swap_low_amplitude(scene, scene, 0.2) == scene).all()  # own amplitude: unchanged
    # beta 0 swaps only each channel's mean (the DC term); the detail stays the scene's
    dc = swap_low_amplitude(scene, photo, 0.0).astype(float)
    assert np.abs(dc.mean((0, 1)) - photo.mean((0, 1))).max() < 1.0
    assert np.abs((dc - dc.mean((0, 1))) - (scene - scene.mean((0, 1)))).max() < 1.0

    def low(x):  # what a wide blur keeps
        return cv2.GaussianBlur(x.astype(np.float32), (0, 0), 4)

    wide = swap_low_amplitude(scene, photo, 0.1)
    # closer to the photo's low frequencies than the scene was, with its detail
    assert np.abs(low(wide) - low(photo)).mean() < 0.5 * np.abs(low(scene) - low(photo)).mean()
    detail = np.corrcoef((wide - low(wide)).ravel(), (scene - low(scene)).ravel())[0, 1]
    assert detail > 0.9


@pytest.mark.parametrize("beta", [-0.1, 0.6, True, "0.01"])
def test_the_swap_refuses_a_beta_outside_0_to_one_half(beta):
    with pytest.raises(ConfigError, match="beta="):
        swap_low_amplitude(noise(0), noise(1), beta)


def test_the_swap_refuses_images_of_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        swap_low_amplitude(noise(0), noise(1, shape=(32, 41, 3)), 0.01)


def test_a_photo_smaller_than_the_scene_is_scaled_up_to_cover_it():
    rng = np.random.default_rng(0)
    assert photo_crop(noise(0, shape=(20, 30, 3)), 40, 48, rng).shape == (40, 48, 3)
    assert photo_crop(noise(0, shape=(60, 90, 3)), 40, 48, rng).shape == (40, 48, 3)


@pytest.fixture
def folders(tmp_path):
    src = make_synthetic(tmp_path / "syn", n=5, shard_size=2)
    return src, make_real(tmp_path / "real", n=3, h=30, w=36), tmp_path / "fda"


def test_fda_set_carries_masks_and_depends_on_each_scene_alone(tmp_path, folders):
    src, real, out = folders
    card = fda_dataset(src, out, real, beta=0.05, seed=3, show_progress=False)
    assert card["translation"]["method"] == "fda" and card["translation"]["beta"] == 0.05
    assert card["generator"] == "test" and is_complete(read_card(out))
    for a, b in zip(ShardedDataset(src, load_instance=True), ShardedDataset(out, True)):
        assert (a.semantic == b.semantic).all() and (a.instance == b.instance).all()
        assert not (a.image == b.image).all()
    # the same scenes sharded otherwise: the same images, scene by scene
    regrouped = make_synthetic(tmp_path / "syn3", n=5, shard_size=3)
    fda_dataset(regrouped, tmp_path / "fda3", real, beta=0.05, seed=3, show_progress=False)
    for a, b in zip(ShardedDataset(out), ShardedDataset(tmp_path / "fda3")):
        assert (a.image == b.image).all()
    fda_dataset(src, tmp_path / "seed4", real, beta=0.05, seed=4, show_progress=False)
    assert any(
        (a.image != b.image).any()
        for a, b in zip(ShardedDataset(out), ShardedDataset(tmp_path / "seed4"))
    )


def test_fda_set_resumes_and_refuses_a_set_made_with_another_beta(folders):
    src, real, out = folders
    fda_dataset(src, out, real, beta=0.05, show_progress=False)
    kept = out / "shard-00000" / "image" / "00000000.png"
    os.utime(kept, (0, 0))
    shutil.rmtree(out / "shard-00001")  # as a kill leaves it: the card still in progress
    card = read_card(out)
    card["translation"]["in_progress"] = True
    (out / "dataset_card.json").write_text(json.dumps(card))
    assert not is_complete(read_card(out))
    fda_dataset(src, out, real, beta=0.05, show_progress=False)
    assert kept.stat().st_mtime == 0 and len(ShardedDataset(out)) == 5
    assert is_complete(read_card(out))

    shutil.rmtree(out / "shard-00002")
    with pytest.raises(DataError, match="another method, generator or settings"):
        fda_dataset(src, out, real, beta=0.1, show_progress=False)  # would mix two betas
    assert kept.is_file()
    fda_dataset(src, out, real, beta=0.1, show_progress=False, replace_stale=True)
    assert kept.stat().st_mtime != 0 and read_card(out)["translation"]["beta"] == 0.1


def test_a_set_is_of_the_photos_not_their_folder(tmp_path, folders):
    """Photos moved (a remounted data folder) make the same set, so it is resumed, not
    refused; one replaced in place under the same name makes another."""
    from gan.translate import made_by

    src, real, out = folders
    fda_dataset(src, out, real, beta=0.05, show_progress=False)
    before = read_card(out)
    moved = tmp_path / "mounted"
    shutil.copytree(real, moved)
    shutil.rmtree(out / "shard-00001")
    fda_dataset(src, out, moved, beta=0.05, show_progress=False)  # resumed: no DataError
    assert made_by(read_card(out)) == made_by(before)
    assert read_card(out)["translation"]["real_dir"] == str(moved.resolve())
    photo = sorted(moved.iterdir())[0]
    cv2.imwrite(str(photo), noise(7, (20, 30, 3)))
    shutil.rmtree(out / "shard-00001")
    with pytest.raises(DataError, match="another method, generator or settings"):
        fda_dataset(src, out, moved, beta=0.05, show_progress=False)


def test_a_photo_replaced_by_one_of_the_same_size_makes_another_set(folders):
    src, real, out = folders
    photo = sorted(real.iterdir())[0]
    stored = [cv2.IMWRITE_PNG_COMPRESSION, 0]  # no compression: the byte size is the shape's
    cv2.imwrite(str(photo), noise(7, (30, 36, 3)), stored)
    fda_dataset(src, out, real, beta=0.05, show_progress=False)
    size = photo.stat().st_size
    cv2.imwrite(str(photo), noise(8, (30, 36, 3)), stored)
    assert photo.stat().st_size == size
    shutil.rmtree(out / "shard-00001")
    with pytest.raises(DataError, match="another method, generator or settings"):
        fda_dataset(src, out, real, beta=0.05, show_progress=False)


def test_a_set_begun_before_the_photos_were_digested_resumes_where_they_are(tmp_path, folders):
    src, real, out = folders
    fda_dataset(src, out, real, beta=0.05, show_progress=False)
    shutil.rmtree(out / "shard-00001")
    card = read_card(out)
    for digest in ("photos_sha256", "photos_contents_sha256"):  # as written up to session 33
        card["translation"].pop(digest)
    write_json_atomic(out / "dataset_card.json", card)
    fda_dataset(src, out, real, beta=0.05, show_progress=False)  # resumed: no DataError
    assert "photos_contents_sha256" in read_card(out)["translation"]
    shutil.rmtree(out / "shard-00001")
    write_json_atomic(out / "dataset_card.json", card)
    moved = tmp_path / "mounted"
    shutil.copytree(real, moved)
    with pytest.raises(DataError, match="another method"):  # elsewhere nothing vouches
        fda_dataset(src, out, moved, beta=0.05, show_progress=False)


def test_shards_with_no_card_to_vouch_for_them_are_not_resumed(folders):
    src, real, out = folders
    fda_dataset(src, out, real, show_progress=False)
    (out / "dataset_card.json").unlink()
    with pytest.raises(DataError, match="no dataset card"):
        fda_dataset(src, out, real, show_progress=False)


def test_measurements_of_unchanged_images_survive_a_rerun(folders):
    src, real, out = folders
    fda_dataset(src, out, real, show_progress=False)
    card = read_card(out)
    (out / "dataset_card.json").write_text(json.dumps({**card, "domain_gap": {}}))
    assert "domain_gap" in fda_dataset(src, out, real, show_progress=False)


def test_fda_command_writes_the_set_and_names_a_bad_beta(tmp_path, folders, capsys):
    """The command for real; its refusals in this process (tool_exit_code: no tool start)."""
    src, real, out = folders
    args = [f"src_dir={src}", f"out_dir={out}", f"real_dir={real}", f"paths.log_dir={tmp_path}"]

    def refused(*overrides: str) -> str:
        code, err = tool_exit_code("fda", *overrides), capsys.readouterr().err
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
        assert not out.exists()
        return err

    assert "beta=0.7" in refused(*args, "beta=0.7")
    missing = refused(*args[:2], f"real_dir={tmp_path / 'nowhere'}", args[3])
    assert missing.rstrip().endswith("nowhere: image folder not found")
    # a mistyped FID weights path: refused before any scene is made, not a silent proxy
    typo = refused(*args, f"inception_weights={tmp_path / 'pt_inceptoin.pth'}")
    assert "pt_inceptoin.pth: file not found (null measures the named proxy" in typo
    good = run_tool("fda", *args, "beta=0.02", "eval_size=16")
    assert good.returncode == 0, good.stderr[-2000:]
    assert "FDA moved the synthetic set's" in good.stdout  # nothing was translated
    card = read_card(out)
    assert card["translation"]["beta"] == 0.02 and "after" in card["domain_gap"]


def test_a_beta_whose_window_floors_to_the_mean_is_said(folders, capsys):
    """beta=0.01 on 40 px scenes swaps what beta 0 swaps, each channel's mean: the tiny
    pipeline's setting made such a set without a word."""
    src, real, out = folders
    fda_dataset(src, out, real, beta=0.01, show_progress=False)
    assert capsys.readouterr().out == (
        "note: beta=0.01 on 40 px scenes swaps each channel's mean alone, as beta=0 does "
        "(the window's half-width is floor(0.01 x 40) = 0); beta=0.025 or more swaps low "
        "frequencies too\n"
    )
    fda_dataset(src, out.with_name("wide"), real, beta=0.025, show_progress=False)
    fda_dataset(src, out.with_name("mean"), real, beta=0, show_progress=False)
    assert "note" not in capsys.readouterr().out
