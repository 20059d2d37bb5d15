"""Per-sample random generators.

Every sample draws from its own generator seeded by ``SeedSequence([seed, index])``, so sample
``i`` depends only on ``(seed, i)``: the output is identical whatever the worker count, shard
size or rendering order, and one sample can be re-rendered alone for debugging.
"""

from __future__ import annotations

import numpy as np


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """Independent generator for sample ``index`` of the dataset with master ``seed``."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed} index={index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index)])))
