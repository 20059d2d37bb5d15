"""A run whose batches stop coming says so (``gan.stalls``, ``gan.callbacks.StallWarning``):
a hung DataLoader worker had frozen the progress bar without a word for 11 minutes. Each
stall here is held until the line is said, then let go, so no test waits on a clock."""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import gan.stalls
from gan.callbacks import StallWarning
from gan.evaluate import batches
from gan.stalls import StallWatch
from synth.distributions import ConfigError


class Held(Dataset):
    """Items that come at once, but for ``held``: it waits until ``release`` exists (a
    file, which a loader worker sees too), writing its process id to ``pid`` first; at most
    10 s, so a watch that says nothing fails its test rather than hanging it."""

    def __init__(self, n: int, held: int, release: Path, pid: Path, nap: float = 0.0) -> None:
        self.n, self.held, self.release, self.pid, self.nap = n, held, release, pid, nap

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if i == self.held:
            self.pid.write_text(str(os.getpid()))
            for _ in range(1000):
                if self.release.exists():
                    break
                time.sleep(0.01)
        time.sleep(self.nap)
        return {"image": torch.full((1,), float(i))}


class Tiny(pl.LightningModule):
    def __init__(self, train: Dataset, val: Dataset | None = None, workers: int = 0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.train_set, self.val_set, self.workers = train, val, workers

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.layer(batch["image"]).pow(2).mean()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.layer(batch["image"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, num_workers=self.workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set or [])


def fit(tmp_path: Path, model: Tiny, watch: StallWarning, **trainer) -> None:
    pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        callbacks=[watch],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **trainer,
    ).fit(model)


def releasing(watch: StallWatch, release: Path) -> None:
    """Each line is said as usual, and the first one lets the held item go."""
    say = watch.say

    def said(line: str) -> None:
        say(line)
        release.touch()

    watch.say = said


def stall_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "finished for" in line or "resumed" in line]


def no_watch_left() -> bool:
    return not [t for t in threading.enumerate() if t.name == "stall-watch"]


def test_a_hung_loader_worker_is_said_once_with_its_pid_then_the_resumption(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    release, pid = tmp_path / "release", tmp_path / "pid"
    watch = StallWarning(after_s=1.0, poll_s=0.05)
    releasing(watch.watch, release)
    fit(tmp_path, Tiny(Held(4, 2, release, pid), workers=1), watch)
    lines = stall_lines(capsys.readouterr().err)
    assert len(lines) == 2, lines
    stalled, resumed = lines
    assert stalled.startswith("no training step finished for ")
    assert "(last at step 2); still waiting; waiting in torch/utils/data/dataloader.py:" in stalled
    assert f"; DataLoader workers: pid {pid.read_text()} (" in stalled
    assert resumed.startswith("training resumed after ")
    assert no_watch_left()


def test_a_long_validation_of_quick_batches_says_nothing_and_the_watch_ends_with_the_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Validation batches are progress: six of 0.1 s are no stall of 0.3 s."""
    release = tmp_path / "release"
    release.touch()
    train, val = (Held(n, -1, release, tmp_path / "pid", nap) for n, nap in ((2, 0), (6, 0.1)))
    fit(tmp_path, Tiny(train, val), StallWarning(after_s=0.3, poll_s=0.02))
    assert stall_lines(capsys.readouterr().err) == []
    assert no_watch_left()


def test_only_time_the_watch_ran_counts_and_it_is_said_again_after_each_further_wait() -> None:
    """A process stopped (SIGSTOP, Ctrl-Z) for 1000 s is no stall; a stall is said at
    ``after_s`` and again at each further ``after_s``, not at every poll."""
    now = [0.0]
    watch = StallWatch(after_s=10, poll_s=1, clock=lambda: now[0])
    said: list[str] = []
    watch.say, watch.diagnosis = said.append, lambda: "here"
    watch.arm("training step", "last at step 7")

    def polls(until: float) -> None:
        while now[0] < until:
            now[0] += 1
            watch.poll()

    now[0] = 1000.0  # stopped, then continued: one poll late
    watch.poll()
    polls(1008)
    assert said == []
    polls(1028)
    assert said == [
        "no training step finished for 10 s (last at step 7); still waiting; here",
        "no training step finished for 20 s (last at step 7); still waiting; here",
    ]
    watch.beat("training step", "last at step 8")
    polls(1038)
    assert said[2:] == ["training resumed after 29 s"]


def test_a_stalled_photo_loop_is_said_and_its_resumption(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """predict, evaluate and the BatchNorm statistics iterate their photos in ``batches``."""
    release, pid = tmp_path / "release", tmp_path / "pid"
    monkeypatch.setattr(gan.stalls, "STALL_AFTER_S", 0.3)
    say = StallWatch.say
    monkeypatch.setattr(StallWatch, "say", lambda self, line: (say(self, line), release.touch()))
    loader = DataLoader(Held(3, 1, release, pid))
    assert len(list(batches(loader, "predict"))) == 3
    lines = stall_lines(capsys.readouterr().err)
    assert len(lines) == 2, lines
    assert lines[0].startswith("no batch of photos finished for ")
    assert (
        "(predict: 1 of 3 photos done); still waiting; waiting in tests/test_stalls.py:" in lines[0]
    )
    assert lines[1].startswith("predict resumed after ")
    assert no_watch_left()


@pytest.mark.parametrize("after_s", [0, -5, "soon", True])
def test_a_threshold_that_is_no_time_is_refused_in_one_line(after_s: object) -> None:
    with pytest.raises(ConfigError, match=r"^callbacks\.stall_warning\.after_s=.*: expected"):
        StallWarning(after_s=after_s)


def test_the_callback_pickles_as_ddp_spawn_sends_it_to_each_rank() -> None:
    watch = pickle.loads(pickle.dumps(StallWarning(after_s=7)))
    assert watch.watch.after_s == 7
