"""Contact sheet of samples with mask overlays (a dataset folder, or freshly rendered samples).

python tools/preview.py                       # 16 fresh samples from conf/synth
python tools/preview.py dataset=outputs/synthetic
python tools/preview.py dataset=../shared/data/deepcrack/test_img masks=../shared/data/deepcrack/test_lab
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from synth.preview import check_sheet_path, contact_sheet, load_samples

register_resolvers()


def preview(cfg: DictConfig) -> None:
    """Write the contact sheet of dataset or freshly rendered samples; where it goes is
    checked first."""
    check_sheet_path(cfg.out)
    samples = load_samples(cfg.dataset, cfg.masks, cfg.synth, cfg.num, cfg.start, cfg.seed)
    path = contact_sheet(samples, cfg.out, nrow=cfg.nrow, overlay=cfg.overlay)
    print(f"wrote {path} ({len(samples)} samples)")


@hydra.main(version_base="1.3", config_path="../conf", config_name="preview")
def main(cfg: DictConfig) -> None:
    run_cli(preview, cfg, resumes=False)


if __name__ == "__main__":
    main()
