"""Loss terms, pool, networks and the FID substitute of the semantic CycleGAN."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _gan_fixtures import make_real, make_synthetic, reference_bench_dir, tiny_gan

from gan.checkpoint import UnsafeCheckpointError
from gan.fid import PROXY_NAME, domain_gap, proxy_distance
from gan.losses import (
    background_texture_loss,
    consistency_target,
    crack_contrast_loss,
    linear_decay,
    local_contrast,
    mask_conservation_loss,
    ramp_weight,
    semantic_loss,
)
from gan.networks import InstanceNorm, PatchDiscriminator, ResnetGenerator, build_generator
from gan.pool import ImagePool

REFERENCE = reference_bench_dir()


def test_mask_conservation_zero_for_identity_and_ignores_cracks():
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 16, 16, dtype=torch.long)
    mask[:, :, 5:7] = 1
    mask[:, :, 7] = 255
    assert mask_conservation_loss(real, real.clone(), mask).item() == 0.0
    fake = real.clone()
    fake[:, :, :, 5:8] += 1.0  # change only crack + ignore pixels
    assert mask_conservation_loss(real, fake, mask).item() == 0.0
    fake[:, :, 0, 0] += 1.0  # one background pixel moves
    assert mask_conservation_loss(real, fake, mask).item() > 0


def test_semantic_loss_ignores_255_and_is_finite_on_all_ignore():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    mask = torch.full((1, 4, 4), 255, dtype=torch.long)
    loss = semantic_loss(logits, mask)
    assert loss.item() == 0.0
    loss.backward()
    mask[0, 0, 0] = 1
    assert semantic_loss(logits, mask).item() > 0


def test_consistency_target_keeps_cracks_and_f_s_reading_of_the_background():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, 1] = 1  # a crack row
    mask[0, 3, 3] = 255
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1, 0, :2] = 5.0  # f_s takes two background pixels (a distractor) for crack
    logits[0, 0, 1, :] = 5.0  # ... and misses the crack
    target = consistency_target(mask, logits)
    assert target[0, 0, :2].tolist() == [1, 1]  # the distractor stays a "crack" to f_s
    assert target[0, 1].tolist() == [1, 1, 1, 1]  # real cracks stay cracks regardless
    assert target[0, 3, 3] == 255 and target[0, 2].tolist() == [0, 0, 0, 0]
    # Against the plain mask, G pays for f_s firing on the distractor; here it does not.
    fake_logits = logits.clone()
    fake_logits[0, 1, 1, :] = 5.0
    assert semantic_loss(fake_logits, target) < semantic_loss(fake_logits, mask)


def test_ramp_and_decay_schedules():
    assert ramp_weight(0, 2.0, 10) == 0.0
    assert ramp_weight(5, 2.0, 10) == pytest.approx(1.0)
    assert ramp_weight(50, 2.0, 10) == 2.0
    assert ramp_weight(3, 2.0, 10, start_step=5) == 0.0
    assert linear_decay(9, 10, 10) == 1.0
    assert linear_decay(15, 10, 10) == pytest.approx(0.5)
    assert linear_decay(25, 10, 10) == 0.0


def test_pool_returns_current_until_full_then_mixes_history():
    pool = ImagePool(2)
    a = torch.zeros(2, 3, 4, 4)
    out, masks = pool.query(a, torch.zeros(2, 4, 4, dtype=torch.long))
    assert torch.equal(out, a) and masks.shape == (2, 4, 4) and len(pool) == 2
    torch.manual_seed(0)
    seen_old = False
    for _ in range(20):
        out, _ = pool.query(torch.ones(1, 3, 4, 4))
        seen_old |= bool((out == 0).all())
    assert seen_old and len(pool) == 2
    assert ImagePool(0).query(a)[0] is not None


@pytest.mark.skipif(REFERENCE is None, reason="no reference CycleGAN step")
def test_resnet_generator_and_discriminator_match_reference():
    sys.path.insert(0, str(REFERENCE))
    import reference_cyclegan_step as ref

    ours, theirs = ResnetGenerator(3, 8, 2), ref.generator(8, 2)
    theirs.load_state_dict(ours.state_dict())  # same keys and shapes
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    d_ours, d_ref = PatchDiscriminator(3, 8), ref.discriminator(8)
    d_ref.load_state_dict(d_ours.state_dict())
    assert torch.allclose(d_ours(x), d_ref(x), atol=1e-6)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_instance_norm_equals_torch_instance_norm_in_values_and_gradients(memory_format):
    x = (torch.randn(3, 5, 7, 6) * 4 + 2).contiguous(memory_format=memory_format)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y1, y2 = InstanceNorm(5)(x1), torch.nn.InstanceNorm2d(5)(x2)
    assert torch.allclose(y1, y2, atol=1e-5)
    weights = torch.randn_like(y1)
    (y1 * weights).sum().backward()
    (y2 * weights).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert InstanceNorm(5).state_dict() == {}


def test_light_generator_is_smaller_and_size_preserving():
    light, full = build_generator("light", 16, 2), build_generator("resnet", 16, 2)
    assert sum(p.numel() for p in light.parameters()) < sum(p.numel() for p in full.parameters())
    assert light(torch.zeros(1, 3, 36, 44)).shape == (1, 3, 36, 44)


def random_inception_weights(path: Path) -> Path:
    """A randomly initialized FID Inception state dict: exercises the local-weights path
    without the real 92 MB file (and without any download)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a: None),
    ):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)
    return path


def test_fid_and_kid_from_local_inception_weights(tmp_path, capsys):
    syn = make_synthetic(tmp_path / "syn", n=4)
    real = make_real(tmp_path / "real", n=4)
    weights = random_inception_weights(tmp_path / "inception.pt")
    report = domain_gap(syn, real, inception_weights=str(weights), max_images=4, size=32)
    assert report["fid_available"] is True and PROXY_NAME not in report
    assert all(math.isfinite(report[k]) for k in ("fid", "kid_mean", "kid_std"))
    assert "FID unavailable" not in capsys.readouterr().out


def test_inception_weights_that_need_unpickling_are_refused(tmp_path):
    syn = make_synthetic(tmp_path / "syn", n=2)
    bad = tmp_path / "inception.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, bad)  # a pickled module, not plain tensors
    with pytest.raises(UnsafeCheckpointError, match="not a plain tensor state dict"):
        domain_gap(syn, syn, inception_weights=str(bad), max_images=2, size=32)


def test_fid_substitute_named_and_never_called_fid(tmp_path, capsys):
    syn = make_synthetic(tmp_path / "syn", n=6)
    real = make_real(tmp_path / "real", n=6)
    report = domain_gap(syn, real, inception_weights=None, max_images=6, size=32)
    assert "FID unavailable" in capsys.readouterr().out
    assert report["fid_available"] is False and "fid" not in report
    assert report[PROXY_NAME] > 0
    same = domain_gap(real, real, inception_weights=None, max_images=6, size=32)
    assert same[PROXY_NAME] < report[PROXY_NAME]


def test_the_proxy_distance_to_grey_photos_stays_on_scale():
    """Grey photos have no saturation at all: a slightly tinted set used to score ~1e10
    (the constant feature divided by 1e-6), further than a set of another texture and colour."""
    rng = np.random.default_rng(0)
    grey = [np.repeat(rng.integers(90, 160, (32, 32, 1), np.uint8), 3, axis=2) for _ in range(12)]
    tinted = [np.clip(g.astype(int) + [4, 0, 0], 0, 255).astype(np.uint8) for g in grey]
    other = [rng.integers(0, 255, (32, 32, 3), np.uint8) for _ in range(12)]
    near, far = proxy_distance(tinted, grey), proxy_distance(other, grey)
    assert 0 < near < far < 1e6, (near, far)
    assert proxy_distance(grey, grey) < near


def test_crack_contrast_holds_crack_darkness_not_colour():
    real = torch.rand(2, 3, 32, 32) * 0.2
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[:, 10:13, :] = 1
    real[:, :, 10:13, :] -= 0.5  # a dark crack
    assert crack_contrast_loss(real, real.clone(), mask).item() == 0.0
    shifted = real + 0.3  # a global colour/brightness move keeps every local contrast
    assert crack_contrast_loss(real, shifted, mask).item() < 1e-6
    lightened = real.clone()
    lightened[:, :, 10:13, :] += 0.2  # the crack fades into its surroundings
    assert crack_contrast_loss(real, lightened, mask).item() > 0.1
    off_crack = real.clone()
    off_crack[:, :, 25:, :] += 0.5  # far from the crack (beyond the 15 px window): free
    assert crack_contrast_loss(real, off_crack, mask).item() < 1e-6


def test_background_texture_holds_texture_energy_away_from_cracks():
    torch.manual_seed(0)
    real = torch.rand(2, 3, 40, 40) * 0.4 - 0.2  # mottled background
    mask = torch.zeros(2, 40, 40, dtype=torch.long)
    mask[:, 18:21, :] = 1
    assert background_texture_loss(real, real.clone(), mask).item() == 0.0
    assert background_texture_loss(real, real + 0.3, mask).item() < 1e-5  # colour moves freely
    flipped = real.flip(-1)  # same texture, drawn elsewhere: one energy per image, not per pixel
    assert background_texture_loss(real, flipped, mask).item() < 0.05
    smoothed = real.clone()
    smoothed[:, :, :15] *= 0.5  # half the background's mottling flattened to half
    assert background_texture_loss(real, smoothed, mask).item() > 0.15
    near_crack = real.clone()
    near_crack[:, :, 16:23] = 0.0  # within 4 px of the crack: not background texture
    assert background_texture_loss(real, near_crack, mask).item() < 0.05
    flat = torch.zeros_like(real)  # no texture to hold: a faint one drawn on it stays a small loss
    assert background_texture_loss(flat, flat + real * 0.05, mask).item() < 1.0


def test_contrast_and_texture_terms_train_only_when_weighted():
    torch.manual_seed(0)
    real_a, real_b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    mask_a = (torch.rand(2, 16, 16) > 0.8).long()
    for weight in (0.0, 2.0):
        model = tiny_gan(lambda_crack_contrast=weight)
        out = model.generate(real_a, real_b, False)
        losses = model.generator_losses(out, real_a, mask_a, real_b)
        assert ("crack_contrast" in losses) == (weight > 0)
    for weight in (0.0, 2.0):
        model = tiny_gan(lambda_background_texture=weight)
        out = model.generate(real_a, real_b, False)
        losses = model.generator_losses(out, real_a, mask_a, real_b)
        assert ("background_texture" in losses) == (weight > 0)


def test_local_contrast_is_what_the_texture_level_measures() -> None:
    # The GAN's texture terms (torch) and the texture level that data_stats and the translate
    # stage report (synth.stats, cv2) must read the same contrast, borders included: odd sizes
    # so both medians are the middle pixel.
    from synth.stats import texture_level

    image = torch.randint(0, 256, (3, 37, 53), generator=torch.Generator().manual_seed(0))
    ours = local_contrast(image[None].float()).abs().median().item()
    assert texture_level(image.permute(1, 2, 0).numpy().astype("uint8")) == pytest.approx(
        ours, abs=1e-3
    )
