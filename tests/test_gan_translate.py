"""Translation keeps masks byte-identical, is resumable and loads checkpoints weights-only."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch
from _gan_fixtures import make_synthetic, tiny_gan

from gan.fid import PROXY_NAME
from gan.translate import (
    background_contrast,
    describe_gap,
    grey_shift_by_class,
    is_complete,
    load_generator,
    measure_translation,
    texture_level,
    translate_dataset,
    write_translated_dataset,
)
from synth.io import (
    CARD,
    DataError,
    Sample,
    ShardedDataset,
    read_card,
    write_json_atomic,
    write_shard,
)


def save_checkpoint(model, path, step: int = 7) -> str:
    """What Lightning writes, reduced to what translation reads."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "global_step": step,
            "hyper_parameters": dict(model.hparams),
        },
        path,
    )
    return str(path)


@pytest.fixture
def source(tmp_path):
    return make_synthetic(tmp_path / "syn", n=5, shard_size=2, h=38, w=46)  # not multiples of 4


def test_translate_copies_masks_byte_identical(tmp_path, source):
    ckpt = save_checkpoint(tiny_gan(), tmp_path / "gan.ckpt")
    out = tmp_path / "adapted"
    card = translate_dataset(ckpt, source, out, batch_size=2, device="cpu", show_progress=False)
    src_files = sorted(p.relative_to(source) for p in source.glob("shard-*/*/*.png"))
    assert src_files == sorted(p.relative_to(out) for p in out.glob("shard-*/*/*.png"))
    for rel in src_files:
        if rel.parts[1] in ("semantic", "instance"):
            assert (source / rel).read_bytes() == (out / rel).read_bytes(), rel
    src_ds, out_ds = ShardedDataset(source), ShardedDataset(out)
    assert len(out_ds) == 5
    for a, b in zip(src_ds, out_ds):
        assert a.image.shape == b.image.shape and not (a.image == b.image).all()
        assert b.meta["translated_from"].endswith(f"image/{a.meta['stem']}.png")
        assert {k: v for k, v in b.meta.items() if k != "translated_from"} == a.meta
    assert card["translation"]["step"] == 7 and card["generator"] == "test"
    assert read_card(out)["translation"]["checkpoint"].endswith("gan.ckpt")


def test_translate_resumes_skipping_complete_shards(tmp_path, source):
    model = tiny_gan()
    out = tmp_path / "adapted"
    translate_dataset(model, source, out, device="cpu", show_progress=False)
    kept = out / "shard-00000" / "image" / "00000000.png"
    os.utime(kept, (0, 0))
    redo = out / "shard-00001"
    import shutil

    shutil.rmtree(redo)
    (out / "shard-00002.tmp-123").mkdir()  # a killed writer's leftovers
    translate_dataset(model, source, out, device="cpu", show_progress=False)
    assert kept.stat().st_mtime == 0  # complete shard untouched
    assert (redo / "manifest.jsonl").is_file() and not (out / "shard-00002.tmp-123").exists()
    assert len(ShardedDataset(out)) == 5
    lines = (redo / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(x)["index"] for x in lines] == [2, 3]


def test_translate_refuses_pickled_code(tmp_path, source):
    from gan.checkpoint import UnsafeCheckpointError

    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": object()}}, bad)
    with pytest.raises(UnsafeCheckpointError):
        translate_dataset(str(bad), source, tmp_path / "o", device="cpu", show_progress=False)


def test_a_checkpoint_without_the_generator_is_named_in_one_line(tmp_path, source):
    from gan.task import CrackSegmenter

    task = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2})
    ckpt = tmp_path / "task.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}, ckpt)
    with pytest.raises(DataError, match=r"task.ckpt: no generator 'g_ba' in it"):
        load_generator(ckpt, "b2a")
    out = tmp_path / "o"
    with pytest.raises(DataError, match="no generator 'g_ab'"):
        translate_dataset(ckpt, source, out, device="cpu", show_progress=False)
    assert not out.exists()


def test_generator_weights_unlike_their_settings_are_named_in_one_line(tmp_path) -> None:
    """A checkpoint whose generator settings were edited (or another model's weights put
    under them) failed in load_state_dict with every key name in a traceback."""
    from _gan_fixtures import tiny_gan

    from gan.checkpoint import UnsafeCheckpointError

    gan = tiny_gan()
    hparams = {**dict(gan.hparams), "generator": {"kind": "light", "ngf": 8, "blocks": 1}}
    ckpt = tmp_path / "edited.ckpt"
    torch.save({"state_dict": gan.state_dict(), "hyper_parameters": hparams}, ckpt)
    with pytest.raises(UnsafeCheckpointError, match=r"edited\.ckpt: its g_ab weights are not"):
        load_generator(ckpt)


def write_scenes(root, crack_grey: int, n: int = 3, texture: int = 0) -> None:
    """Grey-100 images (a +-``texture`` checkerboard) with a crack band of ``crack_grey``
    (the same mask in every set)."""
    mask = np.zeros((16, 20), np.uint8)
    mask[6:9] = 1
    checker = (np.indices((16, 20)).sum(0) % 2 * 2 - 1) * texture
    image = np.repeat((100 + checker)[..., None], 3, axis=2).astype(np.uint8)
    image[mask == 1] = crack_grey
    write_shard(root, 0, [Sample(image, mask, meta={"index": i}) for i in range(n)])


def test_grey_shift_by_class_separates_crack_from_background(tmp_path):
    write_scenes(tmp_path / "src", crack_grey=50)
    write_scenes(tmp_path / "lighter", crack_grey=60)
    assert grey_shift_by_class(tmp_path / "src", tmp_path / "src") == {
        "grey_shift_crack": 0.0,
        "grey_shift_background": 0.0,
    }
    shift = grey_shift_by_class(tmp_path / "src", tmp_path / "lighter")
    assert shift == {"grey_shift_crack": 10.0, "grey_shift_background": 0.0}
    write_scenes(tmp_path / "short", crack_grey=50, n=2)
    with pytest.raises(DataError, match="2 samples"):
        grey_shift_by_class(tmp_path / "src", tmp_path / "short")


def test_measure_translation_goes_into_the_card_and_reads_as_one_sentence(tmp_path, capsys):
    write_scenes(tmp_path / "src", crack_grey=50)
    write_scenes(tmp_path / "lighter", crack_grey=60)
    (tmp_path / "real").mkdir()
    for i, grey in enumerate((60, 100)):
        cv2.imwrite(str(tmp_path / "real" / f"{i}.png"), np.full((16, 20, 3), grey, np.uint8))
    gap = measure_translation(tmp_path / "src", tmp_path / "lighter", tmp_path / "real", size=16)
    assert capsys.readouterr().out.count("FID unavailable") == 1  # said once, not per set
    assert (gap["grey_shift_crack"], gap["grey_shift_background"]) == (10.0, 0.0)
    assert gap["after"][PROXY_NAME] < gap["before"][PROXY_NAME]  # crack pixels closer to 60
    assert read_card(tmp_path / "lighter")["domain_gap"] == gap
    sentence = describe_gap(gap)
    assert f"{gap['before'][PROXY_NAME]:.1f} to {gap['after'][PROXY_NAME]:.1f}" in sentence
    assert "+10.00 on crack pixels, +0.00 on background; crack pixels lightened more" in sentence
    even = describe_gap(gap | {"grey_shift_crack": -1.31, "grey_shift_background": -1.27})
    assert "-1.31 on crack pixels, -1.27 on background. Background texture" in even
    both = describe_gap(gap | {"grey_shift_crack": -7.09, "grey_shift_background": -12.39})
    assert "-12.39 on background; crack pixels darkened less than the background" in both
    assert f"went from {gap['background_contrast_source']:.1f} to" in sentence
    assert f"against {gap['texture_real']:.1f} in the real photos" in sentence
    assert gap["texture_real"] == 0.0  # flat grey photos


def test_a_set_of_one_photo_is_not_measured_and_says_why(tmp_path, capsys):
    """numpy's LinAlgError (a covariance of one image) ended the pipeline's translate stage,
    on every rerun, for a user with one photo."""
    write_scenes(tmp_path / "src", crack_grey=50)
    write_scenes(tmp_path / "lighter", crack_grey=60)
    (tmp_path / "real").mkdir()
    cv2.imwrite(str(tmp_path / "real" / "0.png"), np.full((16, 20, 3), 60, np.uint8))
    assert measure_translation(tmp_path / "src", tmp_path / "lighter", tmp_path / "real") == {}
    assert capsys.readouterr().out.endswith(
        f"note: a distance between image sets needs two or more in each (1 in "
        f"{tmp_path / 'real'}, 3 in {tmp_path / 'src'}): not measured\n"
    )
    assert "domain_gap" not in read_card(tmp_path / "lighter")


def test_texture_level_reads_sharded_sets_and_plain_photo_folders(tmp_path):
    write_scenes(tmp_path / "textured", crack_grey=50, texture=20)
    write_scenes(tmp_path / "flat", crack_grey=50)
    # Same scenes and crack band; only the +-20 checkerboard differs.
    assert texture_level(tmp_path / "textured") > texture_level(tmp_path / "flat") + 15
    (tmp_path / "photos").mkdir()
    rough = np.repeat((100 + np.indices((16, 20)).sum(0) % 2 * 10)[..., None], 3, 2)
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), rough.astype(np.uint8))
    assert texture_level(tmp_path / "photos") == pytest.approx(5.0, abs=0.5)


def test_background_contrast_drops_when_the_background_is_smoothed(tmp_path):
    write_scenes(tmp_path / "src", crack_grey=50, texture=20)
    write_scenes(tmp_path / "flat", crack_grey=50)
    same = background_contrast(tmp_path / "src", tmp_path / "src")
    assert same["background_contrast_source"] == same["background_contrast_translated"] > 15
    smoothed = background_contrast(tmp_path / "src", tmp_path / "flat")
    # The checkerboard's +-20 is gone; what is left is the crack band inside the 15 px window.
    assert smoothed["background_contrast_source"] == pytest.approx(20.0, abs=0.5)
    assert smoothed["background_contrast_translated"] < 13
    write_scenes(tmp_path / "short", crack_grey=50, n=2)
    with pytest.raises(DataError, match="2 samples"):
        background_contrast(tmp_path / "src", tmp_path / "short")


def test_a_killed_translation_resumes_only_with_the_same_generator(tmp_path, source):
    """The card is written, marked in progress, before the first shard: a rerun after a kill
    can tell its own shards from another generator's, and never mixes the two in one set."""
    out = tmp_path / "adapted"

    def killed_at_second_shard(shard, records):
        if shard.name == "shard-00001":
            raise KeyboardInterrupt
        for r in records:
            yield r["stem"], np.zeros((38, 46, 3), np.uint8)

    with pytest.raises(KeyboardInterrupt):
        write_translated_dataset(killed_at_second_shard, source, out, {"by": "one"}, False)
    assert not is_complete(read_card(out)) and (out / "shard-00000" / "manifest.jsonl").is_file()
    older = save_checkpoint(tiny_gan(), tmp_path / "other.ckpt")
    with pytest.raises(DataError, match="another method, generator or settings"):
        translate_dataset(older, source, out, device="cpu", show_progress=False)
    card = translate_dataset(
        older, source, out, device="cpu", show_progress=False, replace_stale=True
    )
    assert is_complete(card) and len(ShardedDataset(out)) == 5
    assert ShardedDataset(out)[0].image.any()  # redone by the generator, not kept black


def test_an_unfinished_source_set_is_not_translated(tmp_path, source):
    """A stopped render's complete shards (its spec, no card) made a translated set that read
    as whole, and a task model trained on it without a word; a source short of the samples
    its card counts likewise."""
    import shutil

    from synth.io import RENDER_SPEC

    def black(shard, records):
        for r in records:
            yield r["stem"], np.zeros((38, 46, 3), np.uint8)

    stopped = tmp_path / "stopped"
    shutil.copytree(source, stopped)
    (stopped / CARD).unlink()
    (stopped / RENDER_SPEC).write_text("{}")
    with pytest.raises(DataError, match=r"unfinished set, a render stopped or still running"):
        write_translated_dataset(black, stopped, tmp_path / "a", {"by": "one"}, False)
    shutil.rmtree(stopped / "shard-00002")  # 4 of the card's 5 samples
    write_json_atomic(stopped / CARD, read_card(source))
    with pytest.raises(DataError, match=r"4 of its 5 samples are in complete shards"):
        write_translated_dataset(black, stopped, tmp_path / "a", {"by": "one"}, False)
    assert not (tmp_path / "a").exists()


def test_a_direction_or_an_output_that_makes_no_sense_is_refused_by_name(tmp_path, source):
    """``direction=ab`` was ``error: ab``; out_dir the scenes' own folder was "holds images
    translated by another method", as if the folder held a translation."""
    from synth.distributions import ConfigError

    ckpt = save_checkpoint(tiny_gan(), tmp_path / "gan.ckpt")
    with pytest.raises(ConfigError, match=r"direction='ab': a2b \(synthetic to real\) or b2a"):
        translate_dataset(ckpt, source, tmp_path / "out", device="cpu", direction="ab")
    before = sorted(source.rglob("*"))
    with pytest.raises(ConfigError, match=r"out_dir=.*syn: the source folder itself"):
        translate_dataset(ckpt, source, source, device="cpu", show_progress=False)
    assert sorted(source.rglob("*")) == before and not (tmp_path / "out").exists()


def test_the_measuring_settings_are_checked_before_any_image_is_made(tmp_path):
    """translate.py said a missing real_dir after the whole translation (fda.py at once)."""
    from omegaconf import OmegaConf

    from gan.cli import check_measure_settings

    cfg = {"evaluate": True, "inception_weights": None, "eval_size": 64}
    cfg["real_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere: image folder not found"):
        check_measure_settings(OmegaConf.create(cfg))
    check_measure_settings(OmegaConf.create({**cfg, "evaluate": False}))  # nothing measured
