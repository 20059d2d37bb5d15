"""A DDP task run (two CPU processes, gloo) stopped mid-epoch resumes to the weights of the run
never stopped: each rank continues its share of the epoch order, with its own random state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _cli_fixtures import (
    ROOT,
    assert_same_weights,
    run_tool,
    straight_ckpt,
    task_overrides,
)

from gan.checkpoint import load_checkpoint
from synth.toy import write_toy_real_folder

TEST_PATHS = os.pathsep.join([str(ROOT), str(ROOT / "tests")])


STEPS = 7  # 12 photos, 2 ranks x batch 2: 3 batches an epoch; stopped in the second


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, list[str]]:
    """The run never stopped (``run_name=straight``), and the overrides it ran with."""
    tmp = tmp_path_factory.mktemp("ddp_resume")
    write_toy_real_folder(tmp / "real", n=12)
    overrides = [
        *task_overrides(tmp, STEPS),
        "trainer=ddp_cpu",
        "task.mixup_alpha=0.4",  # draws from each rank's own RNG
        "callbacks.model_checkpoint.every_n_train_steps=1",
    ]
    proc = run_tool("train_task", *overrides, "run_name=straight")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, overrides


def test_ddp_task_training_stopped_mid_epoch_resumes_to_the_uninterrupted_weights(
    straight: tuple[Path, list[str]],
) -> None:
    tmp_path, overrides = straight
    stopped = [*overrides, "run_name=stopped"]
    stop = ["+callbacks.stop._target_=_stop_at_step.ExitAtStep", "+callbacks.stop.step=5"]
    first = run_tool("train_task", *stopped, *stop, PYTHONPATH=TEST_PATHS)
    assert first.returncode != 0
    ckpt = tmp_path / "checkpoints" / "stopped" / "last.ckpt"
    saved = load_checkpoint(ckpt)
    assert saved["global_step"] == 4
    assert len(saved["callbacks"]["RandomStateCheckpoint"]["ranks"]) == 2
    rerun = run_tool("train_task", *stopped)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Restored all states from the checkpoint" in rerun.stderr
    assert "dataloader is not resumable" not in rerun.stderr
    assert_same_weights(ckpt, straight_ckpt(tmp_path), 4)


def test_a_sigterm_to_one_rank_stops_every_rank_at_a_saved_step(
    straight: tuple[Path, list[str]],
) -> None:
    """A SIGTERM that reached one rank (``kill`` of one process; Slurm's reaches all) hung
    both ranks for good: Lightning's handler ran a broadcast inside the handler, which met
    the other rank's gradient all-reduce. The ranks agree at the next step's start, save the
    step before it, exit 143 with one line, and the rerun ends with the uninterrupted weights."""
    tmp_path, overrides = straight
    stopped = [*overrides, "run_name=sigterm"]
    stop = ["+callbacks.stop._target_=_stop_at_step.SigtermAtStep", "+callbacks.stop.step=4"]
    first = run_tool(
        "train_task",
        *stopped,
        *stop,
        "+callbacks.stop.ranks=[1]",
        timeout=120,
        PYTHONPATH=TEST_PATHS,
    )
    assert first.returncode == 143, first.stderr[-3000:]
    assert first.stderr.count("stopped by SIGTERM; checkpoints are kept") == 1  # rank 0's
    ckpt = tmp_path / "checkpoints" / "sigterm" / "last.ckpt"
    assert load_checkpoint(ckpt)["global_step"] == 4  # saved by the stop (saves every step)
    rerun = run_tool("train_task", *stopped)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_same_weights(ckpt, straight_ckpt(tmp_path), 4)


def test_a_ddp_task_model_resumed_on_other_photos_is_refused_before_the_ranks_start(
    straight: tuple[Path, list[str]],
) -> None:
    """Each rank records the data it trains on by itself; a resume on other photos is refused
    in one line in the launching process, before a rank starts (none left waiting)."""
    tmp_path, overrides = straight
    other = write_toy_real_folder(tmp_path / "other", n=6)
    more = [o for o in overrides if not o.startswith("trainer.max_steps=")]
    proc = run_tool(
        "train_task",
        *more,
        f"trainer.max_steps={STEPS + 2}",
        f"task_data.train_dir={other / 'train_img'}",
        f"task_data.train_mask_dir={other / 'train_lab'}",
        "run_name=straight",
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    trained_on = tmp_path / "real" / "train_img"
    said = f"task_data.train_dir={other / 'train_img'} holds other files than {trained_on}"
    assert said in proc.stderr and proc.stderr.count("error: ") == 1
    assert load_checkpoint(straight_ckpt(tmp_path))["global_step"] == STEPS
