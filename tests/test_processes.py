"""synth.processes: how worker processes meet stops and their main process's exit."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from synth.processes import start_as_job

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


def test_a_tool_started_as_a_job_has_its_own_group_and_a_live_ctrl_c(
    python_signal_defaults,
) -> None:
    """The soak and the stop tests signal a tool's whole group: it must not be this process's
    group, and Ctrl-C must reach the tool even when this process was started in the
    background with SIGINT ignored (which a child would otherwise inherit)."""
    probe = (
        "import os, signal; print(os.getpgid(0) == os.getpid(), "
        "signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as nohup / `&` leave it
    proc = start_as_job([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert out.split() == ["True", "True"]
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert plain.stdout.split() == ["False", "False"]  # what start_as_job changes
