"""Datamodule inputs: shards and real folders load; bad input fails early, naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _task_fixtures import crack_sample, make_folder, make_shards

from gan.data import EpochSampler, SegmentationSamples, open_samples
from gan.task_data import SegmentationDataModule, pad_collate
from synth.io import DataError, write_png, write_shard


def datamodule(train_dir: Path | list[Path], img: Path, lab: Path, **kw) -> SegmentationDataModule:
    kw.setdefault("eval_size", None)
    return SegmentationDataModule(
        [str(d) for d in train_dir] if isinstance(train_dir, list) else str(train_dir),
        str(img),
        str(lab),
        crop_size=32,
        batch_size=4,
        eval_batch_size=2,
        num_workers=0,
        **kw,
    )


def test_shards_train_and_folder_eval(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=3)
    dm = datamodule(make_shards(tmp_path / "syn", n=6), img, lab)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 32, 32)
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (2, 3, 48, 64) and set(val["mask"].unique().tolist()) <= {0, 1}


def test_oracle_folder_with_masks_and_indices_file(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=4)
    (tmp_path / "kept.json").write_text(json.dumps({"kept": [1, 3]}))
    dm = datamodule(
        img, img, lab, train_mask_dir=str(lab), train_indices=str(tmp_path / "kept.json")
    )
    dm.setup("fit")
    assert dm.train_set.indices == [1, 3]
    # Masks come from the label folder (a random crop may miss the crack: check the sample).
    assert dm.train_set.samples[dm.train_set.indices[0]].semantic.max() == 1


def test_several_train_folders_are_pooled(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=2)
    first = make_shards(tmp_path / "syn", n=3)
    second = write_shard(tmp_path / "ada", 0, [crack_sample(50 + i) for i in range(5)]).parent
    dm = datamodule([first, second], img, lab)
    dm.setup("fit")
    assert len(dm.train_set) == 8
    # Index 3 is the second folder's first sample, not the first folder's fourth.
    assert (dm.train_set.samples[3].image == open_samples(second)[0].image).all()
    with pytest.raises(DataError, match="needs a single training folder"):
        datamodule([first, second], img, lab, train_mask_dir=str(lab)).setup("fit")
    with pytest.raises(DataError, match="nope: training data folder not found"):
        datamodule([first, tmp_path / "nope"], img, lab).setup("fit")


def test_eval_size_resizes(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=2)
    dm = datamodule(make_shards(tmp_path / "syn", n=4), img, lab, eval_size=[24, 32])
    dm.setup("test")
    assert dm.test_set[0]["image"].shape == (3, 24, 32)


@pytest.mark.parametrize("eval_size", [(24, 32), (80, 100)], ids=["shrunk", "enlarged"])
def test_prediction_resizes_a_photo_as_evaluation_does(tmp_path: Path, eval_size) -> None:
    """tools/predict.py (and BatchNorm recalibration) enlarged photos by repeating pixels,
    evaluation smoothly: the same photo reached the same model as different pixels."""
    from gan.evaluate import ImagesToSegment

    img, lab = make_folder(tmp_path / "real", n=1)
    photos = open_samples(img, lab)
    scored = SegmentationSamples(photos, resize=eval_size)[0]["image"]
    predicted = ImagesToSegment(photos, eval_size)[0]
    assert scored.shape == (3, *eval_size)
    assert torch.equal(predicted["image"], scored)
    assert predicted["original"] == list(photos[0].image.shape[:2])


def test_missing_test_folder_names_it(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=2)
    dm = datamodule(make_shards(tmp_path / "syn", n=4), tmp_path / "nope", lab)
    with pytest.raises(DataError, match="nope"):
        dm.setup("test")
    dm = datamodule(make_shards(tmp_path / "syn2", n=4), img, tmp_path / "no_labels")
    with pytest.raises(DataError, match="no_labels"):
        dm.setup("test")


def test_mask_size_mismatch_names_file(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=3)
    import numpy as np

    write_png(lab / "img1.png", np.zeros((10, 10), np.uint8))
    dm = datamodule(make_shards(tmp_path / "syn", n=4), img, lab)
    with pytest.raises(DataError, match=r"img1\.png.*differs"):
        dm.setup("test")


def test_bad_train_sources(tmp_path: Path) -> None:
    img, lab = make_folder(tmp_path / "real", n=2)
    with pytest.raises(DataError, match="missing_train"):
        datamodule(tmp_path / "missing_train", img, lab).setup("fit")
    with pytest.raises(DataError, match="train_mask_dir"):  # real folder without labels
        datamodule(img, img, lab).setup("fit")
    with pytest.raises(DataError, match="outside"):
        datamodule(make_shards(tmp_path / "syn", n=4), img, lab, train_indices=[0, 9]).setup("fit")


def test_pad_collate_pads_masks_with_ignore() -> None:
    import torch

    items = [
        {"image": torch.zeros(3, 4, 6), "mask": torch.zeros(4, 6, dtype=torch.long), "index": 0},
        {"image": torch.zeros(3, 5, 3), "mask": torch.zeros(5, 3, dtype=torch.long), "index": 1},
    ]
    batch = pad_collate(items)
    assert batch["image"].shape == (2, 3, 5, 6)
    assert batch["mask"][0, 4].eq(255).all() and batch["mask"][1, :, 3:].eq(255).all()
    assert batch["size"].tolist() == [[4, 6], [5, 3]]


def batches(loader) -> list[torch.Tensor]:
    return [b["image"] for b in loader]


def test_training_order_and_crops_follow_seed_and_epoch_not_workers(tmp_path: Path) -> None:
    """A crop is fixed by (seed, epoch, position): two workers draw what one process draws,
    a resumed epoch continues where it stopped, and a new epoch or seed draws anew."""
    img, lab = make_folder(tmp_path / "real", n=2)
    syn = make_shards(tmp_path / "syn", n=12)

    def loader(seed: int = 0, workers: int = 0):
        dm = datamodule(syn, img, lab, seed=seed)
        dm.num_workers = workers
        dm.setup("fit")
        return dm.train_dataloader()  # no trainer attached: a plain, non-resumable loader

    first = batches(loader())
    assert len(first) == 3
    assert all(torch.equal(a, b) for a, b in zip(first, batches(loader(workers=2))))
    other_seed = batches(loader(seed=1))
    assert not torch.equal(torch.cat(first), torch.cat(other_seed))

    resumed = loader()
    resumed.sampler.resume_at(0, 4)  # one batch of four trained
    assert all(torch.equal(a, b) for a, b in zip(first[1:], batches(resumed), strict=True))
    assert len(batches(resumed)) == 3  # the skip applies once; the next pass is a whole epoch

    later = loader()
    later.sampler.set_epoch(1)
    assert not torch.equal(torch.cat(first), torch.cat(batches(later)))


def test_epoch_sampler_ranks_split_one_order_and_each_resumes_its_share() -> None:
    whole = list(EpochSampler(10, seed=3))
    shares = [list(EpochSampler(10, 3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert shares == [whole[0::2], whole[1::2]]
    resumed = EpochSampler(10, 3, num_replicas=2, rank=1)
    resumed.resume_at(0, 2)
    assert list(resumed) == shares[1][2:]
    odd = [list(EpochSampler(9, 3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(odd[0]) == len(odd[1]) == 5  # padded, as DDP needs equal batches per rank
    assert {p for p, _ in odd[0] + odd[1]} == set(range(9))


def test_a_set_whose_writing_stopped_is_refused_for_training(tmp_path: Path) -> None:
    """A stopped render, translation or pseudo-labelling leaves complete shards that read
    as a smaller set; training took them without a word (32 of 40 shards, 120 of 300 photos)."""
    from _synth_fixtures import tiny_config

    from gan.adapt_data import open_domains
    from synth.io import CARD, read_card, write_json_atomic
    from synth.render import render_dataset

    img, lab = make_folder(tmp_path / "real", n=2)
    part = tmp_path / "part"
    render_dataset(tiny_config(), part, 4, 2, seed=0, progress=False, shard_count=1)

    def refused(why: str) -> None:
        with pytest.raises(DataError, match=f"{part}: unfinished set, {why}"):
            datamodule(part, img, lab).setup("fit")

    refused(r"a render stopped or still running \(render_spec.json, no dataset_card.json\)")
    with pytest.raises(DataError, match="unfinished set, a render stopped"):
        open_domains(part, img)  # the GAN's scenes too
    render_dataset(tiny_config(), part, 4, 2, seed=0, progress=False)
    datamodule(part, img, lab).setup("fit")  # whole now
    card = read_card(part)
    write_json_atomic(part / CARD, {**card, "translation": {"in_progress": True}})
    refused("a translation stopped or still running")
    write_json_atomic(part / CARD, {"pseudo_labels": {"num_images": 4}})
    refused("a pseudo-labelling stopped or still running")
    write_json_atomic(part / CARD, {**card, "num_samples": 6})
    refused(r"4 of its 6 samples are in complete shards")
    datamodule(make_shards(tmp_path / "by_hand", n=3), img, lab).setup("fit")  # no record


def test_whole_training_images_of_different_sizes_batch_padded_and_train(tmp_path: Path) -> None:
    """crop_size=null (whole images), which the crop-size error itself suggests, failed in
    torch's stack on photos of different sizes; they are padded as test photos are, the
    padding ignored by the loss."""
    from gan.task import CrackSegmenter

    img, lab = make_folder(tmp_path / "real", n=2)
    for i, (h, w) in enumerate(((40, 56), (31, 45))):
        sample = crack_sample(200 + i, h, w)
        write_png(img / f"odd{i}.png", sample.image, rgb=True)
        write_png(lab / f"odd{i}.png", sample.semantic * 255)
    dm = SegmentationDataModule(
        str(img), str(img), str(lab), train_mask_dir=str(lab), crop_size=None, num_workers=0
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 48, 64)
    assert (batch["mask"][batch["size"][:, 0] == 31][:, 31:, :] == 255).all()
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}, warmup_steps=0)
    assert torch.isfinite(model.training_loss(batch["image"], batch["mask"]))


def test_tiled_inference_stitches_windows_back_into_the_whole_photo() -> None:
    """Large photos go through the network in overlapping windows (a whole 12-megapixel
    photo takes about 6 GB). A per-pixel network must give exactly its whole-photo output,
    so every pixel is covered and the blend weights sum to one; a U-Net differs only where a
    window's edge cut its context, and not in which class wins."""
    from gan.networks import UNet
    from gan.task_data import tiled, window_starts

    assert window_starts(100, 32, 24) == [0, 24, 48, 68] and window_starts(20, 32, 24) == [0]
    torch.manual_seed(0)
    x = torch.randn(2, 3, 100, 150)
    pointwise = torch.nn.Conv2d(3, 2, 1)
    unet = UNet(3, 2, 8, 3).eval()
    with torch.no_grad():
        torch.testing.assert_close(tiled(pointwise, 32)(x), pointwise(x))
        assert torch.equal(tiled(unet, 150)(x), unet(x))  # one window: the net itself
        whole, windows = unet(x), tiled(unet, 64)(x)
    assert (whole.argmax(1) == windows.argmax(1)).float().mean() > 0.99
    assert tiled(unet, None) is unet


def test_the_training_order_follows_the_seed_set_when_the_loader_is_made(
    tmp_path: Path, monkeypatch
) -> None:
    """The pipeline builds a row's datamodule before its run seeds (to read new data before
    old outputs go): read at construction, seed 1's row took seed 0's order from the row
    before it."""
    img, lab = make_folder(tmp_path / "real")
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    dm = datamodule(img, img, lab, train_mask_dir=str(lab))
    monkeypatch.setenv("PL_GLOBAL_SEED", "1")  # the row's own seed_everything, in fit
    assert dm.seed == 1
    assert datamodule(img, img, lab, train_mask_dir=str(lab), seed=3).seed == 3
