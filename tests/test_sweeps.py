"""A sweep whose jobs would share one run or output folder is refused before any job starts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from _cli_fixtures import ROOT, run_tool
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gan.cli import HydraStartChecks, register_resolvers
from synth.toy import write_toy_real_folder

#: train_task on the toy folder, 2 steps of a 4-channel U-Net on 32 px crops.
TINY_TASK = [
    "source=oracle",
    "task.net.base=4",
    "task.net.depth=2",
    "task_data.crop_size=32",
    "task_data.batch_size=2",
    "task_data.num_workers=0",
    "trainer=cpu",
    "trainer.max_steps=2",
    "trainer.val_check_interval=null",
    "trainer.limit_val_batches=0",
    "task_data.eval_size=null",
    "~callbacks.progress_bar",
]


def refusal(config_name: str, overrides: list[str], capsys) -> str:
    """What the start checks say of ``-m <overrides>`` (sweeps included), '' if nothing."""
    register_resolvers()
    plain = [o for o in overrides if "," not in o or o.startswith("'")]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        config = compose(config_name, plain, return_hydra_config=True)
        OmegaConf.set_readonly(config.hydra, False)
        config.hydra.overrides.task = overrides  # as Hydra keeps a multirun's: sweeps unexpanded
        try:
            HydraStartChecks().on_multirun_start(config)
        except SystemExit as stop:
            assert stop.code == 1
    return capsys.readouterr().err


def compose_config(config_name: str):
    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name)


def way_out(said: str) -> list[str]:
    """The overrides the refusal suggests, as a shell would pass them."""
    return shlex.split(said.rstrip("\n").split("e.g. ", 1)[1])


@pytest.mark.parametrize(
    ("config_name", "overrides"),
    [
        ("train_task", ["seed=0,1"]),
        ("train_task", ["source=oracle,synthetic"]),
        ("train_gan", ["seed=0,1", "experiment=tiny_gan"]),
        ("render", ["shard_start=0,1", "shard_count=1"]),  # one dataset, filled together
        ("evaluate", ["ckpt=a/last.ckpt,b/last.ckpt"]),  # out_dir names the checkpoint
        ("predict", ["run_name=task_adapted,task_oracle"]),
    ],
)
def test_sweeps_that_name_each_run_are_left_alone(config_name, overrides, capsys, tmp_path):
    assert refusal(config_name, [*overrides, f"paths.root_dir={tmp_path}"], capsys) == ""


@pytest.mark.parametrize(
    ("config_name", "overrides", "keys"),
    [
        ("train_task", ["task.dice_weight=0.0,1.0"], "task.dice_weight"),
        ("train_task", ["seed=0,1", "run_name=mine"], "seed"),
        ("train_gan", ["experiment=tiny_gan", "gan.lambda_cycle=5,10"], "gan.lambda_cycle"),
        ("train_gan", ["gan=light,resnet"], "gan"),  # a group: named by its chosen option
        ("train_task", ["seed=0,1", "task.dice_weight=0.0,1.0"], "task.dice_weight"),
        ("pipeline", ["gan.lambda_cycle=5,10", "seed=0,1"], "gan.lambda_cycle, seed"),
        ("evaluate", ["eval_size=[320,480],[160,240]"], "eval_size"),
        ("fda", ["beta=0.01,0.05"], "beta"),
        ("translate", ["checkpoint=a/last.ckpt,b/last.ckpt"], "checkpoint"),
        ("render", ["seed=0,1", "shard_start=0,1"], "seed, shard_start"),
        ("render", ["shard_start=0,0"], ""),
    ],
)
def test_a_sweep_whose_jobs_share_a_run_is_one_line_with_a_way_out_that_works(
    config_name, overrides, keys, capsys, tmp_path
):
    """Job #1 resumed job #0's checkpoint ("already trained") and rewrote its scores; a
    pipeline job removed the one before's outputs as stale; evaluate rewrote one
    metrics.json job after job, and fda's job #1 refused (or deleted) job #0's set."""
    overrides = [*overrides, f"paths.root_dir={tmp_path}"]
    said = refusal(config_name, overrides, capsys)
    assert said.startswith("error: jobs #0, #1") and said.count("\n") == 1, said
    if not keys:
        assert "are the same job" in said
        return
    shared = "share one run" if "ckpt_path" in compose_config(config_name) else "write to one"
    assert f"of this sweep ({keys}) would {shared}" in said
    assert refusal(config_name, [*overrides, *way_out(said)], capsys) == ""


def test_a_refused_sweep_runs_nothing_and_its_way_out_trains_each_job(tmp_path: Path) -> None:
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    overrides = [
        "-m",
        *TINY_TASK,
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={tmp_path / 'real'}",
        "task.dice_weight=0.0,1.0",
    ]
    proc = run_tool("train_task", *overrides)
    assert proc.returncode == 1 and proc.stderr.startswith("error: jobs #0, #1"), proc.stderr
    assert not (tmp_path / "checkpoints").exists()
    proc = run_tool("train_task", *overrides, *way_out(proc.stderr))
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "outputs" / "runs").iterdir())
    assert runs == ["task_oracle-dice_weight0.0", "task_oracle-dice_weight1.0"]
    assert "already trained" not in proc.stdout + proc.stderr


def test_a_refused_pipeline_sweep_runs_each_job_in_its_own_folders(tmp_path: Path) -> None:
    """Each job's stale check removed the one before's outputs: only the last survived."""
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    overrides = [
        "-m",
        "experiment=tiny_pipeline",
        "trainer=cpu",
        "~callbacks.progress_bar",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={tmp_path / 'real'}",
        "stages.task.sources=[oracle]",  # the one row that needs no render nor GAN: seconds
        "gan.lambda_cycle=5,10",
    ]
    proc = run_tool("pipeline", *overrides)
    assert proc.returncode == 1 and "paths.output_dir=" in proc.stderr, proc.stderr
    proc = run_tool("pipeline", *overrides, *way_out(proc.stderr))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for value in (5, 10):
        assert (tmp_path / "outputs" / f"lambda_cycle{value}" / "runs" / "oracle").is_dir()
    assert "settings changed" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("config_name", "overrides", "folder"),
    [
        ("fda", ["beta=0.01,0.05"], "fda-beta${beta}"),
        ("translate", ["checkpoint=a/last.ckpt,b/last.ckpt"], "adapted-checkpoint${hydra:job.num}"),
        ("render", ["seed=0,1", "shard_start=0,1"], "synthetic-seed${seed}"),  # blocks stay one
    ],
)
def test_the_way_out_of_a_shared_out_dir_names_a_folder_each(
    config_name, overrides, folder, capsys, tmp_path
):
    """A swept path would have made nested folders (``adapted-checkpointa/last.ckpt``), and
    render's shard blocks one dataset a block."""
    said = refusal(config_name, [*overrides, f"paths.root_dir={tmp_path}"], capsys)
    assert way_out(said) == [f'out_dir="${{paths.output_dir}}/{folder}"'], said
