"""Import your own simulator's renders (images + same-stem masks, crack 255) as a sharded set.

python tools/import_renders.py image_dir=/my/renders/img mask_dir=/my/renders/mask
python tools/import_renders.py image_dir=... mask_dir=... out_dir=outputs/synthetic shard_size=500
python tools/import_renders.py image_dir=... mask_dir=... workers=8   # 8 processes, same bytes
"""

from __future__ import annotations

import json

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from synth.imported import import_renders

register_resolvers()


def import_folder(cfg: DictConfig) -> dict:
    """Import (or finish importing) the renders; returns the import summary."""
    summary = import_renders(
        cfg.image_dir,
        cfg.mask_dir,
        cfg.out_dir,
        cfg.shard_size,
        progress=cfg.progress,
        workers=cfg.workers,
        digest_cache=cfg.digest_cache,
    )
    print(json.dumps(summary, indent=2))
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="import_renders")
def main(cfg: DictConfig) -> dict:
    return run_cli(import_folder, cfg)


if __name__ == "__main__":
    main()
