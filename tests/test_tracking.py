"""csv, TensorBoard and wandb (offline, never network) each get metrics, image grids, the run
name, tags, the full resolved config and the git revision, from one real GAN run; and from the
pipeline, one run per stage plus the report's scores, verdicts, tables and figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _cli_fixtures import gan_overrides, pipeline_overrides, run_tool
from _gan_fixtures import make_synthetic
from _synth_fixtures import ROOT

from gan.runner import git_revision
from synth.toy import write_toy_real_folder

IMAGE_TAG = "adapt/A_GA_FGA_B_FB_fsGA"


def run_tracked(tool: str, tmp: Path, *overrides: str) -> None:
    """Run a tool with every logger on, wandb offline with its files under ``tmp``."""
    proc = run_tool(
        tool,
        *overrides,
        "logger=many",
        WANDB_DIR=str(tmp / "wandb_dir"),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tracking")
    write_toy_real_folder(tmp / "real")
    syn = make_synthetic(tmp / "syn", n=4, shard_size=2, h=32, w=40)
    run_tracked(
        "train_gan",
        tmp,
        *gan_overrides(tmp, syn, 2),
        "run_name=track_me",
        "tags=[adapt,tracking_test]",
    )
    return tmp


def test_csv_gets_metrics_images_config_and_revision(run: Path) -> None:
    logs = run / "logs" / "track_me"
    hparams = yaml.safe_load((logs / "hparams.yaml").read_text())
    assert hparams["git_revision"] == git_revision() != "unknown"
    assert hparams["run_name"] == "track_me" and hparams["tags"] == ["adapt", "tracking_test"]
    assert hparams["gan"]["generator"]["ngf"] == 8  # the resolved config, overrides included
    assert "train/total" in (logs / "metrics.csv").read_text().splitlines()[0]
    pngs = sorted((logs / "images").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_tensorboard_event_file_has_scalars_image_and_config(run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((run / "logs" / "track_me").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]), size_guidance={"images": 0})
    acc.Reload()
    assert IMAGE_TAG in acc.Tags()["images"] and len(acc.Images(IMAGE_TAG)) == 2
    assert "train/total" in acc.Tags()["scalars"]
    raw = events[0].read_bytes()  # the config text summary written by log_run_config
    assert b"git_revision" in raw and git_revision().encode() in raw and b"tracking_test" in raw


def test_wandb_offline_run_has_config_tags_and_masked_images(run: Path) -> None:
    runs = list((run / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((run / "logs").rglob("offline-run-*"))
    data = next(runs[0].glob("run-*.wandb")).read_bytes()
    for needle in (b"track_me", b"tracking_test", b"git_revision", git_revision().encode()):
        assert needle in data, needle
    assert IMAGE_TAG.encode() in data and b"train/total" in data
    media = runs[0] / "files" / "media" / "images"
    masks = list((media / "mask").rglob("*.mask.png"))
    grids = [p for p in media.rglob("*.png") if p not in masks]
    assert len(grids) == 2 and len(masks) == 2  # one grid and one mask layer per logged step
    assert b"crack" in data  # the mask layer's class labels


def test_a_resumed_training_logs_to_the_wandb_run_it_continues(tmp_path: Path) -> None:
    """Every resume (a stop, a requeue) was a new W&B run, its curve in pieces; a fresh start
    is a new run, and a W&B node that names its run keeps it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from gan.cli import register_resolvers
    from gan.runner import WANDB_RUN_RECORD, build_loggers, wandb_run_id

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train_gan", [f"paths.log_dir={tmp_path}", "logger=many", "run_name=r7"])
        plain = compose("train_gan", [f"paths.log_dir={tmp_path}", "logger=csv"])
    ckpt = tmp_path / "ckpt" / "r7"
    assert wandb_run_id(plain, ckpt, resuming=False) is None and not ckpt.exists()
    first = wandb_run_id(cfg, ckpt, resuming=False)
    assert (ckpt / WANDB_RUN_RECORD).is_file()
    assert wandb_run_id(cfg, ckpt, resuming=True) == first
    fresh = wandb_run_id(cfg, ckpt, resuming=False)  # ckpt_path=null: starts over
    assert fresh != first and wandb_run_id(cfg, ckpt, resuming=True) == fresh
    (ckpt / WANDB_RUN_RECORD).write_text("{")  # damaged: a new run, no failure
    assert wandb_run_id(cfg, ckpt, resuming=True) not in (first, fresh)

    loggers = build_loggers(cfg, fresh)
    (wandb,) = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
    assert wandb._wandb_init["id"] == fresh and wandb._wandb_init["resume"] == "allow"
    assert wandb._wandb_init["group"] == "r7" and wandb._wandb_init["name"] == "r7"
    assert [type(lg).__name__ for lg in loggers] == [
        type(lg).__name__ for lg in build_loggers(cfg)
    ]  # the order of the config's nodes
    with open_dict(cfg):
        cfg.logger.wandb.id = "mine"  # +logger.wandb.id=mine
    (wandb,) = [lg for lg in build_loggers(cfg, fresh) if type(lg).__name__ == "WandbLogger"]
    assert wandb._wandb_init["id"] == "mine"


def test_the_wandb_logger_groups_seeds_takes_one_tag_and_heeds_wandb_mode(
    tmp_path: Path, monkeypatch
) -> None:
    """A row's seeds were each their own group (the group was the seeded run name), a tag
    given as a word became its letters, and WANDB_MODE (wandb's own hint) was overridden by
    ``offline``."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.runner import build_loggers

    register_resolvers()
    overrides = [f"paths.log_dir={tmp_path}", "logger=wandb", "run_name=a-seed3", "tags=adapt"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train_gan", overrides)
    for mode, offline in (("", True), ("online", False), ("disabled", False), ("offline", True)):
        monkeypatch.setenv("WANDB_MODE", mode)
        (wandb,) = build_loggers(cfg)
        assert wandb._wandb_init["group"] == "a" and wandb._wandb_init["name"] == "a-seed3"
        assert wandb._wandb_init["tags"] == ["adapt"]
        assert wandb._offline is offline, mode


def test_wandb_writes_a_runs_data_every_second_unless_told_otherwise(
    tmp_path: Path, monkeypatch
) -> None:
    """wandb wrote a run's data to its files every 15 s, and a kill -9 lost all it had not
    written: a tiny GAN killed 13 steps in had none of them in W&B. A user's own setting, or
    the variable wandb reads it from, stays theirs."""
    import wandb

    from gan.loggers import WANDB_FLUSH_SETTING, WANDB_FLUSH_VARIABLE, WandbLogger

    monkeypatch.delenv(WANDB_FLUSH_VARIABLE, raising=False)
    settings = WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init["settings"]
    assert settings == {WANDB_FLUSH_SETTING: 1.0}
    assert wandb.Settings(**settings).x_transaction_log_flush_interval == 1.0  # wandb's name
    theirs = {WANDB_FLUSH_SETTING: 5.0, "console": "off"}
    kept = WandbLogger(save_dir=str(tmp_path), offline=True, settings=dict(theirs))
    assert kept._wandb_init["settings"] == theirs
    monkeypatch.setenv(WANDB_FLUSH_VARIABLE, "5")
    assert "settings" not in WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init


def test_a_wandb_without_pydantic_settings_logs_without_the_flush_setting(
    tmp_path: Path, monkeypatch
) -> None:
    """wandb before 0.19 (pyproject allows 0.17) has a Settings class that is no pydantic
    model: asking it for its fields failed every W&B logger with an AttributeError."""
    import wandb

    from gan.loggers import WANDB_FLUSH_VARIABLE, WandbLogger

    monkeypatch.delenv(WANDB_FLUSH_VARIABLE, raising=False)
    monkeypatch.setattr(wandb, "Settings", type("Settings", (), {}))
    assert "settings" not in WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tracking_pipeline")
    write_toy_real_folder(tmp / "real", n=4, h=48, w=64)
    run_tracked(
        "pipeline",
        tmp,
        *pipeline_overrides(tmp),
        "stages.task.sources=[synthetic,randomized]",
        "stages.report.goal.ours=[randomized]",
        "stages.report.goal.baselines=[synthetic]",
    )
    return tmp / "logs"


REPORT_SCORES = ("report/synthetic/f1", "report/randomized/tol_f1", "goal/randomized_vs_synthetic")


def test_pipeline_gives_each_stage_its_own_wandb_run_and_the_report_one(pipeline_run: Path):
    runs = {}
    for run in pipeline_run.joinpath("wandb").glob("offline-run-*"):
        data = next(run.glob("run-*.wandb")).read_bytes()
        name = next(
            n for n in ("task-synthetic", "task-randomized", "report") if n.encode() in data
        )
        runs[name] = (run, data)
    assert sorted(runs) == ["report", "task-randomized", "task-synthetic"]
    for name in ("task-synthetic", "task-randomized"):
        data = runs[name][1]
        assert b"train/loss" in data and b"test/f1" in data and b"report/" not in data
    report, data = runs["report"]
    for key in (*REPORT_SCORES, "report/rows", "git_revision"):
        assert key.encode() in data, key
    assert len(list((report / "files" / "media").rglob("*.png"))) >= 3  # sample grids, predictions


def test_pipeline_report_goes_to_tensorboard_and_csv(pipeline_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = pipeline_run / "pipeline-report"
    acc = EventAccumulator(str(logs), size_guidance={"images": 0})
    acc.Reload()
    assert set(REPORT_SCORES) <= set(acc.Tags()["scalars"])
    assert "report/predictions_on_real_test_images" in acc.Tags()["images"]
    assert "report/error_map_of_the_hardest_test_images" in acc.Tags()["images"]
    # no oracle row here: the figure is titled by what picked its images
    markdown = (pipeline_run.parent / "out" / "report" / "report.md").read_text()
    assert "hardest test images (those the rows score lowest on;" in markdown
    assert any(b"Against the goal" in p.read_bytes() for p in logs.glob("events.out.tfevents.*"))
    header = (logs / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(REPORT_SCORES) <= set(header) and "goal/randomized_vs_synthetic/met" in header
    assert len(list((logs / "images").glob("report_*.png"))) >= 3
    task_header = (pipeline_run / "pipeline-task-synthetic" / "metrics.csv").read_text()
    assert "test/f1" in task_header.splitlines()[0]
