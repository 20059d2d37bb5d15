"""The sim-to-real report: one HTML page and a Markdown summary of the rows that matter.

Rows are task models that differ only in their training data (source-only, domain
randomization, adapted, oracle); the page shows their real-test metrics as a table and a bar
chart, plus the sample and prediction grids, so a reader sees the gain and where it comes from.
"""

from __future__ import annotations

import html
import shutil
import statistics
from pathlib import Path

METRICS = ("f1", "tol_f1", "crack_iou", "miou")
LABELS = {
    "f1": "F1",
    "tol_f1": "F1 (2 px tol.)",
    "crack_iou": "crack IoU",
    "miou": "mIoU",
    "crack_share": "pixels called crack",
}
#: What a row shows without test labels (gan.evaluate.segment_unlabeled): no score, the share
#: of the photos' pixels its model calls crack (rows far apart there disagree)
UNSCORED = ("crack_share",)
GOAL_TITLE = "Against the goal (F1, paired by seed)"
#: The goal table's column of gan.compare.f1_gain_interval's intervals
INTERVAL_TITLE = "95% interval over the test photos"
#: One colour a row: with six rows or more the sixth took the first's grey (synthetic and
#: oracle alike in the bars and the legend). As many as there are rows (gan.rows.ROWS).
COLORS = (
    "#8c8c8c", "#e3a33b", "#2f7ed8", "#3aa35b", "#b04bc4",
    "#d9534f", "#17becf", "#8c564b", "#bcbd22", "#e377c2",
)  # fmt: skip
#: A row's other per-seed figures, averaged over its seeds with METRICS (a multi-seed row
#: kept seed 0's beside the means).
ALSO_MEANED = (
    "precision", "recall", "mean_image_f1", "mean_image_tol_f1", "seconds_per_image", *UNSCORED
)  # fmt: skip


def mean_over_seeds(runs: list[dict]) -> dict:
    """One row from task runs that differ only in seed: mean metrics, their sample standard
    deviation (``<metric>_std``), the per-seed values and the summed training time.

    A single 400-step CPU run spreads by about 0.1 F1, so rows are only comparable as means.
    """
    row = dict(runs[0])
    row["num_seeds"] = len(runs)
    row["seeds"] = [r.get("seed") for r in runs]
    row["train_seconds"] = round(sum(float(r.get("train_seconds", 0.0)) for r in runs), 1)
    if len(runs) < 2:
        return row
    row.pop("seed", None)  # one seed's, beside figures of them all
    row["seconds"] = round(sum(float(r.get("seconds", 0.0)) for r in runs), 2)
    for m in (*METRICS, *ALSO_MEANED):
        values = [float(r[m]) for r in runs if m in r]
        if len(values) == len(runs):
            row[m] = round(statistics.fmean(values), 6)
            if m in (*METRICS, *UNSCORED):
                row[f"{m}_std"] = round(statistics.stdev(values), 6)
                row[f"{m}_runs"] = values
        else:
            row.pop(m, None)  # not every seed has it: no figure rather than one seed's
    return row


def f1_by_seed(row: dict) -> dict:
    """{seed: F1} of a row, one entry per seed it was trained with."""
    return dict(zip(row.get("seeds") or [row.get("seed")], row.get("f1_runs") or [row["f1"]]))


def gap_closed(mine: dict, theirs: dict, top: dict) -> float | None:
    """The share of a baseline's F1 gap to the reference (the oracle) that our row closes, over
    the seeds all three rows have: 1 = as good as real labels, 0 = no better than the baseline,
    negative = worse. None without a shared seed or a gap (the baseline level with the oracle).

    A fixed gain means little on its own: when the simulator already brings the baseline within
    0.02 of the oracle, +0.05 is out of reach, while closing half the gap is not.
    """
    seeds = mine.keys() & theirs.keys() & top.keys()
    gap = sum(top[s] - theirs[s] for s in seeds)  # 0 without a shared seed
    if gap <= 0:
        return None
    return sum(mine[s] - theirs[s] for s in seeds) / gap


def gain_met(gain: float, goal: float) -> bool:
    """A gain meets the goal as the table shows it (0.85 - 0.80 is 0.0499... in floating
    point, which had read '+0.050 | >= +0.050 | no'), and a goal of no loss only by a win:
    a tie beats no baseline."""
    gain = round(gain, 6)
    return gain >= goal and (gain > 0 or goal < 0)


def shown(value: float, goal: float, met: bool, form: str, places: int) -> str:
    """``value`` to ``places`` (``form``: '+.{}f' or '.{}%'), more where that reads as meeting
    a goal it misses (0.0497 as +0.050 beside >= +0.050)."""
    scale = 100 if form.endswith("%") else 1
    while places < 4 and not met and value != goal and round(value * scale, places) >= goal * scale:
        places += 1
    return format(value, form.format(places))


def goal_checks(
    rows: list[dict],
    ours: list[str],
    baselines: list[str],
    reference: str,
    min_gain: float,
    min_share: float,
) -> list[dict]:
    """Each of our rows against each baseline (mean F1 gain over the seeds both rows have,
    and how many of those paired seeds it wins) and against the reference (share of its F1).

    Pairing by seed matters: a seed fixes the crops and augmentation draws of every row alike,
    so per-seed differences are less noisy than the difference of two means over other seeds.
    Rows that were not run are left out, so a partial run still gets its verdicts.
    """
    by_source = {r["source"]: r for r in rows}
    top = f1_by_seed(by_source[reference]) if reference in by_source else {}
    checks = []
    for name in (o for o in ours if o in by_source):
        mine = f1_by_seed(by_source[name])
        for base in (b for b in baselines if b in by_source):
            theirs = f1_by_seed(by_source[base])
            seeds = sorted(mine.keys() & theirs.keys())
            diffs = [mine[s] - theirs[s] for s in seeds]
            if diffs:
                gain = statistics.fmean(diffs)
                closed = gap_closed(mine, theirs, top)
                checks.append(
                    {
                        "row": name,
                        "against": base,
                        "gain": round(gain, 6),
                        "goal": min_gain,
                        "wins": sum(d > 0 for d in diffs),
                        "paired_seeds": len(diffs),
                        "seeds": seeds,
                        "gap_closed": None if closed is None else round(closed, 6),
                        "met": gain_met(gain, min_gain),
                    }
                )
        if reference in by_source:  # a reference that scored 0 gives no share (None)
            ref = by_source[reference]["f1"]
            share = by_source[name]["f1"] / ref if ref > 0 else None
            checks.append(
                {
                    "row": name,
                    "against": reference,
                    "share": None if share is None else round(share, 6),
                    "goal": min_share,
                    "met": share is not None and round(share, 6) >= min_share,
                }
            )
    return checks


def hardest_images(
    per_image_f1: dict[str, dict[str, float]], reference: str | None, count: int
) -> list[str]:
    """The ``count`` test images (stems) where the ``reference`` row (the oracle) beats the mean
    of the other rows by most, i.e. what the zero-label rows still miss and the simulator still
    lacks; without a reference row, the images with the lowest mean F1. ``per_image_f1``: row
    -> stem -> F1. Ties go by stem, so the pick is stable."""
    stems = set.intersection(*(set(f1) for f1 in per_image_f1.values()))
    others = [row for row in per_image_f1 if row != reference] or list(per_image_f1)
    top = per_image_f1[reference] if reference in per_image_f1 and reference not in others else None

    def gap(stem: str) -> float:
        mean = statistics.fmean(per_image_f1[row][stem] for row in others)
        return (top[stem] if top else 1.0) - mean

    return sorted(stems, key=lambda stem: (-gap(stem), stem))[:count]


def goal_markdown(checks: list[dict]) -> str:
    """The verdicts as a table: gain (paired wins) or share of the reference, goal, met."""
    references = [c["against"] for c in checks if "share" in c]
    reference = references[0] if references else "reference"
    lines = [
        f"| row | against | F1 | {INTERVAL_TITLE} | paired seeds won | {reference} gap closed "
        "| goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        closed, interval = "", ""
        if c.get("interval"):
            interval = " to ".join(interval_end(end) for end in c["interval"])
        if "gain" in c:
            value, wins, goal = (
                shown(c["gain"], c["goal"], c["met"], "+.{}f", 3),
                f"{c['wins']}/{c['paired_seeds']}",
                f"≥ {c['goal']:+.3f}",
            )
            if c.get("gap_closed") is not None:
                closed = f"{c['gap_closed']:.0%}"
        else:
            share = (
                f"n/a ({c['against']} scored 0)"
                if c["share"] is None
                else f"{shown(c['share'], c['goal'], c['met'], '.{}%', 1)} of it"
            )
            value, wins, goal = share, "", f"≥ {c['goal']:.0%}"
        verdict = "**yes**" if c["met"] else "no"
        lines.append(
            f"| {c['row']} | {c['against']} | {value} | {interval} | {wins} | {closed} | {goal} "
            f"| {verdict} |"
        )
    return "\n".join(lines)


def interval_end(value: float) -> str:
    """An interval's end to three places, or four where three read as 0 (-0.0002 as -0.000
    left it unsaid whether the interval spans 0)."""
    text = f"{value:+.3f}"
    return f"{value:+.4f}" if value and text in ("+0.000", "-0.000") else text


def cell(row: dict, metric: str) -> str:
    """``0.551`` or, for a multi-seed row, ``0.551 ± 0.040``; a share of pixels in percent
    (``3.11%``: a few hundredths read 0.031, and 0.000 hid a model that marks little)."""
    text = number(row.get(metric, float("nan")), metric)
    std = row.get(f"{metric}_std")
    return text if std is None else f"{text} ± {number(std, metric)}"


def number(value: float, metric: str) -> str:
    """One figure as the table and the chart show it: a score to three places, a share of
    pixels in percent."""
    return format(value, ".2%" if metric in UNSCORED else ".3f")


def shown_metrics(rows: list[dict]) -> tuple[str, ...]:
    """The table's and the chart's figures: the scores, or where no row has one (the test
    photos had no labels) the share of pixels each row's model calls crack."""
    return METRICS if any(m in row for row in rows for m in METRICS) else UNSCORED


def label(metric: str, rows: list[dict]) -> str:
    """A figure's name; the tolerance F1's with the radius its rows were scored at (it said
    2 px under ``task.tolerance=3``; rows recorded before the radius was took 2 px)."""
    radii = {row.get("tolerance", 2) for row in rows}
    if metric == "tol_f1" and radii != {2}:
        return f"F1 ({radii.pop()} px tol.)" if len(radii) == 1 else "F1 (tol., radii differ)"
    return LABELS[metric]


def markdown_table(rows: list[dict]) -> str:
    metrics = shown_metrics(rows)
    head = (
        "| training data | "
        + " | ".join(label(m, rows) for m in metrics)
        + " | seeds | steps | train s (all seeds) |"
    )
    sep = "|---" * (len(metrics) + 4) + "|"
    lines = [head, sep]
    for row in rows:
        vals = " | ".join(cell(row, m) for m in metrics)
        lines.append(
            f"| {row['source']} | {vals} | {row.get('num_seeds', 1)} | {row.get('steps', '')} "
            f"| {row.get('wall_s', 0):.0f} |"
        )
    return "\n".join(lines)


def bar_chart_svg(rows: list[dict], width: int = 640, bar_h: int = 16) -> str:
    """Grouped horizontal bars (one group per metric), inline SVG: no plotting dependency."""
    label_w, gap = 120, 10
    metrics = shown_metrics(rows)
    group_h = bar_h * len(rows) + gap
    height = group_h * len(metrics) + 30 + 20 * len(rows)
    scale = width - label_w - 60
    if metrics != METRICS:  # shares of a few percent: drawn against the largest
        scale /= max([float(row.get(m) or 0.0) for row in rows for m in metrics] + [1e-9])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">'
    ]
    for g, metric in enumerate(metrics):
        y0 = g * group_h + 10
        parts.append(f'<text x="0" y="{y0 + group_h / 2}">{label(metric, rows)}</text>')
        for r, row in enumerate(rows):
            value = float(row.get(metric, 0.0) or 0.0)
            y = y0 + r * bar_h
            w = max(1.0, value * scale)
            color = COLORS[r % len(COLORS)]
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 3}" fill="{color}"/>'
            )
            std = float(row.get(f"{metric}_std") or 0.0)
            if std:  # seed-to-seed spread as a whisker
                x0, x1, ym = label_w + (value - std) * scale, label_w + (value + std) * scale, y + 6
                parts.append(
                    f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{ym}" y2="{ym}" stroke="#000"/>'
                )
                w = max(w, x1 - label_w)
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 5}">{number(value, metric)}</text>'
            )
    ly = len(metrics) * group_h + 20
    for r, row in enumerate(rows):
        color = COLORS[r % len(COLORS)]
        parts.append(
            f'<rect x="{label_w}" y="{ly + 20 * r}" width="12" height="12" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{label_w + 18}" y="{ly + 20 * r + 11}">{html.escape(row["source"])}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def summary_markdown(rows: list[dict], notes: str = "", checks: list[dict] | None = None) -> str:
    """The report's text part: notes, the metrics table and, when given, the goal verdicts."""
    parts = ["# Sim-to-real report", "", notes, "", markdown_table(rows), ""]
    if checks:
        parts += [f"## {GOAL_TITLE}", "", goal_markdown(checks), ""]
    return "\n".join(parts)


def markdown_to_html_table(table: str) -> str:
    """A pipe table as an HTML table (first line: header; the separator line dropped)."""
    lines = [line.strip().strip("|").split("|") for line in table.splitlines()]
    head, body = lines[0], lines[2:]

    def cells(tag: str, row: list[str]) -> str:
        return "".join(f"<{tag}>{html.escape(c.strip().replace('**', ''))}</{tag}>" for c in row)

    return "<table><tr>{}</tr>{}</table>".format(
        cells("th", head), "".join(f"<tr>{cells('td', r)}</tr>" for r in body)
    )


def summary_html(summary: str) -> str:
    """The report's Markdown summary as a page a tracker shows: its tables as HTML tables,
    the rest as paragraphs (code spans as code)."""
    blocks = [b.strip() for b in summary.split("\n\n") if b.strip()]
    parts = []
    for block in blocks:
        if block.startswith("|"):
            parts.append(markdown_to_html_table(block))
        elif block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            parts.append(f"<h{level}>{html.escape(block.lstrip('# '))}</h{level}>")
        else:
            parts.append(f"<p>{notes_html(block)}</p>")
    return "\n".join(parts)


def notes_html(notes: str) -> str:
    """The notes' Markdown code spans (the command that made the report) as HTML code: the
    page showed their backticks."""
    parts = html.escape(notes).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def shown_from(out: Path, figure: Path) -> str:
    """The path report.html shows ``figure`` by: where it lies if in ``out``, else a copy's
    in ``out/img``."""
    if figure.resolve().parent == out.resolve():
        return figure.name
    (out / "img").mkdir(exist_ok=True)
    shutil.copyfile(figure, out / "img" / figure.name)
    return f"img/{figure.name}"


def write_report(
    out_dir: str | Path,
    rows: list[dict],
    config_yaml: str,
    images: dict[str, str | Path] | None = None,
    notes: str = "",
    checks: list[dict] | None = None,
) -> tuple[Path, Path]:
    """Write report.html and report.md beside the figures drawn into ``out_dir``, or with
    copies in ``img/`` of those drawn elsewhere (the pipeline's had been copied, so each
    figure lay twice in the report folder); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copied = {}
    for title, src in (images or {}).items():
        if src and Path(src).is_file():
            copied[title] = shown_from(out, Path(src))
    kept = set(copied.values())
    img = out / "img"
    for stale in (p for p in img.glob("*") if p.is_file() and f"img/{p.name}" not in kept):
        stale.unlink()  # an earlier report's figure that this one does not show
    if img.is_dir() and not any(img.iterdir()):
        img.rmdir()
    md = [summary_markdown(rows, notes, checks)]
    md += [f"## {title}\n\n![{title}]({rel})\n" for title, rel in copied.items()]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    goal = (
        f"<h2>{GOAL_TITLE}</h2>" + markdown_to_html_table(goal_markdown(checks)) if checks else ""
    )
    figures = "".join(
        f'<h2>{html.escape(t)}</h2><img src="{rel}" style="max-width:100%">'
        for t, rel in copied.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Sim-to-real report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
pre{{background:#f4f4f4;padding:1em;overflow:auto;max-height:30em}}</style></head><body>
<h1>Sim-to-real report</h1><p>{notes_html(notes)}</p>
{markdown_to_html_table(markdown_table(rows))}
{goal}
<h2>{"Real test metrics" if shown_metrics(rows) == METRICS else LABELS[UNSCORED[0]]}</h2>
{bar_chart_svg(rows)}
{figures}
<h2>Config</h2><pre>{html.escape(config_yaml)}</pre></body></html>"""
    html_path = out / "report.html"
    html_path.write_text(page)
    return html_path, md_path


def log_report(
    loggers: list,
    rows: list[dict],
    checks: list[dict],
    images: dict[str, str | Path],
    summary: str,
    fallback_dir: str | Path,
) -> None:
    """The report's figures into experiment trackers: each row's metrics (``report/<row>/<metric>``),
    each verdict (``goal/<row>_vs_<against>``: the gain or share, ``.../met`` as 0/1,
    ``.../gap_closed`` and ``.../interval_low``/``_high``), the tables (a wandb table; a TensorBoard text summary) and every figure."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
    from torchvision.io import ImageReadMode, decode_image

    from gan.visual import send_image

    scores = {
        f"report/{row['source']}/{m}": float(row[m])
        for row in rows
        for m in (*METRICS, *UNSCORED)
        if m in row
    }
    for c in checks:
        key = f"goal/{c['row']}_vs_{c['against']}"
        value = c["gain"] if "gain" in c else c["share"]
        if value is not None:
            scores[key] = float(value)
        scores[f"{key}/met"] = float(c["met"])
        if c.get("gap_closed") is not None:
            scores[f"{key}/gap_closed"] = float(c["gap_closed"])
        if c.get("interval"):  # gan.pipeline_report.with_intervals's, over the test photos
            scores[f"{key}/interval_low"], scores[f"{key}/interval_high"] = c["interval"]
    metrics = shown_metrics(rows)
    columns = ["training data", *(label(m, rows) for m in metrics), "seeds"]
    table = [
        [row["source"], *(cell(row, m) for m in metrics), row.get("num_seeds", 1)] for row in rows
    ]
    for logger in loggers:
        logger.log_metrics(scores, step=0)
        if isinstance(logger, WandbLogger):
            import wandb

            logger.log_table(key="report/rows", columns=columns, data=table, step=0)
            # the notes and verdicts too: a W&B report run had the scores without either
            logger.experiment.log({"report/summary": wandb.Html(summary_html(summary))})
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text("report", summary, 0)
    for title, path in images.items():
        grid = decode_image(str(path), mode=ImageReadMode.RGB)
        tag = "report/" + "_".join(title.split("(")[0].split())
        send_image(loggers, tag, grid, 0, fallback_dir=fallback_dir)
