"""The end-to-end sim-to-real pipeline: render -> adapt -> translate -> train task -> report.

Every stage writes to a stable place under ``paths.output_dir`` / ``paths.ckpt_dir`` and is
skipped when its output is complete, so rerunning the same command after a kill redoes only
what is missing (each stage also resumes internally: shards, ``last.ckpt``).

The rows and what each needs are in gan.rows, the rules for skipping and removing outputs in
gan.stage_outputs, the report in gan.pipeline_report.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from gan.callbacks import train_seconds
from gan.checkpoint import UnsafeCheckpointError, load_checkpoint
from gan.cyclegan import check_crop_fits_discriminator
from gan.data import as_names, checked_size
from gan.devices import pick_device
from gan.evaluate import evaluate_folder, scoring_record, segment_unlabeled
from gan.fid import check_inception_weights
from gan.pipeline_report import stage_report
from gan.provenance import (
    ADDED_SCORING_SETTINGS,
    TRAINER_SETTINGS,
    adapt_fingerprint,
    data_fingerprint,
    settings_fingerprint,
    with_added_digests,
    without_locations,
)
from gan.report import METRICS, mean_over_seeds
from gan.rows import (
    LISTS,
    TEST_TIME_ROWS,
    checked_sources,
    derive,
    needs_adapted,
    needs_fda,
    needs_gan,
    needs_render,
    report_goal,
    scored,
    scored_or_segmented,
    source_overrides,
    task_seeds,
    teacher_of,
    training_row,
)
from gan.run_names import run_key
from gan.runner import (
    build_model,
    close_runs,
    fit,
    log_outside_a_fit,
    several_devices,
    starts_over,
)
from gan.stage_outputs import (
    check_claimed_folders,
    check_run_names,
    checkpoint_step,
    dirs,
    forget_stale,
    log,
    record_roots,
    refuse_linked_outputs,
    resumed_at,
    row_metrics,
    same_source,
    scores_in,
    task_checkpoint,
)
from gan.stage_times import StageClock
from gan.task import TOLERANCE_SHAPE
from gan.task_data import train_dirs
from synth.digests import digest_cache, file_digest, listing_digest
from synth.distributions import ConfigError, checked_count
from synth.imported import import_changes, import_renders, source_folders
from synth.io import (
    CARD,
    DataError,
    ImageFolder,
    missing_folder,
    read_card,
    read_json,
    unread_entries,
    unwritable_folder,
    write_json_atomic,
)
from synth.render import check_counts, checked_scene_config, render_dataset, spec_changes

ADAPT_SETTINGS = ("gan", "gan_data", "seed", *TRAINER_SETTINGS)
TASK_SETTINGS = ("task", "task_data", "seed", *TRAINER_SETTINGS)


# --------------------------------------------------------------------------- stages


def stage_render(cfg: DictConfig) -> dict:
    """Always asks the renderer, which skips complete shards. Scenes rendered with other
    settings (simulator, seed, count) are removed and rendered anew, as every later stage
    redoes what changed; every stage that read them then finds its training data changed."""
    r = cfg.stages.render
    if r.get("import_from"):
        return stage_import(cfg)
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


def stage_import(cfg: DictConfig) -> dict:
    """The user's own renders (``stages.render.import_from``) in place of our simulator's
    scenes, imported into the same folder. Imported anew when their files change (or the
    folder holds a render): the new card then says every later stage's training data
    changed, as a re-render's does."""
    r, out = cfg.stages.render, dirs(cfg)["synthetic"]
    images, masks = r.import_from.image_dir, r.import_from.mask_dir
    changed = import_changes(out, images, masks, r.shard_size)
    if changed:
        why = f"imported files or settings changed ({', '.join(changed[:4])})"
        refuse_linked_outputs("render", [out], why)
        log(f"render: {why}, old scenes replaced once the new files are read ({out})")
    summary = import_renders(
        images, masks, out, r.shard_size, r.progress, replace_stale=True, workers=r.workers
    )
    if summary["imported_shards"] == 0:
        log(f"render: imported, complete, skipped ({out})")
    else:
        kept = summary["skipped_shards"]
        resumed = f" (resuming: {kept} shards were complete)" if kept else ""
        log(
            f"render: {summary['imported_samples']} samples imported from {images} -> {out}{resumed}"
        )
    return summary


def check_import(cfg: DictConfig) -> None:
    """``stages.render.import_from`` names both folders, which exist and pair by stem (their
    files are decoded by the render stage, before any old scene is removed)."""
    r = cfg.stages.render
    source = r.import_from
    if not OmegaConf.is_dict(source) or set(source) != {"image_dir", "mask_dir"}:
        raise ConfigError(
            f"stages.render.import_from={source!r}: expected {{image_dir: <your renders>, "
            "mask_dir: <their masks>}"
        )
    checked_count(r.shard_size, "stages.render.shard_size")
    checked_count(r.workers, "stages.render.workers", 0)
    source_folders(source.image_dir, source.mask_dir)


def adapt_config(cfg: DictConfig) -> DictConfig:
    """The GAN's run: ``ckpt_path=null`` starts it over as it does the task rows (it was
    resumed whatever the setting); a file named there is a task model's, so not the GAN's."""
    a = cfg.stages.adapt
    ckpt_path = None if cfg.get("ckpt_path") is None else "last"
    return derive(cfg, {"run_name": a.run_name, "trainer": a.trainer, "ckpt_path": ckpt_path})


def stage_adapt(cfg: DictConfig) -> Path:
    a = cfg.stages.adapt
    ckpt = dirs(cfg)["adapt_ckpt"]
    stage = adapt_config(cfg)
    provenance = {
        "data": adapt_fingerprint(stage),
        "settings": settings_fingerprint(stage, ADAPT_SETTINGS),
    }
    record = ckpt.parent / "provenance.json"
    datamodule = instantiate(stage.gan_data)
    forget_stale("adapt", [ckpt.parent], record, provenance, record_roots(cfg), datamodule.setup)
    step = checkpoint_step(ckpt)  # read once: a GAN checkpoint is the largest file here
    if step >= a.trainer.max_steps:
        log(f"adapt: complete at step {a.trainer.max_steps}, skipped ({ckpt})")
        return ckpt
    done = (
        ", starting over (ckpt_path=null)"
        if starts_over(stage.get("ckpt_path"), ckpt.parent)
        else resumed_at(step, a.trainer.max_steps)
    )
    log(f"adapt: {a.trainer.max_steps} generator steps{done} -> {ckpt}")
    datamodule.setup("fit")  # done already where old outputs were removed
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
    m = cfg.stages.translate.measure
    if m.enabled and (
        not set(GAP_KEYS) <= set(measured) or measured.get("measured_with") != measured_with(m)
    ):
        measure_stage_translation(cfg, name, out)
    return card


def measured_with(m: DictConfig) -> dict:
    """What a translation's measurement depends on besides the sets: measured again when it
    changes (a new size or Inception weights kept the old figures), but not when the photos
    only moved (their listing digest)."""
    weights = Path(m.inception_weights) if m.inception_weights else None
    return {
        "real_photos": listing_digest(m.real_dir),
        "inception_weights": [weights.name, weights.stat().st_size] if weights else None,
        "max_images": m.max_images,
        "size": m.size,
    }


def measure_stage_translation(cfg: DictConfig, name: str, out: Path) -> dict:
    """A translated set's distance to the real photos and its grey shifts, into its card."""
    from gan.translate import describe_gap, measure_translation

    d, m = dirs(cfg), cfg.stages.translate.measure
    gap = measure_translation(
        d["synthetic"], out, m.real_dir, m.inception_weights, m.max_images, m.size, measured_with(m)
    )
    if gap:
        log(f"{name}: {describe_gap(gap, 'FDA' if name == 'fda' else 'Translation')}")
    return gap


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


def teacher_checkpoint(cfg: DictConfig, teacher: str, seed: int) -> Path:
    """The teacher row's model for this seed, trained (and scored) first if it is missing."""
    stage_task(cfg, teacher, seed, quiet=teacher in cfg.stages.task.sources)
    key = run_key(teacher, seed, cfg.seed)
    ckpt = task_checkpoint(cfg, key)
    if not ckpt.is_file():
        metrics = row_metrics(cfg, key)
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
    made, record = [ckpt_dir, *scores_in(run_dir)], run_dir / "provenance.json"
    data = instantiate(stage.task_data)
    forget_stale(f"task[{key}]", made, record, provenance, record_roots(cfg), data.setup)
    scored_on = {"test": {"test_img": cfg.task_data.test_img, "test_lab": cfg.task_data.test_lab}}
    # the scores alone follow the test photos and labels: the model stands, scored again
    on_record = run_dir / "scored_on.json"
    forget_stale(
        f"task[{key}]",
        scores_in(run_dir),
        on_record,
        scored_on,
        record_roots(cfg),
        lambda: read_test_folder(cfg),
    )
    if metrics_path.is_file():
        done = read_json(metrics_path)
        was = {k: done.get(k, ADDED_SCORING_SETTINGS.get(k)) for k in scoring_settings(cfg)}
        if was == scoring_settings(cfg):
            if not quiet:
                log(f"task[{key}]: complete, skipped ({metrics_path})")
            return done
        return score_again(cfg, stage, key, done, was)
    on = " + ".join(train_dirs(stage.task_data.train_dir))
    done = (
        ", starting over (ckpt_path=null)"
        if starts_over(stage.get("ckpt_path"), ckpt_dir)
        else resumed_at(
            checkpoint_step(task_checkpoint(cfg, key)),
            t.trainer.max_steps,
            scored_or_segmented(cfg),
        )
    )
    log(f"task[{key}]: {t.trainer.max_steps} steps{done}, seed {seed}, on {on}")
    start = time.perf_counter()
    module = build_model(stage, stage.task)
    trainer = fit(stage, module, data)
    wall = time.perf_counter() - start
    module = module.to(pick_device(cfg.stages.evaluate.device)).eval()
    seconds = train_seconds(trainer)  # over every resume of the run, where the clock is on
    extra = {"steps": trainer.global_step, "train_seconds": seconds or round(wall, 1)}
    metrics = score_on_test(stage, module, run_dir, {"source": source, "seed": seed, **extra})
    if trainer.is_global_zero and (scores := test_scores(metrics)):  # beside the curves
        for logger in trainer.loggers:
            logger.log_metrics(scores, step=trainer.global_step)
        if not trainer.loggers:  # trained already (new test photos or labels): the fit opened
            log_outside_a_fit(stage, ckpt_dir, scores, trainer.global_step, False)  # none
    close_runs(trainer.loggers)
    return metrics


def test_scores(metrics: dict) -> dict[str, float]:
    """A row's real-test scores as its tracker runs name them (without test labels, the
    share of pixels its model calls crack)."""
    return {f"test/{m}": float(metrics[m]) for m in (*METRICS, "crack_share") if m in metrics}


def scoring_settings(cfg: DictConfig) -> dict:
    """The stages.evaluate settings a row's scores, overlays or masks were made with, as its
    metrics.json records them: a change to any of them scores the row again."""
    e = cfg.stages.evaluate
    settings = scoring_record(e.eval_size, e.get("tile"), e.num_overlays)
    if scored(cfg):  # the tolerance F1's (masks of unlabelled photos have none)
        settings |= {"tolerance": cfg.task.tolerance, "tolerance_shape": TOLERANCE_SHAPE}
    return settings


def described(settings: dict) -> str:
    """Scoring settings in the words of a pipeline line."""
    words = {
        "eval_size": lambda v: f"eval_size {v}" if v else "each image's own size",
        "tile": lambda v: f"tile {v}" if v else "whole photos",
        "num_overlays": lambda v: f"{v} overlays",
        "tolerance": lambda v: f"a {v} px tolerance",
        "tolerance_shape": lambda v: f"a {v} tolerance",
    }
    return ", ".join(words[k](v) for k, v in settings.items())


def score_again(cfg: DictConfig, stage: DictConfig, key: str, scored: dict, was: dict) -> dict:
    """A trained row scored with other stages.evaluate settings than its metrics.json says
    (``was``): the model stands (they are no training settings), its scores are redone;
    before, the old scores stood under a report stating the new size, and a new overlay
    count or tile was not taken at all."""
    from gan.evaluate import load_segmenter

    now = scoring_settings(cfg)
    changed = [k for k in now if now[k] != was[k]]
    again, at = scored_or_segmented(cfg), described({k: now[k] for k in changed})
    log(
        f"task[{key}]: trained, {again} again at {at} (was {described({k: was[k] for k in changed})})"
    )
    model = load_segmenter(task_checkpoint(cfg, key), pick_device(cfg.stages.evaluate.device))
    kept = {k: scored[k] for k in ("source", "seed", "steps", "train_seconds") if k in scored}
    metrics = score_on_test(stage, model, dirs(cfg)["runs"] / key, kept)
    ckpt_dir = task_checkpoint(cfg, key).parent  # the training's W&B run, continued
    log_outside_a_fit(stage, ckpt_dir, test_scores(metrics), int(scored.get("steps") or 0), False)
    return metrics


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
    try:  # a model cut short since its scores were made digests as another: scores kept
        load_checkpoint(model_ckpt, mmap=True)
    except UnsafeCheckpointError as err:
        if not metrics_path.is_file():
            raise
        log(f"task[{key}]: {err}; its scores from before stand")
        return read_json(metrics_path)
    provenance = {  # nothing is trained: the scores stand for this model, generator and test
        "model": {"row": trained_by, "checkpoint_sha256": file_digest(model_ckpt)},
        "generator": {"direction": "b2a", "checkpoint_sha256": file_digest(gan)},
        "test": {
            "test_img": cfg.task_data.test_img,
            "test_lab": cfg.task_data.test_lab,
            **scoring_settings(cfg),
        },
    }
    record = run_dir / "provenance.json"
    forget_stale(f"task[{key}]", scores_in(run_dir), record, provenance, record_roots(cfg))
    if metrics_path.is_file():
        log(f"task[{key}]: complete, skipped ({metrics_path})")
        return read_json(metrics_path)
    log(f"task[{key}]: the {trained_by} model, seed {seed}, on test photos translated by {gan}")
    model = load_segmenter(model_ckpt, pick_device(cfg.stages.evaluate.device))
    trained = read_json(row_metrics(cfg, run_key(trained_by, seed, cfg.seed)))
    extra = {"steps": trained.get("steps"), "train_seconds": 0.0, "model_row": trained_by}
    metrics = score_on_test(
        cfg, model, run_dir, {"source": row, "seed": seed, **extra}, reverse_generator(gan)
    )
    named = derive(cfg, {"seed": seed, "run_name": f"{cfg.stages.task.run_prefix}-{key}"})
    log_outside_a_fit(named, run_dir, test_scores(metrics), int(extra["steps"] or 0), True)
    return metrics


def score_on_test(
    cfg: DictConfig,
    model: torch.nn.Module,
    run_dir: Path,
    extra: dict,
    translate_with: torch.nn.Module | None = None,
) -> dict:
    """A row's model scored on the real test set as stages.evaluate says, into ``run_dir``;
    without test labels, the photos segmented instead (masks and overlays, no score)."""
    e = cfg.stages.evaluate
    if not scored(cfg):
        return segment_unlabeled(
            model,
            cfg.task_data.test_img,
            run_dir,
            e.eval_size,
            e.batch_size,
            e.num_overlays,
            extra,
            translate_with,
            e.get("tile"),
        )
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
        owned=True,  # the pipeline's own run folder, whose overlays predate WRITTEN records
        tile=e.get("tile"),
        tolerance=cfg.task.tolerance,  # a scoring setting: the model may predate a new one
    )


# --------------------------------------------------------------------------- driver


def check_output_folders(cfg: DictConfig) -> None:
    """``paths.output_dir`` and ``paths.ckpt_dir`` each a folder, or one that can be made: a
    checkpoint folder that was a file failed once the first task row had trained, after the
    render and the GAN. (``paths.log_dir`` holds Hydra's run folder, checked by
    ``gan.cli.HydraStartChecks`` before Hydra makes it.)"""
    for key in ("output_dir", "ckpt_dir"):
        if why := unwritable_folder(cfg.paths[key]):
            raise ConfigError(f"paths.{key}={Path(cfg.paths[key])}: {why}")


def check_stage_settings(cfg: DictConfig, sources: list[str]) -> None:
    """The settings each stage would check only once it runs, checked before any work: a
    stage removes outputs its record calls stale before it trains, so a refused setting (a
    GAN learning rate of -1, a render count of 0) removed the finished GAN or scenes first."""
    check_output_folders(cfg)
    check_one_process(cfg)
    if HydraConfig.initialized():
        check_trainer_overrides(cfg, list(HydraConfig.get().overrides.task))
        check_scoring_overrides(list(HydraConfig.get().overrides.task))
    # stages.evaluate's and stages.report's counts: gan.cli.check_shared_settings, before this
    if any(needs_render(cfg, s) for s in sources):
        r = cfg.stages.render
        if r.get("import_from"):
            check_import(cfg)
        else:
            checked_scene_config(cfg.synth)
            check_counts(
                r.num_samples, r.shard_size, r.seed, r.workers, 0, None, dirs(cfg)["synthetic"]
            )
    nodes = []
    if any(needs_gan(cfg, s) for s in sources):
        checked_count(cfg.stages.adapt.trainer.max_steps, "stages.adapt.trainer.max_steps")
        nodes += [adapt_config(cfg).gan, adapt_config(cfg).gan_data]  # the data's settings
    checked_count(cfg.stages.task.trainer.max_steps, "stages.task.trainer.max_steps")
    trained = {TEST_TIME_ROWS.get(s) or training_row(cfg, s) for s in sources}
    nodes += [derive(cfg, source_overrides(row)).task for row in sorted(trained)]
    with torch.random.fork_rng():  # built to run their own checks; the draws are not kept
        for node in nodes:
            instantiate(node)
    if any(needs_gan(cfg, s) for s in sources):  # the crop against the discriminator
        adapt = adapt_config(cfg)
        layers = (adapt.gan.get("discriminator") or {}).get("layers", 3)
        check_crop_fits_discriminator(adapt.gan_data.crop_size, layers)
    check_real_folders(cfg, sorted(trained))
    if any(needs_gan(cfg, s) for s in sources):
        check_gan_photos(cfg)
    say_unread_entries(cfg, sources)


def say_unread_entries(cfg: DictConfig, sources: list[str]) -> None:
    """What the photo folders the rows read hold that no stage reads (photos sorted into a
    subfolder, a .heic or .webp export, masks with no photo), said once a folder before any
    work: check_data, predict and evaluate said it, the pipeline skipped them silently."""
    folders: list[tuple[str, str | None]] = []
    if any(needs_gan(cfg, s) for s in sources):
        folders.append((adapt_config(cfg).gan_data.real_dir, None))
    if any(needs_fda(cfg, s) for s in sources):
        folders.append((cfg.stages.fda.real_dir, None))
    if "selftrained" in sources:
        folders.append((cfg.stages.self_train.image_dir, None))
    folders.append((cfg.task_data.test_img, cfg.task_data.test_lab if scored(cfg) else None))
    said: set[Path] = set()
    for folder, masks in sorted(folders, key=lambda entry: entry[1] is None):  # masks first
        if not Path(folder).is_dir() or Path(folder).resolve() in said:
            continue
        said.add(Path(folder).resolve())
        for note in unread_entries(folder, masks):
            log(f"note: {folder}: {note}")


def check_one_process(cfg: DictConfig) -> None:
    """The pipeline trains in its own process on one device: under DDP every rank ran the
    render, translation and report too, each removing and writing the others' files (a
    translation's shard gone under another rank, then gloo's traceback). Several devices
    train through the single-stage tools (README, Multi-GPU and clusters)."""
    for stage in ("adapt", "task"):
        own = cfg.stages[stage].get("trainer") or {}

        def setting(key: str, own: DictConfig = own) -> object:  # the stage's, over the rest
            return own[key] if key in own else cfg.trainer.get(key)

        devices, strategy = setting("devices"), setting("strategy")
        every_gpu = devices in (-1, "-1", "auto")  # several only where there are several
        several = (several_devices(devices) and not every_gpu) or (
            every_gpu and setting("accelerator") != "cpu" and torch.cuda.device_count() > 1
        )
        ddp = "ddp" in str(strategy).lower()
        if several or ddp:
            with_ddp = f" ({strategy_name(strategy)})" if ddp else ""
            raise ConfigError(
                f"trainer.devices={devices}{with_ddp}: the pipeline runs every stage in one "
                "process on one device (trainer.devices=1, the default); to train on "
                "several, run tools/train_gan.py and tools/train_task.py with trainer=ddp "
                "(README: Multi-GPU and clusters)"
            )


def strategy_name(strategy: object) -> str:
    """A trainer's strategy as a user named it: a preset's node by its class."""
    if OmegaConf.is_dict(strategy):
        return str(strategy.get("_target_", "")).rsplit(".", 1)[-1] or "?"
    return str(strategy)


def check_trainer_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """A top-level ``trainer.<key>=`` that a stage's own trainer sets is never used (the
    stages' values are merged over it): ``trainer.max_steps=50`` left every row at 400
    steps, said by no line, and the report's command named it."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if not key.startswith("trainer."):
            continue
        name = key.removeprefix("trainer.")
        whose = {"adapt": "the GAN's", "task": "the task rows'"}
        set_by = [s for s in whose if name in cfg.stages[s].trainer]
        if set_by:
            said = " or ".join(f"stages.{s}.{key} ({whose[s]})" for s in set_by)
            raise ConfigError(
                f"{override}: the pipeline's stages set their own, which win: set {said}"
            )


#: task_data's scoring settings, which the pipeline takes from its evaluate stage.
SCORED_BY_EVALUATE = {"task_data.eval_size": "eval_size", "task_data.eval_batch_size": "batch_size"}


def check_scoring_overrides(overrides: list[str]) -> None:
    """``task_data.eval_size=`` (train_task's scoring size) changed only the pipeline's
    mid-run validation, off by default: every row was still scored at
    ``stages.evaluate.eval_size``, said by no line. Mid-run validation follows the evaluate
    stage's settings (conf/pipeline.yaml), and these overrides name them."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in SCORED_BY_EVALUATE:
            raise ConfigError(
                f"{override}: the pipeline scores every row (and validates mid-run) with "
                f"stages.evaluate.{SCORED_BY_EVALUATE[key]}: set that"
            )


def check_gan_photos(cfg: DictConfig) -> None:
    """The GAN's photos decoded and sized against its crop before any work, where it is still
    to train: a photo that could not be read, or too small, failed the run at the adapt
    stage, after the render and the source-only row had trained (a GAN trained already
    reads them again only where they changed: stage_adapt's record)."""
    from gan.adapt_data import read_real_photos

    try:
        if checkpoint_step(dirs(cfg)["adapt_ckpt"]) >= cfg.stages.adapt.trainer.max_steps:
            return
    except UnsafeCheckpointError:  # cut short: the stage says so, or retrains on new data
        pass
    g = adapt_config(cfg).gan_data
    read_real_photos(ImageFolder(g.real_dir), g.crop_size)


def check_real_folders(cfg: DictConfig, rows: list[str]) -> None:
    """The real folders the rows read, listed and paired before any work: a folder without
    test_lab/ failed after the GAN and the translation, and one without train_lab/ at the
    oracle row, the last, with no report. A row still to train decodes its real training
    pairs too (a corrupt label failed the same way; a finished row's rerun reads none)."""
    from gan.evaluate import say_if_stretched

    for row in rows:
        data = derive(cfg, source_overrides(row)).task_data
        if data.get("train_mask_dir") and isinstance(data.train_dir, str):
            try:
                pairs = ImageFolder(data.train_dir, data.train_mask_dir)
                keys = [run_key(row, seed, cfg.seed) for seed in task_seeds(cfg)]
                if not all(row_metrics(cfg, key).is_file() for key in keys):
                    pairs.validate()
            except DataError as err:
                leave = f"'stages.task.sources=[...]' without {row} leaves it out"
                raise DataError(f"the {row} row's training labels: {err} ({leave})") from err
    say_if_stretched(test_samples(cfg), cfg.stages.evaluate.eval_size, "stages.evaluate.eval_size")


def test_samples(cfg: DictConfig) -> Sequence:
    """The test photos, with their masks where the rows are scored, listed and paired."""
    from gan.evaluate import labeled_samples

    if not scored(cfg):
        if not Path(cfg.task_data.test_img).is_dir():
            err = missing_folder(cfg.task_data.test_img, "folder of photos to segment")
            raise DataError(
                f"{err}; task_data.test_img names them (experiment=label_free: the photos the "
                f"GAN learns from, in {Path(cfg.paths.data_dir) / 'train_img'})"
            )
        return ImageFolder(cfg.task_data.test_img)
    try:
        return labeled_samples(cfg.task_data.test_img, cfg.task_data.test_lab)[0]
    except DataError as err:
        if Path(cfg.task_data.test_lab).is_dir():
            raise
        raise DataError(
            f"{err}; photos without labels: task_data.test_lab=null trains the rows and "
            "segments the photos task_data.test_img names, with no score "
            "(experiment=label_free: those of train_img/)"
        ) from err


def read_test_folder(cfg: DictConfig) -> None:
    """Every test photo and mask decoded, before a row's old scores go: a test photo added
    without its mask removed them, then failed, beside a report of the removed scores."""
    if isinstance(samples := test_samples(cfg), ImageFolder):
        samples.validate()


def run_pipeline(cfg: DictConfig) -> dict[str, dict]:
    """Run every stage in order (each skipped when complete); returns metrics per source.
    The real photos' file hashes are kept across runs (``digest_cache``), so a rerun over a
    large photo folder reads only the files that changed."""
    for node, key in ((cfg.stages.task, "sources"), *((cfg.stages.report.goal, k) for k in LISTS)):
        where = "stages.task" if key == "sources" else "stages.report.goal"
        node[key] = as_names(node[key], f"{where}.{key}")  # oracle: one row, not o, r, a, ...
    with open_dict(cfg.task_data):  # '~task_data.test_lab' (a traceback) is no labels, as null
        cfg.task_data.test_lab = cfg.task_data.get("test_lab")
    with digest_cache(cfg.get("digest_cache")):
        return run_stages(cfg)


def run_stages(cfg: DictConfig) -> dict[str, dict]:
    torch.set_float32_matmul_precision("high")
    sources = checked_sources(cfg)
    seeds = task_seeds(cfg)  # fail before any work on a bad seed list, size or goal
    checked_size(cfg.stages.evaluate.eval_size, "stages.evaluate.eval_size")
    checked_size(cfg.task_data.eval_size, "task_data.eval_size")
    report_goal(cfg)
    if cfg.stages.translate.measure.enabled:
        check_inception_weights(cfg.stages.translate.measure.inception_weights)
    if "selftrained" in sources:
        teacher_of(cfg)
    check_stage_settings(cfg, sources)
    check_run_names(cfg)
    check_claimed_folders(cfg)
    d, clock = dirs(cfg), StageClock(cfg.paths.output_dir)  # each timed by what it writes
    results, gan, rendered, translated, swapped = {}, None, False, False, False
    for source in sources:
        if not rendered and needs_render(cfg, source):
            clock.run("render", d["synthetic"] / CARD, stage_render, cfg)
            rendered = True
        # adapt lazily (rows that need no GAN are ready sooner), and once for all rows
        if gan is None and needs_gan(cfg, source):
            gan = clock.run("adapt", d["adapt_ckpt"], stage_adapt, cfg)
        if not translated and needs_adapted(cfg, source):
            clock.run("translate", d["adapted"] / CARD, stage_translate, cfg, gan)
            translated = True
        if not swapped and needs_fda(cfg, source):
            clock.run("fda", d["fda"] / CARD, stage_fda, cfg)
            swapped = True
        runs = []
        for k in seeds:
            if source in TEST_TIME_ROWS:
                row = partial(stage_test_time, cfg, source, gan, k)
            else:
                row = partial(stage_task, cfg, source, k)
            key = run_key(source, k, cfg.seed)  # each seed's time its own: one may be new
            runs.append(
                clock.run(f"task[{source}]", row_metrics(cfg, key), row, unit=f"task[{key}]")
            )
        results[source] = mean_over_seeds(runs)
    made, this_run = clock.as_made(clock.this_run), dict(clock.this_run)
    clock.run("report", d["report"] / "report.html", stage_report, cfg, results, made, this_run)
    return results
