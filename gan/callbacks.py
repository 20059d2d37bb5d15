"""Callbacks every training stage shares."""

from __future__ import annotations

import functools
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan.checkpoint import gather_ranks, own_rank
from gan.cli import user_set_threads
from gan.stalls import STALL_AFTER_S, StallWatch
from gan.start import interrupt_for
from synth.distributions import ConfigError, is_number
from synth.processes import usable_cpus


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the message names the step and the last good checkpoint."""


def _losses(outputs) -> dict[str, torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return {"loss": outputs}
    if isinstance(outputs, Mapping):
        return {
            k: v
            for k, v in outputs.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
        }
    return {}


class StopOnNonFiniteLoss(pl.Callback):
    """Stop at the first non-finite loss, before a checkpoint of the broken weights is written.

    Lightning runs checkpoint callbacks after all others, so raising here keeps ``last.ckpt``
    at the last good step. ``check_every_n_steps`` trades a host sync per step for latency.
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        self.every = max(1, check_every_n_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx % self.every:
            return
        for name, value in _losses(outputs).items():
            if not math.isfinite(float(value.detach().float().sum())):
                raise NonFiniteLossError(
                    f"non-finite {name} at step {trainer.global_step} (counted from 1); training stopped, "
                    f"last good checkpoint kept: {last_checkpoint(trainer) or 'none yet'}"
                )


class TrainClock(pl.Callback):
    """Seconds spent training, carried across resumes in the checkpoint: a row stopped at
    step 215 of 300 and resumed reported only the last part (1.3 s) as its training time.
    Time after the last checkpoint of a killed run is not counted (its steps are redone)."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds of earlier runs, from the checkpoint
        self.started: float | None = None

    @property
    def seconds(self) -> float:
        since = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.before + since

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def state_dict(self) -> dict:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = float(state_dict.get("seconds", 0.0))


class RunSeed(pl.Callback):
    """The run's ``seed``, kept in its checkpoints so a resume under another seed is refused
    (``gan.runner.check_same_seed``): a sweep ``seed=0,1`` with one ``run_name`` had resumed
    seed 0's model as seed 1's and scored it so. Added to every trainer, not configured."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def state_dict(self) -> dict:
        return {"seed": self.seed}


class RankThreads(pl.Callback):
    """Each DDP rank's torch threads at most its share of the CPUs (``usable_cpus`` over the
    ranks on its node), as Lightning shares out the affinity where ``OMP_NUM_THREADS`` is
    unset. Under a CPU quota the tool had set that variable to the whole quota
    (``gan.cli.cap_threads``), which Lightning keeps: 2 ranks under ``--cpus=4`` would run 4
    threads each. Left alone where the user set a count. Added to every trainer, not
    configured."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        ranks = getattr(trainer.strategy, "num_processes", 1)
        if ranks <= 1 or user_set_threads():
            return
        share = max(1, usable_cpus() // ranks)
        if torch.get_num_threads() > share:
            torch.set_num_threads(share)


class StallWarning(pl.Callback):
    """Say when no training step has finished for ``after_s`` seconds, and what the run waits
    on (``gan.stalls``): a hung DataLoader worker, a dead NFS mount or a deadlocked collective
    had frozen the progress bar without a word. It says, never stops: a long suspension is no
    hang. Counted from training's start (a first step starts the loader's workers); each
    validation batch counts as progress, so a long validation says nothing and a hung one is
    said; the sanity check before training is not watched. Every DDP rank watches its own
    steps, its lines headed with its rank."""

    def __init__(self, after_s: float = STALL_AFTER_S, poll_s: float | None = None) -> None:
        if not is_number(after_s) or not after_s > 0:
            raise ConfigError(
                f"callbacks.stall_warning.after_s={after_s!r}: expected seconds above 0, e.g. "
                "600 (to go without the warning: ~callbacks.stall_warning)"
            )
        self.watch = StallWatch(after_s, poll_s, name="training")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rank = f"[rank {trainer.global_rank}] " if trainer.world_size > 1 else ""
        self.watch.start("training step", f"training started at step {trainer.global_step}", rank)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.watch.beat("training step", f"last at step {trainer.global_step}")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watch.beat("validation batch", f"validation began at step {trainer.global_step}")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        step = trainer.global_step
        self.watch.beat("validation batch", f"last: validation batch {batch_idx + 1}, step {step}")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watch.beat("training step", f"validation ended at step {trainer.global_step}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watch.stop()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.watch.stop()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.watch.stop()


def saved_seed(checkpoint: dict) -> int | None:
    """The seed RunSeed kept in ``checkpoint`` (None in one from before it)."""
    return ((checkpoint.get("callbacks") or {}).get(RunSeed.__qualname__) or {}).get("seed")


def train_seconds(trainer: pl.Trainer) -> float | None:
    """The run's training time over all its resumes (TrainClock), or None without the clock."""
    clocks = [c for c in trainer.callbacks if isinstance(c, TrainClock)]
    return round(clocks[0].seconds, 1) if clocks else None


class RandomStateCheckpoint(pl.Callback):
    """Carry the random state across a resume, so augmentation, mixup and the GAN's image
    pools draw after a restart what they would have drawn without one (with the data
    module's resumable loader, a killed run ends with the uninterrupted run's weights).

    The state is taken at each step's end: the checkpoint itself is written later, once the
    next batch has been augmented (StepCheckpoint). Under DDP every rank draws from its own
    state, so the save gathers all ranks' (every rank builds the checkpoint; rank 0 writes it)
    and each rank takes its own back; a resume on another number of ranks starts fresh.
    """

    def __init__(self) -> None:
        self._taken: dict = {}
        self._loaded: dict = {}
        self._world_size = 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # python's: the GAN's image pools draw from it
        self._taken = {"cpu": torch.get_rng_state(), "python": random.getstate()}
        if pl_module.device.type == "cuda":
            self._taken["cuda"] = torch.cuda.get_rng_state(pl_module.device)
        self._world_size = trainer.world_size

    def state_dict(self) -> dict:
        return gather_ranks(dict(self._taken), self._world_size)

    def load_state_dict(self, state_dict: dict) -> None:
        self._loaded = dict(state_dict)

    def on_train_start(self, trainer, pl_module) -> None:
        """After the loaders are built and any sanity check ran, before the first batch."""
        loaded, self._loaded = self._loaded, {}
        if not loaded:
            return
        own = own_rank(loaded, trainer.world_size, trainer.global_rank)
        if own is None:
            rank_zero_warn(
                f"random state saved by {len(loaded.get('ranks', [loaded]))} process(es), resumed on "
                f"{trainer.world_size}: augmentation draws differ from an uninterrupted run"
            )
            return
        if "cpu" not in own:  # saved before any step ended
            return
        torch.set_rng_state(own["cpu"])
        if "python" in own:
            random.setstate(own["python"])
        if "cuda" in own and pl_module.device.type == "cuda":
            torch.cuda.set_rng_state(own["cuda"], pl_module.device)


def epoch_finished(fit_loop: dict) -> bool:
    """The loop state was saved between epochs: the last one's end ran, the next has not begun
    (a SIGTERM after an epoch's last batch is saved there)."""
    current = fit_loop.get("epoch_progress", {}).get("current", {})
    return bool(current) and current.get("ready") == current.get("completed")


def reopen_cut_epoch(checkpoint: dict) -> None:
    """A run that reached ``max_steps`` within an epoch is saved at its end, after Lightning
    closed that epoch; recorded as open, as a periodic save within it records it, so a longer
    budget resumes the epoch at its next batch. Recorded closed, the rerun began the next
    epoch, the rest of this one's batches never drawn (not the uninterrupted run's weights)."""
    for counts in checkpoint["loops"]["fit_loop"]["epoch_progress"].values():
        counts["processed"] -= 1
        counts["completed"] -= 1
    checkpoint["epoch"] -= 1


def start_next_epoch(fit_loop: dict) -> None:
    """Record the within-epoch counters as the next epoch's start, as a periodic save made at
    the next epoch's first batch records them. Left at the finished epoch's end, they made
    Lightning resume one batch into an epoch already over, and draw every later epoch under
    another number than the uninterrupted run did. The loaders' places (ResumableLoader) move
    to the next epoch's start too: left at the finished epoch's end, a loader whose iterator
    was made before Lightning set the new epoch (DataLoader workers) found that epoch over,
    and the resumed run skipped a whole epoch."""

    def zero(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "current" and isinstance(value, dict):
                    node[key] = {k: 0 for k in value}
                elif key == "is_last_batch":
                    node[key] = False
                else:
                    zero(value)

    for key, value in fit_loop.items():
        if key.startswith("epoch_loop.") and not key.startswith("epoch_loop.val_loop."):
            zero(value)
    for place in (fit_loop.get("state_dict") or {}).get("combined_loader") or []:
        if isinstance(place, dict) and {"epoch", "batches"} <= place.keys():
            place["epoch"], place["batches"] = place["epoch"] + 1, 0


def last_checkpoint(trainer: pl.Trainer) -> str | None:
    for cb in trainer.checkpoint_callbacks:
        dirpath = getattr(cb, "dirpath", None)
        if dirpath and (Path(dirpath) / "last.ckpt").is_file():
            return str(Path(dirpath) / "last.ckpt")
    return None


#: In a checkpoint StepCheckpoint saved: the loggers' step count (``_batches_that_stepped``),
#: which counts the saved step already, where Lightning's own saves at validation's end do not.
STEP_COUNTED = "step_counted_for_loggers"
#: In a checkpoint StepCheckpoint saved at a stop that cut a validation short.
VALIDATION_CUT = "validation_cut_short"


class StepCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose step saves wait until Lightning has logged that step.

    Lightning writes a step's metrics row after ``on_train_batch_end``, where the stock callback
    saves, so a kill between the two lost that row from ``metrics.csv`` on resume. Here the save
    of step N runs at the start of batch N+1 (or at the end of training), when the row is out;
    the weights and optimizer state saved are the same, since nothing has stepped in between.
    A failing step (e.g. a NaN loss raised in ``on_train_batch_end``) still never reaches disk.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending: tuple | None = None
        self._restored_count: int | None = None
        self._restored_cut = False

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint, without the save interval
        Lightning puts in it: a resume with another ``every_n_train_steps`` found no state
        under its key and told the user to 'add the following callbacks:
        [StepCheckpoint{... every_n_train_steps: 50 ...}]', as if the run lacked one."""
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def load_state_dict(self, state_dict: dict) -> None:
        """The saved paths of the best models, where the checkpoint folder is the one they
        were saved in. A run moved or copied whole and resumed in its new folder had
        Lightning's warning that they 'won't be reloaded': they name the old folder's files,
        and a run of ``save_top_k: 0`` keeps none."""
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._pending = (outputs, batch, batch_idx)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._restored_count = checkpoint.get(STEP_COUNTED)
        self._restored_cut = bool(checkpoint.get(VALIDATION_CUT))

    def on_train_start(self, trainer, pl_module) -> None:
        """A resume at a step whose validation was due, which Lightning meets with an empty
        first iteration: it takes the checkpoint for one its own callback saved at
        validation's end, skips that validation as run, and counts the step for the loggers.
        Saved here after validation, the step was counted already: every later row of
        ``metrics.csv`` (the loggers' x axis) came one step later than in the run never
        stopped; the count is set back to the saved one. Saved by a stop mid-validation
        (Lightning ends validation at a SIGTERM), the validation had not run: its row was
        missing for good; it runs now, whole, before training goes on."""
        super().on_train_start(trainer, pl_module)
        count, self._restored_count = self._restored_count, None
        cut, self._restored_cut = self._restored_cut, False
        if not isinstance(count, int) and not cut:
            return
        loop = trainer.fit_loop.epoch_loop
        batches_run = loop.batch_progress.total.completed
        lightnings = loop.on_advance_end

        def first_advance_end(data_fetcher) -> None:
            empty = loop.batch_progress.total.completed == batches_run  # no batch trained
            if empty and cut:
                loop._skip_next_val = False
                loop.val_loop.restarting = False  # from its first batch, not where it stopped
            try:
                lightnings(data_fetcher)
            finally:  # also where it raises (a stop again): the save that follows reads it
                del loop.on_advance_end  # the first iteration only: Lightning's own from here
                if empty and isinstance(count, int):
                    loop._batches_that_stepped = count

        loop.on_advance_end = first_advance_end

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._save_pending(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        """The run's last step saved, also off the ``every_n_train_steps`` grid: Lightning saves
        ``last`` at the end only where this fit saved nothing before, so a budget of 55 steps
        left last.ckpt at step 50, and a pipeline rerun trained again from there."""
        self._save_pending(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """SIGTERM (a cluster's preemption or time limit, ``kill``, ``timeout``) is a polite stop:
        Lightning finishes the step in flight and raises. That step is saved as ``last.ckpt``,
        so the rerun loses nothing between periodic saves. Any other exception saves nothing:
        the weights may be what broke. A multi-process run saves only a stop its ranks agreed
        on (RanksStopTogether), since a collective save from an exception path hangs where the
        ranks are not in step."""
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, SIGTERMException) or self._pending is None:
            return
        self._pending = None
        agreed = isinstance(exception, AgreedStop)  # every rank is here: a collective is safe
        if (trainer.world_size > 1 and not agreed) or self._should_skip_saving_checkpoint(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        rank_zero_info(f"stopped: step {trainer.global_step} saved to {self.last_model_path}")

    def _save_pending(self, trainer, pl_module) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            with warnings.catch_warnings():
                # Lightning warns that a manual-optimization (GAN) save holds the weights after
                # the step. That is the state a resume needs: its optimizer state matches it.
                warnings.filterwarnings("ignore", "Using ModelCheckpoint with manual optimization")
                super().on_train_batch_end(trainer, pl_module, *pending)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        """Record the batch fetched for the next step as not fetched: saved from
        ``on_train_batch_start``, the loop state would otherwise tell a resumed run that a
        batch was in flight, and Lightning would shift its logging step by one."""
        fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
        progress = fit_loop.get("epoch_loop.batch_progress")
        for counts in (progress or {}).values():
            if isinstance(counts, dict) and counts.get("ready", 0) > counts.get("started", 0):
                counts["ready"] = counts["started"]
        if progress and epoch_finished(fit_loop):
            if progress.get("is_last_batch"):
                start_next_epoch(fit_loop)
            else:
                reopen_cut_epoch(checkpoint)
        if trainer.validating:  # a stop mid-validation: Lightning counts the step itself
            checkpoint[VALIDATION_CUT] = True
        else:
            checkpoint[STEP_COUNTED] = trainer.fit_loop.epoch_loop._batches_that_stepped


#: The signal behind Lightning's SIGTERMException, for the tool's message and exit code.
STOPPED_BY = {"signal": signal.SIGTERM}


def raise_late_stop(trainer: pl.Trainer) -> None:
    """A SIGTERM (or Ctrl-C) that came as a fit ended, after Lightning's last look for one:
    the fit finished and saved, and Lightning dropped the stop, so the tool went on to its
    next stage as if nothing had been asked. The stop is made now, between stages."""
    if trainer.received_sigterm:
        raise interrupt_for(STOPPED_BY["signal"])


class CtrlCStopsAfterTheStep(pl.Callback):
    """Ctrl-C (SIGINT) as a polite stop, as SIGTERM is: the step in flight finishes, is saved
    as ``last.ckpt`` (StepCheckpoint) and the tool says to rerun. Lightning's own Ctrl-C stops
    mid-step and saves nothing, losing up to a checkpoint interval. A second Ctrl-C stops at
    once. Single-process runs only: under DDP the ranks must agree on when to stop, and
    Lightning's handling (every rank shut down) stays."""

    def __init__(self) -> None:
        self._previous: Callable | int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return
        STOPPED_BY["signal"] = signal.SIGTERM  # until a Ctrl-C says otherwise
        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, functools.partial(self._stop_after_the_step, trainer))

    def _stop_after_the_step(self, trainer: pl.Trainer, signum: int, frame: object) -> None:
        self._restore()  # a second Ctrl-C: the usual KeyboardInterrupt
        STOPPED_BY["signal"] = signal.SIGINT
        trainer._signal_connector.received_sigterm = True
        print("\nCtrl-C: stopping after this step, which is saved (Ctrl-C again: at once)")

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()


class AgreedStop(SIGTERMException):
    """A stop every rank of a DDP run raised at the same step's start (RanksStopTogether),
    so a collective save of the step before it is safe."""


class RanksStopTogether(pl.Callback):
    """Under DDP, a stop (SIGTERM: a scheduler's time limit, ``kill``; or Ctrl-C) is agreed by
    the ranks at a step's start: each rank's handler only notes its signal, one all-reduce of
    one number a step tells every rank whether any was asked, and every rank then stops before
    that step, the step before it saved (StepCheckpoint), exit 143 (130). Lightning's own
    SIGTERM handler ran a broadcast inside the handler, a collective that met the other rank's
    gradient all-reduce, and both ranks hung for good (Lightning 2.6.6: a signal to rank 0
    alone, to every process, or a Ctrl-C). A second stop on a rank ends it at once."""

    def __init__(self) -> None:
        self.asked = 0  # the signal this rank noted; 0: none
        self._previous: dict[int, Callable | int | None] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size <= 1 or threading.current_thread() is not threading.main_thread():
            return
        self.asked = 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._note)

    def _note(self, signum: int, frame: object) -> None:
        if self.asked:  # a second stop: at once
            raise interrupt_for(signum)
        self.asked = signum

    def _any_asked(self, trainer: pl.Trainer) -> int:
        """The signal some rank noted (the larger number where two were), on every rank."""
        flag = torch.tensor([self.asked], device=trainer.strategy.root_device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._previous and (sig := self._any_asked(trainer)):
            STOPPED_BY["signal"] = sig
            self._restore()
            name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
            rank_zero_info(f"{name}: every rank stops here, step {trainer.global_step} saved")
            raise AgreedStop()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A stop noted after the last step's start ends the tool after the fit, on every
        rank alike (gan.callbacks.raise_late_stop)."""
        if self._previous and (sig := self._any_asked(trainer)):
            STOPPED_BY["signal"] = sig
            trainer._signal_connector.received_sigterm = True
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar for runs measured in steps (``max_epochs=-1``): its title said
    ``Epoch 3/-2``, and a bar that restarts every epoch gave no idea how far the run was. The
    title is ``Epoch 3`` and the metrics start with ``step: 120/800``."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs not in (None, -1):
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """The bar ends at the epoch's last batch as it counts them (from the epoch's first):
        Lightning sizes it by the steps left when the epoch starts, so a run resumed at step 13
        of 40 read ``40/27`` at its end."""
        if trainer.max_epochs == -1 and trainer.max_steps > 0 and self.progress is not None:
            left = trainer.max_steps - trainer.global_step
            total = min(trainer.num_training_batches, batch_idx + 1 + left)
            if self.train_progress_bar_id is not None:
                self.progress.update(self.train_progress_bar_id, total=total)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        if trainer.max_steps > 0:
            items = {"step": f"{trainer.global_step}/{trainer.max_steps}", **items}
        return items
