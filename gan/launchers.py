"""The submitit launchers (``conf/hydra/launcher``) with a sweep's failures said in one line
a job, not submitit's traceback.

A job that a tool refused (``error: ... image folder not found``) exits through SystemExit,
which Hydra's ``run_job`` does not catch: submitit saw a job that produced no result, and
the launching process printed ``UncompletedJobError`` with the job's error stream inside a
traceback, for the first such job alone, whatever the others did. Here each job returns its
outcome, and the launching process names every job a tool refused or stopped (number,
overrides, its line and its log) and exits as the first of them did. The launchers themselves
(``hydra_plugins.sim2real_launchers``) live where Hydra takes launchers from.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher


class JobStopped(Exception):
    """A job's tool ended through SystemExit: its exit code and last said line."""

    def __init__(self, code: int, said: str, log: str) -> None:
        super().__init__(code, said, log)  # all three in args: it goes back pickled
        self.code, self.said, self.log = code, said, log

    def __str__(self) -> str:
        return self.said


def last_said(stderr: str) -> str:
    """The tool's one line (``error: ...``, a stop), the last line of the job's error log."""
    try:
        lines = Path(stderr).read_text(errors="replace").splitlines()
    except OSError:
        return "exited without a word"
    return next((line for line in reversed(lines) if line.strip()), "exited without a word")


class SaysFailedJobs(BaseSubmititLauncher):
    """BaseSubmititLauncher's jobs and launch, with a job's SystemExit kept as its outcome."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as stop:
            # a tool's exit (1, 128 + a signal) alone: submitit's own after it requeued a
            # preempted job is -1, and must end the job with no result, or the sweep reads
            # it as over while its requeued run goes on
            if not isinstance(stop.code, int) or stop.code <= 0:
                raise
            import submitit

            sys.stderr.flush()  # the tool's line, in the log before it is read
            stderr = str(submitit.JobEnvironment().paths.stderr)
            failed = JobReturn(overrides=list(args[0]) if args else None)
            failed.status = JobStatus.FAILED
            failed.return_value = JobStopped(stop.code, last_said(stderr), stderr)
            return failed

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Every job's outcome; where jobs were refused or stopped, one line each and the
        first one's exit code. An unexpected error (a bug) is left to Hydra, which raises it
        with its traceback, once the lines of the others are said."""
        results = super().launch(job_overrides, initial_job_idx)
        failed = [(n, r) for n, r in enumerate(results) if r.status == JobStatus.FAILED]
        stopped = [(n, r._return_value) for n, r in failed]
        stopped = [(n, err) for n, err in stopped if isinstance(err, JobStopped)]
        for n, err in stopped:
            overrides = " ".join(filter_overrides(job_overrides[n]))
            print(
                f"job #{initial_job_idx + n} ({overrides}): {err.said} (log: {err.log})",
                file=sys.stderr,
                flush=True,
            )
        if stopped and len(stopped) == len(failed):
            print(f"{len(failed)} of {len(results)} jobs failed", file=sys.stderr, flush=True)
            sys.exit(stopped[0][1].code)
        return results
