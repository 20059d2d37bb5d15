"""Export a trained task checkpoint to ONNX and TorchScript, verified against PyTorch.

python tools/export.py ckpt=checkpoints/task_oracle/last.ckpt
python tools/export.py ckpt=... translate_with=checkpoints/adapt/last.ckpt  # test-time translation
"""

from __future__ import annotations

from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.data import as_names
from gan.evaluate import load_segmenter, reverse_generator
from gan.export import check_settings, export_model

register_resolvers()


def export(cfg: DictConfig) -> dict:
    """Export and verify (``export_model`` writes export.json, with the paths below). The
    settings are checked before the checkpoint is read."""
    formats = tuple(as_names(cfg.formats, "formats"))
    sample_hw, check_hw = check_settings(formats, cfg.atol, cfg.name, cfg.sample_hw, cfg.check_hw)
    model = load_segmenter(cfg.ckpt, "cpu")
    generator = reverse_generator(cfg.translate_with)
    provenance = {"checkpoint": str(Path(cfg.ckpt).resolve())}  # readable from any folder
    if cfg.translate_with:
        provenance["translated_with"] = str(Path(cfg.translate_with).resolve())
    report = export_model(
        model.net,
        cfg.out_dir,
        cfg.name,
        sample_hw,
        check_hw,
        formats,
        cfg.atol,
        translate_with=generator,
        provenance=provenance,
    )
    print(report)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> dict:
    return run_cli(export, cfg, resumes=False)


if __name__ == "__main__":
    main()
