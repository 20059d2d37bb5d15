"""Per-series comparison of two task rows from their per_image.csv files."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from _cli_fixtures import run_tool, tool_exit_code

from gan.compare import (
    StemScore,
    compare_series,
    f1_gain_interval,
    mask_agreement,
    overall,
    paired_counts,
    pooled_f1,
    seed_runs,
    seed_scores,
    series_of,
)
from gan.evaluate import COUNT_FIELDS, CSV_FIELDS, write_rows
from gan.run_names import run_key, seed_run_dirs
from synth.io import DataError


def write_scores(run: Path, scores: dict[str, tuple[float, float, float]]) -> None:
    """stem -> (f1, crack_share_true, crack_share_pred)."""
    run.mkdir(parents=True)
    with open(run / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for stem, (f1, true, pred) in scores.items():
            row = dict(stem=stem, f1=f1, tol_f1=f1, iou=f1 / 2)
            writer.writerow(row | dict(crack_share_true=true, crack_share_pred=pred))


def compare_here(
    capsys: pytest.CaptureFixture[str], *overrides: str
) -> tuple[int | str | None, str, str]:
    """tools/compare_runs.py in this process (tool_exit_code: no tool start; the table test
    runs the command for real): its exit code, what it printed and what it said on stderr."""
    code = tool_exit_code("compare_runs", *overrides)
    out, err = capsys.readouterr()
    return code, out, err


def test_series_drops_the_crop_index_only() -> None:
    assert series_of("11296-23") == "11296"
    assert series_of("IMG_6472-8") == "IMG_6472"
    assert series_of("11129") == "11129"
    assert series_of("a-b-3") == "a-b"


def test_a_stem_whose_group_took_no_part_is_its_own_series() -> None:
    """Like a stem the pattern does not match: not all such stems in one series named None."""
    assert series_of("b", "(a)?b") == "b"
    assert series_of("ab", "(a)?b") == "a"
    scores = {
        stem: StemScore(f1=0.5, crack_share_true=0.1, crack_share_pred=0.1)
        for stem in ("b", "cb", "ab")
    }
    table = compare_series(scores, scores, "(a)?b")  # equal deltas: sorted by name
    assert [(c.series, c.images) for c in table] == [("a", 1), ("b", 1), ("cb", 1)]


def test_seeds_are_averaged_and_only_stems_every_seed_scored_count(tmp_path: Path) -> None:
    write_scores(tmp_path / "adapted", {"p-1": (0.2, 0.1, 0.1), "p-2": (0.4, 0.1, 0.1)})
    write_scores(tmp_path / "adapted-seed1", {"p-1": (0.6, 0.1, 0.3)})
    write_scores(tmp_path / "adapted-x", {"p-1": (1.0, 0.1, 0.1)})  # another row, not a seed
    write_scores(tmp_path / "adapted-seedless", {"p-1": (1.0, 0.1, 0.1)})  # nor this one
    folders = seed_runs(tmp_path / "adapted")
    scores = seed_scores(folders)
    assert len(folders) == 2
    assert set(scores) == {"p-1"}
    assert scores["p-1"].f1 == pytest.approx(0.4)
    assert scores["p-1"].crack_share_pred == pytest.approx(0.2)


def test_series_deltas_area_ratios_and_order(tmp_path: Path) -> None:
    write_scores(
        tmp_path / "a",
        {"thin-1": (0.3, 0.2, 0.1), "thin-2": (0.5, 0.2, 0.1), "mot-1": (0.9, 0.1, 0.1)},
    )
    write_scores(
        tmp_path / "b",
        {"thin-1": (0.6, 0.2, 0.3), "thin-2": (0.6, 0.2, 0.1), "mot-1": (0.5, 0.1, 0.3)},
    )
    a, b = (seed_scores(seed_runs(tmp_path / side)) for side in "ab")
    table = compare_series(a, b)
    assert [c.series for c in table] == ["mot", "thin"]  # largest gain of a first
    mot, thin = table
    assert mot.delta == pytest.approx(0.4)
    assert (thin.images, thin.f1_a, thin.f1_b) == (2, pytest.approx(0.4), pytest.approx(0.6))
    assert thin.area_a == pytest.approx(0.5)  # pooled: 0.2 predicted of 0.4 labelled
    assert thin.area_b == pytest.approx(1.0)
    assert overall(a, b).delta == pytest.approx((0.4 - 0.3 - 0.1) / 3)


def test_rows_without_scores_or_shared_images_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing: no such folder"):  # said as no scores
        seed_runs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no per_image.csv there"):
        seed_runs(tmp_path / "empty")
    write_scores(tmp_path / "seeded-seed1", {"x-1": (0.5, 0.1, 0.1)})
    assert seed_runs(tmp_path / "seeded") == [tmp_path / "seeded-seed1"]  # seeds alone
    write_scores(tmp_path / "a", {"x-1": (0.5, 0.1, 0.1)})
    write_scores(tmp_path / "b", {"y-1": (0.5, 0.1, 0.1)})
    with pytest.raises(DataError, match="share no scored test image"):
        compare_series(*(seed_scores(seed_runs(tmp_path / side)) for side in "ab"))


def test_tool_prints_the_table_and_names_a_missing_row(tmp_path: Path, capsys) -> None:
    write_scores(tmp_path / "a", {"s-1": (0.8, 0.1, 0.1), "s-2": (0.6, 0.1, 0.1)})
    write_scores(tmp_path / "b", {"s-1": (0.5, 0.1, 0.2), "s-2": (0.5, 0.1, 0.2)})
    logs = f"paths.log_dir={tmp_path / 'logs'}"
    done = run_tool(
        "compare_runs", f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", "min_images=2", logs
    )
    assert done.returncode == 0, done.stderr
    line = next(row for row in done.stdout.splitlines() if " s " in row)
    assert ["2", "0.700", "0.500", "+0.200", "1.00", "2.00"] == line.replace("│", " ").split()[1:]
    assert "note:" not in done.stdout
    # An image only one row scored is left out, and said so.
    write_scores(tmp_path / "c", {"s-1": (0.5, 0.1, 0.2), "s-2": (0.5, 0.1, 0.2), "t-1": (1, 0, 0)})
    code, out, _ = compare_here(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path / 'c'}", logs)
    assert code == 0 and f"note: 1 image scored only in {tmp_path / 'c'}, left out: t-1" in out
    # series below min_images were left out of the table without a word
    assert "note: 1 series of fewer than min_images=3 images not shown" in out
    # rows scored on different photo folders: compared by stem, and said
    import json

    for run, folder in (("a", "/data/one/test_img"), ("b", "/data/two/test_img")):
        (tmp_path / run / "metrics.json").write_text(json.dumps({"image_dir": folder}))
    code, out, err = compare_here(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", logs)
    assert code == 0, err
    assert (
        "note: rows scored on different photo folders (a on /data/one/test_img; b on "
        "/data/two/test_img)" in out
    )
    code, _, err = compare_here(capsys, f"a={tmp_path / 'nope'}", f"b={tmp_path / 'b'}", logs)
    assert code == 1 and err.startswith("error:") and "nope" in err and err.count("\n") == 1
    code, _, err = compare_here(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path}/./a", logs)
    assert code == 1 and "a and b are one run" in err


def test_seed_run_dirs_finds_every_folder_run_key_names(tmp_path: Path) -> None:
    seeds = [3, 0, 12]
    for seed in seeds:
        (tmp_path / run_key("adapted", seed, 3)).mkdir()
    (tmp_path / "adapted-seed1b").mkdir()
    found = {p.name for p in seed_run_dirs(tmp_path / "adapted")}
    assert found == {"adapted", "adapted-seed0", "adapted-seed12"}


def test_rows_that_do_not_compare_are_refused_or_said(tmp_path: Path, capsys) -> None:
    """a's own seed folder was averaged into b; rows scored at different sizes (0.26 F1
    apart on one model) and seeds trained with other settings were averaged without a word;
    a bad series pattern or min_images was a traceback. (In this process: compare_here.)"""
    import json

    write_scores(tmp_path / "row", {"s-1": (0.8, 0.1, 0.1)})
    write_scores(tmp_path / "row-seed1", {"s-1": (0.4, 0.1, 0.1)})
    logs = f"paths.log_dir={tmp_path / 'logs'}"
    pair = (f"a={tmp_path / 'row-seed1'}", f"b={tmp_path / 'row'}", "min_images=1")
    code, out, err = compare_here(capsys, *pair, logs)
    assert code == 0, err
    assert "a's own run, left out of b's seeds" in out
    line = next(row for row in out.splitlines() if " s " in row)
    assert "0.400" in line and "0.800" in line  # b is seed 0 alone, not the mean 0.600

    # One seed against one seed: it compared each side's seeds averaged, or nothing.
    write_scores(tmp_path / "base", {"s-1": (0.3, 0.1, 0.1)})
    write_scores(tmp_path / "base-seed1", {"s-1": (0.5, 0.1, 0.1)})
    pair = (f"a={tmp_path / 'row-seed1'}", f"b={tmp_path / 'base-seed1'}", "min_images=1")
    code, out, err = compare_here(capsys, *pair, "average_seeds=false", logs)
    assert code == 0, err
    title = f"a={tmp_path / 'row-seed1'}(1seed),b={tmp_path / 'base-seed1'}(1seed)"
    assert title in "".join(out.split())  # rich wraps the title anywhere
    line = next(row for row in out.splitlines() if " s " in row)
    assert "0.400" in line and "0.500" in line and "0.800" not in line and "0.300" not in line
    code, _, err = compare_here(capsys, *pair, "average_seeds=sometimes", logs)
    assert code == 1 and "error: average_seeds='sometimes': expected true" in err

    write_scores(tmp_path / "other", {"s-1": (0.5, 0.1, 0.1)})
    for name, size in (("row", None), ("other", [32, 48])):
        (tmp_path / name / "metrics.json").write_text(json.dumps({"eval_size": size}))
    rows = (f"a={tmp_path / 'row'}", f"b={tmp_path / 'other'}")
    code, _, err = compare_here(capsys, *rows, logs)
    assert code == 1 and "scored at different sizes" in err

    for name, lr in (("row", 0.002), ("row-seed1", 0.01)):
        record = {"data": {}, "settings": {"seed": 0, "task": {"lr": lr}}}
        (tmp_path / name / "provenance.json").write_text(json.dumps(record))
    (tmp_path / "other" / "metrics.json").unlink()
    code, out, err = compare_here(capsys, *rows, logs)
    assert code == 0, err
    assert "its seeds' models differ in more than the seed (row-seed1: settings changed" in out
    for bad, said in (
        ("series_pattern='[a'", "not a regular expression"),
        # no group: every image its own series, silently
        ("series_pattern=abc", "series_pattern='abc': has no group; the first group (...) is"),
        ("series_pattern=null", "series_pattern=None: expected a regular expression"),
        ("min_images=abc", ""),
    ):
        code, _, err = compare_here(capsys, *rows, bad)
        assert code == 1 and err.count("\n") == 1
        assert f"error: {bad.split('=')[0]}=" in err and said in err


def test_mask_agreement_is_the_crack_iou_of_each_pair_over_the_photos_all_segmented(
    tmp_path: Path,
) -> None:
    """Without labels, how far the rows' masks agree: pooled over the photos every row has."""
    crack = {  # pixels called crack on photo 'p' (a 4x4 mask), by row
        "a": [0, 1, 2, 3],
        "b": [2, 3, 4, 5],  # with a: 2 shared of 6
        "c": [],  # none: with a, 0 of 4
    }
    for row, pixels in crack.items():
        (tmp_path / row).mkdir()
        mask = np.zeros(16, np.uint8)
        mask[pixels] = 255
        cv2.imwrite(str(tmp_path / row / "p.png"), mask.reshape(4, 4))
    cv2.imwrite(str(tmp_path / "a" / "only_a.png"), np.full((4, 4), 255, np.uint8))  # left out
    dirs = {row: tmp_path / row for row in crack}
    assert mask_agreement(dirs) == {"a / b": round(2 / 6, 3), "a / c": 0.0, "b / c": 0.0}
    empty = {"c": tmp_path / "c", "c2": tmp_path / "c"}
    assert mask_agreement(empty) == {"c / c2": None}  # nothing called crack by either


def test_a_gain_carried_by_one_photo_spans_zero_and_one_on_every_photo_does_not() -> None:
    """The interval is over the choice of test photos: a gain every photo shows stands clear
    of 0, the same pooled gain from one photo of fifty does not."""
    rng = np.random.default_rng(3)
    theirs = np.stack([rng.integers(200, 400, 50), rng.integers(50, 150, 50),
                       rng.integers(50, 150, 50)], axis=1)  # fmt: skip
    everywhere = theirs + np.array([20, -20, -20])  # tp up, fp and fn down, on each photo
    low, high = f1_gain_interval([(everywhere, theirs)])
    gain = float(pooled_f1(everywhere.sum(0)) - pooled_f1(theirs.sum(0)))
    assert 0 < low < gain < high
    one = theirs.copy()
    one[0] += np.array([1000, -45, -45])  # the same kind of gain, on photo 0 alone
    low, high = f1_gain_interval([(one, theirs)])
    assert low <= 0 < high
    assert f1_gain_interval([(theirs, theirs)]) == (0.0, 0.0)
    # seeds share each draw of photos; the gain is their mean
    both = f1_gain_interval([(everywhere, theirs), (theirs, theirs)])
    assert both == pytest.approx(tuple(end / 2 for end in f1_gain_interval([(everywhere, theirs)])))
    assert f1_gain_interval([(one, theirs)], seed=1) != f1_gain_interval([(one, theirs)])


def write_counts(run: Path, counts: dict[str, tuple[int, int, int]]) -> Path:
    """per_image.csv as evaluate writes it since session 51: stem -> (tp, fp, fn)."""
    run.mkdir(parents=True)
    rows = [{"stem": s, "f1": 0.5, "tol_f1": 0.5, "iou": 0.3, "crack_share_true": 0.1,
             "crack_share_pred": 0.1, **dict(zip(COUNT_FIELDS, c))} for s, c in counts.items()]  # fmt: skip
    write_rows(run / "per_image.csv", rows)
    return run


def test_paired_counts_take_the_photos_both_runs_scored_and_need_counts(tmp_path: Path) -> None:
    def scored(run: str, counts: dict[str, tuple[int, int, int]]) -> Path:
        return write_counts(tmp_path / run, counts)

    a = scored("a", {"p1": (1, 2, 3), "p2": (4, 5, 6), "p3": (7, 8, 9)})
    b = scored("b", {"p2": (0, 1, 1), "p1": (2, 2, 2)})
    ((ours, theirs),) = paired_counts([(a, b)])
    assert ours.tolist() == [[1, 2, 3], [4, 5, 6]] and theirs.tolist() == [[2, 2, 2], [0, 1, 1]]
    # seeds take the photos every run scored, so each draw of photos is one for all seeds
    c = scored("c", {"p1": (1, 1, 1)})
    pairs = paired_counts([(a, b), (c, b)])
    assert [(x.tolist(), y.tolist()) for x, y in pairs] == [
        ([[1, 2, 3]], [[2, 2, 2]]),
        ([[1, 1, 1]], [[2, 2, 2]]),
    ]
    write_scores(tmp_path / "old", {"p1": (0.5, 0.1, 0.1)})  # written before the counts
    assert paired_counts([(a, b), (a, tmp_path / "old")]) is None
    assert paired_counts([(a, scored("d", {"q": (1, 1, 1)}))]) is None  # no photo shared


def test_the_tool_gives_the_paired_gain_and_its_interval_over_the_photos(
    tmp_path: Path, capsys
) -> None:
    """The table's per-series means said where two rows differ, not whether the test photos
    could tell them apart at all."""
    photos = [f"s-{i}" for i in range(20)]
    for seed in ("", "-seed1", "-seed2"):  # b has no seed 2: paired on seeds 0 and 1
        write_counts(tmp_path / f"a{seed}", {p: (60, 20, 20) for p in photos})
        if seed != "-seed2":
            write_counts(tmp_path / f"b{seed}", {p: (50, 30, 30) for p in photos})
    logs = f"paths.log_dir={tmp_path / 'logs'}"
    code, out, err = compare_here(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", logs)
    assert code == 0, err
    assert (
        "pooled F1, a - b: +0.125; 95% interval over the 20 photos every run scored: +0.125 to "
        "+0.125 (2 paired seeds; one that spans 0 means" in out
    )
    write_scores(tmp_path / "old", {p: (0.5, 0.1, 0.1) for p in photos})  # without counts
    _, out, _ = compare_here(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path / 'old'}", logs)
    assert "pooled F1, a - b: no interval (scores without per-photo counts" in out


def test_two_rows_of_photos_without_labels_are_compared_by_their_masks_agreement(
    tmp_path: Path, capsys
) -> None:
    """Two label-free pipeline rows (masks/, no scores) got "no scores to compare" of the
    first and nothing else, where their masks' agreement is the comparison there is."""
    for row, pixels in {"adapted": [0, 1, 2, 3], "synthetic": [2, 3, 4, 5]}.items():
        (tmp_path / row / "masks").mkdir(parents=True)
        mask = np.zeros(16, np.uint8)
        mask[pixels] = 255
        cv2.imwrite(str(tmp_path / row / "masks" / "p.png"), mask.reshape(4, 4))
    logs = f"paths.log_dir={tmp_path / 'logs'}"
    rows = (f"a={tmp_path / 'adapted'}", f"b={tmp_path / 'synthetic'}")
    code, _, err = compare_here(capsys, *rows, logs)
    assert code == 1 and err.count("\n") == 1
    said = err.strip()
    assert said.startswith("error: ") and "no scores to compare" in said
    assert "their masks agree at crack IoU 0.33 over the 1 photo both segmented" in said
