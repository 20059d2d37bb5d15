"""Train the semantic CycleGAN (synthetic -> real).

python tools/train_gan.py trainer=cpu trainer.max_steps=300 gan_data.crop_size=64
"""

from __future__ import annotations

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from gan.cli import register_resolvers, run_cli
from gan.runner import build_model, fit

register_resolvers()


def train(cfg: DictConfig) -> int:
    """Fit the GAN (resuming from last.ckpt); returns the generator step reached."""
    datamodule = instantiate(cfg.gan_data)
    datamodule.setup("fit")  # bad input paths fail here, before any model is built
    module = build_model(cfg, cfg.gan)
    trainer = fit(cfg, module, datamodule)
    if trainer.is_global_zero:  # once, not once per DDP rank
        print(f"generator steps: {trainer.global_step}")
    return trainer.global_step


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_gan")
def main(cfg: DictConfig) -> int:
    return run_cli(train, cfg)


if __name__ == "__main__":
    main()
