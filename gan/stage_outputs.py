"""Where the pipeline's stages write, and whether what is there may stand.

A stage skips its output when a record beside it says it was made from the same data and
settings, removes it when not, and refuses to remove another run's outputs reached through a
link. Written for the pipeline, whose stages all follow these rules.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from gan.checkpoint import load_checkpoint
from gan.provenance import (
    DATA_ROOT,
    OUTPUT_ROOT,
    Roots,
    described_data,
    folder_digests,
    resolve_folders,
    what_changed,
    with_new_defaults,
    without_locations,
)
from synth.distributions import ConfigError
from synth.io import read_card, read_json, write_json_atomic


def log(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


def dirs(cfg: DictConfig) -> dict[str, Path]:
    """Each stage's fixed place, so a rerun finds what an earlier run left."""
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


def row_metrics(cfg: DictConfig, key: str) -> Path:
    """A row's metrics.json (``key``: gan.run_names.run_key), whose presence says the row is
    trained and scored (or its photos segmented)."""
    return dirs(cfg)["runs"] / key / "metrics.json"


def scores_in(run_dir: Path) -> list[Path]:
    """What scoring a model writes to its run folder (gan.evaluate.evaluate_folder; masks/
    where the photos have no labels: segment_unlabeled), removed together: a run stopped
    after its old scores went, and before new ones came, kept the old model's per-image
    scores and overlays beside the new record."""
    return [run_dir / name for name in ("metrics.json", "per_image.csv", "overlays", "masks")]


def task_checkpoint(cfg: DictConfig, key: str) -> Path:
    """Where stage_task leaves the model of run ``key`` (row, or row-seedN)."""
    return Path(cfg.paths.ckpt_dir) / f"{cfg.stages.task.run_prefix}-{key}" / "last.ckpt"


def check_run_names(cfg: DictConfig) -> None:
    """The outputs folder holds scores of models kept under the checkpoint folders its first
    run named; another ``run_name`` looked for them elsewhere, found the rows' scores complete
    and their models missing, and failed on a teacher's 'checkpoint is gone'. Refused at
    once; the names are recorded on the first run (``run_names.json``)."""
    names = {"adapt": cfg.stages.adapt.run_name, "task": cfg.stages.task.run_prefix}
    path = Path(cfg.paths.output_dir) / "run_names.json"
    before = read_json(path) if path.is_file() else None
    if before is None:  # outputs from before the record: some row's model must be found
        scored = [d.name for d in dirs(cfg)["runs"].glob("*") if (d / "metrics.json").is_file()]
        trained = [key for key in scored if task_checkpoint(cfg, key).parent.is_dir()]
        if scored and not trained:
            where = "under other checkpoint folders (made with another run_name?)"
        else:  # the outputs folder made now if need be: a first run left it unrecorded
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, names)
            return
    elif any(before.get(k) != v for k, v in names.items()):
        where = f"under the checkpoint folders {before['adapt']}, {before['task']}-<row>"
    else:
        return
    raise ConfigError(
        f"{path.parent}: its rows' models are {where}, not {names['adapt']}, "
        f"{names['task']}-<row>; rerun with the run_name that made them, or give the new run "
        "its own folders (paths.root_dir=<folder> moves outputs, checkpoints and logs)"
    )


#: In paths.ckpt_dir and paths.log_dir: which outputs folder each pipeline run name there
#: serves (``{run name: outputs folder}``, relative to the record where it can be).
CLAIMS = "pipeline_outputs.json"


def check_claimed_folders(cfg: DictConfig) -> None:
    """Refuse checkpoint and log folders another outputs folder's rows are kept in. Two
    experiments told apart by ``paths.output_dir`` alone shared ``checkpoints/<run name>``: the
    second retrained the first's models in place (and cleared its logs), and the first's rerun
    then said "complete, skipped" beside scores of weights no longer on disk.

    A claim lapses once its outputs folder is gone (deleted to start again), and follows
    outputs moved or copied together with their checkpoints (it is relative)."""
    out = Path(cfg.paths.output_dir).resolve()
    names = (cfg.stages.adapt.run_name, cfg.stages.task.run_prefix)
    for key in ("ckpt_dir", "log_dir"):
        folder = Path(cfg.paths[key]).resolve()
        record = folder / CLAIMS
        claims = read_json(record) if record.is_file() else {}
        for name in names:
            owner = (folder / claims[name]).resolve() if name in claims else out
            if owner != out and owner.is_dir():
                raise ConfigError(
                    f"paths.{key}={folder}: its {name} runs are those of the outputs folder "
                    f"{owner}, not of {out}; give this run its own paths.ckpt_dir and "
                    "paths.log_dir (paths.root_dir=<folder> moves all three), or another run_name"
                )
        mine = {name: os.path.relpath(out, folder) for name in names}
        if any(claims.get(name) != rel for name, rel in mine.items()):
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(record, claims | mine)


def checkpoint_step(path: Path) -> int:
    return int(load_checkpoint(path).get("global_step", 0)) if path.is_file() else 0


def resumed_at(step: int, steps: int, then: str = "scored") -> str:
    """What a stopped run left in last.ckpt (at ``step`` of ``steps``; 0: nothing), for the
    stage's first line; ``then``: what is done again with a trained model."""
    if step >= steps:
        return f", trained (last.ckpt at step {step}), {then} again"
    return f", resuming at step {step} (last.ckpt)" if step else ""


def record_roots(cfg: DictConfig) -> Roots:
    """The folders a stage's record names others relative to: outputs and real data."""
    return {OUTPUT_ROOT: Path(cfg.paths.output_dir), DATA_ROOT: Path(cfg.paths.data_dir)}


def forget_stale(
    name: str,
    made: list[Path],
    record: Path,
    provenance: dict,
    roots: Roots | None = None,
    check_first: Callable[[], object] | None = None,
) -> None:
    """Delete what a stage ``made`` (checkpoints, results) unless ``record`` says it was made
    from the same ``provenance`` (training data and settings, and the listing and contents of
    each real-data folder); then record the current one, with folders under ``roots`` (the
    outputs and real-data folders) relative to them.

    Without a record nothing can vouch for old outputs, so they go too: a changed simulator,
    translation or loss weight must never be met by a model, or a score, from before it.
    ``check_first``: what must hold of the new inputs before the old outputs go (a photo
    added that cannot be read removed a finished GAN, then failed).
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
        if old and check_first is not None:  # the new data read whole before the old goes
            check_first()
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


def same_source(adapted_card: dict, synthetic_dir: Path) -> bool:
    """The translated set was made from the synthetic set now in place: its card is the
    source's card plus the translation's entries. A generator retrained on re-rendered scenes
    can come out byte-identical (it may draw only scenes the change left alone), so the
    generator's digest alone does not say the translations are current."""
    made_from = described_data(adapted_card, "translation")
    return made_from == described_data(read_card(synthetic_dir))
