"""tools/soak.py: kill/rerun cycles end in a complete, uncorrupted run, and each cycle line
says what happened to it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_soak_passes_and_never_calls_a_finished_run_killed_mid_way() -> None:
    """Its lines said 'killed after step 4; last.ckpt at step 6' of a run that had ended, and
    killed reruns of a complete run at start-up."""
    steps = 4
    cmd = [sys.executable, str(ROOT / "tools" / "soak.py"), "--cycles", "3", "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cycles = [line for line in proc.stdout.splitlines() if line.startswith("cycle ")]
    assert len(cycles) == 3 and proc.stdout.splitlines()[-1].startswith("ok: 3 cycles")
    done = False
    for line in cycles:
        assert not done or "the run is complete, nothing to kill" in line, line
        step = re.search(r"last.ckpt at step (\d+)", line)
        if step and int(step.group(1)) >= steps:
            assert "finished" in line or ", as it ended" in line, line
            done = True
