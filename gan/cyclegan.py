"""Semantic CycleGAN: unpaired synthetic (A, with masks) -> real (B) translation that keeps
crack masks valid, trained with Lightning manual optimization.

One training step = one generator update, one discriminator update and (optionally) one
segmenter update. Only the generator optimizer advances ``global_step``, so ``max_steps``,
checkpoint intervals and LR schedules all count generator steps.
"""

from __future__ import annotations

from collections.abc import Iterable

import lightning.pytorch as pl
import torch
from torch import nn

from gan.checkpoint import gather_ranks, own_rank, plain
from gan.data import checked_rate
from gan.losses import (
    background_texture_loss,
    consistency_target,
    crack_contrast_loss,
    discriminator_loss,
    l1,
    linear_decay,
    lsgan_loss,
    mask_conservation_loss,
    ramp_weight,
    semantic_loss,
)
from gan.networks import PatchDiscriminator, UNet, build_generator
from gan.pool import ImagePool
from gan.visual import grid_masks, grid_rows, log_image, overlay_masks
from synth.distributions import ConfigError


def check_schedule_covers(max_steps: int, decay_start_step: int, decay_steps: int) -> None:
    """The learning rates reach zero at ``decay_start_step + decay_steps``; steps after that
    change no weight, so a budget raised without its schedule (the pipeline before its decay
    followed stages.adapt.trainer.max_steps) would spend them for nothing."""
    if max_steps is None or max_steps < 1:  # -1, Lightning's 'no limit': an endless stream
        raise ConfigError(
            f"trainer.max_steps={max_steps}: the GAN counts generator steps, and its learning "
            "rate schedule follows them; expected >= 1"
        )
    end = decay_start_step + decay_steps
    if decay_steps > 0 and max_steps > end:
        raise ConfigError(
            f"trainer.max_steps={max_steps}, but the learning rate reaches zero at step {end} "
            f"(gan.decay_start_step={decay_start_step} + gan.decay_steps={decay_steps}): the "
            f"last {max_steps - end} steps would train nothing; stretch the decay or lower "
            "max_steps"
        )


class LinearDecay:
    """Picklable-as-data LR lambda (LambdaLR stores its ``__dict__`` in the checkpoint)."""

    def __init__(self, constant_steps: int, decay_steps: int) -> None:
        self.constant_steps = constant_steps
        self.decay_steps = decay_steps

    def __call__(self, step: int) -> float:
        return linear_decay(step, self.constant_steps, self.decay_steps)


def follow_the_configured_schedule(checkpoint: dict) -> None:
    """A LambdaLR's state holds its lambda's settings, and restoring them overrode the schedule
    the config builds (derived from trainer.max_steps): a run resumed with a larger budget
    trained its extra steps at LR 0, while its hparams recorded the new schedule. The step
    count stays; the settings are the config's, as for every other hyperparameter a resume
    may change (gan.runner.OPTIMIZER_KEYS are those it may not)."""
    for state in checkpoint.get("lr_schedulers", []):
        if "lr_lambdas" in state:
            state["lr_lambdas"] = [None] * len(state["lr_lambdas"])


def check_crop_fits_discriminator(crop_size: int | None, layers: int) -> None:
    """A crop the discriminator can train on (``PatchDiscriminator.least_side``): a 16 px crop
    passed the data's checks (a multiple of 4) and failed at the first step with torch's
    'Expected more than 1 value per channel when training' from the discriminator's instance
    norm. None (a datamodule without a crop) is not checked."""
    least = PatchDiscriminator.least_side(layers)
    if crop_size is not None and crop_size < least:
        raise ConfigError(
            f"gan_data.crop_size={crop_size}: too small for the discriminator's {layers} "
            f"stride-2 layers (gan.discriminator.layers); expected >= {least}, or fewer layers"
        )


def make_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]):
    """Fused Adam where the build supports it for these tensors, else the foreach version."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


def set_requires_grad(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


SEMANTIC_TARGETS = ("mask", "consistency")


class SemanticCycleGAN(pl.LightningModule):
    """CycleGAN (LSGAN, cycle, identity, image pools, linear LR decay) plus two mask-keeping
    terms: a semantic loss through a segmenter f_s trained on synthetic labels, and an L1 that
    pins background pixels of G(A) to A. ``segmenter=None`` gives a plain CycleGAN.
    """

    def __init__(
        self,
        generator: dict | None = None,
        discriminator: dict | None = None,
        segmenter: dict | None = None,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        lambda_semantic: float = 1.0,
        semantic_start_step: int = 0,
        semantic_warmup_steps: int = 200,
        lambda_mask: float = 0.5,
        lambda_crack_contrast: float = 0.0,
        lambda_background_texture: float = 0.0,
        segmenter_on_fake: bool = True,
        semantic_target: str = "mask",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        lr_s: float = 1e-3,
        beta1: float = 0.5,
        decay_start_step: int = 1000,
        decay_steps: int = 1000,
        pool_size: int = 50,
        channels_last: bool | None = None,
        compile: bool = False,
        log_images_every_n_steps: int = 100,
        num_log_images: int = 4,
    ) -> None:
        super().__init__()
        if semantic_target not in SEMANTIC_TARGETS:
            raise ConfigError(
                f"semantic_target={semantic_target!r}: expected one of {SEMANTIC_TARGETS}"
            )
        for key, rate in (("lr_g", lr_g), ("lr_d", lr_d), ("lr_s", lr_s)):
            checked_rate(rate, f"gan.{key}", allow_zero=True)  # 0: that network frozen
        generator = plain(generator) or {}
        discriminator = plain(discriminator) or {}
        segmenter = plain(segmenter)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.g_ab = build_generator(**generator)
        self.g_ba = build_generator(**generator)
        self.d_a = PatchDiscriminator(**discriminator)
        self.d_b = PatchDiscriminator(**discriminator)
        self.seg = UNet(**segmenter) if segmenter else None
        self.pool_a = ImagePool(pool_size)
        self.pool_b = ImagePool(pool_size)
        self._d_params = [*self.d_a.parameters(), *self.d_b.parameters()]
        self._s_params = list(self.seg.parameters()) if self.seg is not None else []

    # ------------------------------------------------------------------ setup

    def setup(self, stage: str) -> None:
        """Memory format and compilation, after the module is on its device; before fitting,
        a step budget past the end of the LR schedule is refused."""
        if stage == "fit":
            check_schedule_covers(
                self.trainer.max_steps, self.hparams.decay_start_step, self.hparams.decay_steps
            )
            layers = (self.hparams.discriminator or {}).get("layers", 3)
            check_crop_fits_discriminator(
                getattr(self.trainer.datamodule, "crop_size", None), layers
            )
        if self._channels_last:
            self.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            for net in (self.g_ab, self.g_ba, self.d_a, self.d_b):
                net.compile()  # in place: state_dict keys stay unprefixed

    @property
    def _channels_last(self) -> bool:
        """Default: on CUDA, and on CPU when compiled (eager CPU convs gain nothing from it,
        compiled ones about 3 %: the norm kernels inductor writes keep the layout)."""
        flag = self.hparams.channels_last
        if flag is None:
            return self.device.type == "cuda" or bool(self.hparams.compile)
        return bool(flag)

    def configure_optimizers(self):
        h = self.hparams
        betas = (h.beta1, 0.999)
        g_params = [*self.g_ab.parameters(), *self.g_ba.parameters()]
        opts = [make_adam(g_params, h.lr_g, betas), make_adam(self._d_params, h.lr_d, betas)]
        if self.seg is not None:
            opts.append(make_adam(self._s_params, h.lr_s, (0.9, 0.999)))
        decay = LinearDecay(h.decay_start_step, h.decay_steps)
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in opts[:2]]
        names = ("lr/generator", "lr/discriminator")
        return opts, [
            {"scheduler": s, "interval": "step", "name": n} for s, n in zip(scheds, names)
        ]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Every rank's pools: under DDP each rank pools the fakes of its own stream (every rank
        builds the checkpoint, rank 0 writes it)."""
        pools = {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()}
        world = self.trainer.world_size if self._trainer is not None else 1
        checkpoint["image_pools"] = gather_ranks(pools, world)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Each rank's pools come back with the weights; empty from a checkpoint saved before
        they were, or by another number of ranks."""
        pools = checkpoint.get("image_pools", {})
        world = self.trainer.world_size if self._trainer is not None else 1
        own = own_rank(pools, world, self.global_rank) or {}
        for name, pool in (("a", self.pool_a), ("b", self.pool_b)):
            pool.load_state_dict(own.get(name, {}))
        follow_the_configured_schedule(checkpoint)

    def on_train_start(self) -> None:
        """The learning rates of the step about to run, from the schedule as configured now: a
        resume restores the optimizers' rates of the old schedule (the same values when the
        schedule is the same)."""
        for config in self.trainer.lr_scheduler_configs:
            sched = config.scheduler
            rates = [
                base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)
            ]
            for group, rate in zip(sched.optimizer.param_groups, rates):
                group["lr"] = rate
            sched._last_lr = rates

    # ------------------------------------------------------------------ step

    def _quiet_step(self, optimizer) -> None:
        """Step a non-generator optimizer through the precision plugin (AMP scaler etc.) but
        without the LightningOptimizer hooks that advance ``global_step``."""
        self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None)

    def _should_log(self) -> bool:
        try:
            return bool(self.trainer._logger_connector.should_update_logs)
        except AttributeError:
            return True

    def generate(
        self, real_a: torch.Tensor, real_b: torch.Tensor, identity: bool
    ) -> dict[str, torch.Tensor]:
        """All generator outputs in three calls: inputs sharing a generator are batched
        (instance norm is per sample, so this equals separate calls, only faster)."""
        n = real_a.shape[0]
        ab = self.g_ab(torch.cat([real_a, real_b]) if identity else real_a)
        fake_b = ab[:n]
        ba_in = [real_b, fake_b] + ([real_a] if identity else [])
        ba = self.g_ba(torch.cat(ba_in))
        out = {"fake_b": fake_b, "fake_a": ba[:n], "rec_a": ba[n : 2 * n]}
        out["rec_b"] = self.g_ab(out["fake_a"])
        if identity:
            out["idt_b"], out["idt_a"] = ab[n:], ba[2 * n :]
        return out

    def generator_losses(
        self, out: dict, real_a: torch.Tensor, mask_a: torch.Tensor, real_b: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        h = self.hparams
        losses = {
            "adv": lsgan_loss(self.d_b(out["fake_b"]), True)
            + lsgan_loss(self.d_a(out["fake_a"]), True),
            "cycle": l1(out["rec_a"], real_a) + l1(out["rec_b"], real_b),
        }
        total = losses["adv"] + h.lambda_cycle * losses["cycle"]
        if "idt_a" in out:
            losses["identity"] = l1(out["idt_b"], real_b) + l1(out["idt_a"], real_a)
            total = total + h.lambda_cycle * h.lambda_identity * losses["identity"]
        w_sem = self.semantic_weight()
        if self.seg is not None and w_sem > 0:
            out["seg_fake"] = self.seg(out["fake_b"])
            losses["semantic"] = semantic_loss(
                out["seg_fake"], self.semantic_target(real_a, mask_a)
            )
            total = total + w_sem * losses["semantic"]
        if h.lambda_mask > 0:
            losses["mask_conservation"] = mask_conservation_loss(real_a, out["fake_b"], mask_a)
            total = total + h.lambda_mask * losses["mask_conservation"]
        if h.lambda_crack_contrast > 0:
            losses["crack_contrast"] = crack_contrast_loss(real_a, out["fake_b"], mask_a)
            total = total + h.lambda_crack_contrast * losses["crack_contrast"]
        if h.lambda_background_texture > 0:
            losses["background_texture"] = background_texture_loss(real_a, out["fake_b"], mask_a)
            total = total + h.lambda_background_texture * losses["background_texture"]
        losses["total"] = total
        return losses

    def semantic_target(self, real_a: torch.Tensor, mask_a: torch.Tensor) -> torch.Tensor:
        """What f_s(G(A)) must match: A's mask, or (``consistency``) f_s's reading of A on
        background pixels with the mask kept on cracks."""
        if self.hparams.semantic_target == "mask":
            return mask_a
        with torch.no_grad():
            return consistency_target(mask_a, self.seg(real_a))

    def semantic_weight(self) -> float:
        h = self.hparams
        return ramp_weight(
            self.global_step, h.lambda_semantic, h.semantic_warmup_steps, h.semantic_start_step
        )

    def discriminator_loss(self, out: dict, real_a: torch.Tensor, real_b: torch.Tensor, mask_a):
        """Real and pooled fake go through each D as one batch (per-sample norm: same result)."""
        fake_b, _ = self.pool_b.query(out["fake_b"], mask_a)
        fake_a, _ = self.pool_a.query(out["fake_a"])
        n = real_b.shape[0]
        pb = self.d_b(torch.cat([real_b, fake_b]))
        pa = self.d_a(torch.cat([real_a, fake_a]))
        return discriminator_loss(pb[:n], pb[n:]) + discriminator_loss(pa[:n], pa[n:])

    def segmenter_loss(self, out: dict, real_a: torch.Tensor, mask_a: torch.Tensor):
        """f_s learns from synthetic labels, and from G(A) with the carried mask so it keeps
        working on the images the semantic loss feeds it."""
        images, masks = real_a, mask_a
        if self.hparams.segmenter_on_fake:
            images = torch.cat([real_a, out["fake_b"].detach()])
            masks = torch.cat([mask_a, mask_a])
        return semantic_loss(self.seg(images), masks)

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        real_a, mask_a, real_b = batch["a_image"], batch["a_mask"], batch["b_image"]
        if self._channels_last:
            real_a = real_a.contiguous(memory_format=torch.channels_last)
            real_b = real_b.contiguous(memory_format=torch.channels_last)
        opts = self.optimizers()
        identity = self.hparams.lambda_identity > 0

        set_requires_grad(self._d_params + self._s_params, False)
        out = self.generate(real_a, real_b, identity)
        losses = self.generator_losses(out, real_a, mask_a, real_b)
        opts[0].zero_grad(set_to_none=True)
        self.manual_backward(losses["total"])
        opts[0].step()  # the only step that counts towards global_step

        set_requires_grad(self._d_params, True)
        losses["d"] = self.discriminator_loss(out, real_a, real_b, mask_a)
        opts[1].zero_grad(set_to_none=True)
        self.manual_backward(losses["d"])
        self._quiet_step(opts[1])

        if self.seg is not None:
            set_requires_grad(self._s_params, True)
            losses["segmenter"] = self.segmenter_loss(out, real_a, mask_a)
            opts[2].zero_grad(set_to_none=True)
            self.manual_backward(losses["segmenter"])
            self._quiet_step(opts[2])

        scheds = self.lr_schedulers()
        for sched in scheds if isinstance(scheds, list) else [scheds]:
            sched.step()
        self._log_step(losses)
        self._maybe_log_images(batch, out, mask_a)
        return {"loss": losses["total"].detach()}

    # ------------------------------------------------------------------ logging

    def _log_step(self, losses: dict[str, torch.Tensor]) -> None:
        """Scalars only at logger intervals: no host sync on the other steps."""
        if not self._should_log():
            return
        metrics = {f"train/{k}": v.detach() for k, v in losses.items()}
        metrics["train/semantic_weight"] = self.semantic_weight()
        self.log_dict(metrics, on_step=True, on_epoch=False, sync_dist=False)

    def _maybe_log_images(self, batch: dict, out: dict, mask_a: torch.Tensor) -> None:
        every = self.hparams.log_images_every_n_steps
        done = self.global_step  # already advanced: generator steps done, this one included
        if not every or done % every or not self.trainer.is_global_zero:
            return
        n = min(self.hparams.num_log_images, mask_a.shape[0])
        fake_b, m = out["fake_b"][:n], mask_a[:n]
        rows = [
            overlay_masks(batch["a_image"][:n], m),
            overlay_masks(fake_b, m),
            overlay_masks(out["rec_a"][:n], None),
            overlay_masks(batch["b_image"][:n], None),
            overlay_masks(out["fake_a"][:n], None),
        ]
        mask_rows = [m, m, None, None, None]
        if self.seg is not None:
            pred = self._predict_seg(out, fake_b)
            rows.append(overlay_masks(fake_b, pred))
            mask_rows.append(pred)
        masks = grid_masks(mask_rows, rows[0])
        log_image(self.trainer, "adapt/A_GA_FGA_B_FB_fsGA", grid_rows(rows), masks=masks)

    @torch.no_grad()
    def _predict_seg(self, out: dict, fake_b: torch.Tensor) -> torch.Tensor:
        logits = out.get("seg_fake")
        if logits is None:
            was_training = self.seg.training
            self.seg.eval()
            logits = self.seg(fake_b)
            self.seg.train(was_training)
        return logits[: fake_b.shape[0]].argmax(1)
