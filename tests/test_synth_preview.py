"""Contact sheet: a PNG grid of image + overlay tiles, mixing sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synth_fixtures import tiny_config

from synth.distributions import ConfigError
from synth.io import CARD, Sample, read_card, read_image, write_json_atomic
from synth.preview import contact_sheet, load_samples
from synth.render import render_dataset


def test_contact_sheet_mixes_real_and_synthetic_sizes(tmp_path: Path) -> None:
    samples = load_samples(None, None, tiny_config(), num=3)
    real = Sample(np.zeros((48, 80, 3), np.uint8), np.ones((48, 80), np.uint8))
    path = contact_sheet([*samples, real], tmp_path / "sheet.png", nrow=2)
    sheet = read_image(path)
    assert sheet.shape == (2 + 2 * 66, 2 + 4 * 66, 3)
    assert (sheet[..., 0] > sheet[..., 1] + 50).any()  # red crack overlay present


def test_a_photo_of_another_shape_is_shown_whole(tmp_path: Path) -> None:
    """A 384 x 544 photo was cut to its middle square, hiding both ends (where a crack may
    run) without a word. A crack down each end column shows in its overlay, whether the
    photo sets the tile size or is fitted into a square scene's tile."""
    semantic = np.zeros((48, 80), np.uint8)
    semantic[:, [0, 1, 78, 79]] = 1
    photo = Sample(np.full((48, 80, 3), 128, np.uint8), semantic)
    alone = read_image(contact_sheet([photo], tmp_path / "alone.png", nrow=1))
    assert alone.shape == (2 + 50, 2 + 2 * 82, 3)  # the photo's own size: no cut, no pad
    scene = load_samples(None, None, tiny_config(), num=1)[0]
    fitted = read_image(contact_sheet([scene, photo], tmp_path / "fitted.png", nrow=2))
    overlay = fitted[2:66, 2 + 3 * 66 : 3 + 3 * 66 + 64].astype(int)  # the photo's overlay
    red = overlay[..., 0] > overlay[..., 1] + 50
    assert red[:, :3].any() and red[:, -3:].any()  # both ends, scaled into 64 x 64
    assert (overlay[:10] == 255).all()  # padded above: the whole photo is 38 px high


def test_a_sheet_of_unlabeled_photos_shows_each_photo_once(tmp_path: Path) -> None:
    """The report's sheet of the unlabeled training photos showed each photo twice: beside
    itself under an empty overlay."""
    photos = [
        Sample(np.full((48, 48, 3), 40 * k, np.uint8), np.zeros((48, 48), np.uint8))
        for k in range(3)
    ]
    sheet = read_image(contact_sheet(photos, tmp_path / "sheet.png", nrow=3))
    assert sheet.shape == (2 + 50, 2 + 3 * 50, 3)


@pytest.mark.parametrize(
    ("dataset", "overrides", "message"),
    [
        ("set", {"start": 8}, r"^start=8: past the last of the 8 samples in .*set$"),
        (None, {"size": 0}, r"^synth\.size=0: expected a whole number of pixels >= 8$"),
        (None, {"size": 4}, r"^synth\.size=4: expected"),  # what render refuses
        (None, {"num": 0}, r"^num=0: expected a whole number >= 1$"),
    ],
)
def test_a_preview_of_nothing_is_one_line(tmp_path: Path, dataset, overrides, message) -> None:
    """They were tracebacks (``contact_sheet needs at least one sample``, cv2's scale
    assertion), or a sheet of 4 px scenes render would have refused."""
    if dataset:
        render_dataset(tiny_config(), tmp_path / dataset, 8, 4, seed=0, progress=False)
        dataset = tmp_path / dataset
    cfg = tiny_config(**{k: v for k, v in overrides.items() if k == "size"})
    kw = {k: v for k, v in overrides.items() if k != "size"}
    with pytest.raises(ConfigError, match=message):
        load_samples(dataset, None, cfg, **{"num": 4, **kw})


def test_a_sheet_named_as_another_format_is_refused(tmp_path: Path) -> None:
    """``out=sheet.jpg`` wrote PNG bytes under a .jpg name."""
    samples = load_samples(None, None, tiny_config(), num=1)
    with pytest.raises(ConfigError, match=r"sheet\.jpg: the sheet is written as a PNG"):
        contact_sheet(samples, tmp_path / "sheet.jpg")
    assert not (tmp_path / "sheet.jpg").exists()
    assert contact_sheet(samples, tmp_path / "sheet.PNG").is_file()


def test_an_unfinished_render_is_read_with_a_note(tmp_path: Path, capsys) -> None:
    """preview and data_stats read a stopped render's complete shards as if they were the
    set: 2 of 8 scenes, without a word."""
    from synth.stats import synthetic_pairs

    render_dataset(tiny_config(), tmp_path / "part", 8, 2, seed=0, progress=False, shard_count=1)
    capsys.readouterr()
    assert len(load_samples(tmp_path / "part", None, None, num=8)) == 2
    assert len(list(synthetic_pairs(tmp_path / "part", None, 0))) == 2
    notes = capsys.readouterr().out.splitlines()
    assert (
        notes
        == [
            f"note: {tmp_path / 'part'}: unfinished set, a render stopped or still running "
            "(render_spec.json, no dataset_card.json); the 2 samples of its complete shards "
            "are read"
        ]
        * 2
    )
    render_dataset(tiny_config(), tmp_path / "part", 8, 2, seed=0, progress=False)
    capsys.readouterr()
    assert len(load_samples(tmp_path / "part", None, None, num=8)) == 8
    assert "note:" not in capsys.readouterr().out
    # a stopped translation has its card, marked in progress: read without a word
    card = read_card(tmp_path / "part")
    write_json_atomic(tmp_path / "part" / CARD, {**card, "translation": {"in_progress": True}})
    load_samples(tmp_path / "part", None, None, num=8)
    assert "unfinished set, a translation stopped or still running" in capsys.readouterr().out


def test_a_sheet_in_a_folder_that_is_a_file_is_refused_before_any_sample_is_made(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """``out=afile/x.png`` was said as ``afile: File exists`` once the samples were rendered."""
    from _cli_fixtures import tool_exit_code

    import synth.scene

    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(synth.scene, "render_crack_scene", lambda *a: pytest.fail("rendered"))
    code = tool_exit_code("preview", f"out={tmp_path}/afile/x.png", "num=1")
    folder = tmp_path / "afile"
    said = f"error: out={folder}/x.png: its folder {folder}: a file, not a folder"
    assert (code, capsys.readouterr().err.strip()) == (1, said)


def test_a_sheet_named_as_a_folder_there_is_refused_before_any_sample_is_made(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """``out=<a folder named sheet.png>`` was ``Is a directory`` once the samples were made."""
    from _cli_fixtures import tool_exit_code

    import synth.scene

    (tmp_path / "sheet.png").mkdir()
    monkeypatch.setattr(synth.scene, "render_crack_scene", lambda *a: pytest.fail("rendered"))
    code = tool_exit_code("preview", f"out={tmp_path}/sheet.png", "num=1")
    folder = tmp_path / "sheet.png"
    said = f"error: out={folder}: a folder; name the sheet's file, e.g. out={folder}/preview.png"
    assert (code, capsys.readouterr().err.strip()) == (1, said)
