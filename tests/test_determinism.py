"""Same config and seed -> the same trained weights, whatever ran before; another seed differs.

Models are built right after seeding (gan.runner.build_model); before that, initial weights
came from an unseeded generator and two runs of one command differed by up to 0.1 F1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _cli_fixtures import gan_overrides, run_tools_at_once, task_overrides
from _gan_fixtures import make_synthetic

from gan.checkpoint import load_checkpoint
from synth.toy import write_toy_real_folder


def trained_weights(tool: str, overrides: list[str], tmp: Path, runs: dict[str, int]) -> dict:
    """Each run (name: seed) of ``tool`` trained, side by side in their own processes; the
    weights each saved, by run name."""
    commands = [
        (tool, [*overrides, f"run_name={run}", f"seed={seed}"]) for run, seed in runs.items()
    ]
    for proc in run_tools_at_once(*commands):
        assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        run: load_checkpoint(tmp / "checkpoints" / run / "last.ckpt")["state_dict"] for run in runs
    }


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("tool", ["train_task", "train_gan"])
def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, tool: str) -> None:
    write_toy_real_folder(tmp_path / "real")
    if tool == "train_task":
        overrides = task_overrides(tmp_path, steps=3)
    else:
        syn = make_synthetic(tmp_path / "syn", n=4, shard_size=2, h=32, w=40)
        overrides = gan_overrides(tmp_path, syn, steps=3)
    weights = trained_weights(tool, overrides, tmp_path, {"first": 0, "again": 0, "other": 1})
    assert same(weights["first"], weights["again"])
    assert not same(weights["first"], weights["other"])
