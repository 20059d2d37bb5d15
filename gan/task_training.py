"""Train the crack segmenter on one source, then test it on the real test set: the body of
``tools/train_task.py`` (the pipeline's rows go through ``gan.pipeline``'s stages)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan.callbacks import train_seconds
from gan.checkpoint import UnsafeCheckpointError
from gan.pruning import check_prune_settings, prune_dataset_indices, select_training_set
from gan.runner import build_model, fit, resolve_ckpt_path
from gan.task import TOLERANCE_SHAPE, check_batch_fits_net
from gan.task_data import selection_hash
from synth.io import ImageFolder, write_json_atomic


def apply_pruning(cfg: DictConfig, datamodule, path: Path) -> Callable[[], None]:
    """EL2N-prune the training source; a resumed run reuses the selection it already made
    with these settings, from this data (compared: the fraction alone was). Returns the write
    of a new selection's ``path``, for once the resume is allowed (``gan.runner.fit``)."""
    prune = cfg.prune
    settings = {
        **OmegaConf.to_container(prune, resolve=True),
        "net": OmegaConf.to_container(cfg.task.net, resolve=True),
        "train_dir": datamodule.train_dir,
    }
    earlier = read_pruning(path)
    if earlier.get("settings") == settings:
        datamodule.train_indices = str(path)
        return lambda: None
    refuse_resume_on_other_pruning(cfg, datamodule, path, earlier)
    kept, record = select_training_set(
        datamodule,
        OmegaConf.to_container(cfg.task.net),
        prune.keep_fraction,
        prune.score_after_steps,
        list(prune.seeds),
        prune.batch_size,
        prune.lr,
        settings,
    )
    print(f"EL2N pruning kept {len(kept)} samples (keep_fraction={prune.keep_fraction})")
    return lambda: write_json_atomic(path, record)


def read_pruning(path: Path) -> dict:
    """An earlier run's pruning.json; {} where there is none or it is unreadable (the
    selection is then made again)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return earlier if isinstance(earlier, dict) else {}


def refuse_resume_on_other_pruning(cfg: DictConfig, datamodule, path: Path, earlier: dict) -> None:
    """A resume whose EL2N selection is bound to differ from the one its checkpoint trained
    on is refused before the scoring: a changed ``prune.keep_fraction`` scored the whole set
    for minutes (``prune.score_after_steps`` steps a seed) and was then refused by
    ``gan.runner.check_same_data``. Bound to differ: the checkpoint trained on every sample
    and this run keeps fewer, or on ``path``'s selection and this run makes one with other
    ``prune`` settings. Other cases (no pruning.json, a checkpoint from before the record)
    are scored and left to that check."""
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.ckpt_dir) / cfg.run_name)
    saved = recorded_selection(ckpt_path, datamodule) if ckpt_path else None
    if saved is None:
        return
    prune = OmegaConf.to_container(cfg.prune, resolve=True)
    n = len(datamodule.open_train_set().samples)  # opened by setup: every sample
    keep = len(prune_dataset_indices([0.0] * n, prune["keep_fraction"]))
    restart = "or start over with ckpt_path=null or a new run_name="
    if saved.get("listing") is None and keep < n:
        raise UnsafeCheckpointError(
            f"{ckpt_path}: trained on all {n} samples of task_data.train_dir, while "
            f"prune.keep_fraction={prune['keep_fraction']} trains on {keep}; resume with "
            f"prune.keep_fraction=1, {restart}"
        )
    then = (earlier.get("settings") or {}) if isinstance(earlier.get("kept"), list) else {}
    made_from_it = then and saved.get("listing") == selection_hash(earlier["kept"], n)
    differ = [key for key in prune if key in then and then[key] != prune[key]]
    if made_from_it and differ:
        was = " and ".join(f"prune.{key}={json.dumps(then[key])}" for key in differ)
        raise UnsafeCheckpointError(
            f"{ckpt_path}: trained on the EL2N selection in {path}, made with {was}; resume "
            f"with those settings, {restart}"
        )


def recorded_selection(ckpt_path: str, datamodule) -> dict | None:
    """The selection a checkpoint records having trained on (``trained_on``'s
    ``task_data.train_indices``); None for a checkpoint from before the record, or one that
    does not load, which ``gan.runner.fit``'s checks then name."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable, unsafe or not a checkpoint: fit says which, in one line
        return None
    saved = (checkpoint.get(type(datamodule).__qualname__) or {}).get("trained_on")
    record = saved.get("task_data.train_indices") if isinstance(saved, dict) else None
    return record if isinstance(record, dict) else None


def train_task(cfg: DictConfig) -> dict:
    """Fit (resuming from last.ckpt), test, and write metrics.json on rank 0: what
    ``tools/train_task.py`` runs, here so that it can be run without starting the tool."""
    check_prune_settings(OmegaConf.to_container(cfg.prune, resolve=True))
    check_batch_fits_net(cfg.task.net.get("name", "unet"), cfg.task_data.batch_size)
    datamodule = instantiate(cfg.task_data)
    datamodule.setup("fit")  # bad input fails here, before any logger touches old files
    if not datamodule.scores:  # the photos its last line tells tools/predict.py to segment
        ImageFolder(datamodule.test_img)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record_pruning = None
    if cfg.prune.keep_fraction < 1:
        record_pruning = apply_pruning(cfg, datamodule, out_dir / "pruning.json")
    module = build_model(cfg, cfg.task)
    start = time.perf_counter()
    trainer = fit(
        cfg, module, datamodule, then_tests=datamodule.scores, once_allowed=record_pruning
    )
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    metrics = run_test(trainer, module, datamodule)
    metrics.update(
        source=cfg.source_name,
        run_name=cfg.run_name,
        seed=cfg.seed,
        global_step=trainer.global_step,
        train_samples=len(datamodule.train_set),  # after pruning: what the model saw
        checkpoint=str((Path(cfg.paths.ckpt_dir) / cfg.run_name / "last.ckpt").resolve()),
        fit_seconds=train_seconds(trainer) or round(fit_seconds, 1),  # over every resume
        test_seconds=round(time.perf_counter() - start, 1),
    )
    if datamodule.scores:
        metrics["tolerance_shape"] = TOLERANCE_SHAPE
    if trainer.is_global_zero:
        write_json_atomic(out_dir / "metrics.json", metrics)
        what = "test metrics" if datamodule.scores else "run record (no test labels)"
        print(f"{what} -> {out_dir / 'metrics.json'}: {metrics}")
        if not datamodule.scores:
            print(
                f"not scored: the test photos have no labels (task_data.test_lab=null); "
                f"segment them with python tools/predict.py ckpt={metrics['checkpoint']} "
                f"input_dir={cfg.task_data.test_img}"
            )
    return metrics


def run_test(trainer, module, datamodule) -> dict:
    """The model's scores on the labelled test set; none (and no test run) without labels."""
    if not datamodule.scores:
        return {"scored": False}
    results = trainer.test(module, datamodule=datamodule, ckpt_path=None)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}
