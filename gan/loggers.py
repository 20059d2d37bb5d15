"""CSV and TensorBoard loggers that survive resuming, one point per step.

Lightning's ``CSVLogger`` removes an existing ``metrics.csv`` as soon as a new run opens the
same folder, so every ``ckpt_path=last`` resume (after a kill, a SLURM requeue) threw the
earlier curve away. This one keeps it: rows of steps the resumed run has not reached yet are
the killed run's steps after its last checkpoint (they will be logged again), and are dropped on
the first save; the rest of the history stays. TensorBoard's event files are treated alike
(``ResumableTensorBoardLogger``): each resume writes a new file beside the earlier ones, and
the points it logs again are taken out of those.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

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
    removed = run_log_files(loggers)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def run_log_files(loggers: list) -> list[Path]:
    """The ``RUN_LOG_FILES`` in these loggers' CSV and TensorBoard folders: a run's records
    there (W&B keeps its own)."""
    kinds = CSVLogger | TensorBoardLogger
    folders = dict.fromkeys(Path(x.log_dir) for x in loggers if isinstance(x, kinds))
    return [f for d in folders for pattern in RUN_LOG_FILES for f in sorted(d.glob(pattern))]


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


def drop_logged_again(path: Path, first_steps: dict[str, int]) -> None:
    """Rewrite a TensorBoard event file (atomically) without the points of ``first_steps``'
    tags at or past the step each is now logged from again."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    kept, changed = [], False
    for raw in RawEventFileLoader(str(path)).Load():
        event = Event.FromString(raw)
        values = event.summary.value
        stay = [v for v in values if event.step < first_steps.get(v.tag, event.step + 1)]
        if len(stay) == len(values):
            kept.append(raw)
            continue
        changed = True
        if stay:  # an event of several tags (add_scalars) keeps the others
            del event.summary.value[:]
            event.summary.value.extend(stay)
            kept.append(event.SerializeToString())
    if not changed:
        return
    tmp = path.with_name(f".rewrite-{os.getpid()}.tmp")  # not a name TensorBoard reads
    try:
        with tmp.open("wb") as file:
            writer = RecordWriter(file)
            for raw in kept:
                writer.write(raw)
            writer.flush()
        os.replace(tmp, path)
    finally:  # a stop mid-write leaves the file as it was
        tmp.unlink(missing_ok=True)


def _noting_first_steps(file_writer, note: Callable[[str, int], None]):
    """``file_writer`` (torch's FileWriter) telling ``note`` each tag and step it writes."""
    if getattr(file_writer, "_notes_steps", False):
        return file_writer
    add_event = file_writer.add_event

    def noted(event, step=None, walltime=None) -> None:
        for value in event.summary.value:
            note(value.tag, int(step) if step is not None else event.step)
        add_event(event, step, walltime)

    file_writer.add_event = noted
    file_writer._notes_steps = True
    return file_writer


class ResumableTensorBoardLogger(TensorBoardLogger):
    """``TensorBoardLogger`` whose event files show each point once across ``ckpt_path=last``
    resumes. A resumed run writes a new event file beside the earlier ones (the ``version:
    ""`` configs give every run of a name one folder), and logs again the steps the stopped
    run had logged after its last checkpoint: TensorBoard drew both, each curve doubling back
    at the resume, and two grids at one step. Here the first step at which this process logs
    each tag takes that tag's points at or past it out of the earlier files (on the next
    save, the next log step): the same rule as metrics.csv's, per tag, since a grid logged
    every so many steps first comes later than the scalars. A row scored again keeps its new
    test point alone, and the config text of step 0 is the newest."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._earlier_files: list[Path] = []
        self._first_steps: dict[str, int] = {}  # tag -> the first step this process logged
        self._to_drop: dict[str, int] = {}  # of those, the ones not yet taken out
        self._hparams_saved = False

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            # the files before this process's own: read before the writer makes its file
            self._earlier_files = sorted(Path(self.log_dir).glob("events.out.tfevents.*"))
            writer = super().experiment
            get_file_writer = writer._get_file_writer  # remade after a close (finalize)
            writer._get_file_writer = lambda: _noting_first_steps(get_file_writer(), self._note)
            _noting_first_steps(writer.file_writer, self._note)
        return self._experiment

    def _note(self, tag: str, step: int) -> None:
        if tag not in self._first_steps:
            self._first_steps[tag] = self._to_drop[tag] = step

    @rank_zero_only
    def drop_logged_again(self) -> None:
        """Take this process's tags' points at or past their first step out of the earlier
        event files."""
        if not self._to_drop:
            return
        drop, self._to_drop = self._to_drop, {}
        for path in self._earlier_files:
            if path.is_file():
                drop_logged_again(path, drop)

    @rank_zero_only
    def log_hyperparams(self, *args, **kwargs) -> None:
        super().log_hyperparams(*args, **kwargs)
        self._hparams_saved = False

    @rank_zero_only
    def save(self) -> None:
        """Also this run's hparams.yaml: Lightning's writes it only where there is none, so
        a resume with other settings (a longer budget, another loss weight) kept the first
        run's config there."""
        super().save()
        if not self._hparams_saved and Path(self.log_dir).is_dir():
            save_hparams_to_yaml(Path(self.log_dir) / self.NAME_HPARAMS_FILE, self.hparams)
            self._hparams_saved = True
        self.drop_logged_again()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        self.drop_logged_again()


#: Seconds between wandb's writes of a run's data to its ``.wandb`` file (wandb's own
#: default: 15). A ``kill -9`` loses what is not written yet: a tiny GAN killed 13 steps (about
#: 2 s of training) in had none of them in W&B; at 1 s, its first 6 or 7.
WANDB_FLUSH_SECONDS = 1.0
#: wandb's name for that setting, and the variable that sets it.
WANDB_FLUSH_SETTING = "x_transaction_log_flush_interval"
WANDB_FLUSH_VARIABLE = "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL"


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` without its ``anonymous=None``: recent wandb (0.31 here)
    answers any value of that retired setting, None included, with a deprecation warning in every run's
    first lines, a notice about Lightning's code rather than the user's run. Also: one tag
    given as a word is that tag, WANDB_MODE where set decides over ``offline``, and the run's
    data reaches its files every second (``WANDB_FLUSH_SECONDS``)."""

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
        self._flush_often()

    def _flush_often(self) -> None:
        """``WANDB_FLUSH_SECONDS`` between wandb's writes to the run's files, where neither
        the user's ``settings`` nor WANDB__TRANSACTION_LOG_FLUSH_INTERVAL says otherwise, and
        where this wandb has the setting (a private one; another version may lack it: before
        0.19 wandb.Settings was no pydantic model, and asking for its ``model_fields`` failed
        every W&B logger with a traceback, though pyproject allows wandb 0.17)."""
        import wandb

        settings = self._wandb_init.get("settings")
        fields = getattr(wandb.Settings, "model_fields", None) or {}
        if WANDB_FLUSH_VARIABLE in os.environ or WANDB_FLUSH_SETTING not in fields:
            return
        if settings is None or isinstance(settings, Mapping):  # not a wandb.Settings of theirs
            self._wandb_init["settings"] = {
                WANDB_FLUSH_SETTING: WANDB_FLUSH_SECONDS,
                **(settings or {}),
            }
