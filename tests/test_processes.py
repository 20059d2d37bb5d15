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


AN_ERROR_IN_A_LOADER_WORKER = """
import sys
from torch.utils.data import DataLoader, Dataset
from synth.processes import kill_daemons_at_exit

class CorruptThird(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> int:
        if i == 3:
            raise ValueError("a corrupt photo")
        return i

if __name__ == "__main__":
    kill_daemons_at_exit()
    batches = iter(DataLoader(CorruptThird(), num_workers=2))  # kept: its workers live on
    try:
        list(batches)
    except ValueError:
        print("error: a corrupt photo")
        sys.exit(1)
"""


def test_workers_killed_at_exit_leave_the_one_line_error_alone() -> None:
    """An error read in a DataLoader worker (a corrupt photo, tools/predict.py num_workers=2)
    left the loader's workers to the exit hook; torch's SIGCHLD handler then reported their
    kill as a failed worker, a traceback under the tool's one-line error."""
    for _ in range(2):  # the handler's report came every time; twice shows it is not luck
        proc = subprocess.run(
            [sys.executable, "-c", AN_ERROR_IN_A_LOADER_WORKER],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (proc.returncode, proc.stdout) == (1, "error: a corrupt photo\n")
        assert "Traceback" not in proc.stderr and "killed by signal" not in proc.stderr


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


A_KILL_MID_HANDSHAKE = """
import multiprocessing as mp, sys, threading, time
from synth.processes import _kill_daemonic_children

def _serve():  # named as multiprocessing.resource_sharer's thread's target is
    raise EOFError

def _other():
    raise EOFError

def serve_caught():  # Python 3.11's _serve catches the error and calls sys.excepthook itself
    try:
        raise EOFError
    except EOFError:
        sys.excepthook(*sys.exc_info())

serve_caught.__name__ = "_serve"  # the thread's name follows its target's

def other_caught():
    try:
        raise EOFError
    except EOFError:
        sys.excepthook(*sys.exc_info())

if __name__ == "__main__":
    worker = mp.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True)
    worker.start()
    _kill_daemonic_children()
    worker.join(timeout=30)
    print(worker.exitcode)
    for target in (_serve, _other, serve_caught, other_caught):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
"""


def test_a_worker_killed_mid_handshake_is_no_traceback_at_exit(tmp_path) -> None:
    """A stop mid-prediction left the exit hook to kill a worker while it handed a tensor
    over; multiprocessing's resource sharer thread then printed the broken handshake's
    EOFError as a traceback under the tool's one line (once in a few stops). Other threads'
    exceptions are reported as before."""
    script = tmp_path / "tool.py"
    script.write_text(A_KILL_MID_HANDSHAKE)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == [str(-signal.SIGKILL)], proc.stderr[-2000:]
    assert "(_other)" in proc.stderr and "(_serve)" not in proc.stderr
    assert proc.stderr.count("Exception in thread") == 1
    # the sharer's own report through sys.excepthook (CI, session 43), and any other's
    assert "in serve_caught" not in proc.stderr and "in other_caught" in proc.stderr


def test_a_worker_killed_by_a_stop_is_read_through_torchs_unexpected_exit() -> None:
    """torch raises "DataLoader worker (pid(s) N) exited unexpectedly" from the "is killed by
    signal: Terminated" error; the stop was read as no stop at all, an error and exit 1
    (tools/soak_stops.py, once in CI)."""
    from gan.cli import signal_that_killed_a_worker

    killed = RuntimeError("DataLoader worker (pid 5) is killed by signal: Terminated. ")
    try:
        try:
            raise killed
        except RuntimeError as err:
            raise RuntimeError("DataLoader worker (pid(s) 5) exited unexpectedly") from err
    except RuntimeError as outer:
        assert signal_that_killed_a_worker(outer) == signal.SIGTERM
    crashed = RuntimeError("DataLoader worker (pid(s) 5) exited unexpectedly")
    assert signal_that_killed_a_worker(crashed) is None  # a worker's own crash is no stop


def test_a_worker_drops_only_the_error_of_a_handover_its_stopped_parent_cut(
    capsys, monkeypatch
) -> None:
    """A stop that ends the main process while a DataLoader worker hands it a batch: the
    worker's resource-sharer thread printed ``ConnectionResetError`` with its traceback after
    the tool's last line (1 CI run in 3 of session 45). That error alone is dropped."""
    import threading
    from multiprocessing.resource_sharer import _ResourceSharer

    from gan.data import quiet_lost_handover

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # the hook goes with the test
    quiet_lost_handover()

    def serve_once(error: Exception) -> None:  # the sharer's loop: one failed handover, then stop
        class Connection:
            def __enter__(self):
                return self

            def __exit__(self, *args) -> None:
                return None

            def recv(self) -> None:
                return None  # the sharer's stop message

        class Listener:
            calls = 0

            def accept(self) -> Connection:
                Listener.calls += 1
                if Listener.calls == 1:
                    raise error
                return Connection()

        sharer = _ResourceSharer.__new__(_ResourceSharer)
        sharer._listener = Listener()
        thread = threading.Thread(target=sharer._serve)
        thread.start()
        thread.join(5)

    serve_once(ConnectionResetError(104, "Connection reset by peer"))
    assert capsys.readouterr().err == ""
    serve_once(ValueError("something else"))
    assert "ValueError: something else" in capsys.readouterr().err
