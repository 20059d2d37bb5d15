r"""Which crack pixels task models miss: recall by contrast quarter and, in the faintest
quarter, missed rims (within near_px of a found crack) against whole missed cracks.

python tools/recall_by_contrast.py 'ckpts=[checkpoints/r4800-task-synthetic/last.ckpt]'
python tools/recall_by_contrast.py test_img=outputs/heldout7 test_lab=null eval_size=null \
    'quarter_edges=[61,97,129]' 'ckpts=[...]'   # held-out scenes, in the photos' bands
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.contrast import recall_by_contrast, sample_contrasts
from gan.data import as_names, checked_size, in_range
from gan.devices import pick_device
from gan.evaluate import labeled_samples, load_segmenter
from synth.distributions import ConfigError

register_resolvers()


def report(cfg: DictConfig) -> dict:
    """One line per checkpoint; the figures of docs/experiments.md, sessions 22-23."""
    device = pick_device(cfg.device)
    ckpts = as_names(cfg.ckpts, "ckpts")
    if not ckpts:  # exited 0 with no output
        raise ConfigError("ckpts=[]: name at least one task checkpoint")
    # checked before any model loads (a traceback from the first scoring, after the loads)
    checked_size(cfg.eval_size, "eval_size")
    in_range(cfg.threshold, "threshold", 0.0, 1.0)
    # every model loaded now, so a bad checkpoint fails before any scoring
    models = {ckpt: load_segmenter(ckpt, device) for ckpt in ckpts}
    samples, _ = labeled_samples(cfg.test_img, cfg.test_lab)
    contrasts = sample_contrasts(samples)
    results = {}
    for ckpt, model in models.items():
        r = recall_by_contrast(
            model,
            samples,
            contrasts,
            cfg.eval_size,
            cfg.batch_size,
            cfg.threshold,
            cfg.near_px,
            cfg.quarter_edges,
        )
        quarters = " / ".join(f"{v:.3f}" for v in r["recall_by_quarter"])
        shares = " / ".join(f"{v:.3f}" for v in r["share_by_quarter"])
        f = r["faintest"]
        print(
            f"{ckpt}: recall {r['recall']:.3f}; by contrast quarter (edges {r['quarter_edges']}, "
            f"shares {shares}) {quarters}; faintest quarter found {f['found']:.3f}, missed within "
            f"{cfg.near_px} px of a found crack {f['missed_near']:.3f}, "
            f"missed away {f['missed_away']:.3f}"
        )
        results[ckpt] = r
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="recall_by_contrast")
def main(cfg: DictConfig) -> dict:
    return run_cli(report, cfg, resumes=False)


if __name__ == "__main__":
    main()
