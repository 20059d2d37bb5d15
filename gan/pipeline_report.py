"""The pipeline's last stage: the report of every row, with its figures and verdicts."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from gan.checkpoint import UnsafeCheckpointError, load_checkpoint
from gan.compare import INTERVAL_DRAWS, f1_gain_interval, paired_counts
from gan.data import checked_size
from gan.evaluate import code_digest
from gan.loggers import clear_earlier_run, run_log_files
from gan.report import INTERVAL_TITLE, goal_checks, log_report, summary_markdown, write_report
from gan.report_figures import (
    RowModel,
    error_grid,
    errors_title,
    prediction_grid,
    sample_grids,
)
from gan.rows import (
    TEST_TIME_ROWS,
    derive,
    needs_adapted,
    needs_fda,
    needs_render,
    report_goal,
    scored,
    scored_or_segmented,
    task_seeds,
)
from gan.run_names import run_key
from gan.runner import build_loggers, close_runs, log_config, wandb_run_id
from gan.stage_outputs import dirs, log, task_checkpoint
from gan.stage_times import look
from synth.digests import contents_digest
from synth.io import DataError, read_card, read_json, write_json_atomic
from synth.render import versions

# Recorded in the report beside the scores: these, with the renderer's and the CPU's vector
# unit, decide the numbers (one commit and seed gave oracle F1 0.789 on one machine, 0.805 on
# another: docs/experiments.md, "A fresh machine").
TRAINING_PACKAGES = ("torch", "torchvision", "kornia", "lightning", "torchmetrics")


def first_seed_runs(cfg: DictConfig, sources: list[str], said: list[str]) -> dict[str, RowModel]:
    """Each row's first-seed run, for rows that still have their scores and model: the
    testtime row's model is its training row's, behind the GAN's generator. A checkpoint cut
    short (a copy, a full disk) or missing leaves its row out of the figures, said in one
    line (also into ``said``, for the report); the row's scores, read from its metrics.json,
    stay in the report."""
    seed = task_seeds(cfg)[0]
    runs = {}
    for source in sources:
        trained_by = run_key(TEST_TIME_ROWS.get(source, source), seed, cfg.seed)
        model = task_checkpoint(cfg, trained_by)
        # what to delete to retrain each file: the run's checkpoints and its scores
        retrain = {model: [model.parent, dirs(cfg)["runs"] / trained_by]}
        generator = dirs(cfg)["adapt_ckpt"] if source in TEST_TIME_ROWS else None
        if generator is not None:
            retrain[generator] = [generator.parent]
        scores = dirs(cfg)["runs"] / run_key(source, seed, cfg.seed) / "per_image.csv"
        missing = [f for f in (scores, *retrain) if not f.is_file()]
        if missing:  # deleted by hand: the row was left out without a word
            why = f"{missing[0]} is missing"
            leave_out(source, why, retrain.get(missing[0], [scores.parent]), said)
        elif all(is_whole(f, source, delete, said) for f, delete in retrain.items()):
            runs[source] = RowModel(scores, model, generator)
    return runs


def is_whole(ckpt: Path, row: str, retrain: list[Path], said: list[str]) -> bool:
    """Whether a checkpoint the figures load reads to its end; if not, one line says so."""
    try:
        load_checkpoint(ckpt, mmap=True)
        return True
    except UnsafeCheckpointError as err:
        leave_out(row, str(err), retrain, said)
        return False


def leave_out(row: str, why: str, retrain: list[Path], said: list[str]) -> None:
    said.append(
        f"{why}; the figures leave the {row} row out (its scores stand); "
        f"delete {' and '.join(map(str, retrain))} to retrain it"
    )
    log(f"report: {said[-1]}")


#: The figures report_figures draws into the report folder, besides the sample sheets
#: (grid_<folder>.png); report.html shows them where they lie.
FIGURE_FILES = ("predictions.png", "errors.png")


def report_figures(
    cfg: DictConfig, sources: list[str], said: list[str] | None = None
) -> dict[str, Path]:
    """The report's figures, by title: sample sheets of each set, predictions on real test
    photos, and the error map of the photos the reference row wins by most. Why a figure
    or a row of one is missing goes to the console and into ``said`` (the report's notes:
    it had been the console's alone)."""
    said = [] if said is None else said
    d, r, e = dirs(cfg), cfg.stages.report, cfg.stages.evaluate
    for old in [*d["report"].glob("grid_*.png"), *(d["report"] / n for n in FIGURE_FILES)]:
        old.unlink(missing_ok=True)  # an earlier report's: a set or row this one may not show
    made = {  # the sets this report's rows were trained on, each with what made it
        scenes_title(cfg): (d["synthetic"], needs_render),
        "adapted samples (same scenes, masks carried)": (d["adapted"], needs_adapted),
        "FDA samples (same scenes, low frequencies from real photos)": (d["fda"], needs_fda),
    }
    sets = {t: f for t, (f, needs) in made.items() if any(needs(cfg, s) for s in sources)}
    sets["real training photos (unlabeled)"] = Path(cfg.paths.data_dir) / "train_img"
    figures = sample_grids(sets, d["report"], cfg.synth, r.num_samples, cfg.seed)
    seed = task_seeds(cfg)[0]  # the error map's seed: both figures draw the same models
    overlays = {s: d["runs"] / run_key(s, seed, cfg.seed) / "overlays" for s in sources}
    pred = prediction_grid(overlays, d["report"] / FIGURE_FILES[0], truth=scored(cfg))
    if pred:
        on = "real test images" if scored(cfg) else "the photos"
        figures[f"predictions on {on} (red: crack)"] = pred
    else:
        said.append(
            "no predictions figure: the rows' evaluation overlays share no test photo "
            f"at one size (stages.evaluate.num_overlays={e.num_overlays}; a row keeps the "
            "overlays it was scored with)"
        )
        log(f"report: {said[-1]}")
    if not scored(cfg):  # the error map colours errors against the labels
        return figures
    test = (cfg.task_data.test_img, cfg.task_data.test_lab)
    runs = first_seed_runs(cfg, sources, said)
    errors = error_grid(runs, r.goal.reference, test, e, d["report"] / FIGURE_FILES[1])
    if errors:
        figures[errors_title(runs, r.goal.reference)] = errors
    return figures


def goal_rows_not_run(goal: dict, results: dict[str, dict]) -> str:
    """A note naming the goal's rows this run left out: their verdicts are missing from the
    report, and a reader should know it was the config (stages.task.sources), not a failure
    (the main job's default leaves out selftrained, which the goal names)."""
    named = [*goal["ours"], *goal["baselines"], goal["reference"]]
    missing = [row for row in dict.fromkeys(named) if row not in results]
    if not missing:
        return ""
    return (
        f" Rows of stages.report.goal not in stages.task.sources, so no verdict of them or "
        "against them: "
        f"{', '.join(missing)}."
    )


def with_intervals(cfg: DictConfig, checks: list[dict]) -> list[dict]:
    """Each gain's 95% interval over the test photos (``interval``, gan.compare's paired
    bootstrap over the seeds the check paired), or None where a run's scores hold no
    per-photo counts (scored before session 51)."""
    runs = dirs(cfg)["runs"]
    for check in (c for c in checks if "gain" in c):
        pairs = paired_counts(
            [
                (
                    runs / run_key(check["row"], seed, cfg.seed),
                    runs / run_key(check["against"], seed, cfg.seed),
                )
                for seed in check["seeds"]
            ]
        )
        interval = f1_gain_interval(pairs) if pairs else None
        check["interval"] = None if interval is None else [round(end, 4) for end in interval]
    return checks


def interval_line(checks: list[dict]) -> str:
    """What the goal table's intervals measure, and which gains have none."""
    gains = [c for c in checks if "gain" in c]
    if not gains:
        return ""
    line = (
        f" {INTERVAL_TITLE[0].upper()}{INTERVAL_TITLE[1:]}: of each gain, from "
        f"{INTERVAL_DRAWS} resamples of the photos (the same draws for every seed); it "
        "measures the choice of test photos, not the spread over seeds, and one that spans 0 "
        "means these photos cannot tell the two rows apart."
    )
    without = [f"{c['row']} against {c['against']}" for c in gains if c.get("interval") is None]
    if without:
        line += (
            f" None for {', '.join(without)}: their scores hold no per-photo counts (scored "
            "before session 51); a row whose runs/<row>/metrics.json is deleted is scored "
            "again, with them, on the next run (its trained model is kept)."
        )
    return line


def rows_settings(cfg: DictConfig) -> str:
    """What the rows ran with, where the config below reads otherwise: its top-level
    ``trainer.max_steps`` and ``task_data.eval_size`` are defaults the stages override, and the
    table's seed column is a count, not the seeds."""
    seeds = task_seeds(cfg)
    return (
        f"Each trained row: {cfg.stages.task.trainer.max_steps} steps "
        f"(stages.task.trainer.max_steps) with seeds {seeds}, "
        f"{scored_or_segmented(cfg)} as stages.evaluate says; "
        f"the figures draw seed {seeds[0]}'s models."
    )


def made_by() -> dict:
    """When the report was made, and the overrides of the command that made it: a report left
    by an earlier run (a rerun stopped before its report stage, or run with other settings)
    had read as the last command's."""
    made = {"made_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if HydraConfig.initialized():
        made["overrides"] = list(HydraConfig.get().overrides.task)
        # the paths' variables set (conf/paths): without them the command read another folder
        made["environment"] = {k: v for k in PATH_VARIABLES if (v := os.environ.get(k))}
    return made


#: The environment variables conf/paths reads (an empty one means the default).
PATH_VARIABLES = ("SIM2REAL_ROOT", "SIM2REAL_DATA_DIR", "SIM2REAL_OUTPUT_DIR")

#: The environment variables that decide where the report's run logs it (``WANDB_MODE`` over
#: ``logger.wandb.offline``, ``disabled`` included): a rerun with another draws and logs the
#: report again (one kept after a ``WANDB_MODE=disabled`` run was never logged to W&B).
TRACKER_VARIABLES = ("WANDB_MODE",)


def made_line(made: dict) -> str:
    when = made["made_at"].replace("T", " ").replace("+00:00", " UTC")
    if "overrides" not in made:
        return f"Made {when}."
    env = [f"{k}={shlex.quote(v)}" for k, v in made.get("environment", {}).items()]
    command = shlex.join(["python", "tools/pipeline.py", *made["overrides"]])
    return f"Made {when} by `{' '.join([*env, command])}`."


def test_set_line(cfg: DictConfig, at: str, photos: int) -> str:
    """What the rows were measured on, and how many photos (the rows' ``num_images``): the
    labelled test set, or photos with no labels."""
    folder = f"{cfg.task_data.test_img} ({photos} photo{'s' * (photos != 1)})"
    if scored(cfg):
        return f"Real test set: {folder}, {at}."
    return (
        f"Photos without labels (task_data.test_lab=null): {folder}, {at}. "
        "Nothing is scored: each row's model segmented them (masks/ in its folder under "
        f"{dirs(cfg)['runs']}), and the table gives the share of their pixels it calls crack. "
        "Without labels the rows cannot be ranked here: on DeepCrack's labelled test set the "
        "testtime row scored best, then adapted (README); labelling a few photos (test_lab) "
        "scores them all."
    )


def scenes_title(cfg: DictConfig) -> str:
    """The scenes' sample sheet's title: imported renders were titled "synthetic samples",
    as if our simulator had made them."""
    imported = read_card(dirs(cfg)["synthetic"]).get("imported_from")
    return "synthetic samples" + (" (your imported renders)" if imported else "")


def scenes_line(cfg: DictConfig, sources: list[str]) -> str:
    """Where the scenes the rows trained on came from, where not from our simulator: the
    user's own renders, imported (their folder from the set's card, which the rows'
    records hold). The config below still shows the simulator's settings, unused."""
    if not any(needs_render(cfg, s) for s in sources):
        return ""
    source = read_card(dirs(cfg)["synthetic"]).get("imported_from")
    if not source:
        return ""
    return (
        f" Scenes: imported from {source['images']} (masks {source['masks']}), not rendered "
        "by our simulator (its synth settings below were not used)."
    )


def photos_measured(rows: list[dict]) -> int:
    """How many photos the rows scored or segmented (each row's ``num_images``: the same
    folder, so the same count; the largest where a row's record lacks it)."""
    return max((int(row.get("num_images") or 0) for row in rows), default=0)


def rows_agreement(cfg: DictConfig, rows: list[str]) -> dict[str, float | None]:
    """Without labels, the crack IoU between each pair of rows' masks of the photos (the
    figures' seed, gan.compare.mask_agreement); {} where fewer than two rows segmented."""
    from gan.compare import mask_agreement

    seed = task_seeds(cfg)[0]
    folders = {row: dirs(cfg)["runs"] / run_key(row, seed, cfg.seed) / "masks" for row in rows}
    folders = {row: folder for row, folder in folders.items() if folder.is_dir()}
    return mask_agreement(folders) if len(folders) > 1 else {}


#: A pair of rows that called no pixel crack has no IoU: a bare "n/a" left the user guessing
#: whether the measure had failed.
NO_CRACK = "n/a (neither called any pixel crack)"


def agreement_line(agreement: dict[str, float | None], seed: int) -> str:
    said = ", ".join(
        f"{pair} {NO_CRACK if v is None else f'{v:.2f}'}" for pair, v in agreement.items()
    )
    return (
        f" Agreement between the rows' masks (crack IoU pooled over the photos, seed {seed}'s "
        f"models): {said}; the lower, the more two rows' models differ on these photos (a "
        "measure of difference, not of which is right)."
    )


def report_loggers(cfg: DictConfig, track: DictConfig) -> list:
    """The report run's loggers (``track``: its config). Its W&B run is the one the report
    folder recorded (gan.runner.wandb_run_id, as a resumed training's), so rerunning the
    pipeline updates that run, where each invocation had added one more ``-report`` run to
    the project; a new outputs folder gets a new run."""
    return build_loggers(track, wandb_run_id(track, dirs(cfg)["report"], resuming=True))


#: Beside the report, written last: a digest of each part it was made from
#: (``report_inputs``), the look of each file it wrote (its trackers' too) and its summary.
MADE_FROM = ".made_from.json"

#: The modules whose code draws the page and its figures: an upgrade that changes one
#: redraws the report (``gan.evaluate.code_digest``).
REPORT_CODE = (
    "gan.pipeline_report",
    "gan.report",
    "gan.report_figures",
    "gan.rows",
    "gan.compare",
    "gan.evaluate",
    "gan.translate",
    "gan.visual",
    "synth.preview",
)


def drawn_from(cfg: DictConfig, sources: list[str]) -> dict:
    """What the figures and notes read besides the rows' scores and the settings: the sets'
    cards (rewritten whenever a set is), the real photos' and labels' contents (their
    digests are kept across runs, so none is read again) and each run's per-photo scores,
    overlays, masks and model by their look (inode, size, time)."""
    d, data = dirs(cfg), Path(cfg.paths.data_dir)
    found: dict = {str(f): read_card(f) for f in (d["synthetic"], d["adapted"], d["fda"])}
    real = (data / "train_img", cfg.task_data.test_img, cfg.task_data.test_lab)
    found |= {str(f): contents_digest(f) for f in real if f and Path(f).is_dir()}
    files = [d["adapt_ckpt"]] if any(s in TEST_TIME_ROWS for s in sources) else []
    for source in sources:
        for seed in task_seeds(cfg):
            run = d["runs"] / run_key(source, seed, cfg.seed)
            files += [run / "per_image.csv", *files_in(run / "overlays"), *files_in(run / "masks")]
            files.append(
                task_checkpoint(cfg, run_key(TEST_TIME_ROWS.get(source, source), seed, cfg.seed))
            )
    return found | {str(f): look(f) for f in files}


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def report_inputs(
    cfg: DictConfig, results: dict[str, dict], made: dict, env: dict, stage_seconds: dict
) -> dict[str, str]:
    """A digest of each part the report is made from, by what a change to it means: what the
    page shows (scores, settings, command, stage times, versions), how it is drawn (the
    code), what its figures and notes read (``drawn_from``), and where its trackers log it
    (``TRACKER_VARIABLES``). The time it was made is not one: a report kept is the one made
    then."""
    parts = {
        "rows' scores": results,
        "settings": OmegaConf.to_yaml(cfg, resolve=True),
        "command": {k: v for k, v in made.items() if k != "made_at"},
        "trackers' mode": {k: os.environ.get(k) for k in TRACKER_VARIABLES},
        "stage times": stage_seconds,
        "versions": env,
        "report code": code_digest(REPORT_CODE),
        "figures' data": drawn_from(cfg, list(results)),
    }
    return {
        name: hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()
        for name, part in parts.items()
    }


def earlier_report(report_dir: Path) -> dict | None:
    """The report in place's ``MADE_FROM`` record; None where it has none (a report from
    before reports kept one, or one cut short) or it is damaged."""
    try:
        record = read_json(report_dir / MADE_FROM)
    except DataError:
        return None
    return record if isinstance(record, dict) else None


def why_redrawn(earlier: dict, inputs: dict[str, str]) -> str:
    """Why the report in place, made from ``earlier``'s inputs, is drawn again; "" where it
    stands: the same inputs, and every file it wrote as it wrote it (a figure deleted or
    edited, its tracker's metrics.csv removed, is made again)."""
    made_from = earlier.get("inputs")
    made_from = made_from if isinstance(made_from, dict) else {}
    changed = [part for part, digest in inputs.items() if made_from.get(part) != digest]
    if changed:
        return f"its {', '.join(changed)} changed"
    outputs = earlier.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return "no record of its files"
    gone = [path for path, was in outputs.items() if look(Path(path)) != was]
    return f"{gone[0]} is missing or changed" if gone else ""


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"


def times_text(times: dict[str, float | None]) -> str:
    """``render 3.6, adapt 500, ...``: stage times as the page and the console say them."""
    return ", ".join(f"{stage} {seconds_text(s)}" for stage, s in times.items())


def stage_times_line(made: dict[str, float | None]) -> str:
    """The page's stage times: each as made (gan.stage_times), not this invocation's, in
    which a stage found complete took about 0 (a complete rerun's page said 0 for all)."""
    times = times_text(made)
    unknown = " (?: made before stage times were kept)" if None in made.values() else ""
    return (
        f"Stage wall times as made (s): {times}{unknown}; each the time of the invocation that "
        "made the stage's output, with that of any stopped in it before (a resumed stage counts "
        "both parts, a stage found complete keeps its time); the rows' training times over "
        "every resume are in the table."
    )


def stage_report(
    cfg: DictConfig,
    results: dict[str, dict],
    stage_seconds: dict[str, float | None],
    this_run: dict[str, float],
) -> Path:
    """One HTML page and a Markdown summary of every row, its figures and the goal's verdicts,
    with results.json for scripts; the same go to the run's loggers. Returns the HTML page.

    ``stage_seconds``: each stage's time as made (gan.stage_times); ``this_run``: this
    invocation's, said on the console. The report in place stands, nothing drawn or logged
    again, where it was made from the same inputs (``report_inputs``) and every file it
    wrote is as it wrote it (``why_redrawn``): a complete rerun redrew every figure, 5.6 s
    of the main job's 15 s rerun, and logged the same report once more."""
    report_dir = dirs(cfg)["report"]
    report_dir.mkdir(parents=True, exist_ok=True)
    made = made_by()
    env = versions(*TRAINING_PACKAGES) | {"cpu": torch.backends.cpu.get_cpu_capability()}
    inputs = report_inputs(cfg, results, made, env, stage_seconds)
    html_path, earlier = report_dir / "report.html", earlier_report(report_dir)
    why = why_redrawn(earlier, inputs) if earlier else ""
    this = f"this run's stages (s): {times_text(this_run)}"
    if earlier and not why:
        log(f"report: complete, skipped ({html_path}); {this}")
        print(earlier.get("summary", ""), flush=True)
        return html_path
    (report_dir / MADE_FROM).unlink(missing_ok=True)  # vouches for none while this is drawn
    rows = [{"source": s, **m, "wall_s": m.get("train_seconds", 0.0)} for s, m in results.items()]
    figures_said: list[str] = []
    images = report_figures(cfg, list(results), figures_said)
    size = checked_size(cfg.stages.evaluate.eval_size, "stages.evaluate.eval_size")
    at = f"resized to {size[0]}x{size[1]} (HxW)" if size else "each image at its own size"
    notes = (
        f"{made_line(made)} {test_set_line(cfg, at, photos_measured(rows))} Trained rows differ only in "
        f"the task model's training data; no row but 'oracle' saw a real label. "
        f"{rows_settings(cfg)}{scenes_line(cfg, list(results))} {stage_times_line(stage_seconds)}"
    )
    notes += rows_notes(cfg, list(results))
    goal = report_goal(cfg)
    agreement = {} if scored(cfg) else rows_agreement(cfg, list(results))
    if scored(cfg):
        notes += goal_rows_not_run(goal, results)
    elif agreement:
        notes += agreement_line(agreement, task_seeds(cfg)[0])
    checks = with_intervals(cfg, goal_checks(rows, **goal)) if scored(cfg) else []
    notes += interval_line(checks)
    notes += "".join(f" Figures: {line[0].upper()}{line[1:]}." for line in figures_said)
    notes += " Versions: " + ", ".join(f"{name} {v}" for name, v in env.items()) + "."
    html_path, md_path = write_report(
        report_dir, rows, OmegaConf.to_yaml(cfg, resolve=True), images, notes, checks
    )
    write_json_atomic(
        report_dir / "results.json",
        {"rows": rows, "goal": checks, "stage_seconds": stage_seconds, "wall_seconds": this_run}
        | {"versions": env, **made}
        | ({"agreement": agreement} if agreement else {}),
    )
    redrawn = f" (redrawn: {why})" if why else ""
    log(f"report: {html_path} and {md_path}{redrawn}; {this}")
    summary = summary_markdown(rows, notes, checks)
    logged = log_to_trackers(cfg, rows, checks, images, summary)
    wrote = [html_path, md_path, report_dir / "results.json", *images.values(), *logged]
    record = {"inputs": inputs, "outputs": {str(f): look(Path(f)) for f in wrote}}
    write_json_atomic(report_dir / MADE_FROM, record | {"summary": summary})  # last: all made
    print(summary, flush=True)
    return html_path


def rows_notes(cfg: DictConfig, rows: list[str]) -> str:
    """What the selftrained, testtime and fda rows are, and how far each translation moved
    the scenes toward the photos (measured into its set's card)."""
    from gan.translate import GAP_KEYS, describe_gap

    notes = ""
    if "selftrained" in rows:
        repeats = cfg.stages.self_train.photo_repeats
        notes += (
            f" 'selftrained': the {cfg.stages.self_train.teacher} row's training data plus the "
            f"unlabeled real training photos, labeled by that row's model of the same seed"
            + (f" and pooled {repeats} times." if repeats > 1 else ".")
        )
    gap = read_card(dirs(cfg)["adapted"]).get("domain_gap", {})
    if set(GAP_KEYS) <= set(gap) and any(needs_adapted(cfg, s) for s in rows):
        notes += " " + describe_gap(gap)
    if "testtime" in rows:
        notes += (
            " 'testtime': the synthetic row's model of each seed, trained on raw scenes, "
            f"{'scoring the test' if scored(cfg) else 'segmenting the'} photos after the GAN's "
            "real-to-synthetic generator (g_ba) "
            "translated them toward the simulator; nothing retrained."
        )
    if any(needs_fda(cfg, s) for s in rows):
        notes += (
            f" 'fda': a task model trained on the synthetic scenes with the low-frequency "
            f"Fourier amplitude of real photo crops (beta {cfg.stages.fda.beta}), a "
            "translation with nothing trained."
        )
        fda_gap = read_card(dirs(cfg)["fda"]).get("domain_gap", {})
        if set(GAP_KEYS) <= set(fda_gap):  # measured as the GAN's set is, and left out
            notes += " " + describe_gap(fda_gap, "FDA")
    return notes


def log_to_trackers(
    cfg: DictConfig, rows: list[dict], checks: list[dict], images: dict, summary: str
) -> list[Path]:
    """The report into the report run's loggers, made whole each time (its records too: not
    one more step-0 row or curve point a rerun); returns the files they wrote in their CSV
    and TensorBoard folders, which a kept report needs in place."""
    track = derive(cfg, {"run_name": f"{cfg.run_name}-report"})
    loggers = report_loggers(cfg, track)
    clear_earlier_run(loggers)
    if loggers:
        log_config(loggers, track)
        log_report(loggers, rows, checks, images, summary, Path(cfg.paths.log_dir) / track.run_name)
        close_runs(loggers)
    return run_log_files(loggers)
