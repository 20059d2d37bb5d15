"""How long each pipeline stage took to make what is on disk, kept across invocations.

The report gave the wall times of the invocation alone: after a resume or a complete rerun it
said 0 for every stage found complete, and how long a stage really took was lost. Each unit of
work (a stage; one row's seed) now keeps, in ``<output_dir>/stage_times.json``, the wall time
of the invocation that last made its output, plus that of the invocations cut short in it
before (a kill, Ctrl-C, a failure), so a stage resumed after a stop counts both parts; a unit
found complete keeps the time it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from synth.digests import file_key
from synth.io import DataError, read_json, write_json_atomic

#: Under ``paths.output_dir``: each unit's seconds as made (``made``), those of invocations cut
#: short in a unit not made since (``cut_short``), the look of the output one of them wrote
#: before it stopped (``wrote``), and the last invocation's own by stage (``last_run``).
RECORD = "stage_times.json"

T = TypeVar("T")


def look(path: Path) -> list | None:
    """A file's device, inode, size and modification time; None where it is missing. A stage
    that makes its output anew writes it through a temp file and a rename: another look."""
    try:
        return list(file_key(str(path)))[1:]
    except OSError:
        return None


class StageClock:
    """Times the pipeline's stages into ``RECORD``. A unit did its work in this invocation
    when its output (a set's card, the GAN's checkpoint, a row's metrics.json) was written
    while it ran: a stage found complete writes none of them."""

    def __init__(
        self, output_dir: str | Path, now: Callable[[], float] = time.perf_counter
    ) -> None:
        self.path, self.now = Path(output_dir) / RECORD, now
        try:
            record = read_json(self.path) if self.path.is_file() else {}
        except DataError:  # damaged: every time unknown, as before times were kept
            record = {}
        self.made: dict[str, float] = dict(record.get("made") or {})
        self.cut_short: dict[str, float] = dict(record.get("cut_short") or {})
        self.wrote: dict[str, list] = dict(record.get("wrote") or {})
        #: This invocation's seconds, by stage as the report names it.
        self.this_run: dict[str, float] = {}
        self.units: dict[str, list[str]] = {}

    def run(
        self, stage: str, output: Path, fn: Callable[..., T], *args: object, unit: str = ""
    ) -> T:
        """``fn(*args)``, timed as ``unit`` (one seed of a row; the ``stage`` itself where
        empty), whose work writes ``output``."""
        unit = unit or stage
        self.units.setdefault(stage, []).append(unit)
        before, start = look(output), self.now()
        try:
            result = fn(*args)
        except BaseException:  # stopped or failed: its time counts when it is made
            self.cut_short[unit] = self.cut_short.get(unit, 0.0) + self._spent(stage, start)
            if (after := look(output)) != before:  # written, then stopped (in W&B's finish)
                self.wrote[unit] = after
            self.save()
            raise
        spent = self._spent(stage, start)
        earlier = self.cut_short.pop(unit, 0.0)  # found complete: a stop among its checks
        wrote, now = self.wrote.pop(unit, None), look(output)
        # made here, or found complete as a stopped invocation wrote it: that one made it
        if now != before or (now is not None and now == wrote):
            self.made[unit] = earlier + spent
        self.save()
        return result

    def _spent(self, stage: str, start: float) -> float:
        spent = self.now() - start
        self.this_run[stage] = self.this_run.get(stage, 0.0) + spent
        return spent

    def as_made(self, stages: Iterable[str]) -> dict[str, float | None]:
        """The seconds each of ``stages`` took as made, over its units this invocation ran
        (a row's seeds); None where one's output was made before times were kept."""
        made: dict[str, float | None] = {}
        for stage in stages:
            times = [self.made.get(unit) for unit in dict.fromkeys(self.units.get(stage, []))]
            made[stage] = None if None in times else sum(t for t in times if t is not None)
        return made

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.path,
            {
                "made": self.made,
                "cut_short": self.cut_short,
                "wrote": self.wrote,
                "last_run": self.this_run,
            },
        )
