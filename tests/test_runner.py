"""Shared training runner: resume, NaN stop keeping the last good checkpoint, safe loading."""

from __future__ import annotations

import io
import os
import pickle

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from gan.callbacks import NonFiniteLossError, StepProgressBar, TrainClock, train_seconds
from gan.checkpoint import UnsafeCheckpointError, load_checkpoint
from gan.runner import fit, resolve_ckpt_path


class Toy(pl.LightningModule):
    def __init__(self, nan_at_step: int = -1) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.nan_at_step = nan_at_step

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.lin(x).pow(2).mean()
        if self.global_step == self.nan_at_step:
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)


class ToyData(pl.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=4)


def config(tmp_path, max_steps: int):
    return OmegaConf.create(
        {
            "run_name": "toy",
            "seed": 0,
            "ckpt_path": "last",
            "paths": {"ckpt_dir": str(tmp_path / "ckpt"), "log_dir": str(tmp_path / "logs")},
            "trainer": {
                "_target_": "lightning.pytorch.Trainer",
                "accelerator": "cpu",
                "max_steps": max_steps,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "default_root_dir": str(tmp_path / "logs"),
            },
            "callbacks": {
                "ckpt": {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "dirpath": str(tmp_path / "ckpt" / "toy"),
                    "save_last": True,
                    "save_top_k": 0,
                    "every_n_train_steps": 1,
                },
                "nan": {"_target_": "gan.callbacks.StopOnNonFiniteLoss"},
            },
        }
    )


def test_resume_continues_step_and_optimizer_state(tmp_path):
    fit(config(tmp_path, 3), Toy(), ToyData())
    first = load_checkpoint(tmp_path / "ckpt" / "toy" / "last.ckpt")
    assert first["global_step"] == 3
    trainer = fit(config(tmp_path, 6), Toy(), ToyData())
    assert trainer.global_step == 6
    second = load_checkpoint(tmp_path / "ckpt" / "toy" / "last.ckpt")
    # Adam's step count continues from the first run: optimizer state was restored.
    assert float(second["optimizer_states"][0]["state"][0]["step"]) == 6


def test_a_rerun_of_a_finished_run_opens_no_logger(tmp_path):
    """Rerunning a finished GAN opened its loggers, which in W&B or TensorBoard is one more,
    empty, run; a tool that tests next still logs (its scores are that run's content)."""
    cfg = config(tmp_path, 3)
    cfg.logger = {
        "csv": {
            "_target_": "lightning.pytorch.loggers.CSVLogger",
            "save_dir": str(tmp_path / "logs"),
            "name": "toy",
        }
    }
    versions = lambda: sorted(p.name for p in (tmp_path / "logs" / "toy").iterdir())  # noqa: E731
    fit(cfg, Toy(), ToyData())
    assert versions() == ["version_0"]
    trainer = fit(cfg, Toy(), ToyData())
    assert trainer.global_step == 3 and not trainer.loggers and versions() == ["version_0"]
    trainer = fit(cfg, Toy(), ToyData(), then_tests=True)
    assert trainer.loggers and versions() == ["version_0", "version_1"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="at step 5 "):
        fit(config(tmp_path, 10), Toy(nan_at_step=4), ToyData())
    ckpt = load_checkpoint(tmp_path / "ckpt" / "toy" / "last.ckpt")
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "payload": Exploit()}, f)
    with pytest.raises(UnsafeCheckpointError, match="evil.ckpt"):
        load_checkpoint(path)
    # Resuming training from it is refused too, before training starts, naming the file.
    cfg = config(tmp_path, 2)
    cfg.ckpt_path = str(path)
    with pytest.raises(UnsafeCheckpointError, match="evil.ckpt: refused"):
        fit(cfg, Toy(), ToyData())


def test_resolve_ckpt_path(tmp_path):
    assert resolve_ckpt_path("last", tmp_path) is None
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last.ckpt")
    assert resolve_ckpt_path(None, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path)
    # a run's folder named for its checkpoint: "checkpoint file not found" of a folder there
    with pytest.raises(FileNotFoundError, match=r"a folder, not a checkpoint file; its last"):
        resolve_ckpt_path(str(tmp_path), tmp_path)


def test_the_progress_bar_counts_steps_not_a_negative_epoch_total() -> None:
    """max_epochs=-1 (every stage counts steps): Lightning's bar was titled ``Epoch 1/-2``."""
    out = io.StringIO()
    bar = StepProgressBar(console_kwargs={"file": out, "force_terminal": True, "width": 200})
    trainer = pl.Trainer(
        max_steps=20,
        max_epochs=-1,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(Toy(), datamodule=ToyData())  # 16 batches an epoch: epochs 0 and 1
    shown = out.getvalue()
    assert "Epoch 1" in shown and "/-" not in shown
    assert "step: 20/20" in shown


def test_a_resumed_runs_bar_ends_at_the_epochs_last_batch(tmp_path) -> None:
    """Resumed at step 5 of an epoch of 16, Lightning sized the bar by the 15 steps left when
    the epoch started while counting batches from the epoch's first: ``16/15``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def trainer(steps: int, *callbacks: pl.Callback) -> pl.Trainer:
        return pl.Trainer(
            max_steps=steps,
            max_epochs=-1,
            callbacks=list(callbacks),
            enable_progress_bar=isinstance(callbacks[0], StepProgressBar),
            logger=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,  # Lightning's own checkpoint went to ./checkpoints
        )

    class EpochEnds(pl.Callback):  # (completed, total) of the bar as each epoch ends
        def __init__(self) -> None:
            self.seen: list[tuple[float, float | None]] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            shown = bar.progress.tasks[bar.train_progress_bar_id]
            self.seen.append((shown.completed, shown.total))

    saves = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=5, save_last=True)
    trainer(5, saves).fit(Toy(), datamodule=ToyData())  # saved in the epoch, at its 5th batch
    bar = StepProgressBar(console_kwargs={"file": io.StringIO(), "force_terminal": True})
    ends = EpochEnds()
    trainer(20, bar, ends).fit(Toy(), datamodule=ToyData(), ckpt_path=tmp_path / "last.ckpt")
    assert ends.seen == [(16, 16), (4, 4)]


def test_what_is_not_a_checkpoint_is_named_for_what_it_is(tmp_path):
    """A note, random bytes, a folder and no path at all: each its own line, none a traceback
    or torch's bare ``101`` (a KeyError the weights-only unpickler raised on a text file)."""
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "noise.ckpt").write_bytes(bytes(range(7, 250)))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.ckpt").write_bytes(b"")
    for name in ("notes.txt", "noise.ckpt", "run/last.ckpt"):
        with pytest.raises(UnsafeCheckpointError, match=f"{name}: unreadable checkpoint, cut"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"run: a folder, not a checkpoint file \(its last"):
        load_checkpoint(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint given \(null\)"):
        load_checkpoint(None)


def test_training_time_is_carried_across_a_resume(tmp_path):
    """A row resumed at step 3 of 6 reported only the second part as its training time."""
    first = config(tmp_path, 3)
    first.callbacks["clock"] = {"_target_": "gan.callbacks.TrainClock"}
    trainer = fit(first, Toy(), ToyData())
    saved = load_checkpoint(tmp_path / "ckpt" / "toy" / "last.ckpt")["callbacks"]["TrainClock"]
    assert 0 < saved["seconds"] <= train_seconds(trainer) + 0.05
    second = config(tmp_path, 6)
    second.callbacks["clock"] = {"_target_": "gan.callbacks.TrainClock"}
    resumed = fit(second, Toy(), ToyData())
    clock = next(c for c in resumed.callbacks if isinstance(c, TrainClock))
    assert clock.before == saved["seconds"] and clock.seconds > saved["seconds"]


def test_a_run_folder_another_process_trains_into_is_refused(tmp_path) -> None:
    """Two runs of one run_name at once trained into one last.ckpt and metrics.csv and both
    said they had finished; the second is refused, naming the first's pid, until it ends."""
    import subprocess
    import sys
    from pathlib import Path

    from gan.runner import run_folder_held
    from synth.distributions import ConfigError

    folder = tmp_path / "run"
    root = str(Path(__file__).resolve().parents[1])
    code = (
        f"import sys, time; sys.path.insert(0, {root!r}); from pathlib import Path; "
        "from gan.runner import run_folder_held\n"
        f"with run_folder_held(Path({str(folder)!r})): print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"training into it now \(pid {holder.pid}\)"):
            with run_folder_held(folder):
                pass
    finally:
        holder.kill()  # as a kill -9: the kernel drops its lock
        holder.wait()
    with run_folder_held(folder):
        assert (folder / ".lock").read_text() == str(os.getpid())
    with run_folder_held(folder):  # let go as the first ended
        pass
    assert not (folder / ".lock").exists()  # nothing left beside the run's checkpoints


def test_the_gan_on_several_devices_gets_ddp_that_finds_unused_parameters() -> None:
    """trainer.devices=2 without the ddp presets: Lightning's plain DDP failed the GAN at its
    first backward (each step leaves one network without gradients), a traceback per rank."""
    from gan.runner import unused_parameter_search

    gan, task = Toy(), Toy()
    gan.automatic_optimization = False
    search = {"strategy": "ddp_find_unused_parameters_true"}
    for devices in (2, -1, "2", "0,1", [0, 1]):
        assert unused_parameter_search(OmegaConf.create({"devices": devices}), gan) == search
    for devices in (1, "1", "auto", [0]):
        assert unused_parameter_search(OmegaConf.create({"devices": devices}), gan) == {}
    assert unused_parameter_search(OmegaConf.create({"devices": 2}), task) == {}
    preset = OmegaConf.create({"devices": 2, "strategy": {"_target_": "DDPStrategy"}})
    assert unused_parameter_search(preset, gan) == {}  # the presets' own strategy stands
    # the task model uses every parameter: the presets' search (for the GAN) is left out
    target = "lightning.pytorch.strategies.DDPStrategy"
    preset = OmegaConf.create({"strategy": {"_target_": target, "find_unused_parameters": True}})
    assert unused_parameter_search(preset, gan) == {}
    (strategy,) = unused_parameter_search(preset, task).values()
    assert strategy._ddp_kwargs["find_unused_parameters"] is False


def test_a_run_without_loggers_trains_with_the_lr_monitor_configured(tmp_path) -> None:
    """``~logger``: Lightning's LearningRateMonitor refused to start a fit with no logger, so
    logging could not be switched off without also removing a callback."""
    cfg = config(tmp_path, 2)
    cfg.callbacks.lr = {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor"}
    assert fit(cfg, Toy(), ToyData()).global_step == 2
