"""Shared helpers for the simulator tests: a tiny (64 px) copy of the default config."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

from synth.scene import plain_config

ROOT = Path(__file__).resolve().parents[1]
SYNTH_CONF = ROOT / "conf" / "synth" / "default.yaml"


def tiny_config(**overrides: object) -> dict:
    """The default simulator config at 64x64 (fast), with top-level overrides."""
    cfg = plain_config(OmegaConf.load(SYNTH_CONF))
    cfg["size"] = 64
    cfg.update(overrides)
    return cfg


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the card (it holds timings-free stats anyway)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
