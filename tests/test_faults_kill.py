"""kill -9 in the middle of GAN training, translation and task training, then the same command.

The rerun must resume (Lightning restores the checkpoint; steps continue) and finish with
complete, valid outputs. Rendering has its own kill test in test_synth_render.py.
"""

from __future__ import annotations

import csv
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from _cli_fixtures import (
    ROOT,
    assert_same_weights,
    gan_overrides,
    kill_when,
    run_tool,
    run_tools_at_once,
    signal_when,
    straight_ckpt,
    task_overrides,
    tensorboard_points,
    terminate_when,
    tree_digest,
)
from _gan_fixtures import make_synthetic, tiny_gan, tiny_trainer

from gan.checkpoint import load_checkpoint
from synth.io import MANIFEST
from synth.toy import write_toy_real_folder

STEPS = 6
FLUSH = "+logger.csv.flush_logs_every_n_steps=1"  # rows reach disk before the kill


def logged_steps(metrics_csv: Path, column: str) -> list[int]:
    with metrics_csv.open(newline="") as file:
        return [int(r["step"]) for r in csv.DictReader(file) if r.get(column)]


def kill_then_rerun(tool: str, overrides: list[str], ckpt: Path) -> str:
    """Kill -9 once a checkpoint exists, rerun the same command; returns the rerun's stdout."""
    assert kill_when(tool, overrides, ckpt.is_file), f"{tool} finished before the kill"
    killed_at = load_checkpoint(ckpt)["global_step"]
    assert 0 < killed_at < STEPS, killed_at
    proc = run_tool(tool, *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Restored all states from the checkpoint" in proc.stderr
    assert load_checkpoint(ckpt)["global_step"] == STEPS
    return proc.stdout


def steps_logged(metrics_csv: Path, column: str, count: int) -> Callable[[], bool]:
    """Ready once ``count`` steps of ``column`` are in ``metrics.csv``: a stop lands after them."""
    return lambda: metrics_csv.is_file() and len(logged_steps(metrics_csv, column)) >= count


def test_kill_gan_training_then_resume(tmp_path: Path) -> None:
    write_toy_real_folder(tmp_path / "real")
    syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2, h=32, w=40)
    overrides = [*gan_overrides(tmp_path, syn, STEPS), FLUSH]
    out = kill_then_rerun("train_gan", overrides, tmp_path / "checkpoints" / "adapt" / "last.ckpt")
    assert f"generator steps: {STEPS}" in out
    # One curve across both processes: every step once, none lost, none duplicated (a step's
    # checkpoint is saved only after its metrics row is written: gan.callbacks.StepCheckpoint).
    steps = logged_steps(tmp_path / "logs" / "adapt" / "metrics.csv", "train/total")
    assert steps == list(range(STEPS)), steps
    images = sorted((tmp_path / "logs" / "adapt" / "images").glob("*.png"))
    assert [p.stem[-6:] for p in images] == [f"{s:06d}" for s in range(STEPS)]  # as the rows


def test_gan_killed_past_its_checkpoint_shows_each_step_once_in_tensorboard(
    tmp_path: Path,
) -> None:
    """Killed two steps after its last checkpoint, the resumed run logs those steps again, in
    a new event file: TensorBoard drew them twice (each curve doubling back at the resume, two
    grids at one step) until the earlier file lost them (gan.loggers.ResumableTensorBoardLogger)."""
    steps = 12
    write_toy_real_folder(tmp_path / "real")
    syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2, h=32, w=40)
    overrides = [
        *gan_overrides(tmp_path, syn, steps),
        FLUSH,
        "logger=[csv,tensorboard]",
        "callbacks.model_checkpoint.every_n_train_steps=4",
    ]
    logs = tmp_path / "logs" / "adapt"
    ready = steps_logged(logs / "metrics.csv", "train/total", 6)
    assert kill_when("train_gan", overrides, ready), "train_gan finished before the kill"
    killed_at = load_checkpoint(tmp_path / "checkpoints" / "adapt" / "last.ckpt")["global_step"]
    logged = logged_steps(logs / "metrics.csv", "train/total")
    assert 0 < killed_at <= max(logged), (killed_at, logged)  # steps past it were logged
    rerun = run_tool("train_gan", *overrides)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    points = tensorboard_points(logs)
    assert len(list(logs.glob("events.out.tfevents.*"))) == 2
    assert sorted(s for tag, s, _ in points if tag == "train/total") == list(range(steps))
    grids = sorted(s for tag, s, _ in points if tag == "adapt/A_GA_FGA_B_FB_fsGA")
    assert grids == list(range(steps))
    assert [s for tag, s, _ in points if tag.startswith("config")] == [0]


def test_gan_training_killed_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    """After a kill the GAN draws the same crops, augmentations and pooled fakes as a run never
    stopped: the stream continues where the checkpoint left it, the image pools are saved
    with the weights, and so is the random state the pools draw from."""
    steps = 40
    write_toy_real_folder(tmp_path / "real")
    syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2, h=32, w=40)
    overrides = [
        *gan_overrides(tmp_path, syn, steps),
        FLUSH,
        "gan.pool_size=3",  # full after 2 steps of 2: later steps swap pooled fakes
        "gan.log_images_every_n_steps=0",
        "gan_data.num_workers=2",
    ]
    killed = [*overrides, "run_name=killed"]
    ckpt = tmp_path / "checkpoints" / "killed" / "last.ckpt"
    metrics = tmp_path / "logs" / "killed" / "metrics.csv"
    ready = steps_logged(metrics, "train/total", 3)
    assert kill_when("train_gan", killed, ready), "train_gan finished before the kill"
    saved = load_checkpoint(ckpt)
    killed_at = saved["global_step"]
    assert 2 <= killed_at < steps, killed_at
    assert len(saved["image_pools"]["b"]["images"]) == 3
    rerun, straight = run_tools_at_once(
        ("train_gan", killed), ("train_gan", [*overrides, "run_name=straight"])
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Restored all states from the checkpoint" in rerun.stderr
    assert "dataloader is not resumable" not in rerun.stderr

    assert_same_weights(ckpt, straight_ckpt(tmp_path), killed_at)


def test_kill_task_training_then_resume(tmp_path: Path) -> None:
    write_toy_real_folder(tmp_path / "real")
    overrides = [*task_overrides(tmp_path, STEPS), FLUSH]
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    kill_then_rerun("train_task", overrides, ckpt)
    metrics = (tmp_path / "out" / "runs" / "task_oracle" / "metrics.json").read_text()
    assert f'"global_step": {STEPS}' in metrics
    steps = logged_steps(tmp_path / "logs" / "task_oracle" / "metrics.csv", "train/loss")
    assert steps == list(range(STEPS)), steps


def test_task_training_killed_mid_epoch_resumes_to_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    """The rest of the epoch is trained on the same crops in the same order, with the same
    augmentation and mixup draws: a kill costs time, never a different model."""
    steps = 9  # 6 batches an epoch (12 photos, batch 2): killed inside the first, resumed
    write_toy_real_folder(tmp_path / "real", n=12)  # across the second's start
    overrides = [*task_overrides(tmp_path, steps), FLUSH, "task.mixup_alpha=0.4"]
    overrides = [o for o in overrides if "num_workers" not in o] + ["task_data.num_workers=2"]
    ckpt = tmp_path / "checkpoints" / "killed" / "last.ckpt"
    killed = [*overrides, "run_name=killed"]
    assert kill_when("train_task", killed, ckpt.is_file), "train_task finished before the kill"
    killed_at = load_checkpoint(ckpt)["global_step"]
    assert 0 < killed_at < 6, killed_at  # mid-epoch (between epochs: the SIGTERM test below)
    rerun, straight = run_tools_at_once(
        ("train_task", killed), ("train_task", [*overrides, "run_name=straight"])
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Restored all states from the checkpoint" in rerun.stderr
    assert "dataloader is not resumable" not in rerun.stderr

    assert_same_weights(ckpt, straight_ckpt(tmp_path), killed_at)


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_after_an_epochs_last_step_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, workers: int
) -> None:
    """Stopped between epochs, Lightning's loop state still described the finished epoch's last
    batch: the resumed loop ran one batch more of it and drew every later epoch under another
    number. The checkpoint now records the next epoch's start, as a periodic save there does,
    for the loader's place too: with DataLoader workers the resumed run skipped an epoch.
    Stopped at a step whose validation was due, every later row of metrics.csv came one
    step later than in the run never stopped (Lightning counted the saved step again)."""
    steps = 9  # 6 batches an epoch (12 photos, batch 2): stopped right after the first epoch
    write_toy_real_folder(tmp_path / "real", n=12)
    overrides = [
        *task_overrides(tmp_path, steps),
        FLUSH,
        "task.mixup_alpha=0.4",
        f"task_data.num_workers={workers}",
        "trainer.val_check_interval=3",  # validation due at step 6, where the stop lands
    ]
    stopped = [*overrides, "run_name=stopped", "callbacks.model_checkpoint.every_n_train_steps=100"]
    stop = ["+callbacks.stop._target_=_stop_at_step.SigtermAtStep", "+callbacks.stop.step=6"]
    paths = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    first = run_tool("train_task", *stopped, *stop, PYTHONPATH=paths)
    assert first.returncode == 143, first.stderr[-3000:]
    ckpt = tmp_path / "checkpoints" / "stopped" / "last.ckpt"
    assert load_checkpoint(ckpt)["global_step"] == 6  # saved by the SIGTERM, not periodically
    rerun, straight = run_tools_at_once(
        ("train_task", stopped), ("train_task", [*overrides, "run_name=straight"])
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Restored all states from the checkpoint" in rerun.stderr
    assert load_checkpoint(ckpt)["epoch"] == load_checkpoint(straight_ckpt(tmp_path))["epoch"]
    assert_same_weights(ckpt, straight_ckpt(tmp_path), 6)
    logs = tmp_path / "logs"
    for column in ("train/loss", "val/f1", "test/f1"):
        want = logged_steps(logs / "straight" / "metrics.csv", column)
        assert logged_steps(logs / "stopped" / "metrics.csv", column) == want, column
    assert logged_steps(logs / "straight" / "metrics.csv", "val/f1") == [2, 5, 8]


def test_a_finished_run_saves_its_last_step_and_a_longer_budget_resumes_it_exactly(
    tmp_path: Path,
) -> None:
    """A budget off the save grid (4 steps, saves every 3) left last.ckpt at step 3, older
    than the model scored; and a run ended mid-epoch was saved with that epoch closed, so a
    longer budget began the next epoch (the rest of this one never drawn): neither was the
    model a run of the longer budget trains."""
    steps = 9  # 6 batches an epoch (12 photos, batch 2): the first run ends inside the first
    write_toy_real_folder(tmp_path / "real", n=12)
    overrides = [*task_overrides(tmp_path, steps), "task.mixup_alpha=0.4"]
    # a schedule that does not stretch with the budget (cosine's does: another model)
    overrides += ["task.scheduler=constant", "callbacks.model_checkpoint.every_n_train_steps=3"]
    short = [*overrides, "run_name=extended"]
    first = run_tool("train_task", *short, "trainer.max_steps=4")
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt = tmp_path / "checkpoints" / "extended" / "last.ckpt"
    assert load_checkpoint(ckpt)["global_step"] == 4
    rerun, straight = run_tools_at_once(
        ("train_task", short), ("train_task", [*overrides, "run_name=straight"])
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert load_checkpoint(ckpt)["epoch"] == load_checkpoint(straight_ckpt(tmp_path))["epoch"]
    assert_same_weights(ckpt, straight_ckpt(tmp_path), 4)


def stop_mid_training(
    tmp_path: Path, sig: signal.Signals, name: str, *extra: str, group: bool | None = None
) -> tuple[list[str], int]:
    """A 300-step task run stopped by ``sig`` once 3 steps are logged: it must exit 128 +
    ``sig`` saying it was stopped by ``name`` and how to resume, with the step in flight
    saved and each step before it logged once. Returns the run's overrides and that step."""
    steps = 300
    write_toy_real_folder(tmp_path / "real", n=40)  # 20 batches an epoch: the stop lands mid-epoch
    overrides = [
        *task_overrides(tmp_path, steps),
        FLUSH,
        "callbacks.model_checkpoint.every_n_train_steps=1000",  # no periodic save before the stop
        *extra,
    ]
    metrics = tmp_path / "logs" / "task_oracle" / "metrics.csv"
    log = tmp_path / "stopped.log"
    ready = steps_logged(metrics, "train/loss", 3)
    code = signal_when("train_task", overrides, ready, sig, log, group=group)
    assert code is not None, f"train_task finished before the {name}"
    stderr = log.read_text()
    assert code == 128 + sig, stderr[-3000:]
    assert f"stopped by {name}" in stderr and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    stopped_at = load_checkpoint(tmp_path / "checkpoints" / "task_oracle" / "last.ckpt")[
        "global_step"
    ]
    assert 3 <= stopped_at < steps, stopped_at
    assert logged_steps(metrics, "train/loss") == list(range(stopped_at))
    return overrides, stopped_at


def test_ctrl_c_saves_the_step_in_flight_exits_130_then_resumes(tmp_path: Path) -> None:
    """Ctrl-C in a terminal reaches the tool and its DataLoader workers: the step in flight
    still finishes and is saved, as on SIGTERM, where Lightning alone would lose every step
    since the last periodic checkpoint."""
    workers = "task_data.num_workers=2"
    overrides, stopped_at = stop_mid_training(tmp_path, signal.SIGINT, "Ctrl-C", workers)
    proc = run_tool("train_task", *overrides, "trainer.max_steps=" + str(stopped_at + 2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    assert load_checkpoint(ckpt)["global_step"] == stopped_at + 2


def test_a_second_ctrl_c_during_a_step_stops_at_once_with_one_line(tmp_path: Path) -> None:
    """The first Ctrl-C asks for a stop after the step; an impatient second one, mid-step,
    stops at once. Lightning turns it into ``Detected KeyboardInterrupt`` and exit 1, which
    read as a failure: it is exit 130 and the one-line stop."""
    write_toy_real_folder(tmp_path / "real", n=8, h=256, w=256)
    overrides = [
        *task_overrides(tmp_path, 300),
        "task.net.base=32",  # steps of a second or more: the second Ctrl-C lands mid-step
        "task.net.depth=4",
        "task_data.crop_size=256",
        "task_data.batch_size=8",
    ]
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    log = tmp_path / "stopped.log"
    code = signal_when("train_task", overrides, ckpt.is_file, signal.SIGINT, log, again_after=0.1)
    stderr = log.read_text()
    assert code == 130, stderr[-3000:]
    assert stderr.rstrip().endswith(
        "interrupted by Ctrl-C; finished shards, stages and checkpoints are kept: "
        "rerun the same command to resume"
    ), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]


def test_slurms_sigterm_to_every_process_still_saves_the_step_in_flight(tmp_path: Path) -> None:
    """Slurm's scancel or time limit signals every process of the job, the DataLoader workers
    too: one that died of it failed the main process's save of the step in flight with
    ``DataLoader worker (pid N) is killed by signal: Terminated``."""
    workers = "task_data.num_workers=2"
    overrides, stopped_at = stop_mid_training(
        tmp_path, signal.SIGTERM, "SIGTERM", workers, group=True
    )
    proc = run_tool("train_task", *overrides, "trainer.max_steps=" + str(stopped_at + 2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    assert load_checkpoint(ckpt)["global_step"] == stopped_at + 2


def test_sigterm_saves_the_step_in_flight_exits_143_then_resumes(tmp_path: Path) -> None:
    """SIGTERM (preemption, a time limit, ``kill``) must not look like success, and the steps
    since the last periodic checkpoint must not be lost: the rerun continues from the step
    the signal interrupted, and ends with the weights of a run never stopped."""
    steps = 300
    overrides, stopped_at = stop_mid_training(tmp_path, signal.SIGTERM, "SIGTERM")
    metrics = tmp_path / "logs" / "task_oracle" / "metrics.csv"
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"

    proc, straight = run_tools_at_once(
        ("train_task", overrides), ("train_task", [*overrides, "run_name=straight"])
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Restored all states from the checkpoint" in proc.stderr
    # Lightning's notices that say nothing about the run are hidden (gan.cli.EXPECTED_WARNINGS).
    assert "LeafSpec" not in proc.stderr and "on_after_batch_transfer" not in proc.stderr
    assert "litlogger" not in proc.stderr  # nor its advertisement (gan.cli.EXPECTED_NOTICES)
    assert load_checkpoint(ckpt)["global_step"] == steps
    assert logged_steps(metrics, "train/loss") == list(range(steps))
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]  # no last-v1.ckpt beside it

    assert straight.returncode == 0, straight.stderr[-3000:]
    assert_same_weights(ckpt, straight_ckpt(tmp_path), stopped_at)


@pytest.fixture
def generator_ckpt(tmp_path: Path) -> Path:
    """A 1-step tiny GAN checkpoint (saved the way Lightning saves it)."""
    from _gan_fixtures import make_real

    from gan.adapt_data import UnpairedDataModule

    syn = make_synthetic(tmp_path / "gsyn", n=2, shard_size=2, h=32, w=32)
    real = make_real(tmp_path / "greal", n=2, h=32, w=32)
    data = UnpairedDataModule(str(syn), str(real), crop_size=32, batch_size=1, num_workers=0)
    trainer = tiny_trainer(tmp_path, 1)
    trainer.fit(tiny_gan(), datamodule=data)
    path = tmp_path / "gen.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    return path


def translate_overrides(tmp_path: Path, ckpt: Path, src: Path, out: Path) -> list[str]:
    return [
        f"paths.root_dir={tmp_path}",
        f"checkpoint={ckpt}",
        f"src_dir={src}",
        f"out_dir={out}",
        "batch_size=1",
        "device=cpu",
        "evaluate=false",
    ]


def test_sigterm_mid_translation_says_so_and_leaves_whole_shards(
    tmp_path: Path, generator_ckpt: Path
) -> None:
    """A time limit or ``kill`` while translating ended Python at once, without a word: now
    one line and exit 143, the shard in flight cleared, and the rerun finishes the set."""
    src = make_synthetic(tmp_path / "syn", n=40, shard_size=2, h=32, w=40)
    out, log = tmp_path / "adapted", tmp_path / "stopped.log"
    overrides = translate_overrides(tmp_path, generator_ckpt, src, out)
    code = terminate_when("translate", overrides, lambda: (out / "shard-00001").is_dir(), log)
    stderr = log.read_text()
    assert code == 143, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert 0 < len(list(out.glob("shard-?????"))) < 20, "translated before the stop; moot"
    assert not list(out.glob("*.tmp-*"))
    assert run_tool("translate", *overrides).returncode == 0
    assert len([p for p in out.glob("shard-?????") if (p / MANIFEST).is_file()]) == 20


def test_kill_translation_then_resume(tmp_path: Path, generator_ckpt: Path) -> None:
    src = make_synthetic(tmp_path / "syn", n=40, shard_size=2, h=32, w=40)
    out = tmp_path / "adapted"

    def translate(target: Path) -> list[str]:
        return translate_overrides(tmp_path, generator_ckpt, src, target)

    assert kill_when("translate", translate(out), lambda: (out / "shard-00001").is_dir())
    done = sorted(out.glob("shard-?????"))
    assert 0 < len(done) < 20, "translation finished before the kill; test is moot"
    # An uninterrupted run beside the resume, to compare with.
    clean = tmp_path / "clean"
    proc, uninterrupted = run_tools_at_once(
        ("translate", translate(out)), ("translate", translate(clean))
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"translated {src} -> {out}" in proc.stdout
    assert not list(out.glob("*.tmp-*"))
    again = run_tool("translate", *translate(out))  # said "translated" of a set only measured
    assert f"already complete, nothing translated: {src} -> {out}" in again.stdout
    shards = sorted(p.name for p in out.glob("shard-?????") if (p / MANIFEST).is_file())
    assert shards == sorted(p.name for p in src.glob("shard-?????"))
    source, adapted = tree_digest(src), tree_digest(out)
    masks = {k: v for k, v in source.items() if "/semantic/" in k or "/instance/" in k}
    assert masks and all(adapted[k] == v for k, v in masks.items())  # byte-identical
    # Killed-then-resumed equals an uninterrupted run, image for image.
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    card = "dataset_card.json"
    assert {k: v for k, v in adapted.items() if k != card} == {
        k: v for k, v in tree_digest(clean).items() if k != card
    }


def test_slurms_sigterm_mid_prediction_is_one_line(tmp_path: Path) -> None:
    """Scoring and prediction read photos with DataLoader workers too: a worker killed by a
    group-wide SIGTERM printed ``DataLoader worker (pid N) is killed by signal: Terminated``
    with its traceback before the tool's own line."""
    from _task_fixtures import make_folder

    from gan.task import CrackSegmenter

    img, _ = make_folder(tmp_path / "real", n=60, h=192, w=256)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2})
    ckpt = tmp_path / "task.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    out, log = tmp_path / "predicted", tmp_path / "stopped.log"
    overrides = [
        f"paths.root_dir={tmp_path}",
        f"ckpt={ckpt}",
        f"input_dir={img}",
        f"out_dir={out}",
        "num_workers=2",
        "batch_size=2",
    ]

    def ready() -> bool:  # a few masks written to the staging folder
        return len(list(out.glob(".masks.tmp-*/*.png"))) >= 4

    code = signal_when("predict", overrides, ready, signal.SIGTERM, log, group=True)
    stderr = log.read_text()
    assert code == 143, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr, stderr[-3000:]
    # its finished photos are staged for the rerun, which said it would start over
    assert (
        "outputs are as they were, its finished photos are kept: rerun the same command to resume"
    ) in stderr
    assert not (out / "masks").exists() and list(out.glob(".masks.tmp-*/*.png"))


def test_a_killed_predict_reruns_only_the_photos_not_done(tmp_path: Path) -> None:
    """kill -9 at 90 % of a predict kept none of its work: the rerun began at photo 1. Now
    it segments the rest and ends byte for byte as an uninterrupted run."""
    from _task_fixtures import make_folder

    from gan.task import CrackSegmenter

    img, _ = make_folder(tmp_path / "real", n=40, h=96, w=128)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2})
    ckpt = tmp_path / "task.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)

    def predict(out: Path) -> list[str]:
        common = [f"paths.root_dir={tmp_path}", f"ckpt={ckpt}", "batch_size=2"]
        return [*common, f"input_dir={img}", f"out_dir={out}"]

    out = tmp_path / "out"
    assert kill_when("predict", predict(out), lambda: len(list(out.glob(".masks.tmp-*/*"))) > 8)
    staged = len(list(out.glob(".masks.tmp-*/*.png")))
    assert 0 < staged < 40, "the kill came after the last photo; moot"
    rerun = run_tool("predict", *predict(out))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed = int(rerun.stdout.split("resuming: ")[1].split(" of 40 photos already")[0])
    assert 0 < resumed <= staged
    assert run_tool("predict", *predict(tmp_path / "clean")).returncode == 0
    resumed_pngs, clean_pngs = (
        {k: v for k, v in tree_digest(run).items() if k.endswith(".png")}
        for run in (out, tmp_path / "clean")
    )
    assert len(resumed_pngs) == 80 and resumed_pngs == clean_pngs
    assert not list(out.glob(".*"))


def test_a_sigterm_as_training_ends_still_stops_the_tool(tmp_path: Path) -> None:
    """After Lightning's last look for a SIGTERM its handler still takes one: the fit ended
    and saved, the stop was dropped and the tool went on (the pipeline to its next stage,
    seen in one of 16 stops). Now the tool stops there; the rerun only scores."""
    write_toy_real_folder(tmp_path / "real", n=4)
    overrides = task_overrides(tmp_path, 3)
    stop = ["+callbacks.stop._target_=_stop_at_step.SigtermAtTrainEnd"]
    paths = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    first = run_tool("train_task", *overrides, *stop, PYTHONPATH=paths)
    assert first.returncode == 143, first.stderr[-3000:]
    assert "stopped by SIGTERM" in first.stderr and "Traceback" not in first.stderr
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    assert load_checkpoint(ckpt)["global_step"] == 3
    out = tmp_path / "out" / "runs" / "task_oracle" / "metrics.json"
    assert not out.exists()  # stopped before scoring
    rerun = run_tool("train_task", *overrides)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert out.is_file() and load_checkpoint(ckpt)["global_step"] == 3
