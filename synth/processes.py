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

#: What a terminal (Ctrl-C) and a scheduler (scancel, a time limit) stop a job with.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the OS has one (Linux), which is
    a Slurm job's or a cgroup cpuset's share and not the whole node's, else every CPU of the
    machine; at least 1. torch's DataLoader counts the same when it warns of too many
    workers. A CPU quota without a cpuset (``docker --cpus=2``) is not seen, by torch either."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


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
