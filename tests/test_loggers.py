"""metrics.csv across a resume: the rows a resumed run logs again replace the stopped run's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

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
