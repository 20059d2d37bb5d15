"""Scenes: labels sit on the darkened pixels, crack-free images are empty, meta is complete."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _synth_fixtures import tiny_config

from synth import camera, crack
from synth.io import IGNORE_INDEX
from synth.rng import sample_rng
from synth.scene import render_crack_scene
from synth.surface import aggregate, mottle, paint_stripe, pores, relief


def ring_contrast(image: np.ndarray, crack: np.ndarray) -> float:
    """Mean grey of background 3-8 px from the crack minus mean grey of the crack."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dist = cv2.distanceTransform((~crack).astype(np.uint8), cv2.DIST_L2, 5)
    ring = (dist >= 3) & (dist <= 8)
    return float(grey[ring].mean() - grey[crack].mean())


def test_masks_align_with_darkened_pixels() -> None:
    cfg = tiny_config(p_no_crack=0.0)
    cfg["crack"]["p_filled"] = 0.0  # light-filled cracks are the one intended exception
    contrasts = []
    for i in range(12):
        s = render_crack_scene(cfg, 3, i)
        crack = s.semantic == 1
        if crack.sum() > 20:
            contrasts.append(ring_contrast(s.image, crack))
            # Shifting the mask off the crack must lose the contrast: the label is not just
            # "somewhere near" the drawn crack.
            shifted = np.roll(crack, 6, axis=1) & ~crack
            if shifted.sum() > 20:
                assert ring_contrast(s.image, shifted) < contrasts[-1]
    assert len(contrasts) >= 8
    assert np.mean(contrasts) > 25 and min(contrasts) > 0


def test_crack_free_images_have_no_crack_pixels() -> None:
    cfg = tiny_config(p_no_crack=1.0)
    for i in range(6):
        s = render_crack_scene(cfg, 0, i)
        assert not s.meta["has_crack"] and s.meta["crack_share"] == 0
        assert not s.semantic.any() and not s.instance.any()


def test_p_no_crack_sets_the_negative_share() -> None:
    cfg = tiny_config(p_no_crack=0.15)
    free = [not render_crack_scene(cfg, 1, i).meta["has_crack"] for i in range(200)]
    assert 0.08 < np.mean(free) < 0.23


def test_sample_contract_and_meta() -> None:
    s = render_crack_scene(tiny_config(p_no_crack=0.0), 5, 2)
    assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
    assert s.semantic.shape == (64, 64) and s.semantic.dtype == np.uint8
    assert s.instance.dtype == np.uint16 and set(np.unique(s.semantic)) <= {0, 1}
    assert np.array_equal(s.instance > 0, s.semantic == 1)
    assert {"index", "seed", "crack_share", "params"} <= set(s.meta)
    assert s.meta["crack_share"] == pytest.approx((s.semantic == 1).mean(), abs=1e-5)
    assert "crack.width" in s.meta["params"] and "surface.base_grey" in s.meta["params"]


def test_ignore_band_marks_only_background_next_to_cracks() -> None:
    plain = render_crack_scene(tiny_config(p_no_crack=0.0), 4, 0)
    banded = render_crack_scene(tiny_config(p_no_crack=0.0, ignore_band=2), 4, 0)
    assert np.array_equal(plain.image, banded.image)
    assert np.array_equal(banded.semantic == 1, plain.semantic == 1)
    band = banded.semantic == IGNORE_INDEX
    assert band.any() and not (band & (plain.semantic == 1)).any()
    dist = cv2.distanceTransform((plain.semantic != 1).astype(np.uint8), cv2.DIST_L2, 5)
    assert dist[band].max() <= 2.5


def test_rng_depends_only_on_seed_and_index() -> None:
    a = sample_rng(3, 10).random(4)
    assert np.array_equal(a, sample_rng(3, 10).random(4))
    assert not np.array_equal(a, sample_rng(3, 11).random(4))
    assert not np.array_equal(a, sample_rng(4, 10).random(4))
    with pytest.raises(ValueError):
        sample_rng(-1, 0)


def test_relief_shading_has_the_requested_contrast_and_is_deterministic():
    shade = relief(np.random.default_rng(0), 128, 40, 0.1)
    assert shade.dtype == np.float32 and shade.shape == (128, 128)
    assert abs(float(shade.mean()) - 1.0) < 0.02
    assert float(shade.std()) == pytest.approx(0.1, rel=0.05)
    assert np.array_equal(shade, relief(np.random.default_rng(0), 128, 40, 0.1))


def test_aggregate_binder_forms_a_connected_dark_network_that_fill_closes():
    """Stones must leave dark seams between them (the real-asphalt false cracks), and a larger
    ``fill`` must close them: a renderer that drew a flat or fully covered field fails."""
    binder_share = {}
    for fill in (0.8, 1.3):
        field = aggregate(np.random.default_rng(0), 128, 5.0, fill)
        assert field.dtype == np.float32 and field.shape == (128, 128)
        assert field.min() >= -1.0 and field.max() <= 1.0
        binder = (field < -0.6).astype(np.uint8)
        binder_share[fill] = float(binder.mean())
        if fill == 0.8:  # the seams join into one network across the image
            count, labels, stats, _ = cv2.connectedComponentsWithStats(binder, connectivity=8)
            largest = stats[1:, cv2.CC_STAT_AREA].max()
            assert largest > 0.8 * binder.sum()
    assert binder_share[0.8] > 2 * binder_share[1.3] > 0
    assert np.array_equal(
        aggregate(np.random.default_rng(1), 64, 4.0, 0.9),
        aggregate(np.random.default_rng(1), 64, 4.0, 0.9),
    )


@pytest.mark.parametrize("coverage", [0.1, 0.3])
def test_mottle_darkens_the_requested_share_in_many_crisp_blotches(coverage: float) -> None:
    """The blotches must cover ``coverage`` of the surface, as many separate patches (not one
    stain), and a small ``edge`` must make them crisp: mostly fully on or off."""
    crisp = mottle(np.random.default_rng(0), 256, 24, coverage, 0.05)
    soft = mottle(np.random.default_rng(0), 256, 24, coverage, 2.0)
    for field in (crisp, soft):
        assert field.dtype == np.float32 and field.shape == (256, 256)
        assert field.min() >= 0.0 and field.max() <= 1.0
    assert float((crisp > 0.5).mean()) == pytest.approx(coverage, abs=0.05)
    count, _ = cv2.connectedComponents((crisp > 0.5).astype(np.uint8))
    assert count - 1 >= 10  # many blotches

    def in_between(f: np.ndarray) -> float:
        return float(((f > 0.1) & (f < 0.9)).mean())

    assert in_between(crisp) < 0.25 * in_between(soft)
    assert np.array_equal(crisp, mottle(np.random.default_rng(0), 256, 24, coverage, 0.05))


@pytest.mark.parametrize("size", [16, 32])
def test_every_distractor_renders_on_tiny_images(size: int) -> None:
    """Tests and smoke runs render at 16-32 px: no distractor may assume a photo-sized image
    (a watermark once drew its first text line below row 10 of a 32 px image and crashed)."""
    cfg = tiny_config(size=size)
    for key in ("p_watermark", "p_mottle", "p_aggregate", "p_paint", "p_stain", "p_shadow"):
        cfg["surface"][key] = 1.0
    for index in range(8):
        sample = render_crack_scene(cfg, 0, index)
        assert sample.image.shape == (size, size, 3)


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("mottle_coverage", 0.0),
        ("mottle_coverage", 1.0),
        ("mottle_edge", 0.0),
        ("shadow_softness", 0.0),
    ],
)
def test_a_distractor_at_the_end_of_its_range_renders(knob: str, value: float) -> None:
    """``mottle_coverage`` 0 or 1 failed mid-render in a quantile (StatisticsError), a zero
    ``mottle_edge`` divided by zero, a zero ``shadow_softness`` warned at every image."""
    import warnings

    cfg = tiny_config(size=32)
    cfg["surface"].update(p_mottle=1.0, p_shadow=1.0, **{knob: value})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for index in range(3):
            assert render_crack_scene(cfg, 0, index).image.shape == (32, 32, 3)
    coverage = value if knob == "mottle_coverage" else 0.3
    field = mottle(np.random.default_rng(0), 64, 8, coverage, 0.0)
    if knob == "mottle_coverage":  # none of the surface, or all of it
        assert (field == value).all()
    else:  # a hard edge
        assert set(np.unique(field)) <= {0.0, 0.5, 1.0} and 0.2 < field.mean() < 0.4


def test_edge_fade_lightens_the_rims_and_keeps_the_core_and_the_mask() -> None:
    # A constant knob draws nothing from the RNG, so both configs draw the same scenes.
    flat, faded = tiny_config(p_no_crack=0.0), tiny_config(p_no_crack=0.0)
    for cfg in (flat, faded):
        cfg["size"] = 128
        cfg["crack"].update(p_filled=0.0, width=12.0, width_variation=0.0, depth_variation=0.0)
        cfg["camera"].update(p_blur=0.0, noise_sigma=0.0, p_jpeg=0.0, p_perspective=0.0)
    flat["crack"]["edge_fade"], faded["crack"]["edge_fade"] = 0.0, 0.6
    rim_gain, core_gain = [], []
    for i in range(4):
        a, b = render_crack_scene(flat, 5, i), render_crack_scene(faded, 5, i)
        assert np.array_equal(a.semantic, b.semantic)
        crack = (a.semantic == 1).astype(np.uint8)
        d = cv2.distanceTransform(crack, cv2.DIST_L2, 5)
        lift = b.image.astype(np.float32).mean(2) - a.image.astype(np.float32).mean(2)
        rim_gain.append(lift[(d > 0) & (d < 1.5)].mean())
        core_gain.append(lift[d >= 5].mean())
    assert min(rim_gain) > 10  # grey levels lighter on the rim
    assert all(c < 0.3 * r for r, c in zip(rim_gain, core_gain, strict=True))


def test_a_crack_wider_than_the_scene_covers_it_without_a_kernel_of_its_width() -> None:
    """The radius dilation's kernel was the widest crack's width: crack.width=30000 asked for
    3.6 GB and 7 s a 256 px scene (1e6 for terabytes, a MemoryError), to a mask that a kernel
    twice the scene's width already fills."""
    cfg = tiny_config(size=32, p_no_crack=0.0)
    cfg["crack"].update(width=1e6, num_cracks=1)
    sample = render_crack_scene(cfg, 0, 0)
    assert sample.semantic.all() and sample.meta["crack_share"] == 1.0


def test_a_paint_line_wider_than_opencv_draws_paints_the_whole_scene() -> None:
    """OpenCV draws lines at most 32767 px thick: paint_width=1.8e7 failed mid-render on an
    assertion; a line four scene sizes thick already paints every pixel."""
    stripe = paint_stripe(np.random.default_rng(0), 32, 1.8e7)
    wide = paint_stripe(np.random.default_rng(0), 32, 128)
    assert np.array_equal(stripe, wide) and (stripe >= 0.6 * 0.99).all()


def crack_pieces(semantic: np.ndarray) -> int:
    """Connected pieces (8-neighbour) of a scene's crack mask."""
    return cv2.connectedComponents((semantic == 1).view(np.uint8), connectivity=8)[0] - 1


@pytest.mark.parametrize("roughness", [2.0, 5.0])
def test_rough_rims_chip_the_cracks_without_cutting_them_into_pieces(roughness: float) -> None:
    """crack.edge_roughness=3 cut cracks into dotted lines and scattered blobs round them (12
    pieces a crack at 256 px): masks of crack shapes no crack has. Rough rims must leave each
    scene the pieces its smooth cracks have, and still chip them."""
    smooth, rough = tiny_config(p_no_crack=0.0), tiny_config(p_no_crack=0.0)
    for cfg in (smooth, rough):  # a warp's resampling may thin a line apart: no perspective
        cfg["camera"]["p_perspective"] = 0.0
    # A constant knob draws nothing from the RNG, so both configs draw the same cracks.
    smooth["crack"]["edge_roughness"], rough["crack"]["edge_roughness"] = 0.0, roughness
    changed = []
    for i in range(8):
        a, b = render_crack_scene(smooth, 2, i).semantic, render_crack_scene(rough, 2, i).semantic
        assert crack_pieces(b) == crack_pieces(a), f"scene {i}"
        changed.append((a != b).sum() / max((a == 1).sum(), 1))
    assert np.mean(changed) > 0.15  # the rims are chipped: a fifth of the crack pixels moved


def test_crossing_cracks_each_keep_the_pixels_nearer_their_own_centreline() -> None:
    """Each pixel took the highest crack id within the widest crack's reach: a thin later
    crack crossing a wide one stamped a band as wide as the wide one's reach across it (its
    instance mask cut far from the thin crack). A pixel takes its nearest centreline's id."""
    size, mid = 64, 32
    across = np.array([[-4.0, mid], [size + 4.0, mid]])
    wide = crack.CrackPath(across, np.full(2, 6.0), 1)
    thin = crack.CrackPath(across[:, ::-1].copy(), np.full(2, 1.0), 2)  # top to bottom
    layer = crack.rasterize([wide, thin], size, np.zeros((size, size), np.float32))
    ids = layer.instance * (layer.coverage >= crack.LABEL_THRESHOLD)
    y, x = np.mgrid[:size, :size]
    to_wide, to_thin = np.abs(y - mid), np.abs(x - mid)  # distances to each centreline
    nearer_wide, nearer_thin = (
        (ids > 0) & (to_wide + 1 < to_thin),
        (ids > 0) & (to_thin + 1 < to_wide),
    )
    assert nearer_wide.sum() > 500 and nearer_thin.sum() > 100  # both cracks drawn, apart
    assert (ids[nearer_wide] == 1).all() and (ids[nearer_thin] == 2).all()


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_window_max_is_opencvs_square_dilation_to_the_bit(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running max stands in for cv2.dilate on wide cracks: the same pixels, bit for bit,
    at every reach (a window past the image's edge sees only the image)."""
    rng = np.random.default_rng(0)
    for ran_from in (crack.RUNNING_MAX_FROM, 0):  # 0: every reach through the running max
        monkeypatch.setattr(crack, "RUNNING_MAX_FROM", ran_from)
        for size in (1, 5, 37, 300):
            for reach in (0, 1, 6, 36, 37, 255, 256, 257, 298, 299, 600):
                image = rng.random((size, size)) * 100 * (rng.random((size, size)) > 0.8)
                image = image.astype(dtype)
                want = cv2.dilate(image, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
                got = crack.window_max(image, reach)
                assert got.dtype == want.dtype and np.array_equal(got, want), (size, reach)


def test_a_wide_crack_is_not_dilated_by_a_window_of_its_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenCV's square dilation costs grow with the window: cracks as wide as a 2048 px scene
    (crack.width=1e5, or crack.width_variation=10 at the default width) took 32-42 s a scene.
    Past RUNNING_MAX_FROM the radius dilation runs as a running max."""
    windows = []
    dilate = cv2.dilate

    def recorded(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        windows.append(kernel.shape[0])
        return dilate(image, kernel)

    monkeypatch.setattr(crack.cv2, "dilate", recorded)
    cfg = tiny_config(size=700, p_no_crack=0.0)
    cfg["crack"].update(width=700.0, width_variation=0.0, num_cracks=2, num_branches=0)
    sample = render_crack_scene(cfg, 0, 0)
    assert sample.meta["crack_share"] > 0.3  # cracks reaching past RUNNING_MAX_FROM
    assert max(windows, default=0) <= 2 * crack.RUNNING_MAX_FROM + 1


def test_a_crack_is_resampled_on_the_image_alone() -> None:
    """Every half pixel of a crack's length was resampled, off the image too: crack.step=1e5
    with branch_length=1000 (legal) asked for 7.5 GB of points for a 256 px scene. The points
    that land on the image must be those of the whole line's resampling."""
    rng = np.random.default_rng(0)
    line = np.array([[-1e6, 5.0], [20.0, 5.0], [20.0, 40.0], [3e5, 9e5]])
    far = crack.CrackPath(line, np.ones(4), 1)
    pts, _ = crack.densify(far, 64)
    assert len(pts) < 400  # about 2 a pixel on the 55 px inside, not 2.6 million
    for size in (16, 64):
        for _ in range(20):
            steps = rng.normal(0, 1, (60, 2)) * rng.choice([0.5, 4.0, 60.0])
            steps[7] = 0  # a zero-length segment
            points = rng.uniform(-0.5, 1.5, 2) * size + np.cumsum(steps, axis=0)
            path = crack.CrackPath(points, rng.uniform(0.3, 4.0, 60), 1)
            (near, r_near), (whole, r_whole) = crack.densify(path, size), crack.densify(path, 10**9)
            on_near = ((np.rint(near) >= 0) & (np.rint(near) < size)).all(axis=1)
            on_whole = ((np.rint(whole) >= 0) & (np.rint(whole) < size)).all(axis=1)
            assert np.array_equal(near[on_near], whole[on_whole])
            assert np.array_equal(r_near[on_near], r_whole[on_whole])


def test_a_pore_wider_than_the_scene_is_drawn_at_a_size_that_covers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenCV's cost kept growing with a pore's axes past the scene: 100,000 pores of radius
    1e5 took 41 s of a 256 px scene. Past 3 sizes every pore covers the scene, the same
    field as at any larger radius."""
    at_three_sizes = pores(np.random.default_rng(0), 32, 20, 96.0)
    axes = []
    ellipse = cv2.ellipse

    def recorded(image: np.ndarray, centre: tuple, size: tuple, *args: object) -> np.ndarray:
        axes.extend(size)
        return ellipse(image, centre, size, *args)

    monkeypatch.setattr(cv2, "ellipse", recorded)
    for radius in (97.0, 1e5):
        assert np.array_equal(pores(np.random.default_rng(0), 32, 20, radius), at_three_sizes)
    assert (at_three_sizes > 0.3).all() and max(axes) <= 1.5 * 96


def warped_scene_mask(
    monkeypatch: pytest.MonkeyPatch, radius: float, end: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 64 px scene of one straight crack of ``radius`` from the left edge to ``end``, seen by
    a camera that magnifies it about 1.1 times: its unwarped coverage, the homography, and the
    scene's crack mask."""
    size = 64
    path = crack.CrackPath(np.array([[-8.0, 6.0], end]), np.full(2, radius), 1)
    layer = crack.rasterize([path], size, np.zeros((size, size), np.float32))
    quad = np.float32([[3, 2], [61, 5], [60, 61], [2, 59]])
    h = cv2.getPerspectiveTransform(quad, np.float32([[0, 0], [size, 0], [size, size], [0, size]]))
    monkeypatch.setattr(crack, "render_cracks", lambda k, size: layer)
    monkeypatch.setattr(camera, "homography", lambda k, size: h)
    semantic = render_crack_scene(tiny_config(p_no_crack=0.0), 0, 0).semantic
    return layer.coverage, h, semantic


@pytest.mark.parametrize("end", [(72.0, 30.0), (72.0, 86.0)])  # shallow, diagonal
def test_a_thin_crack_stays_one_line_through_the_cameras_warp(
    monkeypatch: pytest.MonkeyPatch, end: tuple[float, float]
) -> None:
    """The warp sampled a thin crack's coverage (below 1 at its centre) between pixel centres
    and thresholded it afterwards: its mask fell into dots (519 pieces where the unwarped
    cracks had 276, 300 default scenes at 256 px), which no annotator draws."""
    coverage, _, semantic = warped_scene_mask(monkeypatch, 0.35, end)
    assert coverage.max() < 1 and crack_pieces(coverage >= crack.LABEL_THRESHOLD) == 1
    assert crack_pieces(semantic) == 1


def test_a_warped_crack_mask_is_no_wider_than_the_warped_crack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keeping thin cracks whole must not fatten wide ones: the mask stays within a quarter
    pixel a side of where the warped coverage reaches the label threshold."""
    coverage, h, semantic = warped_scene_mask(monkeypatch, 3.0, (72.0, 50.0))
    warped = cv2.warpPerspective(coverage, h, (64, 64), borderMode=cv2.BORDER_REFLECT)
    exact = (warped >= crack.LABEL_THRESHOLD).view(np.uint8)
    rim = (exact - cv2.erode(exact, np.ones((3, 3), np.uint8))).sum()  # ~ the edge's length
    assert abs(int((semantic == 1).sum()) - int(exact.sum())) < 0.25 * rim
