"""A callback the fault tests add to a tool's run (``+callbacks.stop._target_=...``) to stop it
at an exact step, where a signal sent from outside lands wherever the run happens to be."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class SigtermAtStep(pl.Callback):
    """Send this process SIGTERM once ``step`` optimizer steps are done, as a scheduler's
    time limit would; Lightning stops after the batch in flight. Under DDP, to the processes
    of ``ranks`` alone (None: every rank, as Slurm signals a job's processes)."""

    def __init__(self, step: int, ranks: list[int] | None = None) -> None:
        self.step = step
        self.ranks = ranks

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and (
            self.ranks is None or trainer.global_rank in self.ranks
        ):
            os.kill(os.getpid(), signal.SIGTERM)


class ExitAtStep(pl.Callback):
    """Exit at once (no save, no cleanup: a lost node) on every rank alike, once ``step`` steps
    are done, before the checkpoint callback saves that step (Lightning calls it last): with a
    save every step, ``last.ckpt`` holds step ``step - 1``. Every rank stops in step, which a
    SIGKILL sent from outside to a DDP job does not guarantee."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os._exit(1)


class SigtermAtTrainEnd(pl.Callback):
    """Send this process SIGTERM as the training loop ends, after Lightning's last look for
    one (its handler still in place), as a time limit may land."""

    def on_train_end(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
