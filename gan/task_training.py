"""Train the crack segmenter on one source, then test it on the real test set: the body of
``tools/train_task.py`` (the pipeline's rows go through ``gan.pipeline``'s stages)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan.callbacks import train_seconds
from gan.pruning import check_prune_settings, prune_training_set
from gan.runner import build_model, fit
from gan.task import TOLERANCE_SHAPE, check_batch_fits_net
from synth.io import ImageFolder, write_json_atomic


def apply_pruning(cfg: DictConfig, datamodule, path: Path) -> None:
    """EL2N-prune the training source; a resumed run reuses the selection it already made
    with these settings, from this data (compared: the fraction alone was)."""
    prune = cfg.prune
    settings = {
        **OmegaConf.to_container(prune, resolve=True),
        "net": OmegaConf.to_container(cfg.task.net, resolve=True),
        "train_dir": datamodule.train_dir,
    }
    if path.is_file() and json.loads(path.read_text()).get("settings") == settings:
        datamodule.train_indices = str(path)
        return
    kept = prune_training_set(
        datamodule,
        OmegaConf.to_container(cfg.task.net),
        prune.keep_fraction,
        str(path),
        prune.score_after_steps,
        list(prune.seeds),
        prune.batch_size,
        prune.lr,
        settings,
    )
    print(f"EL2N pruning kept {len(kept)} samples (keep_fraction={prune.keep_fraction})")


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
    if cfg.prune.keep_fraction < 1:
        apply_pruning(cfg, datamodule, out_dir / "pruning.json")
    module = build_model(cfg, cfg.task)
    start = time.perf_counter()
    trainer = fit(cfg, module, datamodule, then_tests=datamodule.scores)
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
