"""How worker processes (render's pool, the DataLoaders' workers) meet a stop.

A terminal's Ctrl-C reaches every process of its group, and so does a scheduler's SIGTERM
(Slurm's scancel or time limit). A worker that died of either broke its main process's polite
stop (a traceback per worker, a connection reset while a batch was fetched, a dead-worker
error while a checkpoint was written): workers leave both signals to the main process, which
winds the work down once and says so in one line.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import multiprocessing as mp
import multiprocessing.util  # noqa: F401  (its exit hook is in place before ours: see below)
import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: What a terminal (Ctrl-C) and a scheduler (scancel, a time limit) stop a job with.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


#: Where Linux shows this process's cgroups and where their files are mounted. Looked up at
#: each call, so the tests can point them at a fake tree.
PROC_SELF = Path("/proc/self")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(proc_self: Path | None = None, cgroup_root: Path | None = None) -> int:
    """The CPUs this process may use: its affinity where the OS has one (Linux), which is a
    Slurm job's or a cgroup cpuset's share and not the whole node's, else every CPU of the
    machine; lowered to a cgroup CPU quota where one is set (``docker run --cpus=2``,
    Kubernetes' CPU limits), which the affinity does not show: such a container on a 64-core
    node has all 64 in its affinity and the time of 2. At least 1. torch's DataLoader counts
    the affinity alone when it warns of too many workers."""
    cpus = affinity_cpus()
    quota = cpu_quota(proc_self or PROC_SELF, cgroup_root or CGROUP_ROOT)
    return cpus if quota is None else max(1, min(cpus, quota))


def affinity_cpus() -> int:
    """The CPUs this process may run on, a CPU quota aside: its affinity where the OS has one
    (Linux), else every CPU of the machine; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def cpu_quota(proc_self: Path, cgroup_root: Path) -> int | None:
    """The CPUs the cgroup CPU quota lets this process use, rounded up (``--cpus=1.5``: 2):
    the tightest of its cgroup's and its ancestors' (a systemd slice's, a Kubernetes pod's
    above its container's), under cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``). None where no quota is set or none can be read (not Linux, a file
    missing or garbled): a quota can only lower the count, never break a run. A container
    whose cgroup paths name the host's (v1 without a cgroup namespace) has its own files at
    the mount's top, which the walk up reaches."""
    try:
        lines = (proc_self / "cgroup").read_text().splitlines()
    except (OSError, ValueError):
        return None
    quotas: list[int | None] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:  # v2: one tree, every controller
            quotas += [_v2_quota(folder) for folder in _up_to(cgroup_root, path)]
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own tree
            mounts = [cgroup_root / controllers, cgroup_root / "cpu"]
            mount = next((m for m in mounts if os.path.isdir(m)), mounts[0])  # never raises
            quotas += [_v1_quota(folder) for folder in _up_to(mount, path)]
    return min((q for q in quotas if q is not None), default=None)


def _up_to(root: Path, path: str) -> list[Path]:
    """``root/path`` and each of its parents up to ``root``. A path that climbs out of the
    cgroup namespace (``/..``) names nothing under ``root``: ``root`` alone."""
    parts = [part for part in path.strip().split("/") if part not in ("", ".")]
    if ".." in parts:
        parts = []
    return [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> int | None:
    """``cpu.max``: ``"200000 100000"`` (quota and period, µs) is 2 CPUs; ``"max 100000"``
    (no number) none."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        return _cpus(int(quota), int(period))
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> int | None:
    """``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``; a quota of -1 is none."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        return _cpus(quota, int((folder / "cpu.cfs_period_us").read_text()))
    except (OSError, ValueError):
        return None


def _cpus(quota: int, period: int) -> int | None:
    """Whole CPUs for ``quota`` µs of CPU time each ``period`` µs, rounded up."""
    return -(-quota // period) if quota > 0 and period > 0 else None


def ignore_stops() -> None:
    """In a worker: leave Ctrl-C and SIGTERM to the main process."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextmanager
def stops_ignored() -> Iterator[None]:
    """In the main process, while it starts workers: a spawned worker inherits the ignored
    dispositions, so a stop that lands before its initializer runs (a slow start) cannot
    kill it; the main process's own handlers are back on exit."""
    previous = [signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS]
    try:
        yield
    finally:
        for sig, handler in zip(STOP_SIGNALS, previous, strict=True):
            signal.signal(sig, handler)


@contextmanager
def main_script_left_out() -> Iterator[None]:
    """In the main process, while it starts spawned workers whose code is importable by name:
    a spawned worker first re-imports the program's main script, and every tool in tools/
    imports torch and Lightning (0.8 GB and seconds a worker: rendering with two workers took
    longer than with one). The workers see an empty ``__main__`` instead."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def die_with_parent() -> None:
    """A pool worker waits for work forever, even once its main process is gone (killed by
    ``kill -9`` or the OOM killer); and it ignores SIGTERM. Linux ends it with its parent.
    Elsewhere the worker stays until killed, as before."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError, TypeError):  # no libc of that name, or no prctl in it
        pass
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the prctl
        os._exit(1)


@functools.cache
def kill_daemons_at_exit() -> None:
    """Daemonic workers (a DataLoader's) that ignore SIGTERM would hang their main process's
    exit: multiprocessing's own exit hook ends daemonic children with SIGTERM and then waits
    for them, forever (seen after an error left a loader's workers running). This hook, run
    before multiprocessing's (atexit runs last-registered first), kills them: a daemonic
    process is ended at exit by definition. Registered once per process (the cache)."""
    atexit.register(_kill_daemonic_children)


def _kill_daemonic_children() -> None:
    """Two reports of the kill go first, each a traceback under the tool's one line: torch's
    DataLoader's SIGCHLD handler raises when a worker dies by a signal (a corrupt photo read
    in a worker), and multiprocessing's resource sharer, which hands tensors' file
    descriptors to the workers, reports a worker killed mid-handshake (a stop mid-prediction,
    once in a few). Nothing waits for those workers or tensors now."""
    daemons = [child for child in mp.active_children() if child.daemon]
    if not daemons:
        return
    quiet_lost_handshakes()
    if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in daemons:
        child.kill()


def quiet_lost_handshakes() -> None:
    """Silence the resource sharer's report of a killed worker's handshake, both ways it can
    come: its thread (``_serve``) catches the error itself and calls ``sys.excepthook``
    (Python 3.11), which the thread hook alone missed (the traceback still came, once in a
    few stops mid-prediction), or lets it escape to ``threading.excepthook``."""
    threading.excepthook = functools.partial(_quiet_resource_sharer, threading.excepthook)
    sys.excepthook = functools.partial(_quiet_sharer_excepthook, sys.excepthook)


def is_lost_handshake(exc_type: type[BaseException], thread: threading.Thread | None) -> bool:
    lost = issubclass(exc_type, EOFError | ConnectionError)
    return lost and thread is not None and thread.name.endswith("(_serve)")


def _quiet_resource_sharer(previous: Callable, args: threading.ExceptHookArgs) -> None:
    """multiprocessing.resource_sharer's thread (``_serve``) losing a killed worker's
    handshake is no error at exit; any other thread's exception is reported as before."""
    if not is_lost_handshake(args.exc_type, args.thread):
        previous(args)


def _quiet_sharer_excepthook(previous: Callable, exc_type, exc, tb) -> None:
    if not is_lost_handshake(exc_type, threading.current_thread()):
        previous(exc_type, exc, tb)


def start_as_job(cmd: list[str], **popen_kwargs) -> subprocess.Popen:
    """Start ``cmd`` as a terminal starts a job: in a process group of its own, so that a
    signal sent to the group (``os.killpg``, as Ctrl-C and Slurm send it) reaches the tool and
    its workers and not the caller; and with Ctrl-C live, which a caller run in the background
    (``&``, nohup) would otherwise hand it ignored. The soak tool and the tests start the
    tools they stop this way."""
    return subprocess.Popen(
        cmd,
        start_new_session=True,
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
        **popen_kwargs,
    )
