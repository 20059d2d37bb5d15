"""synth.processes: how worker processes meet stops and their main process's exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synth.processes import start_as_job, usable_cpus

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
    # What the hook prevents. In a session of its own, so that the deaf daemon is killed with
    # its hung parent (it outlived the test for ten minutes, asleep).
    hung = subprocess.Popen(
        [sys.executable, "-c", EXITS_WITH_A_DEAF_DAEMON.format(kill=False)],
        start_new_session=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            hung.wait(timeout=5)
    finally:
        os.killpg(hung.pid, signal.SIGKILL)
        hung.wait()


AN_ERROR_IN_A_LOADER_WORKER = """
import sys
from pathlib import Path
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


@pytest.fixture
def eight_cpus(monkeypatch) -> None:
    """A process whose affinity is 8 CPUs: a container's, which its quota may lower."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)


def cgroups(tmp_path: Path, lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake ``/proc/self`` whose ``cgroup`` file holds ``lines``, and a fake
    ``/sys/fs/cgroup`` with ``files`` (path under it: text)."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    (proc / "cgroup").write_text(lines)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return proc, root


def test_a_cgroup_v2_quota_lowers_the_cpus_rounded_up(eight_cpus, tmp_path: Path) -> None:
    """``docker run --cpus=1.5``: the affinity shows all 8 CPUs, the quota the time of 1.5."""
    proc, root = cgroups(tmp_path, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert usable_cpus(proc, root) == 2
    (root / "cpu.max").write_text("1600000 100000\n")  # 16 CPUs' time: the affinity's 8 stay
    assert usable_cpus(proc, root) == 8


def test_a_v2_max_is_no_quota_and_the_parents_are_read(eight_cpus, tmp_path: Path) -> None:
    """systemd and Kubernetes put the limit on a slice or pod above the process's own cgroup,
    whose ``cpu.max`` says ``max``."""
    files = {
        "kubepods/pod1/cpu.max": "300000 100000\n",
        "kubepods/pod1/ctr/cpu.max": "max 100000\n",
    }
    proc, root = cgroups(tmp_path, "0::/kubepods/pod1/ctr\n", files)
    assert usable_cpus(proc, root) == 3
    (root / "kubepods/pod1/cpu.max").write_text("max 100000\n")
    assert usable_cpus(proc, root) == 8


def test_the_tightest_of_nested_quotas_counts(eight_cpus, tmp_path: Path) -> None:
    """A pod limited to 4 CPUs whose container is limited to 2, and one the other way."""
    files = {"pod/cpu.max": "400000 100000\n", "pod/ctr/cpu.max": "200000 100000\n"}
    proc, root = cgroups(tmp_path, "0::/pod/ctr\n", files)
    assert usable_cpus(proc, root) == 2
    (root / "pod/ctr/cpu.max").write_text("600000 100000\n")
    assert usable_cpus(proc, root) == 4


def test_a_cgroup_v1_quota_lowers_the_cpus(eight_cpus, tmp_path: Path) -> None:
    """Docker on cgroup v1: ``/proc/self/cgroup`` names the host's path, and the container's
    own files are at the top of its cpu mount; a hybrid machine lists v2's empty tree too."""
    files = {
        "cpu,cpuacct/cpu.cfs_quota_us": "150000\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    }
    proc, root = cgroups(tmp_path, "4:cpu,cpuacct:/docker/abc\n0::/\n", files)
    assert usable_cpus(proc, root) == 2


def test_a_v1_quota_of_minus_one_is_none(eight_cpus, tmp_path: Path) -> None:
    """A job's cgroup without a quota (-1) under a slice limited to 4 CPUs, on a machine that
    mounts the cpu controller's tree as ``cpu`` alone."""
    files = {
        "cpu/slice/job/cpu.cfs_quota_us": "-1\n",
        "cpu/slice/job/cpu.cfs_period_us": "100000\n",
        "cpu/slice/cpu.cfs_quota_us": "400000\n",
        "cpu/slice/cpu.cfs_period_us": "100000\n",
    }
    proc, root = cgroups(tmp_path, "3:cpu,cpuacct:/slice/job\n", files)
    assert usable_cpus(proc, root) == 4
    (root / "cpu/slice/cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(proc, root) == 8


def test_unreadable_or_garbled_cgroup_files_are_no_quota(eight_cpus, tmp_path: Path) -> None:
    """A garbled ``cpu.max`` or one that cannot be read is skipped, the parent's quota still
    counts; a garbled or missing ``/proc/self/cgroup`` is no quota, never an error."""
    files = {"job/cpu.max": "two CPUs please\n", "cpu.max": "200000 100000\n"}
    proc, root = cgroups(tmp_path, "garbage\n1:cpu\n0::/job/step\n", files)
    (root / "job/step/cpu.max").mkdir(parents=True)  # read_text: IsADirectoryError
    assert usable_cpus(proc, root) == 2
    (root / "cpu.max").write_bytes(b"\xff\xfe 100000\n")
    assert usable_cpus(proc, root) == 8
    (proc / "cgroup").unlink()
    assert usable_cpus(proc, root) == 8
