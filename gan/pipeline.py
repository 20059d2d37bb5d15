"""The end-to-end sim-to-real pipeline: render -> adapt -> translate -> train task -> report.

Every stage writes to a stable place under ``paths.output_dir`` / ``paths.ckpt_dir`` and is
skipped when its output is complete, so rerunning the same command after a kill redoes only
what is missing (each stage also resumes internally: shards, ``last.ckpt``).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from gan.callbacks import train_seconds
from gan.checkpoint import UnsafeCheckpointError, load_checkpoint
from gan.data import as_names, checked_size, is_count
from gan.evaluate import evaluate_folder, pick_device
from gan.fid import check_inception_weights
from gan.provenance import (
    DATA_ROOT,
    OUTPUT_ROOT,
    Roots,
    adapt_fingerprint,
    data_fingerprint,
    described_data,
    folder_digests,
    resolve_folders,
    settings_fingerprint,
    what_changed,
    with_added_digests,
    with_new_defaults,
    without_locations,
)
from gan.report import (
    METRICS,
    goal_checks,
    log_report,
    mean_over_seeds,
    summary_markdown,
    write_report,
)
from gan.report_figures import (
    ERRORS_TITLE,
    ERRORS_TITLE_LOWEST,
    RowModel,
    error_grid,
    prediction_grid,
    sample_grids,
)
from gan.run_names import run_key
from gan.runner import build_model, close_runs, fit, instantiate_group, log_config, starts_over
from gan.task_data import train_dirs
from synth.digests import digest_cache, file_digest
from synth.distributions import ConfigError
from synth.io import CARD, DataError, read_card, read_json, write_json_atomic
from synth.render import render_dataset, spec_changes, versions

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
SOURCES = (
    "synthetic",
    "randomized",
    "adapted",
    "adapted_randomized",
    "mixed",
    "fda",
    "selftrained",
    "oracle",
)
NEEDS_ADAPTED = ("adapted", "adapted_randomized", "mixed")  # train on the GAN's translations
NEEDS_FDA = ("fda",)  # train on the spectral swap's translations
# zero-label rows that can teach (selftrained cannot teach itself; oracle saw real labels)
TEACHERS = tuple(s for s in SOURCES if s not in ("selftrained", "oracle"))
# rows that train nothing: 'testtime' scores the source-only row's model on test photos sent
# through the GAN's real-to-synthetic generator
TEST_TIME_ROWS = {"testtime": "synthetic"}
ROWS = (*SOURCES, *TEST_TIME_ROWS)


def log(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


def derive(cfg: DictConfig, overrides: dict | DictConfig) -> DictConfig:
    """A stage's config: the pipeline config with that stage's overrides merged in."""
    stage = copy.deepcopy(cfg)
    with open_dict(stage):
        return OmegaConf.merge(stage, overrides)  # type: ignore[return-value]


def source_overrides(name: str) -> DictConfig:
    """conf/source/<name>.yaml: what makes a task run 'synthetic', 'adapted', ... ."""
    path = CONF_DIR / "source" / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"stages.task.sources: unknown source {name!r} (no {path})")
    return OmegaConf.load(path)


# Recorded in the report beside the scores: these, with the renderer's and the CPU's vector
# unit, decide the numbers (one commit and seed gave oracle F1 0.789 on one machine, 0.805 on
# another: README, "A fresh machine").
TRAINING_PACKAGES = ("torch", "torchvision", "kornia", "lightning", "torchmetrics")


def dirs(cfg: DictConfig) -> dict[str, Path]:
    out = Path(cfg.paths.output_dir)
    return {
        "synthetic": out / "synthetic",
        "adapted": out / "adapted",
        "fda": out / "fda",
        "pseudo": out / "pseudo",
        "runs": out / "runs",
        "report": out / "report",
        "adapt_ckpt": Path(cfg.paths.ckpt_dir) / cfg.stages.adapt.run_name / "last.ckpt",
    }


# --------------------------------------------------------------------------- stages


def stage_render(cfg: DictConfig) -> dict:
    """Always asks the renderer, which skips complete shards. Scenes rendered with other
    settings (simulator, seed, count) are removed and rendered anew, as every later stage
    redoes what changed; every stage that read them then finds its training data changed."""
    r = cfg.stages.render
    out = dirs(cfg)["synthetic"]
    changed = spec_changes(out, cfg.synth, r.num_samples, r.shard_size, r.seed)
    if changed:
        why = f"settings changed ({', '.join(changed[:4])})"
        refuse_linked_outputs("render", [out], why)
        log(f"render: {why}, old scenes removed ({out})")
        shutil.rmtree(out)
    summary = render_dataset(
        cfg.synth, out, r.num_samples, r.shard_size, r.seed, r.workers, progress=r.progress
    )
    if summary["rendered_shards"] == 0:
        log(f"render: complete, skipped ({out})")
    else:
        kept = summary["skipped_shards"]
        resumed = f" (resuming: {kept} shards were complete)" if kept else ""
        log(f"render: {summary['rendered_samples']} samples -> {out}{resumed}")
    return summary


def checkpoint_step(path: Path) -> int:
    return int(load_checkpoint(path).get("global_step", 0)) if path.is_file() else 0


def resumed_at(step: int, steps: int) -> str:
    """What a stopped run left in last.ckpt (at ``step`` of ``steps``; 0: nothing), for the
    stage's first line."""
    if step >= steps:
        return f", trained (last.ckpt at step {step}), scored again"
    return f", resuming at step {step} (last.ckpt)" if step else ""


ADAPT_SETTINGS = ("gan", "gan_data", "seed", "trainer.max_steps", "trainer.precision")
TASK_SETTINGS = ("task", "task_data", "seed", "trainer.max_steps", "trainer.precision")


def stage_adapt(cfg: DictConfig) -> Path:
    a = cfg.stages.adapt
    ckpt = dirs(cfg)["adapt_ckpt"]
    stage = derive(cfg, {"run_name": a.run_name, "trainer": a.trainer, "ckpt_path": "last"})
    provenance = {
        "data": adapt_fingerprint(stage),
        "settings": settings_fingerprint(stage, ADAPT_SETTINGS),
    }
    record = ckpt.parent / "provenance.json"
    forget_stale("adapt", [ckpt.parent], record, provenance, record_roots(cfg))
    step = checkpoint_step(ckpt)  # read once: a GAN checkpoint is the largest file here
    if step >= a.trainer.max_steps:
        log(f"adapt: complete at step {a.trainer.max_steps}, skipped ({ckpt})")
        return ckpt
    done = resumed_at(step, a.trainer.max_steps)
    log(f"adapt: {a.trainer.max_steps} generator steps{done} -> {ckpt}")
    datamodule = instantiate(stage.gan_data)
    datamodule.setup("fit")
    trainer = fit(stage, build_model(stage, stage.gan), datamodule)
    close_runs(trainer.loggers)
    return ckpt


def stage_translate(cfg: DictConfig, ckpt: Path) -> dict:
    from gan.translate import translate_dataset

    d, t = dirs(cfg), cfg.stages.translate
    card = read_card(d["adapted"])
    current = card.get("translation", {}).get("checkpoint_sha256") == file_digest(ckpt)
    return translated_set(
        cfg,
        "translate",
        d["adapted"],
        current and same_source(card, d["synthetic"]),
        "made by another generator than the adapt stage's, or from other scenes",
        lambda: translate_dataset(
            ckpt, d["synthetic"], d["adapted"], t.batch_size, t.device, replace_stale=True
        ),
    )


def stage_fda(cfg: DictConfig) -> dict:
    """The training-free baseline: every scene with a real photo's low frequencies (gan.fda)."""
    from gan.fda import fda_dataset, fda_translation

    d, f = dirs(cfg), cfg.stages.fda
    card = read_card(d["fda"])
    wanted = fda_translation(f.real_dir, f.beta, f.seed)
    done = with_added_digests(card.get("translation", {}), wanted)  # as the rest vouches
    current = without_locations({k: done.get(k) for k in wanted}) == without_locations(wanted)
    current = current and same_source(card, d["synthetic"])
    if current and done != card.get("translation"):  # once: the card says it from now on
        write_json_atomic(d["fda"] / CARD, {**card, "translation": done})
    return translated_set(
        cfg,
        "fda",
        d["fda"],
        current,
        "made with another beta, seed or photo folder, or from other scenes",
        lambda: fda_dataset(
            d["synthetic"], d["fda"], f.real_dir, f.beta, f.seed, replace_stale=True
        ),
    )


def translated_set(
    cfg: DictConfig, name: str, out: Path, current: bool, why_stale: str, make: Callable
) -> dict:
    """Skip a finished translated set that is ``current``; else ``make`` it: resumed at the
    first missing shard when the shards on disk are current, made anew when they are not
    (``why_stale``), unless they are reached through a link (another run's). Then measured
    against the real photos, once (stages.translate.measure)."""
    from gan.translate import GAP_KEYS, is_complete

    card = read_card(out)
    if current and is_complete(card):
        log(f"{name}: complete, skipped ({out})")
    else:
        if card and not current:
            refuse_linked_outputs(name, [out], why_stale)
            log(f"{name}: {why_stale}, old images removed ({out})")
        log(f"{name}: {dirs(cfg)['synthetic']} -> {out}")
        card = make()
    measured = read_card(out).get("domain_gap", {})
    if cfg.stages.translate.measure.enabled and not set(GAP_KEYS) <= set(measured):
        measure_stage_translation(cfg, name, out)
    return card


def measure_stage_translation(cfg: DictConfig, name: str, out: Path) -> dict:
    """A translated set's distance to the real photos and its grey shifts, into its card."""
    from gan.translate import describe_gap, measure_translation

    d, m = dirs(cfg), cfg.stages.translate.measure
    gap = measure_translation(
        d["synthetic"], out, m.real_dir, m.inception_weights, m.max_images, m.size
    )
    log(f"{name}: {describe_gap(gap)}")
    return gap


def same_source(adapted_card: dict, synthetic_dir: Path) -> bool:
    """The translated set was made from the synthetic set now in place: its card is the
    source's card plus the translation's entries. A generator retrained on re-rendered scenes
    can come out byte-identical (it may draw only scenes the change left alone), so the
    generator's digest alone does not say the translations are current."""
    made_from = described_data(adapted_card, "translation")
    return made_from == described_data(read_card(synthetic_dir))


def record_roots(cfg: DictConfig) -> Roots:
    """The folders a stage's record names others relative to: outputs and real data."""
    return {OUTPUT_ROOT: Path(cfg.paths.output_dir), DATA_ROOT: Path(cfg.paths.data_dir)}


def forget_stale(
    name: str, made: list[Path], record: Path, provenance: dict, roots: Roots | None = None
) -> None:
    """Delete what a stage ``made`` (checkpoints, results) unless ``record`` says it was made
    from the same ``provenance`` (training data and settings, and the listing and contents of
    each real-data folder); then record the current one, with folders under ``roots`` (the
    outputs and real-data folders) relative to them.

    Without a record nothing can vouch for old outputs, so they go too: a changed simulator,
    translation or loss weight must never be met by a model, or a score, from before it.
    """
    provenance = json.loads(json.dumps(provenance, sort_keys=True, default=str))
    current = resolve_folders(provenance, roots)
    current.update(folder_digests(provenance, roots))
    old_record = read_json(record) if record.is_file() else None
    if old_record is not None:
        old_record = with_new_defaults(resolve_folders(old_record, roots), current)
        old_record = without_locations(old_record)
    current = without_locations(current)
    if old_record != current:
        refuse_linked_outputs(name, [*made, record.parent], what_changed(old_record, current))
        old = [path for path in made if path.exists()]
        if old:
            log(
                f"{name}: {what_changed(old_record, current)}, old outputs removed "
                f"({', '.join(map(str, old))})"
            )
        for path in old:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    record.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record, current)


def refuse_linked_outputs(name: str, places: list[Path], why_stale: str) -> None:
    """Stop before stale outputs reached through a link are deleted or re-recorded: a run
    folder linked in from another run (the README reuses oracle runs and translations so)
    belongs to that run, and removing it through the link would destroy that run's results."""
    linked = [path for path in dict.fromkeys(places) if path.is_symlink()]  # adapt: one folder
    if linked:
        raise ConfigError(
            f"{name}: {why_stale}, but its outputs are links to "
            f"another run's ({', '.join(f'{p} -> {p.readlink()}' for p in linked)}); "
            "remove the links to make them anew here, or rerun with that run's settings"
        )


def teacher_of(cfg: DictConfig) -> str:
    """The row whose models label the real photos for 'selftrained' (its band checked too)."""
    from gan.pseudo_label import check_band

    check_band(cfg.stages.self_train.low, cfg.stages.self_train.high)
    repeats = cfg.stages.self_train.photo_repeats
    if not is_count(repeats, 1):
        raise ConfigError(
            f"stages.self_train.photo_repeats={repeats!r}: a whole number >= 1 (how many times "
            "the pseudo-labeled photos are pooled with the teacher's training data)"
        )
    teacher = cfg.stages.self_train.teacher
    if teacher not in TEACHERS:
        raise ConfigError(
            f"stages.self_train.teacher={teacher!r}: choose a zero-label row {list(TEACHERS)}"
        )
    return teacher


LISTS = ("ours", "baselines")  # stages.report.goal's lists of rows


def report_goal(cfg: DictConfig) -> dict:
    """stages.report.goal as goal_checks' arguments, checked before any work is done, so a
    typo costs seconds rather than a finished run's report."""
    goal = OmegaConf.to_container(cfg.stages.report.goal)
    expected = {"ours", "baselines", "reference", "min_gain", "min_share"}
    if not isinstance(goal, dict) or set(goal) != expected:
        raise ConfigError(f"stages.report.goal: expected the keys {sorted(expected)}, got {goal}")
    unknown = [s for s in [*goal["ours"], *goal["baselines"], goal["reference"]] if s not in ROWS]
    if unknown:
        raise ConfigError(f"stages.report.goal: unknown rows {unknown}; choose from {list(ROWS)}")
    return goal


def training_row(cfg: DictConfig, source: str) -> str:
    """The row whose training data ``source`` trains on ('selftrained': its teacher's)."""
    return teacher_of(cfg) if source == "selftrained" else source


def needs_adapted(cfg: DictConfig, source: str) -> bool:
    return training_row(cfg, source) in NEEDS_ADAPTED


def needs_fda(cfg: DictConfig, source: str) -> bool:
    return training_row(cfg, source) in NEEDS_FDA


def needs_render(cfg: DictConfig, source: str) -> bool:
    """Every row but the oracle trains on rendered scenes (or, 'testtime', scores a model that
    did), so a run of the oracle alone renders nothing."""
    return training_row(cfg, source) != "oracle"


def task_source(cfg: DictConfig, source: str, seed: int) -> DictConfig:
    """conf/source/<source>.yaml, except that 'selftrained' is its teacher row's source (same
    data and augmentation) plus the real photos that row's model of this seed pseudo-labeled,
    pooled ``photo_repeats`` times: pooling weighs folders by size, so with many scenes and
    few photos the photos would otherwise be a small share of what the student sees."""
    if source != "selftrained":
        return source_overrides(source)
    teacher = teacher_of(cfg)
    pseudo = stage_pseudo_label(cfg, teacher_checkpoint(cfg, teacher, seed), teacher, seed)
    overrides = source_overrides(teacher)
    teacher_dirs = train_dirs(derive(cfg, overrides).task_data.train_dir)
    with open_dict(overrides):
        overrides.source_name = "selftrained"
        repeats = cfg.stages.self_train.photo_repeats
        overrides.task_data.train_dir = [*teacher_dirs, *[str(pseudo)] * repeats]
    return overrides


def task_checkpoint(cfg: DictConfig, key: str) -> Path:
    """Where stage_task leaves the model of run ``key`` (row, or row-seedN)."""
    return Path(cfg.paths.ckpt_dir) / f"{cfg.stages.task.run_prefix}-{key}" / "last.ckpt"


def teacher_checkpoint(cfg: DictConfig, teacher: str, seed: int) -> Path:
    """The teacher row's model for this seed, trained (and scored) first if it is missing."""
    stage_task(cfg, teacher, seed, quiet=teacher in cfg.stages.task.sources)
    key = run_key(teacher, seed, cfg.seed)
    ckpt = task_checkpoint(cfg, key)
    if not ckpt.is_file():
        metrics = dirs(cfg)["runs"] / key / "metrics.json"
        raise DataError(f"{ckpt}: the teacher's checkpoint is gone; delete {metrics} to retrain")
    return ckpt


def stage_pseudo_label(cfg: DictConfig, ckpt: Path, teacher: str, seed: int) -> Path:
    """The unlabeled real photos labeled by the teacher: skipped when complete for this teacher
    and band, redone when either changed, resumed shard by shard when cut short."""
    from gan.pseudo_label import pseudo_label_with_checkpoint, same_labels

    p = cfg.stages.self_train
    out = dirs(cfg)["pseudo"] / run_key(teacher, seed, cfg.seed)
    before = read_card(out)
    card = pseudo_label_with_checkpoint(
        ckpt,
        p.image_dir,
        out,
        p.device,
        low=p.low,
        high=p.high,
        shard_size=p.shard_size,
        batch_size=p.batch_size,
        replace_stale=True,
    )
    name = f"pseudo-label[{out.name}]"
    made = before.get("pseudo_labels")
    share_keys = ("crack_share", "ignore_share")  # in a card once every shard is written
    done = all(before.get(k) == card[k] for k in share_keys)
    if same_labels(made, card["pseudo_labels"]) and done:
        log(f"{name}: complete, skipped ({out})")
        return out
    if made is not None and not same_labels(made, card["pseudo_labels"]):
        log(f"{name}: photos, teacher or band changed, labels redone")
    shares = f"crack {card['crack_share']:.1%}, ignore {card['ignore_share']:.1%} of pixels"
    log(f"{name}: {p.image_dir} -> {out} ({shares})")
    return out


def stage_task(cfg: DictConfig, source: str, seed: int | None = None, quiet: bool = False) -> dict:
    """Train the task model on one source with one seed, then score it on the real test set.

    ``quiet``: no line for a run found complete (a teacher lookup after the teacher's own row).
    """
    t = cfg.stages.task
    seeds = task_seeds(cfg)
    seed = seeds[0] if seed is None else seed
    key = run_key(source, seed, cfg.seed)
    run_dir = dirs(cfg)["runs"] / key
    metrics_path = run_dir / "metrics.json"
    stage = derive(cfg, task_source(cfg, source, seed))
    stage = derive(stage, {"seed": seed, "run_name": f"{t.run_prefix}-{key}", "trainer": t.trainer})
    ckpt_dir = task_checkpoint(cfg, key).parent
    provenance = {
        "data": data_fingerprint(stage),
        "settings": settings_fingerprint(stage, TASK_SETTINGS),
    }
    made, record = [ckpt_dir, metrics_path], run_dir / "provenance.json"
    forget_stale(f"task[{key}]", made, record, provenance, record_roots(cfg))
    if metrics_path.is_file():
        scored = read_json(metrics_path)
        if scored.get("eval_size") == eval_size(cfg):
            if not quiet:
                log(f"task[{key}]: complete, skipped ({metrics_path})")
            return scored
        return score_again(cfg, stage, key, scored)
    on = " + ".join(train_dirs(stage.task_data.train_dir))
    done = (
        ", starting over (ckpt_path=null)"
        if starts_over(stage.get("ckpt_path"), ckpt_dir)
        else resumed_at(checkpoint_step(task_checkpoint(cfg, key)), t.trainer.max_steps)
    )
    log(f"task[{key}]: {t.trainer.max_steps} steps{done}, seed {seed}, on {on}")
    start = time.perf_counter()
    module = build_model(stage, stage.task)
    trainer = fit(stage, module, instantiate(stage.task_data))
    wall = time.perf_counter() - start
    module = module.to(pick_device(cfg.stages.evaluate.device)).eval()
    seconds = train_seconds(trainer)  # over every resume of the run, where the clock is on
    extra = {"steps": trainer.global_step, "train_seconds": seconds or round(wall, 1)}
    metrics = score_on_test(stage, module, run_dir, {"source": source, "seed": seed, **extra})
    if trainer.is_global_zero:  # the real-test scores beside the curves, in the run's tracker
        scores = {f"test/{m}": float(metrics[m]) for m in METRICS if m in metrics}
        for logger in trainer.loggers:
            logger.log_metrics(scores, step=trainer.global_step)
    close_runs(trainer.loggers)
    return metrics


def eval_size(cfg: DictConfig) -> list[int] | None:
    """stages.evaluate.eval_size as a row's metrics.json records it."""
    size = cfg.stages.evaluate.eval_size
    return list(size) if size else None


def score_again(cfg: DictConfig, stage: DictConfig, key: str, scored: dict) -> dict:
    """A trained row scored at another stages.evaluate.eval_size than its metrics.json says:
    the model stands (the size is no training setting), its scores are redone; before, the
    old scores stood under a report stating the new size."""
    from gan.evaluate import load_segmenter

    log(
        f"task[{key}]: trained, scored again at eval_size {eval_size(cfg)} "
        f"(scored at {scored.get('eval_size')})"
    )
    model = load_segmenter(task_checkpoint(cfg, key), pick_device(cfg.stages.evaluate.device))
    kept = {k: scored[k] for k in ("source", "seed", "steps", "train_seconds") if k in scored}
    return score_on_test(stage, model, dirs(cfg)["runs"] / key, kept)


def stage_test_time(cfg: DictConfig, row: str, gan: Path, seed: int) -> dict:
    """Score the model of ``row``'s training row (source-only) for ``seed`` on the test
    photos sent through the GAN's real-to-synthetic generator: nothing is trained, and the
    scores are redone whenever that model or the generator changes (their digests)."""
    from gan.evaluate import load_segmenter, reverse_generator

    trained_by = TEST_TIME_ROWS[row]
    model_ckpt = teacher_checkpoint(cfg, trained_by, seed)  # trained first when missing
    key = run_key(row, seed, cfg.seed)
    run_dir = dirs(cfg)["runs"] / key
    metrics_path = run_dir / "metrics.json"
    provenance = {  # nothing is trained: the scores stand for this model, generator and test
        "model": {"row": trained_by, "checkpoint_sha256": file_digest(model_ckpt)},
        "generator": {"direction": "b2a", "checkpoint_sha256": file_digest(gan)},
        "test": {
            "test_img": cfg.task_data.test_img,
            "test_lab": cfg.task_data.test_lab,
            "eval_size": eval_size(cfg),
        },
    }
    record = run_dir / "provenance.json"
    forget_stale(f"task[{key}]", [metrics_path], record, provenance, record_roots(cfg))
    if metrics_path.is_file():
        log(f"task[{key}]: complete, skipped ({metrics_path})")
        return read_json(metrics_path)
    log(f"task[{key}]: the {trained_by} model, seed {seed}, on test photos translated by {gan}")
    model = load_segmenter(model_ckpt, pick_device(cfg.stages.evaluate.device))
    trained = read_json(dirs(cfg)["runs"] / run_key(trained_by, seed, cfg.seed) / "metrics.json")
    extra = {"steps": trained.get("steps"), "train_seconds": 0.0, "model_row": trained_by}
    return score_on_test(
        cfg, model, run_dir, {"source": row, "seed": seed, **extra}, reverse_generator(gan)
    )


def score_on_test(
    cfg: DictConfig,
    model: torch.nn.Module,
    run_dir: Path,
    extra: dict,
    translate_with: torch.nn.Module | None = None,
) -> dict:
    """A row's model scored on the real test set as stages.evaluate says, into ``run_dir``."""
    e = cfg.stages.evaluate
    return evaluate_folder(
        model,
        cfg.task_data.test_img,
        cfg.task_data.test_lab,
        run_dir,
        eval_size=e.eval_size,
        batch_size=e.batch_size,
        num_overlays=e.num_overlays,
        extra=extra,
        translate_with=translate_with,
    )


def task_seeds(cfg: DictConfig) -> list[int]:
    """stages.task.seeds (null: the config's seed): distinct whole numbers, one model each."""
    seeds = cfg.stages.task.get("seeds")
    if seeds is None:
        return [int(cfg.seed)]
    if isinstance(seeds, (str, int)) or not seeds or not all(is_count(s, 0) for s in seeds):
        raise ConfigError(
            f"stages.task.seeds={seeds}: expected a list of whole numbers >= 0, e.g. [0,1,2]"
        )
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"stages.task.seeds={seeds}: seeds must be distinct")
    return seeds


# --------------------------------------------------------------------------- report


def first_seed_runs(cfg: DictConfig, sources: list[str]) -> dict[str, RowModel]:
    """Each row's first-seed run, for rows that still have their scores and model: the
    testtime row's model is its training row's, behind the GAN's generator. A checkpoint cut
    short (a copy, a full disk) leaves its row out of the figures, said in one line; the
    row's scores, read from its metrics.json, stay in the report."""
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
        if not (scores.is_file() and all(f.is_file() for f in retrain)):
            continue
        if all(is_whole(f, source, delete) for f, delete in retrain.items()):
            runs[source] = RowModel(scores, model, generator)
    return runs


def is_whole(ckpt: Path, row: str, retrain: list[Path]) -> bool:
    """Whether a checkpoint the figures load reads to its end; if not, one line says so."""
    try:
        load_checkpoint(ckpt, mmap=True)
        return True
    except UnsafeCheckpointError as err:
        log(
            f"report: {err}; the figures leave the {row} row out (its scores stand); "
            f"delete {' and '.join(map(str, retrain))} to retrain it"
        )
        return False


def report_figures(cfg: DictConfig, sources: list[str]) -> dict[str, Path]:
    """The report's figures, by title: sample sheets of each set, predictions on real test
    photos, and the error map of the photos the reference row wins by most."""
    d, r, e = dirs(cfg), cfg.stages.report, cfg.stages.evaluate
    made = {  # the sets this report's rows were trained on, each with what made it
        "synthetic samples": (d["synthetic"], needs_render),
        "adapted samples (same scenes, masks carried)": (d["adapted"], needs_adapted),
        "FDA samples (same scenes, low frequencies from real photos)": (d["fda"], needs_fda),
    }
    sets = {t: f for t, (f, needs) in made.items() if any(needs(cfg, s) for s in sources)}
    sets["real training photos (unlabeled)"] = Path(cfg.paths.data_dir) / "train_img"
    figures = sample_grids(sets, d["report"], cfg.synth, r.num_samples, cfg.seed)
    overlays = {s: d["runs"] / s / "overlays" for s in sources}
    pred = prediction_grid(overlays, d["report"] / "predictions.png")
    if pred:
        figures["predictions on real test images (red: crack)"] = pred
    test = (cfg.task_data.test_img, cfg.task_data.test_lab)
    runs = first_seed_runs(cfg, sources)
    errors = error_grid(runs, r.goal.reference, test, e, d["report"] / "errors.png")
    if errors:
        reference = r.goal.reference
        title = (
            ERRORS_TITLE.format(reference=reference) if reference in runs else ERRORS_TITLE_LOWEST
        )
        figures[title] = errors
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
        f" Rows of stages.report.goal not in stages.task.sources, so without verdicts: "
        f"{', '.join(missing)}."
    )


def stage_report(cfg: DictConfig, results: dict[str, dict], wall: dict[str, float]) -> Path:
    report_dir = dirs(cfg)["report"]
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"source": s, **m, "wall_s": m.get("train_seconds", 0.0)} for s, m in results.items()]
    images = report_figures(cfg, list(results))
    size = checked_size(cfg.stages.evaluate.eval_size, "stages.evaluate.eval_size")
    at = f"resized to {size[0]}x{size[1]} (HxW)" if size else "each image at its own size"
    notes = (
        f"Real test set: {cfg.task_data.test_img}, {at}. Rows differ only in "
        f"the task model's training data; no row but 'oracle' saw a real label. "
        "Stage wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items()) + "."
    )
    if "selftrained" in results:
        repeats = cfg.stages.self_train.photo_repeats
        notes += (
            f" 'selftrained': the {cfg.stages.self_train.teacher} row's training data plus the "
            f"unlabeled real training photos, labeled by that row's model of the same seed"
            + (f" and pooled {repeats} times." if repeats > 1 else ".")
        )
    from gan.translate import GAP_KEYS, describe_gap

    gap = read_card(dirs(cfg)["adapted"]).get("domain_gap", {})
    if set(GAP_KEYS) <= set(gap) and any(needs_adapted(cfg, s) for s in results):
        notes += " " + describe_gap(gap)
    if "testtime" in results:
        notes += (
            " 'testtime': the synthetic row's model of each seed, trained on raw scenes, "
            "scoring the test photos after the GAN's real-to-synthetic generator (g_ba) "
            "translated them toward the simulator; nothing retrained."
        )
    if any(needs_fda(cfg, s) for s in results):
        notes += (
            f" 'fda': the synthetic scenes with the low-frequency Fourier amplitude of real "
            f"photo crops (beta {cfg.stages.fda.beta}), no training."
        )
    goal = report_goal(cfg)
    notes += goal_rows_not_run(goal, results)
    env = versions(*TRAINING_PACKAGES) | {"cpu": torch.backends.cpu.get_cpu_capability()}
    notes += " Versions: " + ", ".join(f"{name} {v}" for name, v in env.items()) + "."
    checks = goal_checks(rows, **goal)
    html_path, md_path = write_report(
        report_dir, rows, OmegaConf.to_yaml(cfg, resolve=True), images, notes, checks
    )
    write_json_atomic(
        report_dir / "results.json",
        {"rows": rows, "goal": checks, "wall_seconds": wall, "versions": env},
    )
    log(f"report: {html_path} and {md_path}")
    summary = summary_markdown(rows, notes, checks)
    track = derive(cfg, {"run_name": f"{cfg.run_name}-report"})
    loggers = instantiate_group(track.get("logger"))
    if loggers:
        log_config(loggers, track)
        log_report(loggers, rows, checks, images, summary, Path(cfg.paths.log_dir) / track.run_name)
        close_runs(loggers)
    print(summary, flush=True)
    return html_path


# --------------------------------------------------------------------------- driver


def run_pipeline(cfg: DictConfig) -> dict[str, dict]:
    """Run every stage in order (each skipped when complete); returns metrics per source.
    The real photos' file hashes are kept across runs (``digest_cache``), so a rerun over a
    large photo folder reads only the files that changed."""
    for node, key in ((cfg.stages.task, "sources"), *((cfg.stages.report.goal, k) for k in LISTS)):
        node[key] = as_names(node[key])  # sources=oracle: one row, not o, r, a, c, l, e
    with digest_cache(cfg.get("digest_cache")):
        return run_stages(cfg)


def run_stages(cfg: DictConfig) -> dict[str, dict]:
    torch.set_float32_matmul_precision("high")
    wall: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        wall[name] = wall.get(name, 0.0) + time.perf_counter() - start
        return out

    sources = list(cfg.stages.task.sources)
    unknown = [s for s in sources if s not in ROWS]
    if unknown or not sources:
        what = f"unknown {unknown}" if unknown else "no row"
        raise KeyError(f"stages.task.sources: {what}; choose from {list(ROWS)}")
    seeds = task_seeds(cfg)  # fail before any work on a bad seed list, size or goal
    checked_size(cfg.stages.evaluate.eval_size, "stages.evaluate.eval_size")
    checked_size(cfg.task_data.eval_size, "task_data.eval_size")
    report_goal(cfg)
    if cfg.stages.translate.measure.enabled:
        check_inception_weights(cfg.stages.translate.measure.inception_weights)
    if "selftrained" in sources:
        teacher_of(cfg)
    results, gan, rendered, translated, swapped = {}, None, False, False, False
    for source in sources:
        if not rendered and needs_render(cfg, source):
            timed("render", stage_render, cfg)
            rendered = True
        # adapt lazily (rows that need no GAN are ready sooner), and once for all rows
        if gan is None and (needs_adapted(cfg, source) or source in TEST_TIME_ROWS):
            gan = timed("adapt", stage_adapt, cfg)
        if not translated and needs_adapted(cfg, source):
            timed("translate", stage_translate, cfg, gan)
            translated = True
        if not swapped and needs_fda(cfg, source):
            timed("fda", stage_fda, cfg)
            swapped = True
        if source in TEST_TIME_ROWS:
            runs = [timed(f"task[{source}]", stage_test_time, cfg, source, gan, k) for k in seeds]
        else:
            runs = [timed(f"task[{source}]", stage_task, cfg, source, k) for k in seeds]
        results[source] = mean_over_seeds(runs)
    timed("report", stage_report, cfg, results, wall)
    return results
