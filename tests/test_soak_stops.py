"""tools/soak_stops.py: the pipeline stopped by SIGTERM and rerun ends as a straight run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _cli_fixtures import ROOT, tool_env


# the label-free soak (50 s) runs with the slow tests: CI keeps the scored one, the same stops
@pytest.mark.parametrize(
    "label_free",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["scored", "label_free"],
)
def test_the_stop_soak_passes_on_a_short_pipeline(label_free: bool) -> None:
    """Three SIGTERM stops to the process group of a one-row pipeline with DataLoader workers
    (its straight run takes about 13 s, each start-up 4), then a rerun: the tool checks each
    stop's exit code and line, and the row's scores (without labels, its masks of the photos,
    byte for byte). At least one stop must land mid-work, or the soak proved nothing."""
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "soak_stops.py"),
        "--stops=3",
        "--delay",
        "5.5",
        "6.5",
        "--rows=adapted",
        "--steps=100",
        *(["--label-free"] if label_free else []),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    verdict = re.match(
        r"ok: (\d+) stops by SIGTERM \((\d+) before any stage's work\)",
        proc.stdout.splitlines()[-1],
    )
    assert verdict, proc.stdout[-2000:]
    landed, early = map(int, verdict.groups())
    assert landed - early >= 1, proc.stdout[-2000:]
    assert ("adapted crack_share" if label_free else "adapted f1") in proc.stdout
