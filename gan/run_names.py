"""How runs are named per seed, in one place: the pipeline's row folders, the tools' run
names and compare_runs' search for a run's seeds all follow it. A light module (no torch), so
the config resolvers that name runs do not load the evaluation stack."""

from __future__ import annotations

import re
from pathlib import Path

SEED_SUFFIX = "-seed"


def run_key(row: str, seed: int, base_seed: int) -> str:
    """A row's run folder for one seed. The config's own seed keeps the plain row name, every
    other seed its own folder, so adding seeds later reuses finished runs and a seed list
    without the base seed (``seeds=[1,2]``) never retrains over the base seed's run."""
    return row if seed == base_seed else f"{row}{SEED_SUFFIX}{seed}"


def unseeded(name: str) -> str:
    """A run name without the ``-seed<N>`` run_key gave it: the name its seeds share (the W&B
    group that shows a row's seeds together)."""
    return re.sub(re.escape(SEED_SUFFIX) + r"\d+$", "", str(name))


def seed_run_dirs(run: str | Path) -> list[Path]:
    """``run`` and the sibling folders ``run_key`` gave its other seeds (``<run>-seed<N>``)."""
    run = Path(run)
    pattern = re.compile(re.escape(run.name + SEED_SUFFIX) + r"\d+")
    siblings = run.parent.glob(f"{run.name}{SEED_SUFFIX}*")
    return [run, *sorted(p for p in siblings if pattern.fullmatch(p.name))]
