"""Two task-model rows compared per test-image series, from their saved per-image scores.

A mean F1 hides where a change helps and where it hurts: a simulator change that teaches the
model mottled concrete can cost it on thin cracks. DeepCrack's test images are crops of a few
dozen photos (``11296-1`` ... ``11296-23``), so grouping crops by photo shows which kinds of
surface moved. Each row may have several seeds (``<row>``, ``<row>-seed1``, ... as the pipeline
names them); a stem's score is the mean over the seeds, so seed noise does not pose as a
per-series effect.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from gan.evaluate import read_counts, read_rows
from gan.provenance import what_changed
from gan.report import interval_end
from gan.run_names import SEED_SUFFIX, seed_run_dirs
from synth.distributions import ConfigError
from synth.io import DataError, first_names, read_mask

# A crop index at the end of a stem ("11296-23" -> "11296"); a stem without one is its own series.
SERIES_PATTERN = r"^(.*?)(?:-\d+)?$"


@dataclass(frozen=True)
class StemScore:
    """One test image's scores, averaged over a row's seeds."""

    f1: float
    crack_share_true: float
    crack_share_pred: float


@dataclass(frozen=True)
class SeriesComparison:
    """Row ``a`` against row ``b`` on one series; ``area_*`` is predicted / labelled crack area."""

    series: str
    images: int
    f1_a: float
    f1_b: float
    area_a: float
    area_b: float

    @property
    def delta(self) -> float:
        return self.f1_a - self.f1_b


def seed_runs(run: str | Path, other: list[Path] = (), siblings: bool = True) -> list[Path]:
    """The run folder and its sibling seed folders (``<run>-seed<N>``) that hold scores, but
    ``other`` (the other side's: ``a=<row>-seed1 b=<row>`` averaged a into b). Without
    ``siblings``, the run folder alone: one seed against one seed."""
    run = Path(run)
    taken = {p.resolve() for p in other}
    found = [
        path
        for path in (seed_run_dirs(run) if siblings else [run])
        if (path / "per_image.csv").is_file() and path.resolve() not in taken
    ]
    if not found:
        where = f" or in {run.name}-seed*/" if siblings else ""
        if not run.exists():  # a mistyped run: not 'no per_image.csv there'
            raise DataError(f"{run}: no such folder (a run's evaluate out_dir)")
        if (run / "masks").is_dir():  # a pipeline row's masks of photos without labels
            raise DataError(f"{run}: segmented photos without labels: no scores to compare")
        raise DataError(f"{run}: no per_image.csv there{where} (run evaluate)")
    return found


def check_scored_alike(folders: list[Path]) -> None:
    """Refuse rows scored at different sizes: a row scored at 32x48 against one at the
    photos' own size differed by 0.26 F1, and the table said nothing of it."""
    sizes = {}
    for folder in folders:
        metrics = folder / "metrics.json"
        if metrics.is_file():
            sizes[folder] = json.loads(metrics.read_text()).get("eval_size")
    if len({json.dumps(v) for v in sizes.values()}) > 1:
        said = ", ".join(f"{f.name} at {v or 'each image`s own size'}" for f, v in sizes.items())
        raise ConfigError(f"scored at different sizes ({said}): compare rows scored alike")


def other_test_folders(folders: list[Path]) -> str | None:
    """The photo folders the rows were scored on, where they differ: stems are matched as the
    same photos, which holds for a copy of the test set and not for another set (it was
    compared without a word)."""
    scored = {}
    for folder in folders:
        metrics = folder / "metrics.json"
        image_dir = json.loads(metrics.read_text()).get("image_dir") if metrics.is_file() else None
        if image_dir:
            scored[folder] = str(Path(image_dir).resolve())
    if len(set(scored.values())) <= 1:
        return None
    said = "; ".join(f"{f.name} on {d}" for f, d in scored.items())
    return f"rows scored on different photo folders ({said}): same stems compared as one photo"


def mixed_settings(folders: list[Path]) -> str | None:
    """What a row's seed folders differ in besides the seed (their provenance.json): a mean
    over models trained with other settings is not one row's."""
    records = [(f, json.loads((f / "provenance.json").read_text())) for f in folders
               if (f / "provenance.json").is_file()]  # fmt: skip
    for folder, record in records[1:]:
        first = {**records[0][1], "settings": {**records[0][1].get("settings", {}), "seed": 0}}
        this = {**record, "settings": {**record.get("settings", {}), "seed": 0}}
        if first != this:
            return f"{folder.name}: {what_changed(first, this)} from {records[0][0].name}"
    return None


def seed_scores(folders: list[Path]) -> dict[str, StemScore]:
    """Per-stem scores, mean over the seed folders. Only stems every seed scored are kept,
    so a half-evaluated seed cannot tilt some images."""
    tables = [{r["stem"]: r for r in read_rows(path / "per_image.csv")} for path in folders]
    stems = set.intersection(*(set(t) for t in tables))
    keys = [field.name for field in fields(StemScore)]
    return {
        stem: StemScore(**{k: statistics.fmean(t[stem][k] for t in tables) for k in keys})
        for stem in stems
    }


def left_out(a: dict[str, StemScore], b: dict[str, StemScore], runs: tuple[str, str]) -> list[str]:
    """One line per row with images the other row did not score: the comparison is on the
    images both scored, and the user should know by how many that is fewer."""
    notes = []
    for (mine, theirs), run in zip(((a, b), (b, a)), runs):
        only = sorted(set(mine) - set(theirs))
        if only:
            shown = first_names(only, 5)
            notes.append(
                f"{len(only)} image{'s' * (len(only) > 1)} scored only in {run}, left out: {shown}"
            )
    return notes


def check_pattern(pattern: object) -> None:
    """A regular expression whose first group names a stem's series: one without a group
    made every image its own series, silently (a table of one-image series, all left out
    under min_images)."""
    if not isinstance(pattern, str):  # null or a number: re's TypeError
        raise ConfigError(f"series_pattern={pattern!r}: expected a regular expression")
    try:
        groups = re.compile(pattern).groups
    except re.error as err:  # was re.error's traceback at the first stem
        raise ConfigError(f"series_pattern={pattern!r}: not a regular expression ({err})") from err
    if not groups:
        raise ConfigError(
            f"series_pattern={pattern!r}: has no group; the first group (...) is a stem's "
            r"series, e.g. '^(.*?)(?:-\d+)?$' drops a trailing -<crop>"
        )


def series_of(stem: str, pattern: str = SERIES_PATTERN) -> str:
    """The stem's series: the pattern's first group; the stem itself (its own series) where the
    pattern does not match or that group took no part in the match (``(a)?b`` on ``b``), whose
    None had made one series named None of all such stems, and a TypeError in the sort."""
    match = re.match(pattern, stem)
    series = match.group(1) if match and match.groups() else None
    return stem if series is None else series


def area_ratio(scores: list[StemScore]) -> float:
    """Predicted over labelled crack area, pooled over the images (not a mean of ratios, which
    an image with a tiny label would dominate)."""
    true = sum(s.crack_share_true for s in scores)
    return sum(s.crack_share_pred for s in scores) / true if true > 0 else float("nan")


def compare_series(
    a: dict[str, StemScore], b: dict[str, StemScore], pattern: str = SERIES_PATTERN
) -> list[SeriesComparison]:
    """Per-series comparison on the stems both rows scored, largest gain of ``a`` first."""
    common = sorted(set(a) & set(b))
    if not common:
        raise DataError("the two rows share no scored test image")
    groups: dict[str, list[str]] = defaultdict(list)
    for stem in common:
        groups[series_of(stem, pattern)].append(stem)
    table = [summarize(name, stems, a, b) for name, stems in groups.items()]
    return sorted(table, key=lambda c: (-c.delta, c.series))


def summarize(
    name: str, stems: list[str], a: dict[str, StemScore], b: dict[str, StemScore]
) -> SeriesComparison:
    return SeriesComparison(
        series=name,
        images=len(stems),
        f1_a=statistics.fmean(a[s].f1 for s in stems),
        f1_b=statistics.fmean(b[s].f1 for s in stems),
        area_a=area_ratio([a[s] for s in stems]),
        area_b=area_ratio([b[s] for s in stems]),
    )


def overall(a: dict[str, StemScore], b: dict[str, StemScore]) -> SeriesComparison:
    """All shared stems as one series (mean per-image F1, not the pooled F1 of metrics.json)."""
    return summarize("all", sorted(set(a) & set(b)), a, b)


def mask_agreement(mask_dirs: dict[str, Path]) -> dict[str, float | None]:
    """Crack IoU of each pair of rows' masks (``<stem>.png``, 0/255), pooled over the photos
    every row segmented, keyed ``"a / b"``: with no labels to score them, how far the rows'
    models agree on the photos (two rows at 0.6 call a good part of what either sees crack
    differently, and their masks there are the ones to look at). None where neither row
    called any pixel crack."""
    names = set.intersection(*({p.name for p in d.glob("*.png")} for d in mask_dirs.values()))
    pairs = list(itertools.combinations(mask_dirs, 2))
    inter, union = dict.fromkeys(pairs, 0), dict.fromkeys(pairs, 0)
    for name in sorted(names):
        crack = {row: read_mask(folder / name) > 127 for row, folder in mask_dirs.items()}
        for a, b in pairs:
            inter[a, b] += int((crack[a] & crack[b]).sum())
            union[a, b] += int((crack[a] | crack[b]).sum())
    return {
        f"{a} / {b}": round(inter[a, b] / union[a, b], 3) if union[a, b] else None for a, b in pairs
    }


def unscored_agreement(a: str | Path, b: str | Path) -> str | None:
    """Two pipeline rows of photos without labels (``masks/``, no ``per_image.csv``): "no
    scores to compare" of the first was all the tool said, where the rows' masks can still be
    compared, as the report compares them: their crack IoU over the photos both segmented.
    None where either row holds scores or no masks (the scores' own messages then)."""
    runs = (Path(a), Path(b))
    if any((r / "per_image.csv").is_file() or not (r / "masks").is_dir() for r in runs):
        return None
    shared = set.intersection(*({p.name for p in (r / "masks").glob("*.png")} for r in runs))
    if not shared:
        return None
    iou = mask_agreement({"a": runs[0] / "masks", "b": runs[1] / "masks"})["a / b"]
    photos = f"the {len(shared)} photo{'s' * (len(shared) != 1)} both segmented"
    if iou is None:
        agree = f"neither called any pixel of {photos} crack"
    else:  # a measure of how much they differ, as the report says it, not of which is right
        agree = f"their masks agree at crack IoU {iou:.2f} over {photos} (not which is right)"
    return (
        f"{a} and {b} segmented photos without labels: no scores to compare; {agree}; labels "
        "for a few photos score them (README: Photos and no labels at all)"
    )


#: Resamples of the test photos behind a gain's interval: its ends move by about 0.0005 F1
#: between two sets of 2000 draws on DeepCrack's 237 photos.
INTERVAL_DRAWS = 2000


def f1_gain_interval(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    level: float = 0.95,
    draws: int = INTERVAL_DRAWS,
    seed: int = 0,
) -> tuple[float, float]:
    """The ``level`` interval of a row's pooled F1 gain over another's, from a paired bootstrap
    over the test photos: each draw resamples the photos with replacement, recomputes both
    rows' pooled F1 from their (tp, fp, fn) counts and takes the gain, averaged over the
    ``pairs`` (one per seed both rows have, each (ours, theirs) as (photos, 3) arrays in one
    photo order, with the same draw of photos for every seed).

    A mean gain of +0.01 on 237 photos may be a handful of photos: an interval that spans 0
    says the test set cannot tell the two rows apart, whatever the seeds say. It measures the
    choice of test photos alone, not the training's spread over seeds.
    """
    photos = len(pairs[0][0])
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(photos, np.full(photos, 1.0 / photos), size=draws).astype(float)
    gains = np.mean([pooled_f1(weights @ ours) - pooled_f1(weights @ theirs)
                     for ours, theirs in pairs], axis=0)  # fmt: skip
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return float(low), float(high)


def pooled_f1(counts: np.ndarray) -> np.ndarray:
    """F1 from summed (tp, fp, fn) along the last axis; 0 where nothing is crack on either side."""
    tp, fp, fn = np.moveaxis(np.asarray(counts, dtype=float), -1, 0)
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def paired_counts(runs: list[tuple[Path, Path]]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per pair of scored runs (one pair a seed), both runs' per-photo counts on the photos
    every run scored, in one order (the interval draws the same photos for every seed); None
    where a run's per_image.csv holds no counts (scored before they were kept) or no photo
    is shared."""
    tables = [(read_counts(a / "per_image.csv"), read_counts(b / "per_image.csv")) for a, b in runs]
    if not tables or any(t is None for pair in tables for t in pair):
        return None
    stems = sorted(set.intersection(*(set(t) for pair in tables for t in pair)))
    if not stems:
        return None
    return [(np.array([a[s] for s in stems]), np.array([b[s] for s in stems])) for a, b in tables]


def seed_pairs(runs_a: list[Path], runs_b: list[Path]) -> list[tuple[Path, Path]]:
    """Two rows' seed folders paired by seed (``<row>`` with ``<row>``, ``-seed1`` with
    ``-seed1``, as run_key names them); one folder a side is one pair whatever its name."""
    if len(runs_a) == len(runs_b) == 1:
        return [(runs_a[0], runs_b[0])]
    by_seed = {seed_suffix(run): run for run in runs_b}
    return [(a, by_seed[seed_suffix(a)]) for a in runs_a if seed_suffix(a) in by_seed]


def seed_suffix(run: Path) -> str:
    """``-seed<N>`` of a run folder run_key named for another seed than the base one, or ''."""
    found = re.search(re.escape(SEED_SUFFIX) + r"\d+$", run.name)
    return found.group(0) if found else ""


def pooled_gain(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The mean over the pairs (seeds) of the pooled F1 gain on their photos."""
    return float(np.mean([pooled_f1(a.sum(0)) - pooled_f1(b.sum(0)) for a, b in pairs]))


def gain_line(runs: list[tuple[Path, Path]]) -> str:
    """Row a's pooled F1 gain over row b, paired by seed, with its 95% interval over the
    photos: the per-series table shows where the rows differ, this whether the test photos
    can tell them apart at all."""
    if not runs:
        return "pooled F1, a - b: the rows share no seed, so there is no paired gain"
    pairs = paired_counts(runs)
    if pairs is None:
        return (
            "pooled F1, a - b: no interval (scores without per-photo counts, written before "
            "session 51, or no photo every run scored); a pipeline row whose metrics.json "
            "is deleted is scored again, with them, on the next run"
        )
    low, high = f1_gain_interval(pairs)
    seeds = f"{len(pairs)} paired seed{'s' * (len(pairs) != 1)}"
    return (
        f"pooled F1, a - b: {pooled_gain(pairs):+.3f}; 95% interval over the "
        f"{len(pairs[0][0])} photos every run scored: {interval_end(low)} to "
        f"{interval_end(high)} ({seeds}; "
        "one that spans 0 means these photos cannot tell a from b)"
    )
