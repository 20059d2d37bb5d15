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
}
COLORS = ("#8c8c8c", "#e3a33b", "#2f7ed8", "#3aa35b", "#b04bc4")


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
    for m in METRICS:
        values = [float(r[m]) for r in runs if m in r]
        if len(values) == len(runs):
            row[m] = round(statistics.fmean(values), 6)
            row[f"{m}_std"] = round(statistics.stdev(values), 6)
            row[f"{m}_runs"] = values
    return row


def cell(row: dict, metric: str) -> str:
    """``0.551`` or, for a multi-seed row, ``0.551 ± 0.040``."""
    text = f"{row.get(metric, float('nan')):.3f}"
    std = row.get(f"{metric}_std")
    return text if std is None else f"{text} ± {std:.3f}"


def markdown_table(rows: list[dict]) -> str:
    head = (
        "| training data | "
        + " | ".join(LABELS[m] for m in METRICS)
        + " | seeds | steps | train s (all seeds) |"
    )
    sep = "|---" * (len(METRICS) + 4) + "|"
    lines = [head, sep]
    for row in rows:
        vals = " | ".join(cell(row, m) for m in METRICS)
        lines.append(
            f"| {row['source']} | {vals} | {row.get('num_seeds', 1)} | {row.get('steps', '')} "
            f"| {row.get('wall_s', 0):.0f} |"
        )
    return "\n".join(lines)


def bar_chart_svg(rows: list[dict], width: int = 640, bar_h: int = 16) -> str:
    """Grouped horizontal bars (one group per metric), inline SVG: no plotting dependency."""
    label_w, gap = 120, 10
    group_h = bar_h * len(rows) + gap
    height = group_h * len(METRICS) + 30 + 20 * len(rows)
    scale = width - label_w - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">'
    ]
    for g, metric in enumerate(METRICS):
        y0 = g * group_h + 10
        parts.append(f'<text x="0" y="{y0 + group_h / 2}">{LABELS[metric]}</text>')
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
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 5}">{value:.3f}</text>')
    ly = len(METRICS) * group_h + 20
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


def write_report(
    out_dir: str | Path,
    rows: list[dict],
    config_yaml: str,
    images: dict[str, str | Path] | None = None,
    notes: str = "",
) -> tuple[Path, Path]:
    """Write report.html and report.md (images copied beside them); returns both paths."""
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    copied = {}
    for title, src in (images or {}).items():
        if src and Path(src).is_file():
            dst = out / "img" / Path(src).name
            shutil.copyfile(src, dst)
            copied[title] = f"img/{dst.name}"
    table = markdown_table(rows)
    md = ["# Sim-to-real report", "", notes, "", table, ""]
    md += [f"## {title}\n\n![{title}]({rel})\n" for title, rel in copied.items()]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    html_rows = "".join(
        "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td>{:.0f}</td></tr>".format(
            html.escape(r["source"]),
            "".join(f"<td>{cell(r, m)}</td>" for m in METRICS),
            r.get("num_seeds", 1),
            r.get("steps", ""),
            r.get("wall_s", 0),
        )
        for r in rows
    )
    figures = "".join(
        f'<h2>{html.escape(t)}</h2><img src="{rel}" style="max-width:100%">'
        for t, rel in copied.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Sim-to-real report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
pre{{background:#f4f4f4;padding:1em;overflow:auto;max-height:30em}}</style></head><body>
<h1>Sim-to-real report</h1><p>{html.escape(notes)}</p>
<table><tr><th>training data</th>{"".join(f"<th>{LABELS[m]}</th>" for m in METRICS)}<th>seeds</th><th>steps</th><th>train s (all seeds)</th></tr>
{html_rows}</table>
<h2>Real test metrics</h2>{bar_chart_svg(rows)}
{figures}
<h2>Config</h2><pre>{html.escape(config_yaml)}</pre></body></html>"""
    html_path = out / "report.html"
    html_path.write_text(page)
    return html_path, md_path
