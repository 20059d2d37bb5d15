"""metrics.csv across a resume: the rows a resumed run logs again replace the stopped run's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _cli_fixtures import tensorboard_points
from _synth_fixtures import ROOT

from gan.loggers import ResumableExperimentWriter


def rows(path: Path) -> list[tuple[int, str]]:
    """(step, the metric a row holds) for each row of metrics.csv."""
    with path.open(newline="") as file:
        return [
            (int(r["step"]), next(k for k, v in r.items() if v and k != "step"))
            for r in csv.DictReader(file)
        ]


def stopped_run(folder: Path) -> Path:
    """Training rows at steps 0-5, validation at 2 and 5: a run stopped after step 5."""
    writer = ResumableExperimentWriter(str(folder))
    for step in range(6):
        writer.log_metrics({"train/loss": 1.0}, step)
        if step in (2, 5):
            writer.log_metrics({"val/f1": 0.5}, step)
    writer.save()
    return Path(writer.metrics_file_path)


@pytest.mark.parametrize(
    ("first", "kept"),
    [
        # resumed from step 4's checkpoint: steps 4 and 5 are trained (and logged) again, the
        # learning rate's row first (LearningRateMonitor logs before the step)
        ([("lr-Adam", 4), ("train/loss", 4)], [(s, "train/loss") for s in range(4)]),
        # stopped mid-validation at step 5: it runs again on resume, its step's training stays
        ([("val/f1", 5)], [(s, "train/loss") for s in range(6)]),
    ],
)
def test_a_resumed_run_replaces_only_what_it_logs_again(
    tmp_path: Path, first: list[tuple[str, int]], kept: list[tuple[int, str]]
) -> None:
    path = stopped_run(tmp_path)
    resumed = ResumableExperimentWriter(str(tmp_path))
    for key, step in first:
        resumed.log_metrics({key: 0.1}, step)
    resumed.save()
    expected = sorted([*kept, (2, "val/f1")] + [(s, k) for k, s in first])
    assert sorted(rows(path)) == expected


def test_a_run_from_scratch_clears_only_the_earlier_runs_records(tmp_path) -> None:
    """The CSV rows, TensorBoard events and logged images of an earlier run of the name go;
    what else sits there (the config Lightning writes, a user's notes) stays."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from gan.loggers import ResumableCSVLogger, clear_earlier_run

    loggers = [
        ResumableCSVLogger(save_dir=str(tmp_path), name="run", version=""),
        TensorBoardLogger(save_dir=str(tmp_path), name="run", version=""),
    ]
    run = tmp_path / "run"
    records = [run / "metrics.csv", run / "events.out.tfevents.1.host", run / "images" / "a.png"]
    kept = [run / "hparams.yaml", run / "notes.txt", run / "images" / "keep.txt"]
    for path in records + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert sorted(clear_earlier_run(loggers)) == sorted(records)
    assert [p for p in records + kept if p.exists()] == kept
    assert clear_earlier_run(loggers) == []


def test_a_resumed_run_shows_each_tensorboard_point_once(tmp_path: Path) -> None:
    """Resumed from step 4's checkpoint after a kill at step 6, TensorBoard drew steps 4-6
    twice (the curve doubled back) and the grid of step 6 twice: each resume writes a new
    event file beside the stopped run's. The resumed run's points replace those, tag by tag
    (grids are logged every third step only); what it does not log again stays."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from gan.cli import register_resolvers

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train_gan", [f"paths.log_dir={tmp_path}", "logger=tensorboard"])
    grid = torch.zeros(3, 4, 4, dtype=torch.uint8)

    def run(first: int, last: int, loss: float) -> None:
        logger = instantiate(cfg.logger.tensorboard)
        logger.experiment.add_text("config", "settings", 0)
        for step in range(first, last + 1):
            logger.log_metrics({"train/loss": loss}, step)
            if (step + 1) % 3 == 0:  # the grid of the step that makes global_step 3, 6
                logger.experiment.add_image("grid", grid, step)
            logger.save()
        logger.finalize("success")

    run(0, 6, 1.0)  # killed after step 6, its last checkpoint at step 4
    run(4, 8, 2.0)
    points = tensorboard_points(tmp_path / "adapt")
    losses = [(step, value) for tag, step, value in points if tag == "train/loss"]
    assert sorted(losses) == [(s, 1.0) for s in range(4)] + [(s, 2.0) for s in range(4, 9)]
    assert sorted(s for tag, s, _ in points if tag == "grid") == [2, 5, 8]
    assert [s for tag, s, _ in points if tag.startswith("config")] == [0]


def test_a_resumed_tensorboard_run_records_its_own_config(tmp_path: Path) -> None:
    """With the TensorBoard logger alone, hparams.yaml kept the first run's settings after a
    resume with others (Lightning writes it only where there is none)."""
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from gan.cli import register_resolvers

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train_gan", [f"paths.log_dir={tmp_path}", "logger=tensorboard"])
    for budget in (10, 20):  # the run, then its resume with a longer budget
        logger = instantiate(cfg.logger.tensorboard)
        logger.log_hyperparams({"trainer": {"max_steps": budget}})
        logger.log_metrics({"train/loss": 1.0}, 0)
        logger.save()
        logger.finalize("success")
    saved = yaml.safe_load((tmp_path / "adapt" / "hparams.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 20


def logged_steps(folder: Path, key: str) -> tuple[list[int], list[int]]:
    """The steps of metrics.csv's rows with ``key``, and of the grids' PNGs."""
    with (folder / "metrics.csv").open(newline="") as file:
        scalars = {int(r["step"]) for r in csv.DictReader(file) if r.get(key)}
    grids = [int(p.stem[-6:]) for p in sorted((folder / "images").glob("*.png"))]
    return sorted(scalars), grids


def test_the_gan_grid_lands_on_the_step_of_its_scalars(tmp_path: Path) -> None:
    """The grid of a batch was logged at ``global_step``, already advanced past that batch,
    one step after the batch's losses on every dashboard's step slider."""
    from _gan_fixtures import make_real, make_synthetic, tiny_gan, tiny_trainer
    from lightning.pytorch.loggers import CSVLogger

    from gan.adapt_data import UnpairedDataModule

    syn = make_synthetic(tmp_path / "syn", n=2, shard_size=2, h=24, w=24)
    real = make_real(tmp_path / "real", n=2, h=24, w=24)
    data = UnpairedDataModule(str(syn), str(real), crop_size=16, batch_size=2, num_workers=0)
    logger = CSVLogger(str(tmp_path), name="run", version="")
    trainer = tiny_trainer(tmp_path, 2, logger=logger, log_every_n_steps=2)
    trainer.fit(tiny_gan(log_images_every_n_steps=2, segmenter=None), datamodule=data)
    assert logged_steps(tmp_path / "run", "train/total") == ([1], [1])


def test_the_task_models_prediction_grid_lands_on_the_step_of_its_scores(tmp_path: Path) -> None:
    """Likewise the validation grid: the batch that validated was logged at the next step."""
    import lightning.pytorch as pl
    from _task_fixtures import make_folder, make_shards
    from lightning.pytorch.loggers import CSVLogger

    from gan.task import CrackSegmenter
    from gan.task_data import SegmentationDataModule

    img, lab = make_folder(tmp_path / "real", n=2, h=16, w=16)
    syn = make_shards(tmp_path / "syn", n=4, h=16, w=16)
    data = SegmentationDataModule(
        str(syn), str(img), str(lab), crop_size=16, batch_size=2, eval_size=None, num_workers=0
    )
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}, scheduler="constant")
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=CSVLogger(str(tmp_path), name="run", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)
    assert logged_steps(tmp_path / "run", "val/f1") == ([1], [1])
