"""Score a trained task checkpoint on real labeled images (CSV per image, JSON aggregate).

python tools/evaluate.py ckpt=checkpoints/task_oracle/last.ckpt
python tools/evaluate.py ckpt=... recalibrate_bn_on=../shared/data/deepcrack/train_img  # AdaBN
python tools/evaluate.py ckpt=... translate_with=checkpoints/adapt/last.ckpt  # test-time translation
"""

from __future__ import annotations

from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.data import checked_size, is_sharded
from gan.devices import pick_device
from gan.evaluate import (
    evaluate_folder,
    load_segmenter,
    recalibrate_on_folder,
    reverse_generator,
)
from synth.distributions import ConfigError
from synth.io import unread_entries

register_resolvers()


def evaluate(cfg: DictConfig) -> dict:
    """Score the checkpoint; the metrics files are written atomically, never half."""
    checked_size(cfg.eval_size, "eval_size")  # before loading anything
    if cfg.recalibrate_bn_on and cfg.translate_with:
        raise ConfigError(
            "recalibrate_bn_on and translate_with together: the statistics would come from "
            "the photos as they are, and the model would score them translated; use one"
        )
    model = load_segmenter(cfg.ckpt, pick_device(cfg.device))
    generator = reverse_generator(cfg.translate_with)  # a bad path fails before any work
    extra = {"checkpoint": str(Path(cfg.ckpt).resolve())}  # readable from any folder
    if cfg.recalibrate_bn_on:
        used = recalibrate_on_folder(
            model, cfg.recalibrate_bn_on, cfg.eval_size, cfg.batch_size, cfg.num_workers
        )
        extra["bn_recalibrated_on"] = {"image_dir": str(cfg.recalibrate_bn_on), "images": used}
    if cfg.translate_with:
        extra["translated_with"] = str(Path(cfg.translate_with).resolve())
    if cfg.eval_size:  # DeepCrack's size by default: another dataset's photos are resized
        h, w = cfg.eval_size
        print(f"scoring every photo resized to {h}x{w} (eval_size; null: each at its own size)")
    result = evaluate_folder(
        model,
        cfg.test_img,
        cfg.test_lab,
        cfg.out_dir,
        cfg.eval_size,
        cfg.batch_size,
        cfg.num_overlays,
        cfg.num_workers,
        extra=extra,
        translate_with=generator,
        tile=cfg.tile,
    )
    print(f"{cfg.out_dir}/metrics.json: {result}")
    if not is_sharded(cfg.test_img):  # fewer photos scored than the folder holds: say why
        ours = [Path(cfg.out_dir) / "overlays"]
        for note in unread_entries(cfg.test_img, cfg.test_lab, ours=ours):
            print(f"  note: {note}")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    return run_cli(evaluate, cfg, resumes=False)


if __name__ == "__main__":
    main()
