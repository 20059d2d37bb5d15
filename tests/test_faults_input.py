"""Bad input through the command line: one line naming the culprit, exit 1, earlier outputs intact.

A finished tiny task run (checkpoint, logs, metrics.json) is made once; every case then reruns
the same tool with the same run name on broken data or config and must leave it byte-identical.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _cli_fixtures import (
    ROOT,
    exit_code_in_process,
    run_tool,
    task_overrides,
    tool_exit_code,
    tree_digest,
)
from _gan_fixtures import make_synthetic, tiny_gan
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gan.checkpoint import load_checkpoint
from gan.cli import HydraStartChecks, register_resolvers, run_cli
from gan.devices import pick_device
from gan.translate import translate_dataset
from synth.distributions import ConfigError
from synth.io import DataError
from synth.toy import write_toy_real_folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A completed 2-step task run: the 'earlier outputs' every failing rerun must not touch."""
    tmp = tmp_path_factory.mktemp("faults")
    write_toy_real_folder(tmp / "real")
    proc = run_tool("train_task", *task_overrides(tmp))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp


def outputs(tmp: Path) -> dict[str, str]:
    return {
        name: digest
        for sub in ("checkpoints", "out", "logs")
        for name, digest in tree_digest(tmp / sub).items()
    }


def bad_copy(tmp: Path, name: str) -> Path:
    """A private copy of the good real-data folder for one case to break."""
    data = tmp / f"data_{name}"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(tmp / "real", data)
    return data


def run_failing(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    """Rerun the task tool; it must fail with exactly one error line and no traceback."""
    before = outputs(tmp)
    proc = run_tool("train_task", *task_overrides(tmp), *extra)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert outputs(tmp) == before, "a failing run changed earlier outputs"
    return proc


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert proc.returncode == 1
    return lines[0]


def refused_here(tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """run_failing and error_line's checks on the task tool run in this process (a tool
    start per case is seconds; test_missing_data_folder runs one for real): exit 1, one error
    line (a traceback would fail the test), earlier outputs untouched. The line."""
    before = outputs(tmp)
    code = tool_exit_code("train_task", *task_overrides(tmp), *extra)
    err = capsys.readouterr().err
    assert code == 1, err[-3000:]
    assert outputs(tmp) == before, "a failing run changed earlier outputs"
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def test_missing_data_folder(workdir: Path) -> None:
    missing = workdir / "no_such_data"
    line = error_line(run_failing(workdir, f"paths.data_dir={missing}"))
    assert str(missing / "train_img") in line and "not found" in line


def test_empty_data_folder(workdir: Path, capsys) -> None:
    data = workdir / "data_empty"
    for sub in ("train_img", "train_lab", "test_img", "test_lab"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    line = refused_here(workdir, capsys, f"paths.data_dir={data}")
    assert str(data / "train_img") in line and "no images" in line


def test_corrupt_jpeg(workdir: Path, capsys) -> None:
    data = bad_copy(workdir, "jpeg")
    bad = data / "train_img" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:20] + b"\x00" * 64)  # header kept, body zeroed
    line = refused_here(workdir, capsys, f"paths.data_dir={data}")
    assert str(bad) in line and "corrupt image" in line


def test_corrupt_png_mask(workdir: Path, capsys) -> None:
    data = bad_copy(workdir, "png")
    bad = data / "train_lab" / "2.png"
    bad.write_bytes(bad.read_bytes()[:16] + b"garbage" * 8)
    line = refused_here(workdir, capsys, f"paths.data_dir={data}")
    assert str(bad) in line and "corrupt mask" in line


def test_mask_of_the_wrong_size(workdir: Path, capsys) -> None:
    data = bad_copy(workdir, "size")
    bad = data / "test_lab" / "0.png"
    cv2.imwrite(str(bad), np.zeros((20, 20), np.uint8))
    line = refused_here(workdir, capsys, f"paths.data_dir={data}")
    assert str(bad) in line and "20x20 (HxW) differs" in line


def test_mask_values_outside_the_class_map(workdir: Path, capsys) -> None:
    data = bad_copy(workdir, "values")
    bad = data / "train_lab" / "0.png"
    mask = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    mask[:4, :4] = 128
    cv2.imwrite(str(bad), mask)
    line = refused_here(workdir, capsys, f"paths.data_dir={data}")
    assert str(bad) in line and "[128]" in line and "outside the class map" in line


def test_a_misspelt_setting_is_one_line_with_the_nearest_name(workdir: Path) -> None:
    """Hydra's six lines advised ``+task.lrr=0.1``, which adds a setting no code reads; a
    tool's run says the setting it meant (tests/test_start.py has the other cases)."""
    proc = run_failing(workdir, "task.lrr=0.1")
    assert proc.stderr == "error: no setting 'task.lrr'; did you mean 'task.lr'?\n"
    assert proc.returncode == 1


def test_a_log_dir_that_is_a_file_is_one_line_before_hydra_makes_its_run_folder(
    workdir: Path,
) -> None:
    """Hydra makes its run folder under ``paths.log_dir`` before any tool code runs: a log
    folder that was a file ended in Hydra's own traceback."""
    taken = workdir / "a_file"
    taken.write_text("")
    proc = run_failing(workdir, f"paths.log_dir={taken}")
    assert error_line(proc) == f"error: paths.log_dir={taken}: a file, not a folder"


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_hydras_own_folder_that_cannot_be_made_is_named_with_the_file_in_the_way(
    tmp_path: Path, capsys, mode: str
) -> None:
    (tmp_path / "hydra").write_text("")
    folder = tmp_path / "hydra" / "x"
    config = OmegaConf.create(
        {"paths": {"log_dir": str(tmp_path)}, "hydra": {mode: {"dir": str(folder)}}}
    )
    start = getattr(HydraStartChecks(), f"on_{'multi' if mode == 'sweep' else ''}run_start")
    with pytest.raises(SystemExit) as stop:
        start(config)
    assert stop.value.code == 1
    why = f"a file, not a folder ({tmp_path / 'hydra'} is)"
    assert capsys.readouterr().err == f"error: Hydra's {mode} folder {folder}: {why}\n"
    (tmp_path / "hydra").unlink()
    start(config)  # a folder that can be made: nothing said, nothing made
    assert not (tmp_path / "hydra").exists() and not capsys.readouterr().err


def test_a_checkpoint_cut_short_or_of_another_model_is_named_before_training(
    workdir: Path, capsys
) -> None:
    """Rerunning the run with a wider net finds its last.ckpt of the narrower one; a copy cut
    short is no checkpoint at all. Both: one line naming the file, outputs untouched."""
    last = workdir / "checkpoints" / "task_oracle" / "last.ckpt"
    line = refused_here(workdir, capsys, "task.net.base=8")
    assert f"{last}: holds another model than this config builds" in line
    assert "ckpt_path=null or a new run_name=" in line
    # Another learning rate: Lightning would restore the old optimizer and schedule, and the
    # run's config would record a value never used.
    line = refused_here(workdir, capsys, "task.lr=0.01")
    assert f"{last}: made with another lr; a resume restores the old optimizer" in line
    # Another seed under the same run_name (a sweep seed=0,1 with one name): seed 0's model
    # was carried on and scored as seed 1's.
    line = refused_here(workdir, capsys, "seed=1", "run_name=task_oracle")
    assert f"{last}: trained with seed=0, not seed=1; give each seed its own run_name=" in line
    # A smaller budget than the checkpoint's step: Lightning stopped at once and the tool
    # went on to score the 2-step model as a 1-step run.
    line = refused_here(workdir, capsys, "trainer.max_steps=1", "trainer.val_check_interval=1")
    assert (
        f"{last}: at step 2, past trainer.max_steps=1; resume with a budget of at least 2" in line
    )
    cut = workdir / "cut.ckpt"
    cut.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    line = refused_here(workdir, capsys, f"ckpt_path={cut}")
    assert f"{cut}: unreadable checkpoint, cut short or not one" in line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_steps=0", "trainer.max_steps=0: set it (or max_epochs) to a number"),
        ("task.scheduler=bogus", "task.scheduler='bogus': expected cosine, onecycle or constant"),
        ("task.augment.preset=heavy", "augment.preset='heavy': expected none, light or strong"),
        ("task_data.eval_size=[384]", "task_data.eval_size=[384]: expected [H, W], two"),
        ("task_data.batch_size=0", "task_data.batch_size=0: expected a whole number >= 1"),
        ("task.lr=-1", "task.lr=-1: expected a positive number"),
        ("task.lr=abc", "task.lr='abc': expected a positive number"),
        ("seed=abc", "seed='abc': expected a whole number >= 0"),
        # a word Hydra keeps as a string counted as true (fda.py replace_stale=no replaced)
        ("trainer.enable_model_summary=Off", "enable_model_summary=Off: a yes/no setting takes"),
        ("trainer.precision=fp16", "trainer.precision='fp16': expected one of 32-true, bf16-mixed"),
        ("trainer.max_steps=2k", "trainer.max_steps='2k': expected a whole number"),
        ("trainer.val_check_interval=x", "trainer.val_check_interval='x': expected a number"),
        ("prune.keep_fraction=1.5", "prune.keep_fraction=1.5: expected 0 < keep_fraction <= 1"),
        ("prune.keep_fraction=0.5 prune.seeds=[]", "prune.seeds=[]: expected a list of whole"),
        ("prune.keep_fraction=0.5 prune.lr=-1", "prune.lr=-1: expected a positive number"),
        ("task.label_smoothing=1.5", "task.label_smoothing=1.5: expected a number >= 0 and < 1"),
        ("task.class_weights=[1.0]", "task.class_weights=[1.0]: one weight per class"),
        ("task.weight_decay=-1", "task.weight_decay=-1: expected a number >= 0"),
        ("task.net.num_classes=3", "task.net.num_classes=3: the crack task has 2 classes"),
        ("task.mixup_prob=2", "task.mixup_prob=2: expected a number >= 0 and <= 1"),
        ("task.tolerance=-1", "task.tolerance=-1: expected a whole number >= 0"),
        ("trainer.val_check_interval=0", "trainer.val_check_interval=0: expected a number > 0"),
        (
            "task.net.name=deeplabv3_mobilenet_v3_large task_data.batch_size=1",
            "task_data.batch_size=1: deeplabv3_mobilenet_v3_large needs batches of 2 or more",
        ),
        (
            "task_data.crop_size=100",
            "task_data.crop_size=100: larger than the training images (32x40), so crops would "
            "be mostly padding; at most 32, or null for whole images",
        ),
    ],
)
def test_a_setting_that_makes_no_sense_is_one_line(
    workdir: Path, capsys, override: str, message: str
) -> None:
    """In this process, through the tool's own ``run_cli`` (a tool start per case was two
    minutes of CI); the test below runs a few through the tool itself."""
    from gan.task_training import train_task

    overrides = [*task_overrides(workdir), "run_name=nonsense", *override.split()]
    assert exit_code_in_process(train_task, "train_task", overrides) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.lr=abc", "task.lr='abc': expected a positive number"),
        ("task.augment.preset=heavy", "augment.preset='heavy': expected none, light or strong"),
    ],
)
def test_the_task_tool_says_a_setting_that_makes_no_sense_in_one_line(
    workdir: Path, override: str, message: str
) -> None:
    proc = run_tool("train_task", *task_overrides(workdir), "run_name=nonsense", *override.split())
    assert message in error_line(proc) and "Traceback" not in proc.stderr


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_asked_for_where_torch_sees_none_is_refused_with_the_way_out(
    monkeypatch, accelerator: str
) -> None:
    """Lightning's "No supported gpu backend found!" named neither setting nor remedy."""
    from gan.cli import check_shared_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    stages = {"adapt": {"trainer": {"accelerator": "auto"}}}
    check_shared_settings(OmegaConf.create({"trainer": {"accelerator": "cpu"}, "stages": stages}))
    stages["task"] = {"trainer": {"accelerator": accelerator}}
    with pytest.raises(ConfigError) as err:
        check_shared_settings(OmegaConf.create({"stages": stages}))
    assert str(err.value).startswith(f"stages.task.trainer.accelerator={accelerator}: torch sees")
    assert str(err.value).endswith(
        "trainer=cpu, or stages.task.trainer.accelerator=auto to take a GPU where there is one"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_shared_settings(OmegaConf.create({"stages": stages}))


def test_a_one_cycle_run_resumed_with_another_budget_is_refused(workdir: Path, capsys) -> None:
    """OneCycle keeps its step total in its state: it failed mid-run with a traceback."""
    args = ["run_name=onecycle", "task.scheduler=onecycle"]
    assert tool_exit_code("train_task", *task_overrides(workdir), *args) == 0
    line = refused_here(workdir, capsys, *args, "trainer.max_steps=3")
    assert "its OneCycle schedule was built for 2 steps, not trainer.max_steps=3" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_a_gpu_asked_for_where_there_is_none_is_one_line(
    workdir: Path, tmp_path: Path, capsys
) -> None:
    line = refused_here(workdir, capsys, "run_name=gpu", "trainer=gpu")
    assert "error: trainer.accelerator=gpu: torch sees no GPU" in line
    with pytest.raises(ConfigError, match="device=cuda: no CUDA GPU here; use device=auto"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match=r"^device=cpuu: expected auto, cpu, cuda or cuda:N$"):
        pick_device("cpuu")
    # translation too (tools/translate.py, the pipeline's translate stage): torch's traceback
    scenes = make_synthetic(tmp_path / "scenes", n=2, shard_size=2)
    with pytest.raises(ConfigError, match="device=cuda: no CUDA GPU here"):
        translate_dataset(tiny_gan(), scenes, tmp_path / "translated", device="cuda")
    assert not (tmp_path / "translated").exists()


def test_wandb_online_without_an_api_key_is_one_line(workdir: Path, tmp_path: Path) -> None:
    """No key anywhere wandb looks (environment, ~/.netrc, its settings): wandb's own message
    and the two ways out, not 40 lines of traceback; and no notice about Lightning's code."""
    proc = run_tool(
        "train_task",
        *task_overrides(workdir),
        "run_name=wandb_online",
        "logger=wandb",
        "logger.wandb.offline=false",
        WANDB_MODE="online",
        WANDB_API_KEY="",
        HOME=str(tmp_path),
        NETRC=str(tmp_path / "netrc"),
        WANDB_CONFIG_DIR=str(tmp_path),
    )
    line = error_line(proc)
    assert "wandb: No API key configured" in line
    assert "WANDB_MODE=offline logs without an account" in line  # the env decides over offline
    assert "Traceback" not in proc.stderr and "anonymous" not in proc.stderr
    # the W&B run record it wrote, alone in a new checkpoint folder, went with the run
    assert not (workdir / "checkpoints" / "wandb_online").exists()


def test_a_wandb_failure_with_a_key_set_points_offline_not_to_the_key(monkeypatch) -> None:
    """With WANDB_API_KEY set and no server in reach, wandb's two-line error came with the
    advice to set WANDB_API_KEY."""
    from gan.cli import wandb_advice

    failure = "Failed to get resume status\nPost https://api.wandb.ai: no such host"
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0123456789" * 4)
    line = wandb_advice(failure)
    assert line.startswith("wandb: Failed to get resume status (WANDB_API_KEY is set: the")
    assert "\n" not in line and "or set WANDB_API_KEY" not in line
    monkeypatch.setenv("WANDB_API_KEY", "")
    assert "(or set WANDB_API_KEY; logger.wandb.offline=true" in wandb_advice(failure)
    monkeypatch.setenv("WANDB_MODE", "online")  # decides over logger.wandb.offline
    assert "(or set WANDB_API_KEY; WANDB_MODE=offline logs" in wandb_advice(failure)


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(workdir: Path) -> None:
    """lr=1e30 blows the weights up after step 1; step 2's loss is non-finite."""
    proc = run_tool(
        "train_task", *task_overrides(workdir, steps=6), "run_name=nan_run", "task.lr=1e30"
    )
    line = error_line(proc)
    assert "Traceback" not in proc.stderr
    last = workdir / "checkpoints" / "nan_run" / "last.ckpt"
    assert "non-finite" in line and "at step 2 " in line and str(last) in line
    ckpt = load_checkpoint(last)
    assert ckpt["global_step"] == 1
    assert all(v.isfinite().all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (workdir / "out" / "runs" / "nan_run" / "metrics.json").exists()


def test_expected_library_notices_are_hidden_and_others_are_not() -> None:
    def noisy() -> None:
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", stacklevel=1)
        warnings.warn(
            "You have overridden `on_after_batch_transfer` in `LightningModule`", stacklevel=1
        )
        warnings.warn("`torch.jit.trace` is deprecated. Please ...", FutureWarning, stacklevel=1)
        warnings.warn("a notice the user should read", stacklevel=1)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_cli(noisy)
    assert [str(w.message) for w in seen] == ["a notice the user should read"]


class BrokenPhotos(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        raise DataError("/photos/zero.jpg: unreadable or corrupt image")


def test_a_bad_photo_found_by_a_loader_worker_is_one_line(capsys) -> None:
    """torch re-raises a worker's error with the worker's whole traceback as its message."""

    def read_all() -> None:
        list(torch.utils.data.DataLoader(BrokenPhotos(), num_workers=1))

    with pytest.raises(SystemExit) as stop:
        run_cli(read_all)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: /photos/zero.jpg: unreadable or corrupt image\n"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("gan.callbacks", "NonFiniteLossError"),
        ("gan.checkpoint", "UnsafeCheckpointError"),
        ("gan.export", "ExportMismatchError"),
        ("lightning.fabric.utilities.exceptions", "MisconfigurationException"),
    ],
)
def test_the_training_stacks_errors_are_one_line_though_gan_cli_does_not_import_them(
    capsys, module: str, name: str
) -> None:
    """gan.cli names them only once loaded (a tool that never loads torch starts in a second,
    not five); a loaded module's error is still the user's one line."""
    import importlib

    error = getattr(importlib.import_module(module), name)

    def fails() -> None:
        raise error("/runs/x/last.ckpt: what went wrong")

    with pytest.raises(SystemExit) as stop:
        run_cli(fails)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: /runs/x/last.ckpt: what went wrong\n"


@pytest.mark.parametrize(
    ("tool", "override", "message"),
    [
        ("predict", "batch_size=0", "batch_size=0: expected a whole number >= 1"),
        ("evaluate", "num_overlays=abc", "num_overlays='abc': expected a whole number >= 0"),
        ("pseudo_label", "shard_size=0", "shard_size=0: expected a whole number >= 1"),
        ("preview", "nrow=0", "nrow=0: expected a whole number >= 1"),
        ("translate", "eval_max_images=1", "eval_max_images=1: expected a whole number >= 2"),
    ],
)
def test_a_tools_count_that_makes_no_sense_is_one_line_before_any_work(
    tool: str, override: str, message: str, tmp_path: Path
) -> None:
    """Checked before the tool reads a file (no checkpoint or data is given here): these were
    tracebacks from torch's DataLoader, a slice, a division by zero and np.stack."""
    proc = run_tool(tool, f"paths.root_dir={tmp_path}", override)
    assert message in error_line(proc) and "Traceback" not in proc.stderr


def test_ckpt_path_null_starts_over_and_replaces_last_ckpt(workdir: Path) -> None:
    """README's "to start over": Lightning kept the old model in last.ckpt and saved the new
    one as last-v1.ckpt, which the next plain rerun never read (it resumed the old model)."""
    run = workdir / "checkpoints" / "over"
    first = run_tool("train_task", *task_overrides(workdir, steps=2), "run_name=over")
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_tool(
        "train_task", *task_overrides(workdir, steps=4), "run_name=over", "ckpt_path=null"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"starting over (ckpt_path=null): {run / 'last.ckpt'} is replaced" in again.stderr
    assert sorted(p.name for p in run.iterdir()) == ["last.ckpt"]
    assert load_checkpoint(run / "last.ckpt")["global_step"] == 4
    # its logs too: the 2-step model's rows, logged before the new run's first, had stayed
    assert re.search(r"from scratch: \d+ log files of an earlier run removed", again.stderr)
    with (workdir / "logs" / "over" / "metrics.csv").open() as file:
        tested = [row["step"] for row in csv.DictReader(file) if row.get("test/f1")]
    assert tested == ["4"]


def test_sigterm_outside_training_is_an_interrupt_unless_someone_else_handles_it(
    python_signal_defaults: None,
) -> None:
    """The tool's own SIGTERM handler raises where Ctrl-C would, for the one-line stop; a
    handler already in place (submitit's job runner) is left as it is, and so is Lightning's
    polite stop during a fit, which calls the handler it found beside its own."""
    import os
    import signal

    from gan.cli import Terminated, stops_as_interrupts

    with pytest.raises(Terminated), stops_as_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored

    lightning_calls, seen = [], []
    try:  # (a Terminated escaping would end the whole test session as a Ctrl-C does)
        with stops_as_interrupts():  # inside a fit: Lightning's handler calls the tool's
            ours = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, lambda *a: (lightning_calls.append(1), ours(*a)))
            os.kill(os.getpid(), signal.SIGTERM)  # the fit stops politely, after its step
        signal.signal(signal.SIGTERM, lambda *a: seen.append(a[0]))
        with stops_as_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
    except Terminated:
        pytest.fail("SIGTERM raised where another handler was in charge")
    assert lightning_calls == [1] and seen == [signal.SIGTERM]


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [("SIGTERM", 143, "stopped by SIGTERM"), ("SIGINT", 130, "interrupted by Ctrl-C")],
)
def test_a_stop_while_lightning_sets_up_a_fit_is_still_that_stop(
    capsys, python_signal_defaults: None, stop: str, code: int, said: str
) -> None:
    """Before Lightning's own SIGTERM handler (or the tool's polite Ctrl-C) is in place
    (restoring a checkpoint) or after it is gone (teardown), the tool's raises, and Lightning
    turns that KeyboardInterrupt into ``Detected KeyboardInterrupt`` and exit code 1: the stop
    is reported as the signal it was (a Ctrl-C there exited 1, seen by tools/soak_stops.py)."""
    import os
    import signal
    import sys

    sig = getattr(signal, stop)

    def fit_like() -> None:
        try:
            os.kill(os.getpid(), sig)
        except KeyboardInterrupt:
            sys.exit(1)  # what lightning.pytorch.trainer.call does with it

    with pytest.raises(SystemExit) as stopped:
        run_cli(fit_like)
    assert stopped.value.code == code
    assert said in capsys.readouterr().err
    with pytest.raises(SystemExit) as failed:  # any other exit of code 1 stays as it was
        run_cli(sys.exit, 1)
    assert failed.value.code == 1


def test_an_error_a_stop_leaves_behind_is_still_the_stop(
    capsys, python_signal_defaults: None
) -> None:
    """A SIGTERM that lands mid-way through a library's bookkeeping (OmegaConf's, as a
    checkpoint was restored) can leave a clean-up to trip on the half-done state: its error
    came out in the stop's place, ``error: 'NoneType' object has no attribute ...`` and exit
    1, once in 30 stops of tools/soak_stops.py. The stop is reported, with what broke off."""
    import os
    import signal

    from synth.distributions import ConfigError

    def cleanup_trips() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            raise ConfigError("half-done\n    full_key: tags") from None

    with pytest.raises(SystemExit) as stopped:
        run_cli(cleanup_trips)
    assert stopped.value.code == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM (half-done, as it stopped); finished shards" in err, err
    with pytest.raises(SystemExit) as failed:  # with no stop, the error is the error
        run_cli(lambda: (_ for _ in ()).throw(ConfigError("bad")))
    assert failed.value.code == 1
    assert capsys.readouterr().err == "error: bad\n"


@pytest.mark.parametrize(
    ("died_of", "code", "said"),
    [("Terminated", 143, "stopped by SIGTERM"), ("Interrupt", 130, "interrupted by Ctrl-C")],
)
def test_a_starting_loader_worker_killed_by_the_stop_is_the_stop(
    capsys, died_of: str, code: int, said: str
) -> None:
    """A group-wide signal can reach a DataLoader worker before its start ignores it; torch
    then raises mid-step, which printed a traceback (seen once in 16 stops of the pipeline)."""

    def step() -> None:
        raise RuntimeError(f"DataLoader worker (pid 14748) is killed by signal: {died_of}. ")

    with pytest.raises(SystemExit) as stopped:
        run_cli(step)
    assert stopped.value.code == code
    err = capsys.readouterr().err
    assert said in err and "rerun the same command" in err

    def clean_up_fails() -> None:  # Lightning's teardown after the worker's death, in turn
        try:
            step()
        except RuntimeError:
            raise RuntimeError("Please call `iter(combined_loader)` first.")  # noqa: B904 (as Lightning: implicit)

    with pytest.raises(SystemExit) as stopped:
        run_cli(clean_up_fails)
    assert stopped.value.code == code and said in capsys.readouterr().err

    def broken() -> None:
        raise RuntimeError("DataLoader worker (pid 7) is killed by signal: Segmentation fault.")

    with pytest.raises(RuntimeError, match="Segmentation fault"):  # a crash stays a crash
        run_cli(broken)


def test_a_slurm_sweep_sized_by_auto_devices_or_sent_from_a_machine_without_slurm_is_one_line(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Both were tracebacks from inside Hydra once the sweep began: omegaconf's "could not be
    converted to Integer" for the GPU count, submitit's "Could not detect srun"."""
    register_resolvers()  # as the tool does (the paths' env_or; alone, this test needs it)
    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    overrides = ["hydra/launcher=slurm_jobs", "trainer=ddp", "hydra.job.name=x"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        auto = compose("train_task", overrides, return_hydra_config=True)
        counted = compose("train_task", [*overrides, "trainer.devices=4"], return_hydra_config=True)
    with pytest.raises(SystemExit) as stop:
        HydraStartChecks().on_multirun_start(auto)
    assert stop.value.code == 1
    said = capsys.readouterr().err
    assert said.startswith(
        "error: hydra.launcher.gpus_per_node=${oc.select:trainer.devices,null}: Value 'auto'"
    )
    assert said.endswith("trainer.devices=<GPUs a node>\n") and said.count("\n") == 1
    HydraStartChecks().on_multirun_start(counted)  # srun found, a count: nothing said
    assert not capsys.readouterr().err
    (tmp_path / "srun").unlink()
    with pytest.raises(SystemExit):
        HydraStartChecks().on_multirun_start(counted)
    assert "no srun on this machine" in capsys.readouterr().err


def test_a_slurm_sweep_of_a_tool_without_a_trainer_asks_one_task_and_no_gpu(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """tools/render.py and tools/evaluate.py have no ``trainer``: the launcher's GPU count
    from ``trainer.devices`` was omegaconf's InterpolationKeyError, a callback's traceback,
    before the sweep began; an unresolvable launcher setting is one line too."""
    register_resolvers()
    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    overrides = ["hydra/launcher=slurm_jobs", "hydra.job.name=x", f"paths.root_dir={tmp_path}"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        configs = {
            tool: compose(tool, overrides, return_hydra_config=True)
            for tool in ("render", "evaluate")
        }
        broken = compose(
            "render",
            [*overrides, "hydra.launcher.cpus_per_task=${nosuch}"],
            return_hydra_config=True,
        )
    for config in configs.values():
        HydraStartChecks().on_multirun_start(config)  # srun found: nothing said
        launcher = OmegaConf.to_container(config.hydra.launcher, resolve=True)
        assert launcher["gpus_per_node"] is None and launcher["tasks_per_node"] == 1
    assert not capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        HydraStartChecks().on_multirun_start(broken)
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        "error: hydra.launcher.cpus_per_task=${nosuch}: Interpolation key 'nosuch' not found\n"
    )
    (tmp_path / "srun").unlink()  # the machine's own case: no srun, said after the settings
    with pytest.raises(SystemExit):
        HydraStartChecks().on_multirun_start(configs["render"])
    assert "no srun on this machine" in capsys.readouterr().err
