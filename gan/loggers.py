"""A CSV logger that survives resuming: Lightning's deletes metrics.csv when a run restarts.

Lightning's ``CSVLogger`` removes an existing ``metrics.csv`` as soon as a new run opens the
same folder, so every ``ckpt_path=last`` resume (after a kill, a SLURM requeue) threw the
earlier curve away. This one keeps it: rows of steps the resumed run has not reached yet are
the killed run's steps after its last checkpoint (they will be logged again), and are dropped on
the first save; the rest of the history stays.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

#: What the task and GAN models log validation under.
VALIDATION_PREFIX = "val/"
#: Columns every row has, whatever it logs.
SHARED_KEYS = frozenset({"step", "epoch"})


#: What a run leaves in a CSV or TensorBoard logger's folder (the ``version: ""`` configs give
#: every run of a name the same one): kept by a resume, removed for a run from scratch.
RUN_LOG_FILES = ("metrics.csv", "events.out.tfevents.*", "images/*.png")


def clear_earlier_run(loggers: list) -> list[Path]:
    """Remove an earlier run's records from these loggers' folders, for a run that starts from
    scratch under the same name (``ckpt_path=null``, or a pipeline row whose settings changed):
    its rows and curves ran on beside the new run's (a 2-step model's test/f1 row stayed ahead
    of the retrained model's rows). Returns what it removed; rank zero's work."""
    kinds = CSVLogger | TensorBoardLogger
    folders = dict.fromkeys(Path(x.log_dir) for x in loggers if isinstance(x, kinds))
    removed = [f for d in folders for pattern in RUN_LOG_FILES for f in sorted(d.glob(pattern))]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class ResumableExperimentWriter(ExperimentWriter):
    """Appends to an existing metrics.csv instead of deleting it."""

    def __init__(self, log_dir: str) -> None:
        self._pending_truncate = True
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep earlier files; Lightning's version deletes metrics.csv here."""

    def save(self) -> None:
        if self.metrics and self._pending_truncate:
            self._pending_truncate = False
            first = min(_step(m) for m in self.metrics)
            logged = {k for m in self.metrics if _step(m) == first for k in m} - SHARED_KEYS
            self._drop_rows_from(first, all(k.startswith(VALIDATION_PREFIX) for k in logged))
        super().save()

    def _drop_rows_from(self, first_new_step: float, validation_only: bool) -> None:
        """Rewrite metrics.csv (atomically) without the rows the resumed run logs again: those
        past its first step, and at that step all of them, but where it starts with
        validation alone (a validation a stop cut short, run again on resume: that step's
        training rows stay)."""
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            keys, rows = list(reader.fieldnames or []), list(reader)

        def logged_again(row: dict) -> bool:
            step = _step(row)
            if step != first_new_step:
                return step > first_new_step
            has = {k for k, v in row.items() if v not in ("", None)}
            return not validation_only or any(k.startswith(VALIDATION_PREFIX) for k in has)

        kept = [r for r in rows if not logged_again(r)]
        self.metrics_keys = sorted(set(self.metrics_keys) | set(keys))
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, path)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose metrics.csv continues across ``ckpt_path=last`` resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableExperimentWriter(log_dir=self.log_dir)
        return self._experiment


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` without its ``anonymous=None``: recent wandb (0.31 here)
    answers any value of that retired setting, None included, with a deprecation warning in every run's
    first lines, a notice about Lightning's code rather than the user's run. Also: one tag
    given as a word is that tag, and WANDB_MODE where set decides over ``offline``."""

    def __init__(self, *args, **kwargs) -> None:
        if isinstance(kwargs.get("tags"), str):  # tags=adapt: one tag, not a, d, a, p, t
            kwargs["tags"] = [kwargs["tags"]]
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]
        # WANDB_MODE, where set, over ``offline``: Lightning's offline mode set it to dryrun
        # before wandb read it, so WANDB_MODE=online (wandb's own hint) or disabled did nothing
        mode = os.environ.get("WANDB_MODE", "")
        if mode in ("online", "run", "disabled"):
            self._offline = False
        elif mode in ("offline", "dryrun"):
            self._offline = True
