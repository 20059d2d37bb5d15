"""A 2-job Hydra multirun through the submitit local launcher renders one dataset together."""

from __future__ import annotations

from pathlib import Path

from _cli_fixtures import run_tool

from synth.io import is_shard_complete, read_card


def test_render_sweep_two_submitit_local_jobs(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    proc = run_tool(
        "render",
        "-m",
        "hydra/launcher=local_jobs",
        f"paths.root_dir={tmp_path}",
        f"out_dir={out}",
        "synth.size=32",
        "num_samples=4",
        "shard_size=2",
        "workers=1",
        "progress=false",
        "shard_start=0,1",
        "shard_count=1",
        "hydra.launcher.timeout_min=5",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the launcher config extends the plugin's schema: Hydra's deprecation warning (three per
    # sweep) came from a file that shadowed it
    assert "deprecated" not in proc.stderr
    assert is_shard_complete(out, 0) and is_shard_complete(out, 1)
    assert read_card(out).get("num_samples") == 4  # the last job to finish wrote the card
    jobs = list((tmp_path / "logs" / "hydra").rglob(".submitit/*/*_result.pkl"))
    assert len(jobs) == 2, list((tmp_path / "logs").rglob("*"))
    assert not list(out.glob("*.tmp-*"))
