"""Callbacks every training stage shares."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import lightning.pytorch as pl
import torch


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


def last_checkpoint(trainer: pl.Trainer) -> str | None:
    for cb in trainer.checkpoint_callbacks:
        dirpath = getattr(cb, "dirpath", None)
        if dirpath and (Path(dirpath) / "last.ckpt").is_file():
            return str(Path(dirpath) / "last.ckpt")
    return None
