"""Export a trained task checkpoint to ONNX and TorchScript, verified against PyTorch.

python tools/export.py ckpt=checkpoints/task_oracle/last.ckpt
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.evaluate import load_segmenter
from gan.export import export_model
from synth.io import write_json_atomic

register_resolvers()


def export(cfg: DictConfig) -> dict:
    """Export and verify; export.json is written last, so it only exists for good exports."""
    model = load_segmenter(cfg.ckpt, "cpu")
    report = export_model(
        model.net,
        cfg.out_dir,
        cfg.name,
        tuple(cfg.sample_hw),
        tuple(cfg.check_hw),
        tuple(cfg.formats),
        cfg.atol,
    )
    write_json_atomic(f"{cfg.out_dir}/export.json", {**report, "checkpoint": str(cfg.ckpt)})
    print(report)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> dict:
    return run_cli(export, cfg)


if __name__ == "__main__":
    main()
