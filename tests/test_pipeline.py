"""The main job end to end on tiny data, and its resume: a rerun redoes only what is missing."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _cli_fixtures import exit_code_in_process, pipeline_overrides, tool_exit_code
from omegaconf import DictConfig, OmegaConf

from gan.pipeline import check_output_folders, stage_fda, stage_translate
from gan.pipeline_report import seconds_text
from gan.provenance import (
    DATA_ROOT,
    OUTPUT_ROOT,
    TRAINER_SETTINGS,
    data_fingerprint,
    settings_fingerprint,
)
from gan.report import goal_checks, goal_markdown, log_report, markdown_table, mean_over_seeds
from gan.stage_outputs import forget_stale
from synth.distributions import ConfigError
from synth.io import read_card, write_json_atomic
from synth.toy import write_toy_real_folder

ROOT = Path(__file__).resolve().parents[1]


def run_pipeline(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "pipeline.py"), *pipeline_overrides(tmp), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


def copy_run(run: Path, to: Path, names: tuple[str, ...] = ("out", "ckpt", "real")) -> None:
    """A pipeline run's folders (its outputs, checkpoints, real data, logs) copied under
    ``to``, as a user moves a finished run: its records hold those folders relative to each
    other, so a rerun there finds it complete."""
    for name in names:
        shutil.copytree(run / name, to / name, symlinks=True)


#: The source-only row and the test-time row that scores its model through the GAN, the
#: verdict of the second over the first: the rows whose scoring the rescoring tests redo.
SYNTHETIC_TESTTIME = (
    "stages.task.sources=[synthetic,testtime]",
    "stages.report.goal.ours=[testtime]",
)


@pytest.fixture(scope="module")
def synthetic_testtime_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny pipeline of the SYNTHETIC_TESTTIME rows (scenes, GAN, both rows,
    report) under ``<root>``: out/, ckpt/, logs/ and the toy real/ folder. Built once for the
    tests that rescore or refuse on a finished run; each copies it (``copy_run``) before
    changing it."""
    root = tmp_path_factory.mktemp("synthetic_testtime")
    write_toy_real_folder(root / "real", n=4, h=48, w=64)
    first = run_pipeline(root, *SYNTHETIC_TESTTIME)
    assert first.returncode == 0, first.stderr[-3000:]
    return root


def refused_here(capsys: pytest.CaptureFixture[str], tmp: Path, *extra: str) -> str:
    """tools/pipeline.py refusing before any work, run in this process (tool_exit_code: a
    tool start is seconds of imports; the tool's own refusals are run for real in
    test_the_pipeline_tool_says_a_bad_setting_in_one_line): exit 1, with no traceback (one
    would fail the test) and no "old outputs removed"; what it said on stderr."""
    code = tool_exit_code("pipeline", *pipeline_overrides(tmp), *extra)
    said = capsys.readouterr()
    assert code == 1, said.err[-3000:]
    assert "old outputs removed" not in said.out
    return said.err


def test_pipeline_end_to_end_then_resume_skips_complete_stages(tmp_path):
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    first = run_pipeline(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    report = tmp_path / "out" / "report"
    rows = json.loads((report / "results.json").read_text())["rows"]
    assert [r["source"] for r in rows] == [
        "synthetic",
        "randomized",
        "adapted",
        "testtime",
        "selftrained",
        "oracle",
    ]
    for row in rows:
        assert 0.0 <= row["f1"] <= 1.0 and row["num_images"] == 4
    assert (report / "report.html").is_file() and (report / "predictions.png").is_file()
    assert "| adapted |" in (report / "report.md").read_text()
    goal = json.loads((report / "results.json").read_text())["goal"]
    gains = [c for c in goal if "gain" in c]
    assert gains and all(c["interval"][0] <= c["interval"][1] for c in gains)
    assert "95% interval over the test photos: of each gain" in (report / "report.md").read_text()
    assert (
        f"Real test set: {tmp_path / 'real' / 'test_img'} (4 photos), each image at its own size."
        in (report / "report.md").read_text()
    )
    # Error figure: photo, truth, then one strip per row ('testtime': the synthetic row's
    # model on the photos as the generator translates them); 3 of the 4 test images, half size.
    errors = cv2.imread(str(report / "errors.png"))
    assert errors.shape == (8 * 48 // 2, 130 + 3 * 64 // 2, 3)
    # each figure lies once, where it was drawn, and the page shows it there
    assert "](errors.png)" in (report / "report.md").read_text()
    assert 'src="predictions.png"' in (report / "report.html").read_text()
    # the command that made it as code, not between backticks
    assert "by <code>python tools/pipeline.py " in (report / "report.html").read_text()
    assert not (report / "img").exists()
    assert sorted(p.name for p in report.glob("grid_*.png")) == [
        "grid_adapted.png",
        "grid_synthetic.png",
        "grid_train_img.png",
    ]
    assert (
        "hardest test images (those the oracle row wins by most;"
        in (report / "report.md").read_text()
    )
    goal = json.loads((report / "results.json").read_text())["goal"]
    assert [(c["row"], c["against"]) for c in goal] == [
        (ours, other)
        for ours in ("adapted", "testtime", "selftrained")
        for other in ("synthetic", "randomized", "oracle")
    ]
    # when and by which command: a report an earlier run left reads as that run's
    made = json.loads((report / "results.json").read_text())
    assert made["overrides"] == pipeline_overrides(tmp_path)
    assert datetime.fromisoformat(made["made_at"]) > datetime.now(timezone.utc) - timedelta(hours=1)
    assert (
        f"Made {made['made_at'][:10]} {made['made_at'][11:19]} UTC by `python tools/pipeline.py "
        f"paths.data_dir={tmp_path / 'real'} " in (report / "report.md").read_text()
    )
    versions = json.loads((report / "results.json").read_text())["versions"]
    assert versions["torch"] == torch.__version__.split("+")[0] and "kornia" in versions
    assert versions["cpu"] == torch.backends.cpu.get_cpu_capability()
    assert f"torch {versions['torch']}" in (report / "report.md").read_text()
    assert "Against the goal" in first.stdout and "| selftrained | oracle |" in first.stdout
    assert "error map: oracle" in first.stdout  # the report's bars say what they count
    # once per trained model (the GAN and five rows), not again as training starts
    assert (first.stdout + first.stderr).count("Seed set to 0") == 6
    assert "without verdicts" not in (report / "report.md").read_text()  # every goal row ran
    adapted = tmp_path / "out" / "adapted"
    assert len(list(adapted.glob("shard-*/image/*.png"))) == 6
    gap = read_card(adapted)["domain_gap"]
    assert {"before", "after", "grey_shift_crack", "grey_shift_background"} <= set(gap)
    assert "Translation moved the synthetic set's" in (report / "report.md").read_text()

    # The finished outputs, checkpoints and real data copied elsewhere (another disk, an
    # archived run, a cluster's mounts): complete there, nothing retrained or relabeled.
    moved = tmp_path / "moved"
    copy_run(tmp_path, moved)
    copied = run_pipeline(moved)
    assert copied.returncode == 0, copied.stderr[-3000:]
    stages = [line for line in copied.stdout.splitlines() if line.startswith("[pipeline]")]
    assert len(stages) == 11 and "report:" in stages[-1], copied.stdout
    assert all("skipped" in line for line in stages[:-1]), copied.stdout
    # the real photos' and masks' hashes, kept for the next run (the copies are not new)
    cached = json.loads((moved / "out" / "file_digests.json").read_text())["files"]
    real = {p.resolve() for p in (moved / "real").glob("*/*")}
    assert len(real) == 16 and real <= {Path(row[0]) for row in cached}

    # Lose the adapted row's results and one translated shard, as a kill mid-translation
    # leaves them (the card marked in progress): only those are redone.
    (tmp_path / "out" / "runs" / "adapted" / "metrics.json").unlink()
    shutil.rmtree(adapted / "shard-00001")
    card = read_card(adapted)
    card["translation"]["in_progress"] = True
    write_json_atomic(adapted / "dataset_card.json", card)
    kept = adapted / "shard-00000" / "manifest.jsonl"
    os.utime(kept, (0, 0))
    second = run_pipeline(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    out = second.stdout
    assert "render: complete, skipped" in out
    assert "adapt: complete at step 2, skipped" in out
    assert "task[synthetic]: complete, skipped" in out and "task[oracle]: complete, skipped" in out
    assert "task[adapted]: 2 steps, trained (last.ckpt at step 2), scored again" in out
    assert len(list(adapted.glob("shard-*/image/*.png"))) == 6 and kept.stat().st_mtime == 0
    assert "translate: Translation moved" in out and "domain_gap" in read_card(adapted)
    logged = (tmp_path / "logs" / "pipeline-report" / "metrics.csv").read_text().splitlines()
    assert len(logged) == 2  # the header and this report's row, not one more a rerun

    # A second seed, listed first: the config seed's run is reused (not retrained over), the
    # new seed gets its own folder, the row becomes a mean with a spread.
    # The test-time row scores each seed's source-only model on photos sent through the
    # GAN's real-to-synthetic generator: nothing trained for it.
    third = run_pipeline(
        tmp_path, "stages.task.seeds=[1,0]", "stages.task.sources=[synthetic,testtime]"
    )
    assert third.returncode == 0, third.stderr[-3000:]
    assert "task[synthetic]: complete, skipped" in third.stdout
    assert "task[synthetic-seed1]: 2 steps, seed 1" in third.stdout
    assert "old outputs removed" not in third.stdout
    assert "task[testtime-seed1]: the synthetic model, seed 1, on test photos" in third.stdout
    assert "task[testtime]: complete, skipped" in third.stdout  # seed 0: the first run's
    assert "adapt: complete at step 2, skipped" in third.stdout
    assert "translate:" not in third.stdout  # the translated scenes are not needed
    # the adapted set's sheet is gone from the report folder, not left beside the new ones
    assert sorted(p.name for p in report.glob("grid_*.png")) == [
        "grid_synthetic.png",
        "grid_train_img.png",
    ]
    row, tt = json.loads((report / "results.json").read_text())["rows"]
    assert row["num_seeds"] == 2 and sorted(row["seeds"]) == [0, 1] and "f1_std" in row
    assert len(row["f1_runs"]) == 2
    assert " ± " in (report / "report.md").read_text()
    assert tt["source"] == "testtime" and tt["num_seeds"] == 2 and tt["steps"] == 2
    assert "'testtime': the synthetic row's model" in (report / "report.md").read_text()
    assert (
        "Rows of stages.report.goal not in stages.task.sources, so no verdict of them or "
        "against them: adapted, selftrained, randomized, oracle."
        in (report / "report.md").read_text()
    )

    # A changed simulator setting: the scenes are rendered anew (they were refused, naming a
    # render.py option), the GAN and the adapted row are stale and redone, not reused.
    # The pooled 'mixed' row trains on both folders once the GAN is redone.
    fourth = run_pipeline(
        tmp_path, "synth.p_no_crack=0.5", "stages.task.sources=[adapted,mixed,testtime]"
    )
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    out = fourth.stdout
    assert "render: settings changed (synth.p_no_crack), old scenes removed" in out
    # a retrained source-only model (and generator): the test-time scores are redone
    assert re.search(r"task\[testtime\]: settings changed \([^)]*model.checkpoint_sha256", out)
    assert "adapt: training data changed" in out and "adapt: 2 generator steps" in out
    assert "task[adapted]: training data changed" in out and "task[adapted]: 2 steps" in out
    assert f"on {tmp_path / 'out' / 'synthetic'} + {tmp_path / 'out' / 'adapted'}" in out
    assert [r["source"] for r in json.loads((report / "results.json").read_text())["rows"]] == [
        "adapted",
        "mixed",
        "testtime",
    ]

    # Changed settings: a new loss weight retrains the GAN, a new learning rate the task model.
    fifth = run_pipeline(
        tmp_path,
        "synth.p_no_crack=0.5",
        "stages.task.sources=[oracle,adapted]",
        "gan.lambda_cycle=5",
        "task.lr=0.001",
    )
    assert fifth.returncode == 0, fifth.stderr[-3000:]
    out = fifth.stdout
    assert "adapt: settings changed (gan.lambda_cycle)" in out
    assert "task[oracle]: settings changed (task.lr)" in out
    assert "task[adapted]: training data changed" in out
    with_fda = [
        "synth.p_no_crack=0.5",
        "stages.task.sources=[oracle,fda]",
        "task.lr=0.001",
        "task_data.num_workers=1",
    ]
    sixth = run_pipeline(tmp_path, *with_fda)
    assert sixth.returncode == 0, sixth.stderr[-3000:]
    assert "task[oracle]: complete, skipped" in sixth.stdout  # run-only settings keep it
    # The training-free baseline: the scenes swapped once, then a row like any other.
    assert f"fda: {tmp_path / 'out' / 'synthetic'} -> {tmp_path / 'out' / 'fda'}" in sixth.stdout
    assert "fda: FDA moved the synthetic set's" in sixth.stdout
    assert "task[fda]: 2 steps" in sixth.stdout and "adapt:" not in sixth.stdout
    assert read_card(tmp_path / "out" / "fda")["translation"]["method"] == "fda"
    summary = (report / "report.md").read_text()
    assert "'fda': a task model trained on the synthetic scenes with" in summary
    assert "FDA moved the synthetic set's" in summary  # its measured gap, as the GAN's set's
    assert "FDA samples (same scenes" in (report / "report.md").read_text()
    # Moved again, FDA row included: its set and the model trained on it are kept.
    again = tmp_path / "again"
    copy_run(tmp_path, again)
    seventh = run_pipeline(again, *with_fda)
    assert seventh.returncode == 0, seventh.stderr[-3000:]
    assert "fda: complete, skipped" in seventh.stdout
    assert "task[fda]: complete, skipped" in seventh.stdout
    assert "task[oracle]: complete, skipped" in seventh.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.task.sources=[synthetic,bogus]", "unknown ['bogus']"),
        ("stages.task.seeds=[3,3]", "seeds must be distinct"),
        ("seed=-1", "seed=-1: expected a whole number >= 0"),
        (
            "stages.translate.measure.inception_weights=/nope/pt_inception.pth",
            "inception_weights=/nope/pt_inception.pth: file not found (null measures the named",
        ),
        ("stages.adapt.trainer.max_steps=1e3", "stages.adapt.trainer.max_steps=1000.0: expected"),
        ("stages.task.seeds=3", "stages.task.seeds=3: expected a list of whole numbers >= 0"),
        ("stages.task.seeds=[]", "stages.task.seeds=[]: expected a list"),
        ("stages.task.sources=[]", "stages.task.sources: no row; choose from"),
        (
            "stages.task.sources=[selftrained] stages.self_train.teacher=oracle",
            "choose a zero-label row",
        ),
        ("stages.task.sources=[selftrained] stages.self_train.low=0.8", "need 0 <= low < high"),
        (
            "stages.task.sources=[selftrained] stages.self_train.photo_repeats=0",
            "photo_repeats=0: a whole number >= 1",
        ),
        ("stages.report.goal.baselines=[synthetic,source_only]", "unknown rows ['source_only']"),
        ("stages.evaluate.eval_size=384", "stages.evaluate.eval_size=384: expected [H, W]"),
        ("+stages.report.goal.min_f1=0.8", "stages.report.goal: expected the keys"),
        # each was refused only when its stage ran, after earlier stages' work, and after its
        # own stage had removed the outputs it found stale (a finished GAN, scenes, a row)
        ("gan.lr_g=-1", "gan.lr_g=-1: expected a number >= 0"),
        ("task.lr=-1", "task.lr=-1: expected a positive number"),
        ("stages.task.trainer.max_steps=0", "stages.task.trainer.max_steps=0: expected a whole"),
        ("stages.adapt.trainer.max_steps=0", "stages.adapt.trainer.max_steps=0: expected"),
        ("stages.render.num_samples=0", "num_samples=0: expected a whole number >= 1"),
        ("synth.size=-5", "synth.size=-5: expected a whole number of pixels"),
        ("stages.evaluate.batch_size=0", "stages.evaluate.batch_size=0: expected a whole"),
        ("paths.ckpt_dir=/proc/version", "paths.ckpt_dir=/proc/version: a file, not a folder"),
        ("stages.report.goal.min_gain=abc", "stages.report.goal.min_gain='abc': expected a number"),
        ("stages.task.sources=5", "stages.task.sources=5: expected a name or a list of names"),
        (
            "stages.task.sources=[selftrained] stages.self_train.low=abc",
            "band low=abc, high=0.7: need 0 <= low < high",
        ),
        # each failed once its stage ran (a traceback, or minutes of 5 px windows), or
        # without the stage's key; under DDP every rank ran every stage, racing on its files
        ("stages.translate.batch_size=0", "stages.translate.batch_size=0: expected a whole"),
        ("gan_data.crop_size=-4", "gan_data.crop_size=-4: expected a whole number >= 4"),
        ("gan_data.crop_size=16", "gan_data.crop_size=16: too small for the discriminator's"),
        ("gan_data.augment=bogus", "gan_data.augment='bogus': expected none, light or strong"),
        ("gan_data.crack_crop_prob=2", "gan_data.crack_crop_prob=2: expected a number >= 0"),
        ("stages.translate.measure.size=0", "stages.translate.measure.size=0: expected a"),
        ("stages.translate.measure.max_images=1", "measure.max_images=1: expected a whole"),
        ("stages.self_train.shard_size=0", "stages.self_train.shard_size=0: expected a whole"),
        ("stages.evaluate.tile=5", "stages.evaluate.tile=5: expected a whole number >= 32"),
        ("stages.evaluate.device=bogus", "stages.evaluate.device=bogus: expected auto, cpu"),
        ("trainer=ddp_cpu", "trainer.devices=2 (DDPStrategy): the pipeline runs every stage in"),
        ("+stages.task.trainer.devices=2", "trainer.devices=2: the pipeline runs every stage"),
    ],
)
def test_pipeline_bad_task_config_is_a_clear_error(tmp_path, capsys, override, message):
    """In this process, through the tool's own ``run_cli`` (a tool start per case was two
    minutes of CI); the test below runs a few through the tool itself."""
    from gan.pipeline import run_pipeline

    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    overrides = [*pipeline_overrides(tmp_path), *override.split()]
    assert exit_code_in_process(run_pipeline, "pipeline", overrides) == 1
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.startswith("error: ") and stderr.count("\n") == 1
    assert not (tmp_path / "out" / "synthetic").exists()  # failed before rendering


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # a top-level trainer setting a stage sets too was never used, without a word
        (
            "trainer.max_steps=50",
            "trainer.max_steps=50: the pipeline's stages set their own, which win: set "
            "stages.adapt.trainer.max_steps (the GAN's) or stages.task.trainer.max_steps",
        ),
        # train_task's scoring size changed only the pipeline's mid-run validation (off)
        (
            "task_data.eval_size=[32,32]",
            "task_data.eval_size=[32,32]: the pipeline scores every row (and validates "
            "mid-run) with stages.evaluate.eval_size: set that",
        ),
    ],
)
def test_the_pipeline_tool_says_a_bad_setting_in_one_line(tmp_path, override, message):
    """The tool itself, for two settings only its command line can say (those checked against
    what it was given); the rest are checked in this process, above."""
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    result = run_pipeline(tmp_path, *override.split())
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "synthetic").exists()  # failed before rendering


@pytest.mark.parametrize("key", ["output_dir", "ckpt_dir"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, key) -> None:
    """``paths.ckpt_dir`` naming a file failed once the first task row had trained, after the
    render and the GAN."""
    (tmp_path / "taken").write_text("")
    paths = {"output_dir": str(tmp_path / "out"), "ckpt_dir": str(tmp_path / "new" / "ckpt")}
    check_output_folders(OmegaConf.create({"paths": paths}))  # to be made: fine
    for folder, said in (("taken", ""), ("taken/below", f" ({tmp_path / 'taken'} is)")):
        cfg = OmegaConf.create({"paths": paths | {key: str(tmp_path / folder)}})
        message = f"paths.{key}={tmp_path / folder}: a file, not a folder{said}"
        with pytest.raises(ConfigError, match=re.escape(message) + "$"):
            check_output_folders(cfg)


def test_selftrained_row_labels_real_photos_with_its_teacher_and_follows_it(tmp_path):
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    out, rows = tmp_path / "out", "stages.task.sources=[selftrained]"
    first = run_pipeline(tmp_path, rows, "stages.task.seeds=[0,1]")
    assert first.returncode == 0, first.stderr[-3000:]
    log = first.stdout
    # Each seed's student learns from that seed's adapted teacher, trained first.
    assert log.index("task[adapted]: 2 steps, seed 0") < log.index("pseudo-label[adapted]:")
    assert "task[adapted-seed1]: 2 steps, seed 1" in log
    assert f"on {out / 'adapted'} + {out / 'pseudo' / 'adapted-seed1'}" in log
    card = read_card(out / "pseudo" / "adapted-seed1")
    teacher = card["pseudo_labels"]["teacher"]["checkpoint"]
    assert teacher == str(tmp_path / "ckpt" / "pipeline-task-adapted-seed1" / "last.ckpt")
    assert len(list((out / "pseudo" / "adapted").glob("shard-*/semantic/*.png"))) == 4
    (row,) = json.loads((out / "report" / "results.json").read_text())["rows"]
    assert row["source"] == "selftrained" and row["num_seeds"] == 2
    assert (
        "'selftrained': the adapted row's training data"
        in (out / "report" / "report.md").read_text()
    )

    both = "stages.task.sources=[adapted,selftrained]"  # the teacher's row is reported once
    second = run_pipeline(tmp_path, both, "stages.task.seeds=[0,1]")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("task[adapted]: complete, skipped") == 1
    assert "pseudo-label[adapted]: complete, skipped" in second.stdout
    assert "task[selftrained-seed1]: complete, skipped" in second.stdout

    # A retrained teacher means new labels, so its student is retrained; the other seed's not.
    (out / "runs" / "adapted" / "metrics.json").unlink()
    shutil.rmtree(tmp_path / "ckpt" / "pipeline-task-adapted")
    third = run_pipeline(tmp_path, rows, "stages.task.seeds=[0,1]", "stages.self_train.low=0.2")
    assert third.returncode == 0, third.stderr[-3000:]
    log = third.stdout
    assert "pseudo-label[adapted]: photos, teacher or band changed, labels redone" in log
    assert "task[selftrained]: training data changed" in log
    assert "pseudo-label[adapted-seed1]: photos, teacher or band changed" in log  # the band moved

    # The photos weighed twice against the scenes: the same labels, a new student.
    fourth = run_pipeline(
        tmp_path, rows, "stages.self_train.low=0.2", "stages.self_train.photo_repeats=2"
    )
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    log = fourth.stdout
    assert "pseudo-label[adapted]: complete, skipped" in log
    assert "task[selftrained]: training data changed" in log
    pseudo = out / "pseudo" / "adapted"
    assert f"on {out / 'adapted'} + {pseudo} + {pseudo}" in log
    assert "and pooled 2 times." in (out / "report" / "report.md").read_text()


def test_folders_under_the_outputs_folder_are_recorded_relative_to_it(tmp_path):
    """A moved outputs folder (another root, same layout) holds the same training data; a
    generator's digest still decides, and folders outside it keep their absolute place."""
    record, made = tmp_path / "runs" / "provenance.json", tmp_path / "ckpt"

    def provenance(root: Path, digest: str = "a", masks: str = "real/train_lab") -> dict:
        translation = {"checkpoint": str(root / "last.ckpt"), "checkpoint_sha256": digest}
        data = [{"dir": str(root / "adapted"), "card": {"translation": translation}}]
        settings = {"train_dir": str(root / "adapted"), "train_mask_dir": str(tmp_path / masks)}
        return {"data": {"train_dirs": data}, "settings": {"task_data": settings}}

    def kept(root: Path, **changed: str) -> bool:
        made.mkdir(exist_ok=True)
        roots = {OUTPUT_ROOT: root}
        forget_stale("task[adapted]", [made], record, provenance(root, **changed), roots)
        return made.exists()

    first, second = tmp_path / "a" / "out", tmp_path / "b" / "out"
    assert not kept(first)  # no record yet
    assert kept(second)
    saved = json.loads(record.read_text())
    assert saved["settings"]["task_data"] == {
        "train_dir": "${paths.output_dir}/adapted",
        "train_mask_dir": str(tmp_path / "real" / "train_lab"),
    }
    assert saved["data"]["train_dirs"][0]["card"]["translation"] == {"checkpoint_sha256": "a"}
    assert not kept(first, digest="b")
    assert not kept(first, digest="b", masks="other/train_lab")
    # A record written before this rule (absolute folders, the generator's path) is valid
    # where its folders still are.
    write_json_atomic(record, provenance(second))
    assert kept(second)


def test_real_folders_are_recorded_relative_to_the_data_folder_and_by_their_files(tmp_path, capsys):
    """The real-data folder moved or copied whole (another disk, a cluster's mount point)
    keeps the models made from it; another dataset of the same layout under it, or a photo
    replaced in place, does not. Records from before either rule stay valid, then listed."""
    record, made = tmp_path / "runs" / "provenance.json", tmp_path / "ckpt"
    here = write_toy_real_folder(tmp_path / "here", n=3, h=16, w=16)
    out = tmp_path / "out"

    def provenance(data: Path) -> dict:
        task_data = {
            "train_dir": [str(out / "synthetic"), str(data / "train_img")],
            "train_mask_dir": str(data / "test_img"),  # a folder the record digests
        }
        return {"data": {"seed": 0}, "settings": {"task_data": task_data}}

    def kept(data: Path) -> bool:
        made.mkdir(exist_ok=True)
        roots = {OUTPUT_ROOT: out, DATA_ROOT: data}
        forget_stale("task[oracle]", [made], record, provenance(data), roots)
        return made.exists()

    assert not kept(here)  # no record yet
    saved = json.loads(record.read_text())
    assert saved["settings"]["task_data"] == {
        "train_dir": ["${paths.output_dir}/synthetic", "${paths.data_dir}/train_img"],
        "train_mask_dir": "${paths.data_dir}/test_img",
    }
    real = {"${paths.data_dir}/train_img", "${paths.data_dir}/test_img"}
    assert set(saved["listings"]) == set(saved["contents"]) == real
    moved = tmp_path / "mounted" / "data"
    shutil.copytree(here, moved)
    assert kept(moved) and kept(here)
    other = tmp_path / "other"
    shutil.copytree(here, other)
    photo = sorted((other / "train_img").iterdir())[0]
    photo.write_bytes(photo.read_bytes() + b"\0")  # another photo under the same name
    capsys.readouterr()
    assert not kept(other)
    assert "files changed in ${paths.data_dir}/train_img" in capsys.readouterr().out
    assert not kept(here)  # and back: the files decide, not the place
    photo = here / "test_img" / "0.jpg"
    assert kept(here)
    edited = bytearray(photo.read_bytes())
    edited[len(edited) // 2] ^= 1  # a photo edited in place: same name, same size
    photo.write_bytes(bytes(edited))
    capsys.readouterr()
    assert not kept(here)
    assert "files changed in ${paths.data_dir}/test_img" in capsys.readouterr().out
    shutil.copy(here / "test_img" / "0.jpg", here / "test_img" / "3.jpg")  # a photo added
    assert not kept(here)
    # a record from before file contents: valid where its listing (names, sizes) holds
    old = json.loads(record.read_text())
    old.pop("contents")
    write_json_atomic(record, old)
    assert kept(here) and "contents" in json.loads(record.read_text())
    old["listings"]["${paths.data_dir}/test_img"] = "listed otherwise"
    write_json_atomic(record, old)
    assert not kept(here)
    # a record written before listings and data-relative folders: valid where it was made
    old = json.loads(record.read_text())
    old.pop("listings"), old.pop("contents")
    old["settings"]["task_data"]["test_img"] = str(here / "test_img")
    write_json_atomic(record, old)
    assert kept(here) and {"listings", "contents"} <= json.loads(record.read_text()).keys()


def test_real_folders_inside_the_outputs_folder_are_digested_too(tmp_path):
    """A data folder kept under the outputs (``paths.data_dir=outputs/real``) is still real
    photos, not a dataset the pipeline made and described in a card."""
    out = tmp_path / "out"
    data = write_toy_real_folder(out / "real", n=2, h=16, w=16)
    made = write_toy_real_folder(out / "synthetic", n=1, h=16, w=16) / "train_img"
    write_json_atomic(made / "dataset_card.json", {"config": {"seed": 0}})
    record, ckpt = tmp_path / "runs" / "provenance.json", tmp_path / "ckpt"
    provenance = {"settings": {"task_data": {"train_dir": [str(made), str(data / "train_img")]}}}

    def kept() -> bool:
        ckpt.mkdir(exist_ok=True)
        forget_stale("task[x]", [ckpt], record, provenance, {OUTPUT_ROOT: out, DATA_ROOT: data})
        return ckpt.exists()

    assert not kept() and kept()
    assert set(json.loads(record.read_text())["contents"]) == {"${paths.data_dir}/train_img"}
    photo = data / "train_img" / "0.jpg"
    edited = bytearray(photo.read_bytes())
    edited[len(edited) // 2] ^= 1
    photo.write_bytes(bytes(edited))
    assert not kept()


def test_task_fingerprint_ignores_measurements_but_not_new_data(tmp_path):
    folder = tmp_path / "adapted"
    folder.mkdir()
    write_json_atomic(folder / "dataset_card.json", {"translation": {"checkpoint_sha256": "a"}})
    stage = OmegaConf.create({"task_data": {"train_dir": str(folder)}})
    before = data_fingerprint(stage)
    card = {**read_card(folder), "domain_gap": {"after": 8.7}, "scored_against": {"f1": 0.7}}
    write_json_atomic(folder / "dataset_card.json", card)
    assert data_fingerprint(stage) == before
    write_json_atomic(
        folder / "dataset_card.json", {**card, "translation": {"checkpoint_sha256": "b"}}
    )
    assert data_fingerprint(stage) != before
    pooled = OmegaConf.create({"task_data": {"train_dir": [str(folder), str(folder)]}})
    assert data_fingerprint(pooled)["train_dirs"] == data_fingerprint(stage)["train_dirs"] * 2


def test_one_folder_spelled_two_ways_is_not_a_changed_setting(tmp_path, monkeypatch):
    """``outputs/x``, ``$PWD/outputs/x`` and a symlink to it are one folder: the generator
    trained on it is kept (records from before paths were resolved included); another
    folder is a changed setting."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "synthetic").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "outputs" / "synthetic")
    record, made = tmp_path / "provenance.json", tmp_path / "ckpt"

    def kept(recorded: str, now: str) -> bool:
        made.mkdir(exist_ok=True)
        write_json_atomic(record, {"settings": {"gan_data": {"synthetic_dir": recorded}}})
        stage = OmegaConf.create({"gan_data": {"synthetic_dir": now}})
        forget_stale(
            "adapt", [made], record, {"settings": settings_fingerprint(stage, ("gan_data",))}
        )
        return made.exists()

    absolute = str(tmp_path / "outputs" / "synthetic")
    assert kept("outputs/synthetic", absolute)  # an old record, relative
    assert kept(absolute, "outputs/synthetic")
    assert kept(absolute, str(tmp_path / "link"))
    assert not kept(absolute, str(tmp_path / "elsewhere"))
    assert json.loads(record.read_text())["settings"]["gan_data"]["synthetic_dir"] == str(
        tmp_path / "elsewhere"
    )


def test_an_option_added_later_at_its_default_keeps_old_outputs(tmp_path):
    """Records written before gan.semantic_target existed stay valid while it is at the
    class default; any other value, or a changed old key, still removes the outputs."""
    gan = {"_target_": "gan.cyclegan.SemanticCycleGAN", "lambda_cycle": 10.0}
    record, made = tmp_path / "provenance.json", tmp_path / "ckpt"

    def rerun(**options) -> bool:
        made.mkdir(exist_ok=True)
        write_json_atomic(record, {"data": {}, "settings": {"gan": gan}})
        forget_stale("adapt", [made], record, {"data": {}, "settings": {"gan": gan | options}})
        return made.exists()

    assert rerun(semantic_target="mask")  # the default: same behaviour as before the option
    assert not rerun(semantic_target="consistency")
    assert not rerun(lambda_cycle=5.0)
    assert not rerun(semantic_target="mask", lambda_cycle=5.0)


def test_an_option_added_later_inside_an_option_dict_keeps_old_outputs(tmp_path):
    """task.augment.drop came after runs recorded task.augment without it: at its default
    (nothing dropped) those runs stay valid; dropping a term retrains."""
    task = {"_target_": "gan.task.CrackSegmenter", "augment": {"preset": "strong", "p": 0.5}}
    record, made = tmp_path / "provenance.json", tmp_path / "run"

    def rerun(**augment) -> bool:
        made.mkdir(exist_ok=True)
        write_json_atomic(record, {"data": {}, "settings": {"task": task}})
        new = task | {"augment": task["augment"] | augment}
        forget_stale("task[randomized]", [made], record, {"data": {}, "settings": {"task": new}})
        return made.exists()

    assert rerun(drop=[])
    assert not rerun(drop=["blur"])
    assert not rerun(drop=[], p=0.8)
    assert not rerun(mystery=[])  # not an option of the augmentation: no default to assume


def test_trainer_settings_that_shape_a_model_are_recorded_and_old_records_stay_valid(tmp_path):
    """Only the step count and precision were recorded: a rerun with gradient accumulation,
    clipping or an epoch cap reused the model trained without it (F1 0.340 where a fresh run
    gave 0.607). A record from before keeps its model while those are unset or as shipped."""
    cfg = OmegaConf.create({"seed": 0, "task": {"lr": 0.002}, "trainer": {"max_steps": 30}})
    old = {"seed": 0, "task": {"lr": 0.002}, "trainer.max_steps": 30, "trainer.precision": None}
    record, made = tmp_path / "provenance.json", tmp_path / "run"

    def rerun(*overrides: str) -> bool:
        made.mkdir(exist_ok=True)
        write_json_atomic(record, {"data": {}, "settings": old})
        stage = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        settings = settings_fingerprint(stage, ("seed", "task", *TRAINER_SETTINGS))
        forget_stale("task[synthetic]", [made], record, {"data": {}, "settings": settings})
        return made.exists()

    assert rerun() and rerun("trainer.max_epochs=-1", "trainer.devices=1")
    for changed in (
        "trainer.accumulate_grad_batches=4",
        "trainer.gradient_clip_val=0.0001",
        "trainer.max_epochs=1",
        "trainer.devices=2",
        "trainer.limit_train_batches=0.5",
    ):
        assert not rerun(changed), changed


def test_a_record_that_held_the_test_folders_keeps_its_model(tmp_path):
    """Task records held the test folders and their digests until session 43; they now
    leave them out (their scores have a record of their own): an old record still matches."""
    photos = tmp_path / "test_img"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"x")
    cfg = OmegaConf.create({"seed": 0, "task_data": {"train_dir": "s", "test_img": str(photos)}})
    settings = settings_fingerprint(cfg, ("seed", "task_data"))
    assert settings["task_data"] == {"train_dir": "s"}
    record, made = tmp_path / "provenance.json", tmp_path / "run"
    made.mkdir()
    old = {"data": {}, "settings": {"seed": 0, "task_data": {"train_dir": "s", "test_img": "t"}}}
    for kind in ("listings", "contents"):
        old[kind] = {str(photos): "an old digest"}
    write_json_atomic(record, old)
    forget_stale("task[synthetic]", [made], record, {"data": {}, "settings": settings})
    assert made.exists()
    write_json_atomic(record, old | {"settings": {"seed": 1, "task_data": {"train_dir": "s"}}})
    forget_stale("task[synthetic]", [made], record, {"data": {}, "settings": settings})
    assert not made.exists()  # any other change still counts


def test_stale_outputs_linked_from_another_run_are_refused_not_deleted(tmp_path):
    """The README links another run's oracle seeds in; a changed setting must not delete that
    run's model and scores through the link, nor overwrite its record."""
    elsewhere = tmp_path / "other" / "runs" / "oracle"
    elsewhere.mkdir(parents=True)
    write_json_atomic(elsewhere / "metrics.json", {"f1": 0.8})
    record = {"data": {}, "settings": {"task": {"lr": 0.002}}}
    write_json_atomic(elsewhere / "provenance.json", record)
    run_dir = tmp_path / "runs" / "oracle"
    run_dir.parent.mkdir()
    run_dir.symlink_to(elsewhere)
    made, provenance = [run_dir / "metrics.json"], run_dir / "provenance.json"

    forget_stale("task[oracle]", made, provenance, record)  # same settings: reused as is
    changed = {"data": {}, "settings": {"task": {"lr": 0.001}}}
    with pytest.raises(ConfigError, match=r"settings changed \(task.lr\).*links to another"):
        forget_stale("task[oracle]", made, provenance, changed)
    assert (elsewhere / "metrics.json").is_file()
    assert json.loads((elsewhere / "provenance.json").read_text()) == record


def test_translations_linked_from_another_run_are_refused_when_the_generator_changed(tmp_path):
    """A linked ``adapted`` folder made by another generator stops with a clear error, and
    the other run's translations stay."""
    elsewhere = tmp_path / "other" / "adapted"
    elsewhere.mkdir(parents=True)
    write_json_atomic(elsewhere / "dataset_card.json", {"translation": {"checkpoint_sha256": "0"}})
    out = tmp_path / "run"
    out.mkdir()
    (out / "adapted").symlink_to(elsewhere)
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"a newer generator")
    cfg = OmegaConf.create(
        {
            "paths": {"output_dir": str(out), "ckpt_dir": str(tmp_path)},
            "stages": {"adapt": {"run_name": "adapt"}, "translate": {}},
        }
    )
    with pytest.raises(ConfigError, match=r"translate: made by another generator.*links to"):
        stage_translate(cfg, ckpt)
    assert (elsewhere / "dataset_card.json").is_file()


def test_translations_of_other_scenes_are_stale_even_from_the_same_generator(tmp_path):
    """A GAN retrained on re-rendered scenes can be byte-identical to the old one (it may draw
    only scenes the change left alone); the translations of the old scenes are still stale."""
    from synth.digests import file_digest

    out = tmp_path / "run"
    (out / "synthetic").mkdir(parents=True)
    write_json_atomic(out / "synthetic" / "dataset_card.json", {"config": {"p_no_crack": 0.5}})
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"one generator")
    elsewhere = tmp_path / "other" / "adapted"  # linked, so staleness is refused, not deleted
    elsewhere.mkdir(parents=True)
    made = {"translation": {"checkpoint_sha256": file_digest(ckpt)}, "domain_gap": {"after": 1}}
    (out / "adapted").symlink_to(elsewhere)
    cfg = OmegaConf.create(
        {
            "paths": {"output_dir": str(out), "ckpt_dir": str(tmp_path)},
            "stages": {"adapt": {"run_name": "adapt"}, "translate": {"measure": {"enabled": 0}}},
        }
    )
    write_json_atomic(elsewhere / "dataset_card.json", {**made, "config": {"p_no_crack": 0.5}})
    card = stage_translate(cfg, ckpt)
    assert card["translation"]["checkpoint_sha256"] == file_digest(ckpt)  # current
    write_json_atomic(elsewhere / "dataset_card.json", {**made, "config": {"p_no_crack": 0.15}})
    with pytest.raises(ConfigError, match=r"translate: .*from other scenes.*links to"):
        stage_translate(cfg, ckpt)


def test_a_translation_is_measured_again_when_the_measurement_settings_change(
    tmp_path, monkeypatch
):
    """Only missing figures were measured: a new measure.size or Inception weights kept the
    old distance in the card and the report."""
    import gan.pipeline as pipeline
    from gan.translate import GAP_KEYS

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"x")
    measure = {"enabled": True, "real_dir": str(photos), "inception_weights": None}
    cfg = OmegaConf.create({"stages": {"translate": {"measure": measure | {"max_images": 9}}}})
    out = tmp_path / "adapted"
    out.mkdir()
    calls = []
    monkeypatch.setattr(pipeline, "measure_stage_translation", lambda *a: calls.append(a))

    def rerun(size: int, recorded: dict | None) -> bool:
        gap = dict.fromkeys(GAP_KEYS, 0.0) | ({"measured_with": recorded} if recorded else {})
        write_json_atomic(out / "dataset_card.json", {"translation": {}, "domain_gap": gap})
        cfg.stages.translate.measure.size = size
        calls.clear()
        pipeline.translated_set(cfg, "translate", out, True, "", lambda: None)
        return bool(calls)

    cfg.stages.translate.measure.size = 64
    now = pipeline.measured_with(cfg.stages.translate.measure)
    assert not rerun(64, now)
    assert rerun(32, now) and rerun(64, None)  # a card from before: measured once more


def test_fda_stage_skips_a_current_set_and_redoes_one_made_with_another_beta(tmp_path, capsys):
    from _gan_fixtures import make_real, make_synthetic

    out = tmp_path / "run"
    make_synthetic(out / "synthetic", n=4, shard_size=2)
    real = make_real(tmp_path / "real", n=2)

    def cfg(beta: float):
        fda = {"beta": beta, "seed": 0, "real_dir": str(real)}
        stages = {"fda": fda, "adapt": {"run_name": "a"}, "translate": {"measure": {"enabled": 0}}}
        paths = {"output_dir": str(out), "ckpt_dir": str(tmp_path)}
        return OmegaConf.create({"paths": paths, "stages": stages})

    made = stage_fda(cfg(0.05))["translation"]
    assert made["beta"] == 0.05 and "fda: complete" not in capsys.readouterr().out
    assert stage_fda(cfg(0.05))["translation"] == made
    assert "fda: complete, skipped" in capsys.readouterr().out
    card = read_card(out / "fda")
    card["translation"].pop("photos_contents_sha256")  # a set made before that digest
    write_json_atomic(out / "fda" / "dataset_card.json", card)
    stage_fda(cfg(0.05))
    assert "fda: complete, skipped" in capsys.readouterr().out
    assert read_card(out / "fda")["translation"] == made  # digested from now on
    assert stage_fda(cfg(0.1))["translation"]["beta"] == 0.1
    assert "fda: made with another beta, seed or photo folder" in capsys.readouterr().out
    # another run's set, linked in: refused, not deleted through the link
    (out / "fda").rename(tmp_path / "other")
    (out / "fda").symlink_to(tmp_path / "other")
    with pytest.raises(ConfigError, match=r"fda: made with another beta.*links to"):
        stage_fda(cfg(0.2))
    assert read_card(tmp_path / "other")["translation"]["beta"] == 0.1


def test_mean_over_seeds_gives_mean_spread_and_per_seed_values():
    runs = [
        {"source": "adapted", "seed": s, "f1": f, "tol_f1": f, "crack_iou": f, "miou": f}
        | {"precision": f / 2, "recall": 2 * f, "seconds": 1.5}
        for s, f in ((0, 0.5), (1, 0.6), (2, 0.7))
    ]
    row = mean_over_seeds(runs)
    assert row["f1"] == pytest.approx(0.6) and row["f1_std"] == pytest.approx(0.1)
    # every figure of the row is over its seeds (precision and recall were seed 0's)
    assert row["precision"] == pytest.approx(0.3) and row["recall"] == pytest.approx(1.2)
    assert row["seconds"] == 4.5 and "seed" not in row
    assert row["f1_runs"] == [0.5, 0.6, 0.7] and row["seeds"] == [0, 1, 2]
    assert "0.600 ± 0.100" in markdown_table([row])
    single = mean_over_seeds(runs[:1])
    assert single["f1"] == 0.5 and "f1_std" not in single and single["num_seeds"] == 1
    assert "±" not in markdown_table([single])


def test_rows_without_scores_show_the_share_called_crack_in_percent_with_its_spread():
    """Photos without labels: the share each row calls crack, over its seeds with their
    spread (one seed's stood alone), in percent (0.000 hid a model marking a few pixels)."""
    runs = [{"source": "adapted", "seed": s, "crack_share": c} for s, c in ((0, 0.031), (1, 0.035))]
    row = mean_over_seeds(runs)
    assert row["crack_share"] == pytest.approx(0.033) and row["crack_share_std"] > 0
    table = markdown_table([row])
    assert table.startswith("| training data | pixels called crack | seeds |")
    assert "| adapted | 3.30% ± 0.28% | 2 |" in table
    assert "0.04%" in markdown_table([{"source": "synthetic", "crack_share": 0.0004}])


def test_each_row_of_the_bar_chart_has_its_own_colour():
    """With six rows the sixth bar took the first's grey: synthetic and oracle looked alike."""
    import re as regex

    from gan.report import bar_chart_svg
    from gan.rows import ROWS

    svg = bar_chart_svg([{"source": row, "f1": 0.5} for row in ROWS])
    legend = regex.findall(
        r'width="12" height="12" fill="(#[0-9a-f]{6})"/>\s*<text[^>]*>([a-z_]+)<', svg
    )
    assert sorted(row for _, row in legend) == sorted(ROWS)
    assert len({colour for colour, _ in legend}) == len(ROWS)


def test_goal_checks_pair_seeds_and_count_wins():
    def row(source, f1s, seeds=(0, 1, 2)):
        return mean_over_seeds([{"source": source, "seed": s, "f1": f} for s, f in zip(seeds, f1s)])

    rows = [
        row("synthetic", [0.70, 0.72, 0.74]),
        row("randomized", [0.60, 0.80], seeds=(1, 2)),  # seed 0 missing: compared on 1, 2
        row("adapted", [0.80, 0.75, 0.73]),
        row("oracle", [0.90, 0.90, 0.90]),
    ]
    checks = goal_checks(
        rows,
        ["adapted", "selftrained"],
        ["synthetic", "randomized"],
        "oracle",
        min_gain=0.05,
        min_share=0.7,
    )
    vs_syn, vs_dr, vs_oracle = checks  # 'selftrained' was not run: no verdicts for it
    assert vs_syn["gain"] == pytest.approx((0.10 + 0.03 - 0.01) / 3)
    assert (vs_syn["wins"], vs_syn["paired_seeds"], vs_syn["met"]) == (2, 3, False)
    assert vs_dr["gain"] == pytest.approx((0.15 - 0.07) / 2) and vs_dr["paired_seeds"] == 2
    # share of the oracle gap closed, over the seeds all three rows share
    assert vs_syn["gap_closed"] == pytest.approx(0.12 / (0.20 + 0.18 + 0.16))
    assert vs_dr["gap_closed"] == pytest.approx(0.08 / (0.30 + 0.10))
    assert vs_oracle["share"] == pytest.approx(0.76 / 0.90) and vs_oracle["met"]
    table = goal_markdown(checks)
    assert "| adapted | synthetic | +0.040 |  | 2/3 | 22% | ≥ +0.050 | no |" in table
    assert "| adapted | oracle | 84.4% of it |  |  |  | ≥ 70% | **yes** |" in table
    rows[-1] = row("oracle", [0.0, 0.0, 0.0])
    (*_, vs_nothing) = goal_checks(rows, ["adapted"], [], "oracle", 0.05, 0.7)
    assert vs_nothing["share"] is None and not vs_nothing["met"]
    # a baseline level with (or above) the oracle leaves no gap to close: none, not a division
    above = goal_checks(
        [rows[0], rows[2], row("oracle", [0.7, 0.7, 0.7])],
        ["adapted"],
        ["synthetic"],
        "oracle",
        0.05,
        0.7,
    )
    assert above[0]["gap_closed"] is None
    assert "| adapted | synthetic | +0.040 |  | 2/3 |  |" in goal_markdown(above)
    assert "n/a (oracle scored 0)" in goal_markdown([vs_nothing])
    assert vs_syn["seeds"] == [0, 1, 2] and vs_dr["seeds"] == [1, 2]
    vs_syn["interval"] = [-0.0123, 0.0456]  # gan.pipeline_report.with_intervals's
    assert "| +0.040 | -0.012 to +0.046 | 2/3 |" in goal_markdown([vs_syn])
    vs_syn["interval"] = [-0.0099, -0.0002]  # it does not span 0: said so, not -0.000
    assert "| -0.010 to -0.0002 |" in goal_markdown([vs_syn])
    assert (
        "| row | against | F1 | 95% interval over the test photos | paired seeds won | oracle gap closed |"
        in table
    )


def test_a_verdict_reads_as_its_table_shows_and_a_tie_beats_nothing():
    """0.85 - 0.80 is 0.0499... in floating point: '+0.050 | >= +0.050 | no'; a gain that
    rounds up to the goal is shown to the digit that misses it; with min_gain 0 a tie was a
    'yes'; the gap column named the oracle whatever the reference row was."""

    def verdicts(mine: float, base: float, ref: str = "oracle", gain: float = 0.05) -> list:
        rows = [
            {"source": "adapted", "seed": 0, "f1": mine},
            {"source": "synthetic", "seed": 0, "f1": base},
            {"source": ref, "seed": 0, "f1": 1.0},
        ]
        return goal_checks(rows, ["adapted"], ["synthetic"], ref, gain, 0.85)

    exact = verdicts(0.85, 0.80)
    assert exact[0]["met"] and "| +0.050 |  | 1/1 |" in goal_markdown(exact)
    close = verdicts(0.8497, 0.80)
    assert not close[0]["met"] and "| +0.0497 |  | 1/1 |" in goal_markdown(close)
    assert not verdicts(0.80, 0.80, gain=0.0)[0]["met"]  # a tie
    assert verdicts(0.81, 0.80, gain=0.0)[0]["met"]
    assert verdicts(0.79, 0.80, gain=-0.02)[0]["met"]  # a loss within an allowed margin
    share = verdicts(0.8497, 0.80)[1]  # 84.97 % of the reference against a goal of 85 %
    assert not share["met"] and "84.97% of it" in goal_markdown([share])
    table = goal_markdown(verdicts(0.85, 0.80, ref="fda"))
    assert "| fda gap closed |" in table and "oracle" not in table


def test_report_logs_each_verdict_its_gap_closed_and_interval(tmp_path: Path):
    from lightning.pytorch.loggers import CSVLogger

    rows = [
        mean_over_seeds([{"source": src, "seed": 0, "f1": f}])
        for src, f in (("synthetic", 0.7), ("adapted", 0.75), ("oracle", 0.8))
    ]
    checks = goal_checks(rows, ["adapted"], ["synthetic"], "oracle", 0.05, 0.7)
    checks[0]["interval"] = [0.01, 0.09]
    logger = CSVLogger(tmp_path, name="report", version="")
    log_report([logger], rows, checks, {}, "summary", fallback_dir=tmp_path)
    logger.save()
    header, values = (tmp_path / "report" / "metrics.csv").read_text().splitlines()[:2]
    logged = dict(zip(header.split(","), values.split(",")))
    assert float(logged["goal/adapted_vs_synthetic"]) == pytest.approx(0.05)
    assert float(logged["goal/adapted_vs_synthetic/gap_closed"]) == pytest.approx(0.5)
    assert float(logged["goal/adapted_vs_synthetic/met"]) == 1.0
    assert float(logged["goal/adapted_vs_synthetic/interval_low"]) == pytest.approx(0.01)
    assert float(logged["goal/adapted_vs_synthetic/interval_high"]) == pytest.approx(0.09)
    assert float(logged["goal/adapted_vs_oracle"]) == pytest.approx(0.75 / 0.8)


def test_the_wandb_report_run_carries_the_notes_and_verdicts(tmp_path: Path, monkeypatch):
    """A W&B report run had the scores and the row table, not the notes (test set, size,
    command, versions) nor the verdicts, which TensorBoard's text summary had."""
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    from gan.report import summary_markdown

    monkeypatch.setenv("WANDB_MODE", "offline")
    rows = [
        mean_over_seeds([{"source": src, "seed": 0, "f1": f}])
        for src, f in (("synthetic", 0.7), ("adapted", 0.75), ("oracle", 0.8))
    ]
    checks = goal_checks(rows, ["adapted"], ["synthetic"], "oracle", 0.05, 0.7)
    summary = summary_markdown(rows, "Made by `python tools/pipeline.py`.", checks)
    before = dict(os.environ)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    log_report([logger], rows, checks, {}, summary, fallback_dir=tmp_path)
    wandb.finish()
    wandb.teardown()  # its service, which later tools started by the tests would have joined
    for key in set(os.environ) - set(before):
        monkeypatch.delenv(key)
    (page,) = tmp_path.glob("wandb/offline-run-*/files/media/html/report/summary_*.html")
    text = page.read_text()
    assert "<code>python tools/pipeline.py</code>" in text and "<th>against</th>" in text
    assert "<td>adapted</td><td>synthetic</td><td>+0.050</td>" in text


def test_a_rerun_pipeline_logs_its_report_to_the_same_wandb_run(tmp_path: Path):
    """Each invocation, every stage skipped as complete, added one more W&B report run to the
    project; the report folder now records the run, as a training's checkpoint folder does,
    and another outputs folder (another experiment) has its own."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.pipeline_report import report_loggers
    from gan.rows import derive
    from gan.runner import WANDB_RUN_RECORD

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        pipeline = compose("pipeline", [*pipeline_overrides(tmp_path), "logger=many"])

    def report_run_id(output_dir: Path) -> str:
        cfg = derive(pipeline, {"paths": {"output_dir": str(output_dir)}})
        track = derive(cfg, {"run_name": f"{cfg.run_name}-report"})
        (wandb,) = [lg for lg in report_loggers(cfg, track) if type(lg).__name__ == "WandbLogger"]
        assert wandb._wandb_init["name"] == f"{cfg.run_name}-report"
        return wandb._wandb_init["id"]

    first = report_run_id(tmp_path / "out")
    assert first and (tmp_path / "out" / "report" / WANDB_RUN_RECORD).is_file()
    assert report_run_id(tmp_path / "out") == first
    assert report_run_id(tmp_path / "other") not in (first, None)


def test_a_stage_says_where_a_stopped_run_left_off(tmp_path):
    from gan.stage_outputs import checkpoint_step, resumed_at

    ckpt = tmp_path / "last.ckpt"
    assert resumed_at(checkpoint_step(ckpt), 400) == ""
    torch.save({"global_step": 120}, ckpt)
    assert resumed_at(checkpoint_step(ckpt), 400) == ", resuming at step 120 (last.ckpt)"
    assert (
        resumed_at(checkpoint_step(ckpt), 120) == ", trained (last.ckpt at step 120), scored again"
    )


@pytest.mark.parametrize(("given", "gan"), [(None, None), ("last", "last"), ("/a.ckpt", "last")])
def test_the_gan_starts_over_with_ckpt_path_null_as_the_task_rows_do(given, gan):
    """The GAN was resumed whatever ckpt_path said; a file named there is a task model's."""
    from gan.pipeline import adapt_config

    cfg = OmegaConf.create(
        {"ckpt_path": given, "stages": {"adapt": {"run_name": "a", "trainer": {"max_steps": 2}}}}
    )
    assert adapt_config(cfg).ckpt_path == gan


def test_an_oracle_only_run_renders_nothing(tmp_path, capsys):
    """The real-label upper bound alone needs no scenes: no render, no scene sheet. (The row
    list given as one word is that row, not the letters o, r, a, c, l, e.)"""
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    result = run_pipeline(tmp_path, "stages.task.sources=oracle")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "render:" not in result.stdout and "task[oracle]: 2 steps" in result.stdout
    assert not (tmp_path / "out" / "synthetic").exists()
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "real training photos (unlabeled)" in report and "synthetic samples" not in report
    assert (tmp_path / "out" / "report" / "errors.png").is_file()
    assert json.loads((tmp_path / "out" / "run_names.json").read_text())["task"] == (
        "pipeline-task"
    )  # recorded by the first run (it came only with the second)

    # Its checkpoint cut short after the row finished: the report stands, without the figure.
    ckpt = tmp_path / "ckpt" / "pipeline-task-oracle" / "last.ckpt"
    os.truncate(ckpt, ckpt.stat().st_size // 2)
    (tmp_path / "out" / "report" / "errors.png").unlink()
    again = run_pipeline(tmp_path, "stages.task.sources=[oracle]")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"report: {ckpt}: unreadable checkpoint, cut short" in again.stdout
    assert f"the figures leave the oracle row out (its scores stand); delete {ckpt.parent}" in (
        again.stdout
    )
    assert not (tmp_path / "out" / "report" / "errors.png").exists()
    assert "| oracle |" in (tmp_path / "out" / "report" / "report.md").read_text()

    # Another run_name looks for the models under other checkpoint folders: refused at once
    # (rows were skipped as scored, then a teacher's checkpoint was 'gone'), before and after
    # the names were recorded.
    for recorded in (True, False):
        if not recorded:
            (tmp_path / "out" / "run_names.json").unlink()
        renamed = refused_here(capsys, tmp_path, "stages.task.sources=[oracle]", "run_name=v2")
        assert f"error: {tmp_path / 'out'}: its rows' models are under " in renamed
        assert "not v2-adapt, v2-task-<row>; rerun with the run_name" in renamed

    # A second experiment told apart by its outputs folder alone: refused before any work (it
    # retrained the first's models in place, whose rerun then said "complete, skipped").
    other = refused_here(
        capsys, tmp_path, "stages.task.sources=[oracle]", f"paths.output_dir={tmp_path / 'out2'}"
    )
    assert (
        f"error: paths.ckpt_dir={tmp_path / 'ckpt'}: its pipeline-adapt runs are those of the "
        f"outputs folder {tmp_path / 'out'}, not of {tmp_path / 'out2'}; give this run its own "
        "paths.ckpt_dir and paths.log_dir" in other
    )
    assert not (tmp_path / "out2" / "runs").exists()


def test_checkpoint_and_log_folders_serve_one_outputs_folder(tmp_path):
    """Each pipeline run name in paths.ckpt_dir and paths.log_dir is claimed by one outputs
    folder; another is refused while the first stands, takes over once it is gone, and the
    claim follows outputs moved together with their checkpoints."""
    from gan.stage_outputs import CLAIMS, check_claimed_folders

    def cfg(out: str, root: Path = tmp_path, prefix: str = "pipeline-task") -> DictConfig:
        paths = {"output_dir": str(root / out), "ckpt_dir": str(root / "ckpt")}
        paths["log_dir"] = str(root / "logs")
        stages = {"adapt": {"run_name": "pipeline-adapt"}, "task": {"run_prefix": prefix}}
        return OmegaConf.create({"paths": paths, "stages": stages})

    check_claimed_folders(cfg("a"))
    (tmp_path / "a").mkdir()
    check_claimed_folders(cfg("a"))  # its own again
    with pytest.raises(ConfigError, match=r"its pipeline-adapt runs are those of the outputs"):
        check_claimed_folders(cfg("b"))
    claims = json.loads((tmp_path / "logs" / CLAIMS).read_text())
    assert claims == {"pipeline-adapt": "../a", "pipeline-task": "../a"}
    shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved")
    check_claimed_folders(cfg("a", tmp_path.parent / f"{tmp_path.name}-moved"))
    shutil.rmtree(tmp_path / "a")  # deleted to start again: the claim lapses
    check_claimed_folders(cfg("b"))
    assert json.loads((tmp_path / "ckpt" / CLAIMS).read_text())["pipeline-task"] == "../b"


def test_a_new_test_set_or_scoring_size_rescores_without_retraining(
    tmp_path, synthetic_testtime_run
):
    """The scores follow stages.evaluate.eval_size and the test labels. A trained row keeps
    its model and is scored again; the testtime row (nothing trained) is scored again. Before,
    both kept the old scores under a report naming the new size, and testtime kept them after
    the labels changed, flipping a verdict."""
    copy_run(synthetic_testtime_run, tmp_path, ("out", "ckpt", "logs", "real"))
    rows = SYNTHETIC_TESTTIME
    runs = tmp_path / "out" / "runs"

    def tracked(row: str) -> list[float]:  # the row's test/miou points in its CSV tracker run
        with (tmp_path / "logs" / f"pipeline-task-{row}" / "metrics.csv").open() as file:
            return [float(r["test/miou"]) for r in csv.DictReader(file) if r.get("test/miou")]

    def scored(row: str) -> float:
        return json.loads((runs / row / "metrics.json").read_text())["miou"]

    # the testtime row trains nothing: it had no tracker run
    assert tracked("testtime") == [pytest.approx(scored("testtime"), abs=1e-6)]
    was = tracked("synthetic")
    resized = run_pipeline(tmp_path, *rows, "stages.evaluate.eval_size=[24,32]")
    assert resized.returncode == 0, resized.stderr[-3000:]
    # a row scored again: its tracker run kept the old scores (metrics.json had the new)
    for row in ("synthetic", "testtime"):
        assert tracked(row) == [pytest.approx(scored(row), abs=1e-6)]
    assert tracked("synthetic") != was
    out = resized.stdout
    assert (
        "task[synthetic]: trained, scored again at eval_size [24, 32] (was each image's own size)"
        in out
    )
    assert "]: 2 steps" not in out and "task[testtime]: the synthetic model" in out
    for row in ("synthetic", "testtime"):
        assert json.loads((runs / row / "metrics.json").read_text())["eval_size"] == [24, 32]
    # New test labels: both rows are scored against them, and the trained row keeps its
    # model (it retrained: the test folders were in its training record).
    ckpt = tmp_path / "ckpt" / "pipeline-task-synthetic" / "last.ckpt"
    trained = ckpt.read_bytes()
    cv2.imwrite(str(tmp_path / "real" / "test_lab" / "0.png"), np.zeros((48, 64), np.uint8))
    relabeled = run_pipeline(tmp_path, *rows, "stages.evaluate.eval_size=[24,32]")
    assert relabeled.returncode == 0, relabeled.stderr[-3000:]
    out = relabeled.stdout
    assert "task[synthetic]: files changed in ${paths.data_dir}/test_lab" in out
    # its per-image scores and overlays too: a stop before the new ones kept the old model's
    removed = ", ".join(str(runs / "synthetic" / f) for f in ("metrics.json", "per_image.csv"))
    assert f"old outputs removed ({removed}, {runs / 'synthetic' / 'overlays'})" in out
    assert "task[synthetic]: 2 steps, trained (last.ckpt at step 2), scored again" in out
    assert ckpt.read_bytes() == trained
    # its tracker run has the new scores (the fit found it trained and opened no logger)
    assert tracked("synthetic") == [pytest.approx(scored("synthetic"), abs=1e-6)]
    assert "task[testtime]: " in out and "task[testtime]: complete, skipped" not in out
    # The source-only model cut short since: its scores and the testtime row's stand (the
    # testtime row read the changed file as another model and removed its scores, then failed)
    ckpt = tmp_path / "ckpt" / "pipeline-task-synthetic" / "last.ckpt"
    os.truncate(ckpt, ckpt.stat().st_size // 2)
    cut = run_pipeline(tmp_path, *rows, "stages.evaluate.eval_size=[24,32]")
    assert cut.returncode == 0, cut.stderr[-3000:]
    assert f"task[testtime]: {ckpt}: unreadable checkpoint" in cut.stdout
    assert "its scores from before stand" in cut.stdout and "removed" not in cut.stdout
    assert (runs / "testtime" / "metrics.json").is_file()


# 40 s: with the slow tests; CI rescores without retraining in test_a_new_test_set_or_scoring_size_rescores_without_retraining
@pytest.mark.slow
def test_a_new_overlay_count_or_tile_scores_again_and_older_records_stand(
    tmp_path, synthetic_testtime_run
):
    """stages.evaluate.num_overlays and tile are in a row's scoring record: before, a rerun
    with another overlay count kept the old overlays, and a tiled rerun the whole-photo
    scores, without a word. Scores recorded before the two were stand at their defaults;
    those of the tolerance F1's square neighbourhood are made again with its disc, and a new
    tolerance radius scores the rows again (it retrained them)."""
    copy_run(synthetic_testtime_run, tmp_path, ("out", "ckpt", "logs", "real"))
    rows = SYNTHETIC_TESTTIME
    runs = tmp_path / "out" / "runs"
    fewer = ("stages.evaluate.num_overlays=1", "stages.evaluate.tile=32")

    def edit(path: Path, change: Callable[[dict], None]) -> None:
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))

    def without_new_keys(record: dict) -> None:
        assert (record.pop("tile"), record.pop("num_overlays")) == (None, 8)

    for row in ("synthetic", "testtime"):  # as a record from before session 49 has them
        edit(runs / row / "metrics.json", without_new_keys)
    edit(runs / "testtime" / "provenance.json", lambda r: without_new_keys(r["test"]))
    again = run_pipeline(tmp_path, *rows)
    assert again.returncode == 0, again.stderr[-3000:]
    for row in ("synthetic", "testtime"):
        assert f"task[{row}]: complete, skipped" in again.stdout
    changed = run_pipeline(tmp_path, *rows, *fewer)
    assert changed.returncode == 0, changed.stderr[-3000:]
    out = changed.stdout
    assert (
        "task[synthetic]: trained, scored again at tile 32, 1 overlays (was whole photos, "
        "8 overlays)" in out
    )
    assert "]: 2 steps" not in out and "task[testtime]: the synthetic model" in out
    for row in ("synthetic", "testtime"):
        assert len(list((runs / row / "overlays").glob("*.png"))) == 1
        recorded = json.loads((runs / row / "metrics.json").read_text())
        assert (recorded["tile"], recorded["num_overlays"]) == (32, 1)
    kept = run_pipeline(tmp_path, *rows, *fewer)
    assert kept.returncode == 0, kept.stderr[-3000:]
    for row in ("synthetic", "testtime"):
        assert f"task[{row}]: complete, skipped" in kept.stdout

    # Scores of the tolerance F1's square neighbourhood (before session 49) are made again.
    def square(record: dict) -> None:
        assert record.pop("tolerance_shape") == "disc"

    for row in ("synthetic", "testtime"):
        edit(runs / row / "metrics.json", square)
    edit(runs / "testtime" / "provenance.json", lambda r: square(r["test"]))
    disc = run_pipeline(tmp_path, *rows, *fewer)
    assert disc.returncode == 0, disc.stderr[-3000:]
    out = disc.stdout
    assert "task[synthetic]: trained, scored again at a disc tolerance (was a square" in out
    assert "task[testtime]: the synthetic model" in out and "]: 2 steps" not in out
    for row in ("synthetic", "testtime"):
        assert json.loads((runs / row / "metrics.json").read_text())["tolerance_shape"] == "disc"
    # The tolerance's radius is scoring too: it retrained every row.
    wider = run_pipeline(tmp_path, *rows, *fewer, "task.tolerance=3")
    assert wider.returncode == 0, wider.stderr[-3000:]
    out = wider.stdout
    assert "task[synthetic]: trained, scored again at a 3 px tolerance (was a 2 px" in out
    assert "task[testtime]: the synthetic model" in out and "]: 2 steps" not in out
    assert not [
        line for line in out.splitlines() if "task[synthetic]" in line and "removed" in line
    ]
    for row in ("synthetic", "testtime"):
        assert json.loads((runs / row / "metrics.json").read_text())["tolerance"] == 3
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "| training data | F1 | F1 (3 px tol.) |" in report  # it said 2 px


def test_a_complete_rerun_keeps_the_report_and_the_times_the_stages_took(
    tmp_path, capsys, monkeypatch, synthetic_testtime_run
):
    """A complete rerun redrew every figure (5.6 s of the main job's 15 s rerun), and its page
    gave that invocation's stage times: about 0 for every stage found complete. The report
    stands while what it shows and draws from is unchanged (a row's new scores redraw it),
    and the times are those the stages took as made."""
    import gan.pipeline_report
    from gan.stage_times import look

    copy_run(synthetic_testtime_run, tmp_path, ("out", "ckpt", "logs", "real"))
    made = json.loads((tmp_path / "out" / "stage_times.json").read_text())["made"]
    report = tmp_path / "out" / "report"

    def rerun() -> str:
        assert tool_exit_code("pipeline", *pipeline_overrides(tmp_path), *SYNTHETIC_TESTTIME) == 0
        return capsys.readouterr().out

    moved = rerun()  # every stage complete; the report names the new folders
    assert "report: complete, skipped" not in moved and "(redrawn: its " in moved
    shown = json.loads((report / "results.json").read_text())["stage_seconds"]
    stages = ("render", "task[synthetic]", "adapt", "task[testtime]")
    assert shown == {stage: made[stage] for stage in stages}  # as made, not this run's
    assert f"adapt {seconds_text(made['adapt'])}," in (report / "report.md").read_text()
    wrote = {path: look(path) for path in [*report.glob("*.png"), *report.glob("report.*")]}
    drawn: list[list[str]] = []
    monkeypatch.setattr(
        gan.pipeline_report, "report_figures", lambda cfg, rows, said: drawn.append(rows) or {}
    )
    kept = rerun()
    assert f"report: complete, skipped ({report / 'report.html'})" in kept
    assert "| testtime | synthetic |" in kept  # the summary, said again
    assert not drawn and {path: look(path) for path in wrote} == wrote
    scores = tmp_path / "out" / "runs" / "synthetic" / "metrics.json"
    write_json_atomic(scores, json.loads(scores.read_text()) | {"f1": 0.5})
    assert "(redrawn: its rows' scores changed)" in rerun()
    assert drawn == [["synthetic", "testtime"]]
    assert "| synthetic | 0.500 |" in (report / "report.md").read_text()


def test_a_report_whose_files_changed_since_is_drawn_again(tmp_path):
    """A figure deleted or edited since the report was made (or its tracker's metrics.csv)
    redraws it, as a change to any part it was made from does."""
    from gan.pipeline_report import why_redrawn
    from gan.stage_times import look

    figure, table = tmp_path / "grid_synthetic.png", tmp_path / "metrics.csv"
    figure.write_bytes(b"png")
    table.write_text("step\n")
    inputs = {"rows' scores": "a", "settings": "b"}
    earlier = {"inputs": inputs, "outputs": {str(f): look(f) for f in (figure, table)}}
    assert why_redrawn(earlier, inputs) == ""
    assert why_redrawn(earlier, inputs | {"settings": "c"}) == "its settings changed"
    write_json_atomic(table, {"step": 1})  # another file in its place
    assert why_redrawn(earlier, inputs) == f"{table} is missing or changed"
    figure.unlink()
    assert why_redrawn(earlier, inputs) == f"{figure} is missing or changed"
    assert why_redrawn({"inputs": inputs}, inputs) == "no record of its files"


def test_a_stages_time_is_that_of_the_invocations_that_made_it(tmp_path):
    """A stage found complete keeps the time it took as made (it showed about 0); one resumed
    after a stop counts both parts; one made again takes the new time alone."""
    from gan.stage_times import StageClock

    ticks = iter(range(0, 1000, 10))  # each reading of the clock 10 s after the last
    output = tmp_path / "out" / "card.json"

    def make() -> None:
        write_json_atomic(output, {})

    def stopped() -> None:
        raise KeyboardInterrupt

    def invocation(work: Callable[[], None]) -> dict:
        clock = StageClock(tmp_path / "out", now=lambda: next(ticks))
        with contextlib.suppress(KeyboardInterrupt):
            clock.run("render", output, work)
        return clock.as_made(["render"]) | {"this run": clock.this_run["render"]}

    assert invocation(stopped) == {"render": None, "this run": 10}  # killed 10 s in
    assert invocation(make) == {"render": 20, "this run": 10}  # resumed: both parts
    assert invocation(lambda: None) == {"render": 20, "this run": 10}  # found complete
    assert invocation(make) == {"render": 10, "this run": 10}  # made again (new settings)
    record = json.loads((tmp_path / "out" / "stage_times.json").read_text())
    assert record["made"] == {"render": 10} and record["cut_short"] == {}


def test_a_stage_stopped_after_it_wrote_its_output_keeps_that_invocations_time(tmp_path):
    """A stage stopped once its output was written (Ctrl-C while W&B syncs at a row's end)
    is found complete by the rerun: its time was dropped, and the page said '?' (or the
    time of an older making) for a stage that took the stopped invocation's."""
    from gan.stage_times import StageClock

    ticks = iter(range(0, 1000, 10))  # each reading of the clock 10 s after the last
    output = tmp_path / "out" / "metrics.json"
    output.parent.mkdir()

    def made_then_stopped() -> None:
        write_json_atomic(output, {})
        raise KeyboardInterrupt

    def invocation(work: Callable[[], None]) -> dict:
        clock = StageClock(tmp_path / "out", now=lambda: next(ticks))
        with contextlib.suppress(KeyboardInterrupt):
            clock.run("task[synthetic]", output, work)
        return clock.as_made(["task[synthetic]"])

    assert invocation(made_then_stopped) == {"task[synthetic]": None}
    assert invocation(lambda: None) == {"task[synthetic]": 20}  # 10 s stopped, 10 s checks
    assert invocation(lambda: None) == {"task[synthetic]": 20}  # and kept after
    record = json.loads((tmp_path / "out" / "stage_times.json").read_text())
    assert record["cut_short"] == {} and record["wrote"] == {}


def test_the_report_figures_draw_the_first_seeds_models_and_say_which_row_is_missing(
    tmp_path, capsys
):
    """With ``seeds=[1]`` the predictions figure came from the base seed's overlays (another
    model, possibly of other settings) while the error map drew seed 1; a row whose checkpoint
    was deleted left the error map without a word."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.evaluate import save_overlay
    from gan.pipeline_report import report_figures, rows_settings

    register_resolvers()
    write_toy_real_folder(tmp_path / "real", n=2, h=16, w=20)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pipeline", [*pipeline_overrides(tmp_path), "stages.task.seeds=[1]"])
    photo, truth = torch.full((3, 16, 20), 120, dtype=torch.uint8), torch.zeros(16, 20).long()
    for run, predicted in (("oracle", 0), ("oracle-seed1", 1)):
        (tmp_path / "out" / "runs" / run / "overlays").mkdir(parents=True)
        (tmp_path / "out" / "runs" / run / "per_image.csv").write_text("stem,f1\n0,1.0\n")
        save_overlay(
            photo,
            truth,
            torch.full_like(truth, predicted),
            tmp_path / "out" / "runs" / run / "overlays" / "0.png",
        )
    notes: list[str] = []
    figures = report_figures(cfg, ["oracle"], notes)
    said = rows_settings(cfg)  # the report says which seed they draw
    assert "with seeds [1], scored as stages.evaluate says; the figures draw seed 1's" in said
    figure = cv2.imread(str(figures["predictions on real test images (red: crack)"]))
    assert figure[8:, 130:, 2].mean() > 150  # seed 1's all-crack red; seed 0's: the photo's 120
    ckpt = tmp_path / "ckpt" / "pipeline-task-oracle-seed1" / "last.ckpt"
    said = capsys.readouterr().out
    assert f"report: {ckpt} is missing; the figures leave the oracle row out" in said
    assert f"delete {ckpt.parent} and {tmp_path / 'out' / 'runs' / 'oracle-seed1'}" in said
    assert notes == [said.split("report: ", 1)[1].strip()]  # in the report's notes too
    shutil.rmtree(tmp_path / "out" / "runs" / "oracle" / "overlays")
    report_figures(cfg, ["oracle"])
    assert "no predictions figure" not in capsys.readouterr().out
    shutil.rmtree(tmp_path / "out" / "runs" / "oracle-seed1" / "overlays")
    assert "predictions on real test images (red: crack)" not in report_figures(cfg, ["oracle"])
    assert "report: no predictions figure: " in capsys.readouterr().out


def test_new_real_data_is_read_whole_before_old_outputs_go(
    tmp_path, capsys, synthetic_testtime_run
):
    """A photo added that cannot be read removed the finished GAN, then failed (and its
    removal retrained the GAN from scratch); a test photo added without its mask removed the
    rows' scores, then failed; a missing train_lab/, or a corrupt label in it, failed at the
    oracle row, the last."""
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    rows = SYNTHETIC_TESTTIME
    shutil.move(tmp_path / "real" / "train_lab", tmp_path / "train_lab")
    refused = refused_here(capsys, tmp_path, "stages.task.sources=[synthetic,oracle]")
    assert refused.strip().splitlines()[-1] == (
        f"error: the oracle row's training labels: {tmp_path / 'real' / 'train_lab'}: mask "
        "folder not found ('stages.task.sources=[...]' without oracle leaves it out)"
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "ckpt").exists()
    shutil.move(tmp_path / "train_lab", tmp_path / "real" / "train_lab")
    (tmp_path / "real" / "train_lab" / "2.png").write_bytes(b"\x89PNG cut short")
    # it failed at the oracle row, the last, with no report
    corrupt = refused_here(capsys, tmp_path, "stages.task.sources=[synthetic,oracle]")
    assert (
        corrupt.strip()
        .splitlines()[-1]
        .startswith(
            f"error: the oracle row's training labels: {tmp_path / 'real' / 'train_lab' / '2.png'}"
        )
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "ckpt").exists()
    # A finished run of rows that read no training labels, its label still corrupt (the
    # next full run must not fail on it).
    shutil.rmtree(tmp_path / "real")
    copy_run(synthetic_testtime_run, tmp_path, ("out", "ckpt", "logs", "real"))
    (tmp_path / "real" / "train_lab" / "2.png").write_bytes(b"\x89PNG cut short")
    gan = tmp_path / "ckpt" / "pipeline-adapt" / "last.ckpt"
    trained = gan.read_bytes()
    bad = tmp_path / "real" / "train_img" / "zz.jpg"
    bad.write_bytes((tmp_path / "real" / "train_img" / "0.jpg").read_bytes()[:300])
    broken = refused_here(capsys, tmp_path, *rows)
    assert "zz.jpg: " in broken, broken[-3000:]
    assert gan.read_bytes() == trained
    bad.unlink()
    again = run_pipeline(tmp_path, *rows)
    assert again.returncode == 0 and "adapt: complete at step" in again.stdout
    scores = tmp_path / "out" / "runs" / "synthetic" / "metrics.json"
    scored = scores.read_bytes()
    shutil.copy(tmp_path / "real" / "test_img" / "0.jpg", tmp_path / "real" / "test_img" / "9.jpg")
    assert "no mask" in refused_here(capsys, tmp_path, *rows)
    assert scores.read_bytes() == scored


def test_the_reports_command_carries_the_path_variables_that_were_set():
    """``SIM2REAL_DATA_DIR=... python tools/pipeline.py`` was recorded without the variable:
    run again as written, it read the default folder."""
    from gan.pipeline_report import PATH_VARIABLES, made_line

    made = {"made_at": "2026-12-06T15:00:00+00:00", "overrides": ["seed=1"]}
    made["environment"] = {"SIM2REAL_DATA_DIR": "/data/my photos"}
    assert made_line(made) == (
        "Made 2026-12-06 15:00:00 UTC by "
        "`SIM2REAL_DATA_DIR='/data/my photos' python tools/pipeline.py seed=1`."
    )
    read = set(re.findall(r"SIM2REAL_\w+", (ROOT / "conf" / "paths" / "default.yaml").read_text()))
    assert read == set(PATH_VARIABLES)


def test_a_report_is_drawn_and_logged_again_under_another_wandb_mode(monkeypatch):
    """WANDB_MODE decides over logger.wandb.offline; a report made with WANDB_MODE=disabled
    was kept by a rerun without it, so its W&B run never got the report."""
    import gan.pipeline_report
    from gan.pipeline_report import report_inputs, why_redrawn

    monkeypatch.setattr(gan.pipeline_report, "drawn_from", lambda cfg, rows: {})
    cfg = OmegaConf.create({"stages": {"task": {"sources": ["synthetic"]}}})
    monkeypatch.setenv("WANDB_MODE", "disabled")
    made = report_inputs(cfg, {}, {}, {}, {})
    monkeypatch.delenv("WANDB_MODE")
    earlier = {"inputs": made, "outputs": {}}
    assert why_redrawn(earlier, report_inputs(cfg, {}, {}, {}, {})) == (
        "its trackers' mode changed"
    )


def test_photos_without_labels_train_every_row_and_show_its_masks(tmp_path, capsys):
    """The product's user has unlabeled photos alone: the pipeline refused to start without
    test_lab/. With task_data.test_lab=null every row trains and segments the photos (masks
    and overlays, no score), the report shows them with the share each row calls crack and
    no verdict; labels added later score the same models, none retrained."""
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    shutil.move(tmp_path / "real" / "test_lab", tmp_path / "test_lab")
    rows = ("stages.task.sources=[synthetic,testtime]",)
    refused = refused_here(capsys, tmp_path, *rows)  # the way out, named
    assert "task_data.test_lab=null trains the rows" in refused
    photos = tmp_path / "real" / "train_img"
    unlabelled = (f"task_data.test_img={photos}", "task_data.test_lab=null")
    first = run_pipeline(tmp_path, *rows, *unlabelled)
    assert first.returncode == 0, first.stderr[-3000:]
    runs, report = tmp_path / "out" / "runs", tmp_path / "out" / "report"
    names = sorted(f"{p.stem}.png" for p in photos.iterdir())
    for row in ("synthetic", "testtime"):
        assert sorted(p.name for p in (runs / row / "masks").glob("*.png")) == names
        metrics = json.loads((runs / row / "metrics.json").read_text())
        assert metrics["scored"] is False and metrics["num_images"] == len(names)
        assert 0.0 <= metrics["crack_share"] <= 1.0 and "f1" not in metrics
    md = (report / "report.md").read_text()
    assert f"Photos without labels (task_data.test_lab=null): {photos} ({len(names)} photos)" in md
    assert "| training data | pixels called crack |" in md and "| testtime | " in md
    assert "Against the goal" not in md and "F1" not in md
    # how far the rows' masks agree, the one comparison there is without labels (2-step
    # models may call nothing crack: n/a, with why)
    agreement = json.loads((report / "results.json").read_text())["agreement"]
    assert list(agreement) == ["synthetic / testtime"]
    value = agreement["synthetic / testtime"]
    shown = "n/a (neither called any pixel crack)" if value is None else f"{value:.2f}"
    assert f"seed 0's models): synthetic / testtime {shown};" in md
    assert "scored as stages.evaluate" not in md and "scoring the test" not in md
    assert (report / "predictions.png").is_file() and not (report / "errors.png").exists()
    assert "the figures leave" not in first.stdout  # no error map to leave rows out of
    with (tmp_path / "logs" / "pipeline-task-synthetic" / "metrics.csv").open() as file:
        assert [r["test/crack_share"] for r in csv.DictReader(file) if r.get("test/crack_share")]

    # a setting changed: the training data is read before old outputs go (test photos too,
    # where there are labels: here that read failed on the labels it had not)
    longer = run_pipeline(tmp_path, *rows, *unlabelled, "stages.task.trainer.max_steps=3")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "task[synthetic]: settings changed (trainer.max_steps), old outputs" in longer.stdout

    ckpt = tmp_path / "ckpt" / "pipeline-task-synthetic" / "last.ckpt"
    trained = ckpt.read_bytes()
    shutil.move(tmp_path / "test_lab", tmp_path / "real" / "test_lab")
    labelled = run_pipeline(tmp_path, *rows, "stages.task.trainer.max_steps=3")
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    assert "trained (last.ckpt at step 3), scored again" in labelled.stdout
    assert ckpt.read_bytes() == trained and not (runs / "synthetic" / "masks").exists()
    assert "f1" in json.loads((runs / "testtime" / "metrics.json").read_text())


def test_what_the_photo_folders_hold_that_no_stage_reads_is_said_before_any_work(tmp_path, capsys):
    """Photos sorted into a subfolder, an iPhone's .HEIC, a Thumbs.db: check_data, predict
    and evaluate said they were skipped, the pipeline skipped them without a word and
    segmented the rest. Said once for a folder both the GAN and the rows read."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.pipeline import say_unread_entries

    register_resolvers()
    write_toy_real_folder(tmp_path / "real", n=2, h=48, w=64)
    photos = tmp_path / "real" / "train_img"
    (photos / "site_b").mkdir()
    (photos / "IMG_0001.HEIC").write_bytes(b"heic")
    (photos / "Thumbs.db").write_bytes(b"db")
    unlabelled = [f"task_data.test_img={photos}", "task_data.test_lab=null"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pipeline", [*pipeline_overrides(tmp_path), *unlabelled])
    say_unread_entries(cfg, ["synthetic", "testtime"])
    said = capsys.readouterr().out.splitlines()
    assert said == [
        f"[pipeline] note: {photos}: 2 files of other kinds (photos: .jpg .jpeg .png .bmp "
        ".tif .tiff), not read: IMG_0001.HEIC, Thumbs.db",
        f"[pipeline] note: {photos}: 1 subfolder, not read: site_b",
    ]
    say_unread_entries(cfg, ["synthetic"])  # the rows' test photos alone: still said
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_photos_without_labels_are_read_before_any_work_and_no_labels_said_one_way(
    tmp_path, capsys
):
    """The GAN's photos were decoded at the adapt stage, after the render and the source-only
    row; an empty task_data.test_lab was the current folder, its PNGs taken as masks, and a
    deleted one a traceback."""
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    photos = tmp_path / "real" / "train_img"
    (photos / "zz.jpg").write_bytes((photos / "0.jpg").read_bytes()[:300])
    rows = ("stages.task.sources=[synthetic,testtime]", f"task_data.test_img={photos}")
    bad = refused_here(capsys, tmp_path, *rows, "task_data.test_lab=null")
    assert "zz.jpg: unreadable or corrupt image" in bad
    assert not (tmp_path / "out" / "synthetic").exists()
    (photos / "zz.jpg").unlink()
    empty = refused_here(capsys, tmp_path, *rows, "task_data.test_lab=")
    assert "error: task_data.test_lab is empty: a mask folder, or null" in empty
    one_step = ("stages.task.trainer.max_steps=1", "stages.evaluate.eval_size=[64,32]")
    deleted = run_pipeline(tmp_path, *rows, "~task_data.test_lab", *one_step)
    assert deleted.returncode == 0, deleted.stderr[-3000:]
    # photos stretched to another shape: the setting named as the pipeline takes it
    assert "them; stages.evaluate.eval_size=null scores each photo at its own" in deleted.stdout
    assert (
        json.loads((tmp_path / "out" / "runs" / "synthetic" / "metrics.json").read_text())["scored"]
        is False
    )


def test_scenes_of_another_simulator_version_are_rendered_anew(tmp_path, capsys, monkeypatch):
    """Resumed after an upgrade that changed the scenes, the render stage kept the old
    shards and rendered the missing ones with the new simulator: one set of two simulators."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.pipeline import stage_render
    from synth.scene import SIMULATOR_VERSION

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pipeline", pipeline_overrides(tmp_path))
    stage_render(cfg)
    new = SIMULATOR_VERSION + 1
    monkeypatch.setattr("synth.render.SIMULATOR_VERSION", new)
    summary = stage_render(cfg)
    assert "render: settings changed (simulator_version), old scenes removed" in (
        capsys.readouterr().out
    )
    assert summary["skipped_shards"] == 0 and summary["complete"]
    assert read_card(tmp_path / "out" / "synthetic")["simulator_version"] == new


def test_each_gain_has_its_interval_over_the_test_photos_or_a_note_why_not(tmp_path):
    """A mean gain of +0.008 on 237 photos read as a gain, with nothing to say whether the
    test photos could tell the rows apart."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.evaluate import COUNT_FIELDS, write_rows
    from gan.pipeline_report import interval_line, with_intervals
    from gan.run_names import run_key

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pipeline", pipeline_overrides(tmp_path))
    runs = tmp_path / "out" / "runs"

    def scored(row: str, seed: int, tp: int, counted: bool = True) -> None:
        fields = {"f1": 0.5, "tol_f1": 0.5, "iou": 0.3, "crack_share_true": 0.1}
        rows = [
            {"stem": f"p{i}", **fields, "crack_share_pred": 0.1}
            | (dict(zip(COUNT_FIELDS, (tp + i % 3, 20, 20))) if counted else {})
            for i in range(30)
        ]
        (runs / run_key(row, seed, cfg.seed)).mkdir(parents=True)
        write_rows(runs / run_key(row, seed, cfg.seed) / "per_image.csv", rows)

    for seed in (0, 1):
        scored("adapted", seed, 60)
        scored("synthetic", seed, 50)
    scored("randomized", 0, 50, counted=False)  # scores from before the counts were kept
    checks = with_intervals(
        cfg,
        [
            {"row": "adapted", "against": "synthetic", "gain": 0.1, "seeds": [0, 1]},
            {"row": "adapted", "against": "randomized", "gain": 0.1, "seeds": [0]},
            {"row": "adapted", "against": "oracle", "share": 0.9},
        ],
    )
    low, high = checks[0]["interval"]
    assert 0 < low < high  # better on every photo
    assert checks[1]["interval"] is None and "interval" not in checks[2]
    line = interval_line(checks)
    assert "95% interval over the test photos: of each gain, from 2000 resamples" in line
    assert "None for adapted against randomized: their scores hold no per-photo counts" in line
    assert interval_line(checks[2:]) == ""


def import_from(folder: Path) -> str:
    """The override that imports a DeepCrack-shaped folder's training pairs as the scenes."""
    images, masks = folder / "train_img", folder / "train_lab"
    return f"stages.render.import_from={{image_dir:'{images}',mask_dir:'{masks}'}}"


def test_imported_renders_stand_in_for_the_scenes_and_new_files_are_new_training_data(
    tmp_path, capsys
):
    """A user's own renders (images + masks) imported by the render stage: the GAN's and the
    rows' records read the set's card, so changed files are new training data for both."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.pipeline import adapt_config, check_import, stage_render
    from gan.provenance import adapt_fingerprint
    from gan.rows import derive, source_overrides

    register_resolvers()
    mine = write_toy_real_folder(tmp_path / "mine", n=6, h=48, w=64)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pipeline", [*pipeline_overrides(tmp_path), import_from(mine)])
    out = tmp_path / "out" / "synthetic"

    def seen() -> tuple[dict, dict]:
        return data_fingerprint(derive(cfg, source_overrides("synthetic"))), adapt_fingerprint(
            adapt_config(cfg)
        )

    assert stage_render(cfg)["imported_samples"] == 6
    assert read_card(out)["kind"] == "imported" and len(list(out.glob("shard-*"))) == 2
    before = seen()
    assert stage_render(cfg)["imported_shards"] == 0
    assert "render: imported, complete, skipped" in capsys.readouterr().out
    assert seen() == before

    cv2.imwrite(str(mine / "train_lab" / "2.png"), np.zeros((48, 64), np.uint8))  # corrected
    assert stage_render(cfg)["imported_shards"] == 2
    said = capsys.readouterr().out
    assert (
        "render: imported files or settings changed (contents.mask_dir, listings.mask_dir)" in said
    )
    after = seen()
    assert after[0] != before[0] and after[1] != before[1]

    # back to our simulator: the imported scenes go, rendered anew
    cfg.stages.render.import_from = None
    assert stage_render(cfg)["rendered_samples"] == 6
    assert "render: settings changed (" in capsys.readouterr().out
    assert read_card(out)["kind"] == "synthetic"

    # a folder that is not there: one line, before any work
    cfg.stages.render.import_from = {"image_dir": str(mine / "train_img"), "mask_dir": "nope"}
    with pytest.raises(Exception, match=r"nope: mask folder not found"):
        check_import(cfg)


def test_the_render_stage_imports_with_its_workers_and_refuses_a_bad_count(tmp_path, monkeypatch):
    """``stages.render.workers`` went unused by an import: one process read and wrote it."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers
    from gan.pipeline import check_import, stage_render
    from synth import render

    started: list[int] = []

    class Pool(render.ProcessPoolExecutor):
        def __init__(self, workers, *args, **kwargs) -> None:
            started.append(workers)
            super().__init__(workers, *args, **kwargs)

    monkeypatch.setattr(render, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    register_resolvers()
    mine = write_toy_real_folder(tmp_path / "mine", n=4, h=48, w=64)
    overrides = [*pipeline_overrides(tmp_path), import_from(mine), "stages.render.shard_size=2"]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("pipeline", [*overrides, "stages.render.workers=2"])
    assert stage_render(cfg)["imported_samples"] == 4 and started == [2]
    cfg.stages.render.workers = -1
    with pytest.raises(ConfigError, match=r"^stages.render.workers=-1: expected a whole number"):
        check_import(cfg)


def test_the_pipeline_runs_on_imported_renders_and_redoes_the_gan_and_rows_on_new_files(
    tmp_path,
):
    write_toy_real_folder(tmp_path / "real", n=4, h=48, w=64)
    mine = write_toy_real_folder(tmp_path / "mine", n=6, h=48, w=64)
    rows = "stages.task.sources=[synthetic,adapted]"
    first = run_pipeline(tmp_path, rows, import_from(mine))
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"render: 6 samples imported from {mine / 'train_img'}" in first.stdout
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    assert f"Scenes: imported from {(mine / 'train_img').resolve()} (masks " in report
    assert "synthetic samples (your imported renders)" in report
    assert (
        "| adapted |" in report and (tmp_path / "out" / "report" / "grid_synthetic.png").is_file()
    )

    cv2.imwrite(str(mine / "train_img" / "6.jpg"), cv2.imread(str(mine / "train_img" / "0.jpg")))
    shutil.copy(mine / "train_lab" / "0.png", mine / "train_lab" / "6.png")  # a pair added
    again = run_pipeline(tmp_path, rows, import_from(mine))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "render: imported files or settings changed (" in again.stdout
    assert "render: 7 samples imported from" in again.stdout
    for stage in ("adapt", "translate", "task[synthetic]", "task[adapted]"):
        assert f"{stage}: complete, skipped" not in again.stdout, again.stdout
    assert "adapt: training data changed, old outputs removed" in again.stdout
    assert "task[synthetic]: training data changed, old outputs removed" in again.stdout
    assert len(list((tmp_path / "out" / "adapted").glob("shard-*/image/*.png"))) == 7
