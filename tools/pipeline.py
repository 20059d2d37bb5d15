"""The main job: render -> adapt -> translate -> train task models -> evaluate -> report.

python tools/pipeline.py                  # small default (2 CPU cores, 12-24 min)
python tools/pipeline.py experiment=full  # the serious run
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.pipeline import run_pipeline

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="pipeline")
def main(cfg: DictConfig) -> None:
    run_cli(run_pipeline, cfg)


if __name__ == "__main__":
    main()
