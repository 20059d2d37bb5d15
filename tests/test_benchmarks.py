"""The benchmark tools run end to end on tiny sizes and print the figures the README quotes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_fixtures import tool_exit_code
from _gan_fixtures import reference_bench_dir

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = reference_bench_dir()


def run_tool(name: str, *overrides: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "tools" / name), *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_bench_task_prints_both_layouts_and_speed_ratios():
    out = run_tool(
        "bench_task.py", "repeats=1", "train_crop=32", "eval_size=[32,48]", "net.depth=2"
    )
    assert re.search(r"train step, .* contiguous: \d+ ms \(1\.00x\)", out)
    assert re.search(r"train step, .* channels_last: \d+ ms \([\d.]+x\)", out)
    # against the module as trained (NHWC), not the contiguous one: that credited folding
    # with the layout's speed-up
    assert re.search(r"inference, .* module as trained \(NHWC\): \d+ ms/image \(1\.00x\)", out)
    assert re.search(r"module, contiguous \(NCHW\): \d+ ms/image \([\d.]+x\)", out)
    assert re.search(r"inference_net \(folded BN, NHWC\): \d+ ms/image \([\d.]+x\)", out)
    assert re.search(r"scoring, .* checked \(.*\): [\d.]+ ms/image \(1\.00x\)", out)
    assert re.search(r"scoring, .* unchecked \(.*\): [\d.]+ ms/image \([\d.]+x\)", out)


@pytest.mark.skipif(REFERENCE is None, reason="no reference CycleGAN step")
def test_bench_gan_prints_ratio_and_overhead():
    out = run_tool(
        "bench_gan.py",
        "size=32",
        "ngf=4",
        "blocks=1",
        "batch=2",
        "steps=4",
        "chunk=2",
        "warmup=1",
        "compile=false",
        "light=false",
        "semantic=false",
    )
    assert re.search(r"ratio [\d.]+x", out) and "Lightning overhead:" in out
    assert re.search(r"first step .*: [\d.]+ s", out)
    # the loop and training_step medians over the same steps: it printed -0.3 % once
    assert re.search(r"Lightning overhead: \d+\.\d%", out), out
    assert re.search(r"median of \d+ steps without a reference run", out)


FAST_REFERENCE = """
def main():
    print("reference cyclegan size=32 ngf=4 blocks=1 batch=2: 0.000 s/step, 2345.67 img/s")
"""


def test_bench_gan_reads_a_fast_references_speed_from_its_most_precise_figure(tmp_path):
    """At small sizes the reference's 3-decimal seconds per step were all that was read:
    0.004 for anything from 0.0035 to 0.0045, or 0.000 and a division by zero."""
    (tmp_path / "reference_cyclegan_step.py").write_text(FAST_REFERENCE)
    args = ["size=32", "ngf=4", "blocks=1", "batch=2", "steps=4", "chunk=2", "warmup=1"]
    args += ["compile=false", "light=false", "semantic=false", f"reference_path={tmp_path}"]
    out = run_tool("bench_gan.py", *args)
    assert re.search(r"reference \(its own step, \d+ runs of 2\): 2345\.67 img/s", out), out


def test_bench_digests_prints_both_variants_and_the_ratio(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        photo = folder / f"{i}.png"
        photo.write_bytes(bytes([i]) * 1000)
        os.utime(photo, (1e9, 1e9))  # settled long ago: the cache holds it
    out = run_tool("bench_digests.py", f"folder={folder}", "repeats=2")
    assert f"{folder}: 3 files, 0.0 MB" in out
    assert re.search(r"no cache: [\d.]+ s \([\d.]+ GB/s\), median of 2", out)
    assert re.search(r"cache: +[\d.]+ s \([\d.]+x faster\)", out)


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("bench_gan.py", ["chunk=1"], "error: chunk=1: expected a whole number >= 2"),
        ("bench_gan.py", ["steps=3", "chunk=2"], "error: steps=3: at least 2 x chunk (4)"),
        (  # a reference named and missing was taken from the default place instead
            "bench_gan.py",
            ["reference_path=/no/such/bench"],
            "error: reference_cyclegan_step.py: not in /no/such/bench (reference_path)",
        ),
        ("bench_task.py", ["repeats=0"], "error: repeats=0: expected a whole number >= 1"),
        # an empty step was timed, and its speed-up printed
        ("bench_task.py", ["train_batch=0"], "error: train_batch=0: expected a whole number >= 1"),
        ("bench_digests.py", ["folder={empty}"], "error: {empty}: no files to hash"),
        ("bench_digests.py", ["folder=/no/such/photos"], "error: /no/such/photos: folder to hash"),
        ("bench_synth.py", ["--repeats", "0"], "--repeats: '0': expected a whole number >= 1"),
    ],
)
def test_a_benchmark_setting_that_times_nothing_is_one_line(tool, args, message, tmp_path):
    """chunk=1 (every interval held a reference run) and repeats=0 ended in 'no median for
    empty data', a missing folder in FileNotFoundError, each with a traceback; an empty
    training batch or folder of no files were timed, and a speed-up of nothing printed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [a.format(empty=tmp_path) for a in args]  # {empty}: a folder of no files
    cmd = [sys.executable, str(ROOT / "tools" / tool), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message.format(empty=tmp_path) in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # the discriminator's 3 stride-2 layers leave 1x1 at 16 px: torch's instance norm
        # failed at the first step with 'Expected more than 1 value per channel'
        (["size=16"], "error: size=16: expected a whole number >= 24, the least side"),
        # the generators gave 28 px back for 26 and the cycle loss failed to concatenate
        (["size=26"], "error: size=26: expected a multiple of 4"),
        # not a .py: 'NoneType' object has no attribute 'loader'
        (["reference_path={dir}/notes.txt"], "error: reference_path={dir}/notes.txt: not a Py"),
        (["reference_path={dir}/broken.py"], "error: reference_path={dir}/broken.py: not Python"),
        (["reference_path={dir}/nomain.py"], "error: reference_path={dir}/nomain.py: has no main"),
    ],
)
def test_bench_gan_refuses_a_size_or_reference_it_cannot_time_in_one_line(
    args, message, tmp_path, capsys
):
    """Each was a traceback; refused before any model is built (in this process: no tool
    start, no reference run)."""
    (tmp_path / "notes.txt").write_text("the reference is in /work/shared/bench\n")
    (tmp_path / "broken.py").write_text("the reference is in /work/shared/bench\n")
    (tmp_path / "nomain.py").write_text("STEP = 1\n")
    assert tool_exit_code("bench_gan", *[a.format(dir=tmp_path) for a in args]) == 1
    err = capsys.readouterr().err
    assert message.format(dir=tmp_path) in err and len(err.strip().splitlines()) == 1, err
