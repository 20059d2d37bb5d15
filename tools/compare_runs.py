r"""Two task rows side by side per test-image series: where a change helped and where it hurt.

python tools/compare_runs.py a=outputs/mot/runs/synthetic b=outputs/agg/runs/synthetic
python tools/compare_runs.py a=outputs/runs/adapted-seed2 b=outputs/runs/synthetic-seed2 \
    average_seeds=false                                           # seed 2 against seed 2
"""

from __future__ import annotations

from pathlib import Path

import _quiet_start  # noqa: F401  (first: a stop while the rest loads is one line)
import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from gan.cli import register_resolvers, run_cli
from gan.compare import (
    SeriesComparison,
    check_pattern,
    check_scored_alike,
    compare_series,
    gain_line,
    left_out,
    mixed_settings,
    other_test_folders,
    overall,
    seed_pairs,
    seed_runs,
    seed_scores,
    unscored_agreement,
)
from synth.distributions import ConfigError
from synth.io import DataError

register_resolvers()


def comparison_table(
    rows: list[SeriesComparison], total: SeriesComparison, names: tuple[str, str]
) -> Table:
    table = Table(title=f"per-series mean F1: a = {names[0]}, b = {names[1]}")
    for column in ("series", "images", "F1 a", "F1 b", "a - b", "area a", "area b"):
        table.add_column(column, justify="left" if column == "series" else "right")
    for c in [*rows, total]:
        table.add_row(
            c.series,
            str(c.images),
            f"{c.f1_a:.3f}",
            f"{c.f1_b:.3f}",
            f"{c.delta:+.3f}",
            f"{c.area_a:.2f}",
            f"{c.area_b:.2f}",
            end_section=c is rows[-1] if rows else False,
        )
    table.caption = "area: predicted / labelled crack area, pooled over the series' images"
    return table


def compare(cfg: DictConfig) -> None:
    if not cfg.a or not cfg.b:
        raise ConfigError("give both rows: a=<run folder> b=<run folder>")
    if Path(cfg.a).resolve() == Path(cfg.b).resolve():
        raise ConfigError(f"a and b are one run ({cfg.a}): give two run folders to compare")
    check_pattern(cfg.series_pattern)
    if unscored := unscored_agreement(cfg.a, cfg.b):
        raise DataError(unscored)
    siblings = cfg.average_seeds
    if not isinstance(siblings, bool):
        raise ConfigError(f"average_seeds={siblings!r}: expected true or false")
    runs_a = seed_runs(cfg.a, siblings=siblings)
    runs_b = seed_runs(cfg.b, other=runs_a, siblings=siblings)  # a folder on one side only
    check_scored_alike([*runs_a, *runs_b])
    if elsewhere := other_test_folders([*runs_a, *runs_b]):
        print(f"note: {elsewhere}")
    for run, runs in ((cfg.a, runs_a), (cfg.b, runs_b)):
        mixed = mixed_settings(runs)
        if mixed:
            print(f"note: {run}: its seeds' models differ in more than the seed ({mixed})")
    a, seeds_a = seed_scores(runs_a), len(runs_a)  # the folders found above, read once
    b, seeds_b = seed_scores(runs_b), len(runs_b)
    if len(runs_b) < len(seed_runs(cfg.b, siblings=siblings)):
        print(f"note: {cfg.b}: {cfg.a} is a's own run, left out of b's seeds")
    series = compare_series(a, b, cfg.series_pattern)
    rows = [c for c in series if c.images >= cfg.min_images]
    names = tuple(
        f"{run} ({n} seed{'s' * (n != 1)})" for run, n in ((cfg.a, seeds_a), (cfg.b, seeds_b))
    )
    Console(width=120).print(comparison_table(rows, overall(a, b), names))
    print(gain_line(seed_pairs(runs_a, runs_b)))
    for note in left_out(a, b, (cfg.a, cfg.b)):
        print(f"note: {note}")
    if small := len(series) - len(rows):  # left out without a word (a toy set: all of them)
        print(
            f"note: {small} series of fewer than min_images={cfg.min_images} images not shown "
            "(their images are in 'all')"
        )


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare_runs")
def main(cfg: DictConfig) -> None:
    run_cli(compare, cfg, resumes=False)


if __name__ == "__main__":
    main()
