"""Soak test: stop the tiny pipeline by SIGTERM (Ctrl-C, kill -9) again and again, and check
the stops cost nothing but time.

    python tools/soak_stops.py --stops 20 --delay 4 4.5
    python tools/soak_stops.py --signal INT --rows synthetic,adapted
    python tools/soak_stops.py --signal KILL --delay 1 6
    python tools/soak_stops.py --label-free --rows synthetic,adapted,testtime

The pipeline runs on a toy real folder (``experiment=tiny_pipeline``, 48 px, DataLoader
workers on) once straight, then again in another folder, where each run is stopped by the
signal sent to its whole process group (as Slurm's scancel and a terminal's Ctrl-C send it)
a random delay after its start and rerun, then finished. Every stop must exit 128 + the
signal with one line and no traceback (SIGKILL: killed, without a word), and every report
row's scores must equal the straight run's to the last digit: a stop mid-epoch,
mid-checkpoint, mid-shard or between stages loses nothing and changes nothing. tools/soak.py
checks one GAN run's files after ``kill -9`` the same way. ``--label-free``: photos without
labels (``task_data.test_lab=null``), each row segmenting them; its masks must equal the
straight run's byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.digests import file_digest  # noqa: E402
from synth.processes import start_as_job  # noqa: E402
from synth.toy import write_toy_real_folder  # noqa: E402

SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "KILL": signal.SIGKILL}


def pipeline_command(
    work: Path, rows: str | None, steps: int, workers: int, label_free: bool = False
) -> list[str]:
    unlabelled = [f"task_data.test_img={work / 'real' / 'train_img'}", "task_data.test_lab=null"]
    overrides = [
        f"paths.data_dir={work / 'real'}",
        f"paths.output_dir={work / 'out'}",
        f"paths.ckpt_dir={work / 'ckpt'}",
        f"paths.log_dir={work / 'logs'}",
        "trainer=cpu",
        "~callbacks.progress_bar",
        "experiment=tiny_pipeline",
        f"stages.adapt.trainer.max_steps={steps}",
        f"stages.task.trainer.max_steps={steps}",
        f"task_data.num_workers={workers}",
        *([f"stages.task.sources=[{rows}]"] if rows else []),
        *(unlabelled if label_free else []),
    ]
    return [sys.executable, str(ROOT / "tools" / "pipeline.py"), *overrides]


def run(cmd: list[str], log: Path, sig: int | None = None, delay: float = 0.0) -> int:
    """Run the pipeline; with ``sig``, send it to the process group ``delay`` s after start."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = start_as_job(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        if sig is not None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, sig)
        return proc.wait(timeout=1800)


def last_line(path: Path, prefix: str = "") -> str:
    """The last line of ``path`` that starts with ``prefix``, less stages found complete."""
    lines = [
        x for x in path.read_text().splitlines() if x.startswith(prefix) and "skipped" not in x
    ]
    return lines[-1] if lines else ""


def scores(work: Path) -> dict[str, dict]:
    """Each report row's figures, less its wall times (which a stop does change)."""
    rows = json.loads((work / "out" / "report" / "results.json").read_text())["rows"]
    return {
        r["source"]: {
            k: v
            for k, v in r.items()
            if isinstance(v, (int, float)) and "seconds" not in k and k != "wall_s"
        }
        for r in rows
    }


def masks(work: Path) -> dict[str, str]:
    """The sha256 of every row's masks of the photos (photos without labels)."""
    runs = work / "out" / "runs"
    return {str(f.relative_to(runs)): file_digest(f) for f in sorted(runs.glob("*/masks/*.png"))}


def check_stop(log: Path, code: int, sig: int) -> str:
    """A stopped run's exit code and stderr, as a user would read them; '' if it finished."""
    err = log.with_suffix(".err").read_text()
    if code == 0:
        return ""
    if sig == signal.SIGKILL:
        if code != -sig:
            raise SystemExit(f"FAIL: exit {code} after SIGKILL; see {log.with_suffix('.err')}")
        return "killed"
    out = log.with_suffix(".out").read_text()
    if code == -sig and not out.strip():
        # Before the tool's first import could take the signal (Python's own start, a
        # fraction of a second): its default, exit 128 + sig as a shell reports it.
        said = "ended by the signal before the tool's first import"
        return said + (" (Python's KeyboardInterrupt traceback)" if "Traceback" in err else "")
    if code == -sig and "[pipeline] report: " in out:
        # After the last line, in Python's own shutdown, which puts the defaults back.
        return "ended by the signal in Python's shutdown, after the report"
    if code != 128 + sig:
        raise SystemExit(f"FAIL: exit {code}, expected {128 + sig}; see {log.with_suffix('.err')}")
    if "Traceback" in err:
        raise SystemExit(f"FAIL: a traceback on a stop; see {log.with_suffix('.err')}")
    said = last_line(log.with_suffix(".err"))
    endings = ("rerun the same command to resume", "nothing was done", "its work is done")
    if not said.endswith(endings):
        raise SystemExit(f"FAIL: the stop's last line says {said!r}")
    return said


def main() -> None:
    parser = argparse.ArgumentParser(  # the whole docstring: what it does, the examples
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stops", type=int, default=20, help="stopped runs before the last")
    parser.add_argument("--signal", choices=sorted(SIGNALS), default="TERM")
    parser.add_argument(
        "--delay", type=float, nargs=2, default=(4.0, 6.0), metavar=("MIN", "MAX"),
        help="s after each start the signal is sent, drawn uniformly",
    )  # fmt: skip
    parser.add_argument("--rows", help="stages.task.sources, e.g. synthetic,adapted")
    parser.add_argument("--steps", type=int, default=60, help="GAN and task steps per row")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir for inspection")
    parser.add_argument(
        "--label-free", action="store_true", help="photos without labels: rows segment them"
    )
    args = parser.parse_args()
    sig, rng = SIGNALS[args.signal], random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="soak-stops-"))
    straight, stopped = work / "straight", work / "stopped"
    for folder in (straight, stopped):
        write_toy_real_folder(folder / "real", n=4, h=48, w=64)
    command = {
        f: pipeline_command(f, args.rows, args.steps, args.workers, args.label_free)
        for f in (straight, stopped)
    }
    start = time.monotonic()
    if run(command[straight], work / "straight") != 0:
        raise SystemExit(f"FAIL: the straight run failed; see {work / 'straight.err'}")
    print(f"straight run: {time.monotonic() - start:.1f} s", flush=True)
    landed = early = 0
    for k in range(1, args.stops + 1):
        delay = rng.uniform(*args.delay)
        log = work / f"stop{k:03d}"
        said = check_stop(log, run(command[stopped], log, sig, delay), sig)
        stage = last_line(log.with_suffix(".out"), "[pipeline] ")[11:].split(":")[0]
        if not said:
            print(f"stop {k}/{args.stops}: the run finished within {delay:.1f} s", flush=True)
            break
        landed += 1
        early += not stage
        where = f"in {stage}" if stage else "before any stage's work"
        print(f"stop {k}/{args.stops}: SIG{args.signal} at {delay:.1f} s, {where}: {said}")
    if run(command[stopped], work / "final") != 0:
        raise SystemExit(f"FAIL: the last rerun failed; see {work / 'final.err'}")
    want, got = scores(straight), scores(stopped)
    differ = {row: (want[row], got.get(row)) for row in want if got.get(row) != want[row]}
    if differ or set(got) != set(want):
        raise SystemExit(f"FAIL: rows differ from the straight run's: {differ}")
    if masks(stopped) != masks(straight):
        raise SystemExit("FAIL: masks differ from the straight run's (or are missing)")
    metric = "crack_share" if args.label_free else "f1"
    figures = ", ".join(f"{row} {metric} {r[metric]:.6f}" for row, r in want.items())
    how = "killed" if sig == signal.SIGKILL else f"each exiting {128 + sig} with one line"
    print(
        f"ok: {landed} stops by SIG{args.signal} ({early} before any stage's work), {how}, then a "
        f"rerun finished; every row equals the straight run's ({figures})"
    )
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
