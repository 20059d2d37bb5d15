"""Tiny unpaired data for the GAN tests (never the real data or the colleague's renderer)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np

from gan.cyclegan import SemanticCycleGAN
from synth.io import Sample, write_json_atomic, write_png, write_shard


def crack_sample(index: int, h: int = 40, w: int = 48) -> Sample:
    """Light noisy surface with a dark vertical crack, an instance map and an ignore border."""
    rng = np.random.default_rng(index)
    image = rng.integers(150, 210, (h, w, 3), dtype=np.uint8)
    semantic = np.zeros((h, w), np.uint8)
    x = int(rng.integers(6, w - 8))
    semantic[:, x - 1] = semantic[:, x + 2] = 255
    semantic[:, x : x + 2] = 1
    image[semantic == 1] = rng.integers(10, 50, (int((semantic == 1).sum()), 3), dtype=np.uint8)
    instance = (semantic == 1).astype(np.uint16) * (300 + index)  # >255: really 16-bit
    return Sample(image, semantic, instance, meta={"index": index, "seed": index})


def make_synthetic(root: Path, n: int = 6, shard_size: int = 3, h: int = 40, w: int = 48) -> Path:
    """A sharded dataset of ``n`` samples in shards of ``shard_size`` plus a dataset card."""
    for shard in range(-(-n // shard_size)):
        ids = range(shard * shard_size, min(n, (shard + 1) * shard_size))
        write_shard(root, shard, [crack_sample(i, h, w) for i in ids])
    write_json_atomic(root / "dataset_card.json", {"num_samples": n, "generator": "test"})
    return root


def make_real(root: Path, n: int = 4, h: int = 40, w: int = 48) -> Path:
    """'Real' photos: darker, brownish noise, no labels."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        img = rng.integers(40, 120, (h, w, 3), dtype=np.uint8)
        img[..., 2] //= 2
        write_png(root / f"real{i}.png", img, rgb=True)
    return root


def tiny_gan(**overrides) -> SemanticCycleGAN:
    kw = dict(
        generator={"kind": "resnet", "ngf": 8, "blocks": 1},
        discriminator={"ndf": 8, "layers": 2},
        segmenter={"base": 4, "depth": 2},
        semantic_warmup_steps=0,
        pool_size=4,
        log_images_every_n_steps=0,
    )
    kw.update(overrides)
    return SemanticCycleGAN(**kw)


def tiny_trainer(tmp_path: Path, max_steps: int, **kw) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        log_every_n_steps=1,
    )
    defaults.update(kw)
    return pl.Trainer(**defaults)


def reference_bench_dir() -> Path | None:
    """Folder of the plain-PyTorch reference CycleGAN step (beside the checkout, as in this
    workspace, or at /work/shared/bench), or None: the tests that need it skip."""
    root = Path(__file__).resolve().parents[1]
    for folder in (root.parent / "shared" / "bench", Path("/work/shared/bench")):
        if (folder / "reference_cyclegan_step.py").is_file():
            return folder
    return None
