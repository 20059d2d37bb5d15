"""tools/soak_stops.py: the pipeline stopped by SIGTERM and rerun ends as a straight run."""

from __future__ import annotations

import subprocess
import sys

from _cli_fixtures import ROOT, tool_env


def test_the_stop_soak_passes_on_a_short_pipeline() -> None:
    """Two SIGTERM stops to the process group of a one-row pipeline with DataLoader workers,
    then a rerun: the tool checks each stop's exit code and line, and the row's scores."""
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "soak_stops.py"),
        "--stops=2",
        "--delay",
        "5",
        "6",
        "--rows=synthetic",
        "--steps=30",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1].startswith("ok: "), proc.stdout[-2000:]
    assert "synthetic F1" in proc.stdout
