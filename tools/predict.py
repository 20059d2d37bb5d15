"""Segment a folder of real images: masks/<stem>.png (0/255) and overlays/<stem>.png.

python tools/predict.py ckpt=checkpoints/task_oracle/last.ckpt input_dir=photos/
python tools/predict.py ckpt=... input_dir=photos/ translate_with=checkpoints/adapt/last.ckpt

The results replace an earlier run's only once every photo is done. A run killed or stopped
part-way (Ctrl-C, SIGTERM, kill -9, a power cut) leaves those as they were and keeps its
finished photos staged (hidden ``.masks.tmp-<pid>`` / ``.overlays.tmp-<pid>`` in out_dir):
the same command again segments only the rest ("resuming: 900 of 1000 photos already
segmented"); so does a lower batch_size after the GPU ran out of memory, keeping the
finished photos ("... (those at batch_size=8; the rest at batch_size=4)"). A rerun over a
finished run reuses the PNGs of the photos unchanged since and segments only new or changed
ones ("reusing 10000 of 10050 photos' masks and overlays from the last run (unchanged since);
segmenting 50"), still replacing the results only whole. Another model, other settings or an
upgrade of the code that makes the PNGs start over.

An unreadable, damaged or too small photo refuses the run, every bad one named in one line;
skip_bad_photos=true segments the rest and lists the bad ones, each with its reason, in
out_dir/skipped.json ("3 of 10000 photos skipped ...").
"""

from __future__ import annotations

from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.data import checked_size
from gan.devices import pick_device
from gan.evaluate import load_segmenter, predict_folder, reverse_generator
from synth.io import unread_entries

register_resolvers()


def predict(cfg: DictConfig) -> None:
    """Segment every image of the input folder into masks and overlays."""
    checked_size(cfg.eval_size, "eval_size")  # before loading anything
    model = load_segmenter(cfg.ckpt, pick_device(cfg.device))
    written = predict_folder(
        model,
        cfg.input_dir,
        cfg.out_dir,
        cfg.eval_size,
        cfg.batch_size,
        cfg.num_workers,
        translate_with=reverse_generator(cfg.translate_with),
        tile=cfg.tile,
        skip_bad_photos=cfg.skip_bad_photos,
    )
    print(f"{len(written)} masks and overlays written to {cfg.out_dir}")
    ours = [Path(cfg.out_dir) / sub for sub in ("masks", "overlays")]
    for note in unread_entries(cfg.input_dir, ours=ours):  # a .webp or a subfolder: say so
        print(f"  note: {note}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_cli(predict, cfg, resumes=False, staged="its finished photos are kept")


if __name__ == "__main__":
    main()
