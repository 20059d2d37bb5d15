"""The simulator's output is pinned to its version (``synth.scene.SIMULATOR_VERSION``).

A render records the version, and a folder rendered by another one is rendered anew or
refused, never resumed into a mix. That guard holds only if a change to the scenes comes
with a bump, which this test enforces: eight scenes of a fixed config, reduced to 8x8 block
means (image) and block counts (mask; from version 3 also of the pixels of a scene's second and
later cracks, which the stored instance maps hold), must match the fingerprint stored for the
current version. The tolerance absorbs last-bit float and OpenCV differences between CPUs; a change to
what the simulator draws moves blocks by far more. A failure after a numpy or OpenCV upgrade
is the same news (numpy does not promise its random streams across versions): the scenes of
one setting, seed and index changed, and old renders should not be resumed with new ones.

After an intended change: bump SIMULATOR_VERSION, then record its fingerprint with
``SIM2REAL_RECORD_GOLDEN=1 python -m pytest tests/test_synth_golden.py``. A version's
recorded fingerprint is never rewritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from synth import crack
from synth.scene import SIMULATOR_VERSION, render_crack_scene

GOLDEN = Path(__file__).with_name("golden_scenes.json")
BLOCK = 8  # px a side of each block the fingerprint averages over
MAX_GREY_DIFF = 1.0  # grey levels, of a block's mean
MAX_MASK_DIFF = 3  # crack pixels, of a block's count (of 64)
MAX_CRACK_SHARE_DIFF = 0.01  # of a scene's crack pixels, plus 2 (a label threshold's move)


def fingerprint(cfg: dict, seed: int, count: int) -> list[dict]:
    """Per scene: each block's mean grey per channel, its count of crack pixels, and its count
    of pixels of a crack other than the first (instance ids above 1)."""
    prints = []
    for index in range(count):
        sample = render_crack_scene(cfg, seed, index)
        h, w = sample.semantic.shape
        blocks = (h // BLOCK, BLOCK, w // BLOCK, BLOCK)
        image = sample.image.astype(np.float64).reshape(*blocks, 3).mean(axis=(1, 3))
        mask = (sample.semantic == 1).reshape(blocks).sum(axis=(1, 3))
        later = (sample.instance > 1).reshape(blocks).sum(axis=(1, 3))
        prints.append(
            {"image": np.round(image, 2).tolist(), "mask": mask.tolist(), "later": later.tolist()}
        )
    return prints


def differences(got: list[dict], want: list[dict]) -> list[str]:
    """The scenes whose blocks moved past the tolerance, with by how much (instance ids only
    where the recorded fingerprint holds them: versions 1 and 2 did not)."""
    moved = []
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        grey = np.abs(np.array(g["image"]) - np.array(w["image"])).max()
        mask = np.abs(np.array(g["mask"]) - np.array(w["mask"])).max()
        if "later" in w:
            mask = max(mask, np.abs(np.array(g["later"]) - np.array(w["later"])).max())
        total, wanted = np.sum(g["mask"]), np.sum(w["mask"])
        if (
            grey > MAX_GREY_DIFF
            or mask > MAX_MASK_DIFF
            or abs(total - wanted) > MAX_CRACK_SHARE_DIFF * wanted + 2
        ):
            moved.append(
                f"scene {index}: grey {grey:.2f}, crack pixels (or later cracks' ids) {mask} a block, "
                f"{total} against {wanted} in all"
            )
    return moved


def test_the_scenes_match_their_versions_fingerprint() -> None:
    golden = json.loads(GOLDEN.read_text())
    got = fingerprint(golden["config"], golden["seed"], golden["count"])
    recorded = golden["fingerprints"].get(str(SIMULATOR_VERSION))
    if recorded is None and os.environ.get("SIM2REAL_RECORD_GOLDEN") == "1":
        golden["fingerprints"][str(SIMULATOR_VERSION)] = got
        GOLDEN.write_text(json.dumps(golden, separators=(",", ":")) + "\n")
        pytest.skip(f"recorded simulator version {SIMULATOR_VERSION}'s fingerprint")
    assert recorded is not None, (
        f"simulator version {SIMULATOR_VERSION} has no recorded fingerprint: record it with "
        "SIM2REAL_RECORD_GOLDEN=1 python -m pytest tests/test_synth_golden.py"
    )
    moved = differences(got, recorded)
    assert not moved, (
        f"the simulator's scenes changed under version {SIMULATOR_VERSION} ({'; '.join(moved)}):"
        " bump synth.scene.SIMULATOR_VERSION so renders of the old version are not resumed "
        "with the new one, then record its fingerprint (this file's docstring says how)"
    )


def test_the_fingerprint_tells_a_changed_scene_from_float_noise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tolerance lets last-bit noise through and stops a change to what is drawn."""
    golden = json.loads(GOLDEN.read_text())
    base = fingerprint(golden["config"], golden["seed"], 2)
    cfg = json.loads(json.dumps(golden["config"]))
    noisy = [{**p, "image": (np.array(p["image"]) + 0.3).tolist()} for p in base]
    assert differences(noisy, base) == []
    cfg["crack"]["depth"] = {"uniform": [0.05, 0.1]}  # fainter cracks
    assert differences(fingerprint(cfg, golden["seed"], 2), base)
    monkeypatch.setattr("synth.scene.LABEL_THRESHOLD", 0.45)  # labels a little wider
    assert differences(fingerprint(golden["config"], golden["seed"], 2), base)
    monkeypatch.undo()
    cfg = json.loads(json.dumps(golden["config"]))
    cfg["surface"]["base_grey"] = {"uniform": [0.46, 0.83]}  # one grey level brighter
    assert differences(fingerprint(cfg, golden["seed"], 2), base)
    base = fingerprint(golden["config"], golden["seed"], 5)  # scene 4 holds two cracks

    def band(ids: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Version 2's rule: the highest id within a square round each pixel."""
        return crack.window_max(ids, 8)

    monkeypatch.setattr(crack, "nearest_ids", band)
    assert differences(fingerprint(golden["config"], golden["seed"], 5), base)
