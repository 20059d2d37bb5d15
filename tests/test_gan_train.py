"""Training behaviour of SemanticCycleGAN on tiny data: gradients, step counting, resume,
semantic loss, data validation."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from _cli_fixtures import gan_overrides, run_tool, tree_digest
from _gan_fixtures import make_real, make_synthetic, tiny_gan, tiny_trainer
from lightning.pytorch.loggers import CSVLogger

from gan.adapt_data import UnpairedDataModule
from gan.callbacks import StepCheckpoint
from gan.checkpoint import load_checkpoint
from gan.cyclegan import SemanticCycleGAN
from gan.losses import semantic_loss
from synth.distributions import ConfigError
from synth.io import DataError, write_png


@pytest.fixture
def data(tmp_path):
    syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2)
    real = make_real(tmp_path / "real", n=3)
    return str(syn), str(real)


def datamodule(data, batch_size: int = 2) -> UnpairedDataModule:
    return UnpairedDataModule(*data, crop_size=32, batch_size=batch_size, num_workers=0)


def adam_steps(optimizer) -> set[int]:
    return {int(s["step"]) for s in optimizer.state.values()}


def test_one_step_updates_every_parameter(tmp_path, data):
    torch.manual_seed(0)
    model = tiny_gan()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    tiny_trainer(tmp_path, 1).fit(model, datamodule=datamodule(data))
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged, f"parameters without an update: {unchanged}"


class LossRecorder(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_channels_last_step_matches_the_default_layout(tmp_path, data):
    """The CPU speed path (channels_last, used when compiled) must compute the same losses.

    Parameters are not compared: Adam turns the rounding noise on biases that sit before an
    instance norm (true gradient zero) into full-size steps.
    """
    losses = {}
    for flag in (False, True):
        pl.seed_everything(0)
        model, recorder = tiny_gan(channels_last=flag), LossRecorder()
        trainer = tiny_trainer(tmp_path / str(flag), 2, callbacks=[recorder])
        trainer.fit(model, datamodule=datamodule(data))
        losses[flag] = recorder.losses
        assert model.g_ab[1].weight.is_contiguous(memory_format=torch.channels_last) == flag
    assert losses[False][0] == pytest.approx(losses[True][0], rel=1e-5)
    assert losses[False][1] == pytest.approx(losses[True][1], rel=1e-3)


def test_light_generator_has_no_unused_parameters(tmp_path, data):
    model = tiny_gan(generator={"kind": "light", "ngf": 8, "blocks": 2}, segmenter=None)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    tiny_trainer(tmp_path, 1).fit(model, datamodule=datamodule(data))
    assert all(not torch.equal(v, before[k]) for k, v in model.named_parameters())


def test_a_crop_too_small_for_the_discriminator_is_refused_before_any_step(tmp_path, data):
    """A 16 px crop passed the data's checks and failed at the first step in the
    discriminator's instance norm, as torch's 'Expected more than 1 value per channel'."""
    model = tiny_gan(discriminator={"ndf": 8, "layers": 3})
    trainer = tiny_trainer(tmp_path, 1)
    small = UnpairedDataModule(*data, crop_size=16, batch_size=2, num_workers=0)
    with pytest.raises(ConfigError, match=r"crop_size=16: too small .* 3 stride-2 .* >= 24"):
        trainer.fit(model, datamodule=small)
    assert trainer.global_step == 0
    fits = UnpairedDataModule(*data, crop_size=24, batch_size=2, num_workers=0)
    tiny_trainer(tmp_path / "fits", 1).fit(model, datamodule=fits)  # the least side trains


def test_max_steps_counts_generator_steps(tmp_path, data):
    model = tiny_gan()
    trainer = tiny_trainer(tmp_path, 3)
    trainer.fit(model, datamodule=datamodule(data))
    g, d, s = trainer.optimizers
    assert trainer.global_step == 3
    assert adam_steps(g) == adam_steps(d) == adam_steps(s) == {3}
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 3


def test_steps_past_the_end_of_the_lr_schedule_are_refused_before_any_step(tmp_path, data):
    """At step decay_start_step + decay_steps the learning rates are zero: a longer budget
    would run on and change nothing (the pipeline once trained a 2400-step GAN identical to
    its 800-step one that way)."""
    model = tiny_gan(decay_start_step=2, decay_steps=2)
    trainer = tiny_trainer(tmp_path, 5)
    with pytest.raises(ConfigError, match=r"reaches zero at step 4 .* last 1 steps"):
        trainer.fit(model, datamodule=datamodule(data))
    assert trainer.global_step == 0
    for budget in (0, -1):  # -1 trained forever at a constant rate
        with pytest.raises(ConfigError, match=rf"trainer.max_steps={budget}: the GAN counts"):
            tiny_trainer(tmp_path / "none", budget).fit(model, datamodule=datamodule(data))
    tiny_trainer(tmp_path, 4).fit(model, datamodule=datamodule(data))  # the whole schedule
    tiny_trainer(tmp_path / "flat", 5).fit(
        tiny_gan(decay_start_step=2, decay_steps=0), datamodule=datamodule(data)
    )


class CaptureOptimizerState(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.exp_avg = [
            [s["exp_avg"].clone() for s in opt.state.values()] for opt in trainer.optimizers
        ]
        self.start_step = trainer.global_step


def test_resume_continues_step_count_and_optimizer_state(tmp_path, data):
    ckpt_dir = tmp_path / "ckpt"

    def checkpoint():
        return StepCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=1, save_top_k=0)

    first = tiny_trainer(tmp_path, 2, enable_checkpointing=True, callbacks=[checkpoint()])
    first.fit(tiny_gan(), datamodule=datamodule(data))
    last = ckpt_dir / "last.ckpt"
    saved = load_checkpoint(last)  # weights_only=True must work
    assert saved["global_step"] == 2
    assert saved["hyper_parameters"]["generator"]["ngf"] == 8

    capture = CaptureOptimizerState()
    second = tiny_trainer(tmp_path, 4, enable_checkpointing=True, callbacks=[checkpoint(), capture])
    second.fit(tiny_gan(), datamodule=datamodule(data), ckpt_path=str(last), weights_only=True)
    assert capture.start_step == 2 and second.global_step == 4
    for restored, state in zip(capture.exp_avg, saved["optimizer_states"]):
        expected = [s["exp_avg"] for s in state["state"].values()]
        assert len(restored) == len(expected) > 0
        assert all(torch.equal(a, b) for a, b in zip(restored, expected))
    assert adam_steps(second.optimizers[0]) == {4}


def test_a_moved_run_resumed_with_another_save_interval_says_nothing_of_callbacks(tmp_path, data):
    """Resumed with another ``every_n_train_steps``, Lightning asked the user to 'add the
    following callbacks: [StepCheckpoint{...}]' (the interval was in the state's key); copied
    to another folder (a run moved whole), it warned that paths 'won't be reloaded'."""
    first_dir, moved = tmp_path / "ckpt", tmp_path / "moved"

    def checkpoint(folder: Path, every: int) -> StepCheckpoint:
        return StepCheckpoint(dirpath=folder, save_last=True, every_n_train_steps=every)

    first = tiny_trainer(
        tmp_path, 2, enable_checkpointing=True, callbacks=[checkpoint(first_dir, 1)]
    )
    first.fit(tiny_gan(), datamodule=datamodule(data))
    moved.mkdir()
    (moved / "last.ckpt").write_bytes((first_dir / "last.ckpt").read_bytes())
    for folder, every in ((first_dir, 2), (moved, 1)):
        second = tiny_trainer(
            tmp_path, 3, enable_checkpointing=True, callbacks=[checkpoint(folder, every)]
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            second.fit(tiny_gan(), datamodule=datamodule(data), ckpt_path=str(folder / "last.ckpt"))
        said = [str(w.message) for w in caught]
        assert not [m for m in said if "callbacks" in m or "dirpath" in m], said
        assert second.global_step == 3


class RatesOfEachStep(pl.Callback):
    def __init__(self) -> None:
        self.rates: dict[int, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


def test_a_resume_with_a_longer_budget_follows_the_new_schedule(tmp_path, data):
    """The schedule is derived from trainer.max_steps (conf/train_gan.yaml): a run resumed
    with a larger budget kept the old schedule's settings from the checkpoint, and trained
    its extra steps at LR 0 while its hparams recorded the new schedule."""
    ckpt_dir = tmp_path / "ckpt"

    def callbacks(*more):
        return [StepCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=1), *more]

    first = tiny_trainer(tmp_path, 2, enable_checkpointing=True, callbacks=callbacks())
    first.fit(tiny_gan(decay_start_step=1, decay_steps=1), datamodule=datamodule(data))
    assert first.optimizers[0].param_groups[0]["lr"] == 0.0  # the first schedule's end
    rates = RatesOfEachStep()
    second = tiny_trainer(tmp_path, 4, enable_checkpointing=True, callbacks=callbacks(rates))
    model = tiny_gan(decay_start_step=2, decay_steps=2)
    second.fit(model, datamodule=datamodule(data), ckpt_path=str(ckpt_dir / "last.ckpt"))
    lr = model.hparams.lr_g
    assert rates.rates == pytest.approx({2: lr, 3: lr / 2})
    saved = load_checkpoint(ckpt_dir / "last.ckpt")["lr_schedulers"][0]["lr_lambdas"][0]
    assert saved == {"constant_steps": 2, "decay_steps": 2}


class RowsAtSave(pl.Callback):
    """Records, at each checkpoint save, the step it saves and the rows already on disk."""

    def __init__(self, csv_path) -> None:
        self.csv_path, self.seen = csv_path, []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        rows = self.csv_path.read_text().splitlines()[1:] if self.csv_path.is_file() else []
        self.seen.append((checkpoint["global_step"], len(rows)))


def test_step_checkpoint_is_saved_after_its_metrics_row(tmp_path, data):
    """A kill right after a save must not lose a logged row: when step N's checkpoint is
    written, the N rows of steps 0..N-1 are already in metrics.csv (Lightning's own
    ModelCheckpoint saves one row too early)."""
    logger = CSVLogger(tmp_path, name="log", version=0, flush_logs_every_n_steps=1)
    rows = RowsAtSave(tmp_path / "log" / "version_0" / "metrics.csv")
    save = StepCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    trainer = tiny_trainer(
        tmp_path, 4, enable_checkpointing=True, logger=logger, callbacks=[save, rows]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(tiny_gan(), datamodule=datamodule(data))
    # Lightning's 20-line advice on manual-optimization saves does not apply; it is silenced.
    assert not [w for w in caught if "manual optimization" in str(w.message)]
    saved_steps = [step for step, _ in rows.seen]
    assert sorted(set(saved_steps)) == [2, 4]  # step 4, the last, is saved at the end of fit
    assert all(count >= step for step, count in rows.seen), rows.seen
    assert load_checkpoint(tmp_path / "ckpt" / "last.ckpt")["global_step"] == 4


def test_semantic_loss_moves_generator_toward_segmentable_output(tmp_path, data):
    """f_s frozen (lr_s=0): only G can lower the semantic error, and it does, compared with
    the same run without the semantic term."""
    dm = datamodule(data, batch_size=2)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))

    def run(weight: float) -> float:
        pl.seed_everything(0)
        model = tiny_gan(lambda_semantic=weight, lr_s=0.0, lr_g=2e-3, pool_size=0, lambda_mask=0.0)
        tiny_trainer(tmp_path, 12).fit(model, datamodule=datamodule(data))
        model.eval()
        with torch.no_grad():
            return semantic_loss(model.seg(model.g_ab(batch["a_image"])), batch["a_mask"]).item()

    with_semantic, without = run(10.0), run(0.0)
    assert with_semantic > 0
    assert with_semantic < without


@pytest.mark.parametrize("on_fake", [False, True])
def test_segmenter_trains_on_translations_only_when_asked(on_fake):
    """segmenter_on_fake=False keeps f_s a judge of synthetic images only (CyCADA's fixed
    source classifier), so G cannot move cracks toward what a co-adapting f_s accepts."""
    torch.manual_seed(0)
    model = tiny_gan(segmenter_on_fake=on_fake).eval()  # eval: batch norm of f_s per sample
    real_a, fake_b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    mask_a = (torch.rand(2, 16, 16) > 0.8).long()
    loss = model.segmenter_loss({"fake_b": fake_b}, real_a, mask_a)
    on_synthetic = semantic_loss(model.seg(real_a), mask_a)
    on_both = semantic_loss(model.seg(torch.cat([real_a, fake_b])), torch.cat([mask_a, mask_a]))
    assert torch.allclose(loss, on_both if on_fake else on_synthetic)
    assert not torch.allclose(on_both, on_synthetic)


def test_semantic_target_consistency_reads_f_s_on_background_and_keeps_cracks():
    torch.manual_seed(0)
    real_a = torch.rand(2, 3, 16, 16) * 2 - 1
    mask_a = (torch.rand(2, 16, 16) > 0.8).long()
    assert tiny_gan().semantic_target(real_a, mask_a) is mask_a  # the default: A's mask
    model = tiny_gan(semantic_target="consistency").eval()
    target = model.semantic_target(real_a, mask_a)
    reading = model.seg(real_a).argmax(1)
    background = mask_a == 0
    assert torch.equal(target[background], reading[background])
    assert torch.equal(target[~background], mask_a[~background])
    assert not torch.equal(target, mask_a)  # an untrained f_s disagrees with the mask
    with pytest.raises(ValueError, match="semantic_target"):
        tiny_gan(semantic_target="masks")


def test_semantic_weight_ramps_and_is_logged(tmp_path, data):
    model = tiny_gan(semantic_warmup_steps=4, lambda_semantic=2.0)
    trainer = tiny_trainer(tmp_path, 2)
    trainer.fit(model, datamodule=datamodule(data))
    assert trainer.logged_metrics["train/semantic_weight"] == pytest.approx(1.0)  # step 2 of 4
    assert trainer.logged_metrics["train/semantic"] > 0


def test_datamodule_validates_both_inputs(tmp_path, data):
    with pytest.raises(DataError, match="nowhere"):
        UnpairedDataModule(str(tmp_path / "nowhere"), data[1]).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        UnpairedDataModule(data[0], str(tmp_path / "empty")).setup()
    dm = datamodule(data)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["a_image"].shape == batch["b_image"].shape == (2, 3, 32, 32)
    assert set(batch["a_mask"].unique().tolist()) <= {0, 1, 255}


def test_crack_crops_contain_crack(tmp_path, data):
    dm = UnpairedDataModule(*data, crop_size=16, batch_size=8, num_workers=0, crack_crop_prob=1.0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert all((m == 1).any() for m in batch["a_mask"])


def stream_batches(data, workers: int, count: int, start_batch: int = 0) -> list[dict]:
    dm = UnpairedDataModule(*data, crop_size=16, batch_size=2, num_workers=workers)
    dm.setup()
    dm.stream.resume_at(0, start_batch * 2)
    loader = dm.train_dataloader()
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == count:
            return batches
    raise AssertionError("the stream ended")


def same_batches(got: list[dict], want: list[dict]) -> bool:
    return all(torch.equal(g[k], w[k]) for g, w in zip(got, want) for k in w)


def test_unpaired_stream_is_the_same_for_any_worker_count_and_resumes_mid_stream(data):
    """Sample i comes from (seed, rank, i) alone and workers take whole batches in turn: a
    resumed GAN run continues the stream instead of replaying its start."""
    alone = stream_batches(data, workers=0, count=6)
    assert same_batches(stream_batches(data, workers=2, count=6), alone)
    assert same_batches(stream_batches(data, workers=2, count=2, start_batch=4), alone[4:])
    assert not torch.equal(alone[0]["b_image"], alone[1]["b_image"])  # not one sample repeated


def test_image_pool_round_trips_through_a_weights_only_checkpoint(tmp_path):
    from gan.pool import ImagePool

    pool, masks_too = ImagePool(3), ImagePool(3)
    pool.query(torch.randn(4, 3, 8, 8))
    masks_too.query(torch.randn(4, 3, 8, 8), torch.randint(0, 2, (4, 8, 8)))
    path = tmp_path / "pools.pt"
    torch.save({"a": pool.state_dict(), "b": masks_too.state_dict()}, path)
    saved = load_checkpoint(path)
    restored, restored_masks = ImagePool(3), ImagePool(3)
    restored.load_state_dict(saved["a"])
    restored_masks.load_state_dict(saved["b"])
    assert len(restored) == 3 and restored.masks == [None] * 3
    assert all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))
    assert all(torch.equal(a, b) for a, b in zip(restored_masks.masks, masks_too.masks))
    empty = ImagePool(3)
    empty.load_state_dict(ImagePool(3).state_dict())
    assert len(empty) == 0


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"crop_size": 0}, "gan_data.crop_size=0: expected a whole number >= 4"),
        ({"crop_size": 30}, "gan_data.crop_size=30: expected a multiple of 4, which the"),
        ({"batch_size": 0}, "gan_data.batch_size=0: expected a whole number >= 1"),
        ({"num_workers": -1}, "gan_data.num_workers=-1: expected a whole number >= 0"),
    ],
)
def test_gan_data_settings_that_make_no_sense_are_refused(setting: dict, message: str) -> None:
    from gan.adapt_data import UnpairedDataModule
    from synth.distributions import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        UnpairedDataModule("scenes", "photos", **setting)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"lr_g": -1}, "gan.lr_g=-1: expected a number >= 0"),
        ({"lr_s": "1e-3x"}, "gan.lr_s='1e-3x'"),
    ],
)
def test_a_gan_learning_rate_that_makes_no_sense_is_refused(setting: dict, message: str) -> None:
    from synth.distributions import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        SemanticCycleGAN(**setting)


def test_a_gan_crop_larger_than_the_scenes_is_refused(tmp_path) -> None:
    """A 1000 px crop of 32 px scenes is reflected padding, minutes a step: refused at setup."""
    from gan.adapt_data import UnpairedDataModule
    from synth.distributions import ConfigError

    syn = make_synthetic(tmp_path / "syn", n=2, shard_size=2, h=32, w=40)
    real = make_real(tmp_path / "real")
    module = UnpairedDataModule(str(syn), str(real), crop_size=64, num_workers=0)
    with pytest.raises(ConfigError, match=r"crop_size=64: larger than the scenes \(32x40\)"):
        module.setup("fit")


def test_every_photo_is_read_and_fits_the_crop_before_the_gan_trains(tmp_path, data) -> None:
    """Only the first photo was decoded and sized: a photo that could not be read failed
    the run at the step that drew it, and one smaller than the crop passed where it was not
    first by name (a pipeline's result depended on file names)."""
    real = Path(data[1])
    write_png(real / "zz_small.png", np.zeros((20, 64, 3), np.uint8), rgb=True)
    (real / "zz_cut.png").write_bytes((real / "real0.png").read_bytes()[:200])
    with pytest.raises(DataError) as err:
        datamodule(data).setup("fit")
    said = str(err.value)
    assert said.startswith(f"{real / 'zz_cut.png'}: unreadable or corrupt image (and 1 more")
    assert f"{real / 'zz_small.png'}: 20x64 px (HxW), smaller than the 32 px a side the GAN" in said


# ----------------------------------------------------- a resume on other data (train_gan)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """tools/train_gan.py trained 2 steps under ``<root>``: scenes in ``syn/``, photos in
    ``real/train_img/``; other scenes and photos beside them."""
    root = tmp_path_factory.mktemp("gan_resume")
    make_synthetic(root / "syn", n=4, shard_size=2)
    make_real(root / "real" / "train_img", n=3)
    make_synthetic(root / "other_syn", n=6, shard_size=3)
    make_real(root / "other_real", n=2)
    proc = run_tool("train_gan", *gan_overrides(root, root / "syn"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def rerun_gan(root: Path, steps: int, **folders: Path) -> subprocess.CompletedProcess:
    """train_gan again on the run under ``root``, for ``steps``; ``folders``: gan_data's
    synthetic_dir or real_dir, where not the run's own."""
    overrides = [
        o
        for o in gan_overrides(root, folders.get("synthetic_dir", root / "syn"), steps)
        if not o.startswith("gan_data.real_dir=")
    ]
    real = folders.get("real_dir", root / "real" / "train_img")
    return run_tool("train_gan", *overrides, f"gan_data.real_dir={real}")


def run_files(root: Path) -> dict[str, str]:
    return {sub: tree_digest(root / sub) for sub in ("checkpoints", "logs")}


@pytest.mark.parametrize("folder", ["real_dir", "synthetic_dir"])
def test_a_gan_resumed_on_other_data_is_refused_before_any_logger(gan_run: Path, folder) -> None:
    """Resumed with another photo or scene folder, train_gan carried the model on over two
    data sets, saved as one run. Refused in one line, the run's files untouched."""
    other = gan_run / ("other_real" if folder == "real_dir" else "other_syn")
    trained_on = gan_run / ("real/train_img" if folder == "real_dir" else "syn")
    before = run_files(gan_run)
    proc = rerun_gan(gan_run, 3, **{folder: other})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    last = gan_run / "checkpoints" / "adapt" / "last.ckpt"
    assert lines == [
        f"error: {last}: trained on other data: gan_data.{folder}={other} holds other files "
        f"than {trained_on}, which it was trained on; resume with the folders it was trained "
        "on, or start over with ckpt_path=null or a new run_name="
    ]
    assert run_files(gan_run) == before


def test_a_gan_whose_data_folders_moved_with_the_same_files_resumes(
    gan_run: Path, tmp_path: Path
) -> None:
    """The checkpoint records each folder's listing (names and sizes), not only its place: a
    run and its data copied elsewhere whole resume there, and say so."""
    moved = tmp_path / "moved"
    shutil.copytree(gan_run, moved, symlinks=True)
    proc = rerun_gan(moved, 3)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = moved / "checkpoints" / "adapt" / "last.ckpt"
    for folder, was, now in (
        ("real_dir", gan_run / "real" / "train_img", moved / "real" / "train_img"),
        ("synthetic_dir", gan_run / "syn", moved / "syn"),
    ):
        said = f"{last}: gan_data.{folder} moved from {was} to {now}, with the same files"
        assert said in proc.stderr
    assert load_checkpoint(last)["global_step"] == 3
    record = load_checkpoint(last)["UnpairedDataModule"]["trained_on"]
    assert record["gan_data.real_dir"]["folder"] == str(moved / "real" / "train_img")


def test_a_gan_checkpoint_from_before_the_record_resumes_and_records_its_data(
    gan_run: Path, tmp_path: Path
) -> None:
    """A checkpoint saved before data was recorded resumes as it did, whatever the folders
    (nothing says what it was trained on), and its next save records them."""
    old = tmp_path / "old"
    shutil.copytree(gan_run, old, symlinks=True)
    last = old / "checkpoints" / "adapt" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["UnpairedDataModule"]
    torch.save(checkpoint, last)
    proc = rerun_gan(old, 3, real_dir=gan_run / "other_real")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained on other data" not in proc.stderr and " moved from " not in proc.stderr
    saved = load_checkpoint(last)
    assert saved["global_step"] == 3
    real = saved["UnpairedDataModule"]["trained_on"]["gan_data.real_dir"]
    assert real["folder"] == str(gan_run / "other_real")
    assert rerun_gan(old, 4).returncode == 1  # from now on, its data is known


def test_compiled_gan_state_dict_is_the_uncompiled_one():
    """experiment=full compiles the GAN (gan.compile: true): its checkpoints must load into
    an uncompiled model, and back, as the pipeline's translate stage, a resume with
    gan.compile=false and tools/predict.py/export.py translate_with= do. A wrapper
    (``torch.compile(net)``) would save every key under ``_orig_mod.``, and those loads fail.
    Compilation itself is lazy (at the first forward), so this costs no compile time."""
    torch.manual_seed(0)
    compiled = tiny_gan(
        compile=True,
        generator={"kind": "resnet", "ngf": 8, "blocks": 1, "residual": True, "upsample": "resize"},
    )
    compiled.setup("validate")
    plain = tiny_gan(
        generator={"kind": "resnet", "ngf": 8, "blocks": 1, "residual": True, "upsample": "resize"}
    )
    assert list(compiled.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(compiled.state_dict())
    compiled.load_state_dict(plain.state_dict())
    assert torch.equal(
        plain.g_ba.state_dict()["body.1.weight"], compiled.g_ba.state_dict()["body.1.weight"]
    )
