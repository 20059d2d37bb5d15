"""Crack-image simulator: procedural surfaces, crack geometry, camera effects, sharded rendering.

The simulator knows nothing about GANs or torch; it renders labeled ``synth.io.Sample`` objects
whose pixels depend only on ``(seed, index)``, so datasets are reproducible and resumable.
"""

from synth.io import Sample
from synth.rng import sample_rng

__all__ = ["Sample", "sample_rng"]
