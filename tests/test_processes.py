"""synth.processes: how worker processes meet stops and their main process's exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

EXITS_WITH_A_DEAF_DAEMON = """
import multiprocessing as mp, signal, time
from synth.processes import ignore_stops, kill_daemons_at_exit

def deaf() -> None:  # a DataLoader worker after quiet_worker: SIGTERM ignored
    ignore_stops()
    time.sleep(600)

if __name__ == "__main__":
    if {kill}:
        kill_daemons_at_exit()
    mp.Process(target=deaf, daemon=True).start()
    time.sleep(0.5)
"""


def test_workers_that_ignore_sigterm_do_not_hang_the_exit() -> None:
    """multiprocessing's exit hook ends daemonic children with SIGTERM, then waits for them:
    a DataLoader worker left running by an error (it ignores SIGTERM) held the tool at exit
    forever (tools/soak_stops.py, a stop as a loader started its workers)."""
    code = EXITS_WITH_A_DEAF_DAEMON.format(kill=True)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with pytest.raises(subprocess.TimeoutExpired):  # what the hook prevents
        subprocess.run(
            [sys.executable, "-c", EXITS_WITH_A_DEAF_DAEMON.format(kill=False)], timeout=5
        )
