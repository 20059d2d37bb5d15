"""Score a trained task checkpoint on real labeled images (CSV per image, JSON aggregate).

python tools/evaluate.py ckpt=checkpoints/task_oracle/last.ckpt
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gan.evaluate import evaluate_folder, load_segmenter, pick_device


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    model = load_segmenter(cfg.ckpt, pick_device(cfg.device))
    result = evaluate_folder(
        model,
        cfg.test_img,
        cfg.test_lab,
        cfg.out_dir,
        cfg.eval_size,
        cfg.batch_size,
        cfg.num_overlays,
        cfg.num_workers,
        extra={"checkpoint": str(cfg.ckpt)},
    )
    print(f"{cfg.out_dir}/metrics.json: {result}")
    return result


if __name__ == "__main__":
    main()
