"""Statistics: known widths and contrasts are measured back; the comparison table renders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rich.console import Console

from synth.stats import (
    LABEL_FREE,
    compare_stats,
    compute_stats,
    crack_widths,
    section_falloff,
    skeleton,
    texture_level,
    unmeasured,
)


def band(width: int, size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[20 : 20 + width, 5:60] = 1
    return mask


def test_width_of_straight_bands() -> None:
    for w in (1, 3, 5, 9):
        assert abs(np.median(crack_widths(band(w))) - (w + 1)) <= 0.5  # 2 * distance transform


def test_wide_crack_area_weights_widths_by_area() -> None:
    thin = np.zeros((64, 400), np.uint8)
    thin[10:15, 5:395] = 1  # measured width 6
    both = thin.copy()
    both[30:45, 5:395] = 1  # measured width 16, same length
    image = np.full((64, 400, 3), 150, np.uint8)
    assert compute_stats([(image, thin)])["crack area > 11 px wide"] == 0
    share = compute_stats([(image, both)])["crack area > 11 px wide"]
    assert abs(share - 16 / (6 + 16)) < 0.05, share


def test_skeleton_is_thin_and_inside() -> None:
    mask = band(7)
    skel = skeleton(mask)
    assert skel.any() and not (skel & (mask == 0)).any()
    assert skel.sum() < mask.sum() / 3


def test_contrast_share_and_background() -> None:
    mask = band(4)
    image = np.full((64, 64, 3), 150, np.uint8)
    image[mask == 1] = 50
    blank = np.full((64, 64, 3), 150, np.uint8)
    stats = compute_stats([(image, mask), (blank, np.zeros_like(mask))])
    assert abs(stats["contrast (ring - crack) grey"] - 100) < 1
    assert abs(stats["crack share %"] - 100 * mask.mean() / 2) < 1e-6
    assert stats["crack-free fraction"] == 0.5
    assert stats["background grey mean"] == 150 and stats["background grey std"] == 0


def test_compare_table_lists_both_sets() -> None:
    a = compute_stats([(np.full((32, 32, 3), 100, np.uint8), band(3, 32))])
    console = Console(record=True, width=120)
    console.print(compare_stats(a, a))
    text = console.export_text()
    assert "synthetic" in text and "real" in text and "width median px" in text


def test_contrast_p10_reads_the_faint_tail() -> None:
    """Eight strong cracks and two faint ones: the mean hides the faint ones, p10 is theirs."""
    mask = band(4)
    pairs = []
    for dark in [50] * 8 + [140] * 2:
        image = np.full((64, 64, 3), 150, np.uint8)
        image[mask == 1] = dark
        pairs.append((image, mask))
    stats = compute_stats(pairs)
    assert abs(stats["contrast (ring - crack) grey"] - 82) < 1
    assert abs(stats["contrast p10 grey"] - 10) < 1


def test_texture_level_reads_grain_not_thin_cracks() -> None:
    rng = np.random.default_rng(0)
    grain = rng.normal(0, 1, (192, 256, 1)).repeat(3, axis=2)
    flat = np.full((192, 256, 3), 140, np.uint8)
    assert texture_level(flat) == 0
    faint, strong = (np.clip(140 + a * grain, 0, 255).astype(np.uint8) for a in (5, 10))
    assert 1.8 < texture_level(strong) / texture_level(faint) < 2.2
    cracked = strong.copy()
    cracked[90:92, 20:236] = 30  # a dark 2-px crack across the image: 1 % of the pixels
    assert abs(texture_level(cracked) / texture_level(strong) - 1) < 0.1
    stats = compute_stats([(faint, np.zeros((192, 256), np.uint8))])
    assert stats["texture level grey"] == texture_level(faint)


def test_rim_core_darkness_reads_the_crack_section() -> None:
    """A flat 9-px crack reads 1; the same crack with rims half as dark reads 0.5; a crack with
    no interior (3 px) is left out instead of read as all rim."""
    mask, thin = band(9), band(3)
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    flat = np.full((64, 64, 3), 150, np.uint8)
    flat[mask == 1] = 50
    v_shaped = flat.copy()
    v_shaped[(inside > 0) & (inside < 1.5)] = 100
    assert compute_stats([(flat, mask)])["rim / core darkness"] == pytest.approx(1.0)
    assert compute_stats([(v_shaped, mask)])["rim / core darkness"] == pytest.approx(0.5)
    assert np.isnan(compute_stats([(flat, thin)])["rim / core darkness"])


def test_section_falloff_tells_a_flat_crack_from_a_v_without_labels() -> None:
    """A 9-px crack 80 grey levels dark reads 1 two px off its middle when flat and 0.6 when
    its darkness falls linearly to the rims; grain alone (no crack) reads None, and a
    statistics table built without any crack says NaN rather than a number."""
    rows = np.abs(np.arange(96) - 44)[:, None]
    inside = (rows <= 4) & (np.arange(160) >= 10) & (np.arange(160) < 150)
    flat = np.full((96, 160, 3), 150, np.uint8)
    flat[inside] = 70
    v_shaped = flat.copy()
    depth = np.broadcast_to(80 * (1 - rows / 5), (96, 160))
    v_shaped[inside] = (150 - depth[inside])[:, None].astype(np.uint8)
    assert section_falloff(flat) == pytest.approx(1.0)
    assert section_falloff(v_shaped) == pytest.approx(0.6, abs=0.02)
    grain = np.random.default_rng(0).integers(140, 160, (96, 160, 3)).astype(np.uint8)
    assert section_falloff(grain) is None
    no_crack = np.zeros((96, 160), np.uint8)
    assert np.isnan(compute_stats([(grain, no_crack)])["section fall-off at 2 px (no labels)"])
    assert compute_stats([(v_shaped, inside.astype(np.uint8))])[
        "section fall-off at 2 px (no labels)"
    ] == pytest.approx(0.6, abs=0.02)


@pytest.mark.parametrize("masks", ["missing", "null"])
def test_data_stats_on_unlabelled_photos_shows_only_what_the_images_say(tmp_path, masks):
    """The product's user has photos and no masks: the real column keeps the label-free rows
    and leaves the rest empty, not a crack share of 0 from empty masks; and says so, masks
    missing or left out (``real_masks=null`` said nothing of its nan rows)."""
    import shutil

    from _cli_fixtures import run_tool

    from synth.toy import write_toy_real_folder

    data = write_toy_real_folder(tmp_path / "real", n=2, h=48, w=64)
    overrides = [f"paths.data_dir={data}", f"paths.log_dir={tmp_path}/logs", "num_synthetic=2"]
    if masks == "missing":
        shutil.rmtree(data / "train_lab")
    else:
        overrides.append("real_masks=null")
    proc = run_tool("data_stats", *overrides, "synth.size=64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = f"no masks at {data / 'train_lab'}" if masks == "missing" else "real_masks=null"
    assert f"{said}: the real column has the label-free statistics only" in proc.stdout
    rows = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in proc.stdout.splitlines()
        if line.count("│") == 5
    }
    assert rows["images"] == "2" and rows["crack share %"] == "nan"
    assert rows["texture level grey"] not in ("nan", "0")
    # a nan of a row that was measured says why; the real column's label rows were said above
    table = [line.split("│") for line in proc.stdout.splitlines() if line.count("│") == 5]
    nans = [f"synthetic {c[1].strip()}" for c in table if c[2].strip() == "nan"]
    nans += [
        f"real {c[1].strip()}"
        for c in table
        if c[3].strip() == "nan" and c[1].strip() in LABEL_FREE
    ]
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    assert [note[len("note: ") :].split(": nan, ")[0] for note in notes] == nans
    assert "real section fall-off at 2 px (no labels)" in nans  # toy photos at 48x64 px


def test_a_nan_statistic_says_why() -> None:
    grain = np.random.default_rng(0).integers(100, 140, (48, 64, 3)).astype(np.uint8)
    stats = compute_stats([(grain, np.zeros((48, 64), np.uint8))])
    notes = unmeasured(stats, "synthetic")
    assert "synthetic width median px: nan, no crack pixel in any mask" in notes
    assert any(n.startswith("synthetic section fall-off") and "spans 40 px" in n for n in notes)
    assert not any(n.startswith(("synthetic texture", "synthetic background")) for n in notes)
    assert unmeasured(stats, "real", LABEL_FREE) == [
        n.replace("synthetic", "real") for n in notes if "fall-off" in n
    ]


def test_scenes_rendered_for_the_statistics_have_their_settings_checked_as_render_does():
    """synth.size=0 was a cv2 traceback; 5000 px and p_no_crack=2 went through, unchecked."""
    from _synth_fixtures import tiny_config

    from synth.distributions import ConfigError
    from synth.stats import synthetic_pairs

    for setting, said in (({"size": 0}, "synth.size=0"), ({"p_no_crack": 2}, "p_no_crack=2")):
        with pytest.raises(ConfigError, match=said):
            synthetic_pairs(None, {**tiny_config(), **setting}, 1)  # at the call, not later
