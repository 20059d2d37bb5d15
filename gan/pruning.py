"""EL2N data pruning (Paul et al. 2021, "Deep Learning on a Data Diet").

A synthetic set holds many near-duplicate easy samples. EL2N scores each sample by how wrong
an early-trained model still is on it, ||softmax(f(x)) - onehot(y)||_2 per pixel, averaged over
the labeled pixels; keeping the highest-scored fraction drops the easy redundancy. Scores come
after ``score_after_steps`` of training and are averaged over a few seeds, as in the paper.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from gan.data import SegmentationSamples, checked_rate
from synth.distributions import ConfigError, checked_count, is_count
from synth.io import IGNORE_INDEX, Sample


@torch.no_grad()
def el2n_per_sample(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """(B,) mean over labeled pixels of the L2 error between softmax and the one-hot label."""
    valid = target != ignore_index
    onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2)
    err = (logits.softmax(1) - onehot.float()).norm(dim=1) * valid
    return err.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp(min=1)


@torch.no_grad()
def score_samples(
    model: nn.Module, dataset: SegmentationSamples, batch_size: int = 8
) -> torch.Tensor:
    """EL2N score of every dataset item (in dataset order), model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    scores = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits = model(batch["image"].to(device))
        scores.append(el2n_per_sample(logits, batch["mask"].to(device)).cpu())
    return torch.cat(scores)


def train_briefly(
    model: nn.Module,
    dataset: SegmentationSamples,
    steps: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int = 8,
    lr: float = 2e-3,
) -> nn.Module:
    """The paper's "early in training" phase: a few hundred plain AdamW steps on crops."""
    model.train()
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) >= batch_size
    )
    for batch in itertools.islice(itertools.cycle(loader), steps):
        loss = loss_fn(model(batch["image"].to(device)), batch["mask"].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def el2n_scores(
    make_model: Callable[[], nn.Module],
    samples: Sequence[Sample],
    score_after_steps: int = 200,
    seeds: Sequence[int] = (0,),
    crop_size: int = 128,
    batch_size: int = 8,
    lr: float = 2e-3,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """EL2N score per sample, averaged over one briefly trained model per seed.

    Scoring uses one deterministic crop per sample (seeded), so samples larger than the
    training crops are scored at the resolution the model was trained at.
    """
    loss_fn = loss_fn or (lambda logits, y: F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX))
    total = torch.zeros(len(samples))
    for seed in seeds:
        torch.manual_seed(seed)
        model = train_briefly(
            make_model(),
            SegmentationSamples(samples, crop_size),
            score_after_steps,
            loss_fn,
            batch_size,
            lr,
        )
        torch.manual_seed(seed)
        total += score_samples(model, SegmentationSamples(samples, crop_size), batch_size)
    return total / len(seeds)


def prune_dataset_indices(
    scores: Sequence[float] | torch.Tensor, keep_fraction: float
) -> list[int]:
    """Indices of the ``keep_fraction * n`` (rounded half up, at least 1) highest-scored
    samples, sorted.

    Ties break toward the lower index, so the result is deterministic.
    """
    if not 0 < keep_fraction <= 1:
        raise ConfigError(f"keep_fraction={keep_fraction}: expected 0 < keep_fraction <= 1")
    scores = torch.as_tensor(scores, dtype=torch.float64)
    n = len(scores)
    keep = min(n, max(1, math.floor(keep_fraction * n + 0.5)))
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:keep])


def check_prune_settings(prune: dict) -> None:
    """conf/train_task.yaml's ``prune`` node, before any training: ``keep_fraction=1.5`` was
    taken as "off", 0 refused only after the scoring runs, and an empty seed list scored
    every sample NaN."""
    fraction = prune["keep_fraction"]
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ConfigError(
            f"prune.keep_fraction={fraction!r}: expected 0 < keep_fraction <= 1 (1: no pruning)"
        )
    if fraction == 1:
        return
    checked_count(prune["score_after_steps"], "prune.score_after_steps")
    checked_count(prune["batch_size"], "prune.batch_size")
    checked_rate(prune["lr"], "prune.lr")
    seeds = prune["seeds"]
    if isinstance(seeds, str | int) or not seeds or not all(is_count(s, 0) for s in seeds):
        raise ConfigError(f"prune.seeds={seeds!r}: expected a list of whole numbers, e.g. [0]")


def prune_training_set(
    datamodule,
    net: dict,
    keep_fraction: float,
    out_path: str | None = None,
    score_after_steps: int = 200,
    seeds: Sequence[int] = (0,),
    batch_size: int = 8,
    lr: float = 2e-3,
    settings: dict | None = None,
) -> list[int]:
    """Score the datamodule's training source, keep the hardest fraction, record the choice.

    Sets ``datamodule.train_indices``; the JSON at ``out_path`` (``pruning_record``) lets a
    later run reuse the selection via ``task_data.train_indices=<file>``.
    """
    kept, record = select_training_set(
        datamodule, net, keep_fraction, score_after_steps, seeds, batch_size, lr, settings
    )
    if out_path:
        from synth.io import write_json_atomic

        write_json_atomic(out_path, record)
    return kept


def select_training_set(
    datamodule,
    net: dict,
    keep_fraction: float,
    score_after_steps: int = 200,
    seeds: Sequence[int] = (0,),
    batch_size: int = 8,
    lr: float = 2e-3,
    settings: dict | None = None,
) -> tuple[list[int], dict]:
    """``prune_training_set`` without the write: the kept indices, set on the datamodule, and
    the record to write (kept indices, every score, and ``settings``: what a resumed run
    checks before reusing it), which train_task writes only once a resume is allowed (a
    refused resume rewrote the run's pruning.json with the selection it refused)."""
    from gan.task import build_net

    samples = datamodule.open_train()
    scores = el2n_scores(
        lambda: build_net(**net),
        samples,
        score_after_steps,
        list(seeds),
        datamodule.crop_size,
        batch_size,
        lr,
    )
    kept = prune_dataset_indices(scores, keep_fraction)
    datamodule.train_indices = kept
    record = {
        "keep_fraction": keep_fraction,
        "settings": settings,
        "kept": kept,
        "scores": [round(float(s), 6) for s in scores],
    }
    return kept, record
