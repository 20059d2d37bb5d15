"""Loss terms of the semantic CycleGAN, each a small pure function so tests can pin them down."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synth.io import IGNORE_INDEX


def lsgan_loss(pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al.): MSE against 1 (real) or 0 (fake); steadier than BCE."""
    target = 1.0 if target_is_real else 0.0
    return F.mse_loss(pred, torch.full_like(pred, target))


def discriminator_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Halved as in CycleGAN, which slows D relative to G."""
    return 0.5 * (lsgan_loss(pred_real, True) + lsgan_loss(pred_fake, False))


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cycle and identity reconstruction loss."""
    return F.l1_loss(x, y)


def semantic_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of f_s(G(A)) against A's carried mask: G must keep cracks segmentable.

    A batch made only of ignore pixels gives 0 (not NaN), so it cannot poison the generator.
    """
    if not (mask != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX)


def consistency_target(mask: torch.Tensor, source_logits: torch.Tensor) -> torch.Tensor:
    """Target for f_s(G(A)) under CyCADA's semantic consistency: f_s's own reading of A on
    background pixels, A's mask on crack (and ignore) pixels.

    Against the plain mask, every background texture that f_s takes for a crack (aggregate
    gaps, relief crescents) is a loss G can lower by erasing it, and it did: scored by one
    source-only model, the translated set had half the false-crack pixels per true crack
    pixel of the synthetic one, so it taught fewer hard negatives (README, Sim-to-real).
    Here G only has to keep f_s's reading of the scene, distractors included, and the
    cracks.
    """
    return torch.where(mask == 0, source_logits.argmax(1), mask)


def mask_conservation_loss(
    real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean L1 between A and G(A) over background pixels (class 0; crack and ignore excluded).

    Cracks may change appearance, the rest of the scene must stay put, so cracks cannot be
    moved or invented off-mask. Exactly zero when G is the identity.
    """
    keep = (mask == 0).unsqueeze(1).to(real.dtype)
    diff = (fake - real).abs() * keep
    return diff.sum() / (keep.sum() * real.shape[1]).clamp_min(1.0)


def local_contrast(images: torch.Tensor, window: int = 15) -> torch.Tensor:
    """Grey level minus its ``window`` x ``window`` neighbourhood mean, (B,1,H,W)."""
    grey = images.mean(1, keepdim=True)
    mean = F.avg_pool2d(grey, window, stride=1, padding=window // 2, count_include_pad=False)
    return grey - mean


def crack_contrast_loss(
    real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor, window: int = 15
) -> torch.Tensor:
    """Mean L1 between the local contrast of A and of G(A) over crack pixels (class 1).

    Mask conservation leaves crack pixels free, and G used that freedom to lighten them (+4.6
    grey levels on cracks against +2.3 on background: tools/translate.py's grey_shift_*):
    the carried mask then labels cracks fainter than the simulator drew them, which teaches a
    task model that faint dark texture is crack. Contrast to the neighbourhood, not the pixel
    value, is held, so G may still move colour and texture. Zero for the identity and for any
    global shift of grey level.
    """
    keep = (mask == 1).unsqueeze(1).to(real.dtype)
    diff = (local_contrast(fake, window) - local_contrast(real, window)).abs() * keep
    return diff.sum() / keep.sum().clamp_min(1.0)


def far_background(mask: torch.Tensor, margin: int = 4) -> torch.Tensor:
    """Background pixels (class 0) outside the (2 ``margin`` + 1)-px square around every crack
    pixel, (B,1,H,W) bool: more than ``margin`` px away along a row or column (a square, not a
    disc: a margin to keep clear, where the few diagonal pixels more make no difference).

    A crack's dark line lifts the local contrast of its whole neighbourhood, so texture is
    read only away from it: what remains is the stains, joints and mottling the simulator drew
    as unlabeled distractors.
    """
    crack = (mask == 1).unsqueeze(1).float()
    near = F.max_pool2d(crack, 2 * margin + 1, stride=1, padding=margin) > 0
    return (mask == 0).unsqueeze(1) & ~near


TEXTURE_FLOOR = 0.01  # in [-1, 1] image units


def background_texture_loss(
    real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor, window: int = 15
) -> torch.Tensor:
    """Relative change of each image's background texture energy (mean |local contrast| over
    ``far_background``) from A to G(A), averaged over the batch.

    Both GANs smoothed the background (13.3 -> 11.7 grey levels of texture, translate's
    background_contrast), which could hide the simulator's distractors from the task model.
    One scalar per image is held, not each pixel, so G may still re-draw the texture in the
    real photos' style; it only may not flatten or exaggerate it. Zero for the identity and
    for any global shift of grey level. Off by default: on DeepCrack the photos are smoother
    than the simulator's scenes (translate's texture_level), so the smoothing was adaptation,
    and holding it left F1 where it was (docs/experiments.md, "five ways to use the GAN").
    """
    keep = far_background(mask).to(real.dtype)
    area = keep.sum((1, 2, 3)).clamp_min(1.0)
    before = (local_contrast(real, window).abs() * keep).sum((1, 2, 3)) / area
    after = (local_contrast(fake, window).abs() * keep).sum((1, 2, 3)) / area
    # A flat scene (texture ~0) is read against 0.01, about 1.3 grey levels, not against 0.
    return ((after - before).abs() / before.clamp_min(TEXTURE_FLOOR)).mean()


def ramp_weight(step: int, weight: float, warmup_steps: int, start_step: int = 0) -> float:
    """``weight`` ramped linearly from 0 at ``start_step`` to full after ``warmup_steps``.

    The semantic term is meaningless until f_s has learned something, so it fades in instead
    of switching on at a threshold.
    """
    if warmup_steps <= 0:
        return weight if step >= start_step else 0.0
    return weight * min(1.0, max(0.0, (step - start_step) / warmup_steps))


def linear_decay(step: int, constant_steps: int, decay_steps: int) -> float:
    """LR factor: 1 for ``constant_steps``, then linear to 0 over ``decay_steps`` (CycleGAN)."""
    if decay_steps <= 0 or step < constant_steps:
        return 1.0
    return max(0.0, 1.0 - (step - constant_steps) / decay_steps)
