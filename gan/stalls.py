"""Say when work that goes batch by batch stops getting anywhere; never stop it.

A DataLoader worker hung on a lock, a dead NFS mount or a deadlocked collective froze the
progress bar without a word, and a user could not tell a hang from a slow step: in session 55
a forked worker hung in OpenCV held the main job 11 minutes at 0 % CPU, silent. A loader
``timeout`` was no cure: a long suspension (a laptop's sleep, SIGSTOP) would fail a healthy
run. So a daemon thread only says what it sees: one line when no batch has finished for
``after_s`` seconds (where the watched thread waits, and the DataLoader workers' states),
again after each further ``after_s`` without one, and one line when batches come again.

Time is ``time.monotonic``: on Linux CLOCK_MONOTONIC, which stands still while the machine is
suspended. It runs on while this process alone is stopped (SIGSTOP, Ctrl-Z), so a poll that
comes much later than asked counts as one poll interval: time the watch itself could not run
(stopped, suspended, starved of CPU) is not time waited. A hang that holds Python's GIL stops
the watch too, and nothing is said.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Seconds without a finished batch before a line is said: well above the slowest healthy
#: step (a 256 px full-size generator step is ~23 s on 2 CPUs; a first step also starts the
#: loader's workers and maybe torch.compile).
STALL_AFTER_S = 600.0
#: A DataLoader worker's name in /proc (torch names its workers' main thread so).
WORKER_NAME = "pt_data_worker"
#: /proc/<pid>/stat's state letters; D is where a dead NFS mount leaves a reader.
STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "uninterruptible wait: disk or network file system",
    "T": "stopped",
    "t": "stopped by a debugger",
    "Z": "exited, not yet reaped",
}
_STDLIB = sysconfig.get_paths()["stdlib"]


class StallWatch:
    """A daemon thread that says when ``beat`` has not been called for ``after_s`` seconds.

    Only the watched thread calls ``beat``: one assignment, which never blocks nor raises, so
    the work watched is never slowed or stopped by the watch. ``name`` is what resumes
    ("training resumed after 700 s"); ``prefix`` goes before each line (a DDP rank).
    """

    def __init__(
        self,
        after_s: float | None = None,
        poll_s: float | None = None,
        name: str = "training",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.after_s = float(STALL_AFTER_S if after_s is None else after_s)
        self.poll_s = float(poll_s) if poll_s else min(5.0, self.after_s / 10)
        self.name = name
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.arm("batch", "none yet")  # the beat, prefix and watched thread, until start()

    def __getstate__(self) -> dict:
        """Without the thread and its event, which cannot be pickled: a run under
        ``strategy=ddp_spawn`` pickles its callbacks into each rank's process."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_thread", "_stop")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _thread=None, _stop=threading.Event())

    def beat(self, what: str, last: str) -> None:
        """Progress: ``what`` is awaited next ("training step"), ``last`` says the progress
        made ("last at step 120"). Each call makes a new tuple, which the watch tells apart
        from the one it saw by identity (it holds that one, so its id is not reused)."""
        self._beat = (what, last)

    def arm(self, what: str, last: str, prefix: str = "") -> None:
        """Count from now, watching the calling thread."""
        self.beat(what, last)
        self.prefix = prefix
        self._watched = threading.get_ident()
        self._seen = self._beat
        self._quiet = 0.0  # seconds counted without a beat
        self._said = 0  # lines said since the last beat
        self._polled = self._clock()

    def start(self, what: str, last: str, prefix: str = "") -> None:
        self.stop()
        self.arm(what, last, prefix)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="stall-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the thread; a stall said, then ended by the last batch, is said to be over."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)
        if thread is not None and self._said and self._beat is not self._seen:
            self._resumed()

    @contextmanager
    def running(self, what: str, last: str) -> Iterator[StallWatch]:
        self.start(what, last)
        try:
            yield self
        finally:
            self.stop()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        """Count the time since the last poll, and say what is due."""
        now = self._clock()
        gap, self._polled = now - self._polled, now
        beat = self._beat
        if beat is not self._seen:
            if self._said:
                self._resumed()
            self._seen, self._quiet, self._said = beat, 0.0, 0
            return
        # a poll far later than asked: the watch was not running (SIGSTOP), not counted
        self._quiet += gap if gap <= self.poll_s + max(self.poll_s, 1.0) else self.poll_s
        if self._quiet >= self.after_s * (self._said + 1):
            self._said += 1
            what, last = self._seen
            said = f"no {what} finished for {seconds(self._quiet)} s ({last}); still waiting"
            self.say("; ".join(p for p in (self.prefix + said, self.diagnosis()) if p))

    def _resumed(self) -> None:
        self.say(f"{self.prefix}{self.name} resumed after {seconds(self._quiet)} s")
        self._said = 0

    def diagnosis(self) -> str:
        """Where the watched thread waits, and the DataLoader workers' states; nothing where
        they cannot be read (the line is said all the same)."""
        try:
            return "; ".join(p for p in (waiting_in(self._watched), self.workers()) if p)
        except (OSError, ValueError, IndexError):  # a /proc file not as expected
            return ""

    def workers(self) -> str:
        """This process's DataLoader workers, each with its state and CPU use over a short
        look (0 % CPU and sleeping: waiting on something that will not come)."""
        window = min(1.0, self.poll_s)
        first = loader_workers(os.getpid())
        if first is None:  # no /proc: not Linux
            return ""
        if not first:
            return "no DataLoader workers"
        self._stop.wait(window)
        then = loader_workers(os.getpid()) or {}
        ticks = os.sysconf("SC_CLK_TCK") * window / 100  # clock ticks in 1 % of the window
        described = []
        for pid, (state, used) in sorted(then.items()):
            cpu = (used - first[pid][1]) / ticks if pid in first else 0.0
            described.append(f"pid {pid} ({STATES.get(state, state)}, {cpu:.0f} % CPU)")
        return "DataLoader workers: " + (", ".join(described) or "none left")

    def say(self, line: str) -> None:
        """One line on stderr (above a rich progress bar, which redirects stderr)."""
        print(line, file=sys.stderr, flush=True)


def seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def waiting_in(ident: int | None) -> str:
    """The innermost line of the thread ``ident`` outside Python's standard library: where
    it waits (torch/utils/data/dataloader.py: for a batch; torch/distributed: a collective;
    torch/serialization.py: a checkpoint write)."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    while frame is not None and is_stdlib(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return ""
    return f"waiting in {short_path(frame.f_code.co_filename)}:{frame.f_lineno} ({frame.f_code.co_name})"


def is_stdlib(filename: str) -> bool:
    if filename.startswith("<"):  # frozen modules
        return True
    packages = "site-packages" in filename or "dist-packages" in filename
    return filename.startswith(_STDLIB) and not packages


def short_path(filename: str) -> str:
    """An installed package's file from its package folder (torch/utils/data/dataloader.py),
    any other from its folder (gan/evaluate.py)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(marker) :])
    return "/".join(parts[-2:])


def loader_workers(parent: int) -> dict[int, tuple[str, int]] | None:
    """The DataLoader workers among ``parent``'s children: pid -> (state letter, CPU clock
    ticks used); None where there is no /proc. Read from /proc alone: asking multiprocessing
    (``active_children``) would reap exited workers the loader itself waits to see."""
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return None
    found = {}
    for pid in entries:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone since the listing
            continue
        close = text.rfind(")")  # the name, in brackets, may hold spaces and brackets
        name, fields = text[text.find("(") + 1 : close], text[close + 2 :].split()
        if name == WORKER_NAME and int(fields[1]) == parent:
            found[int(pid)] = (fields[0], int(fields[11]) + int(fields[12]))
    return found
