"""The report's figures: sample sheets of each set, predictions of every row on the same
real test photos, and an error map of the photos where the rows fail. Pictures say what a
table cannot (a texture the simulator never drew, a faint rim every row misses), so each is
drawn from what the stages left on disk, by paths, with nothing of the pipeline's layout."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from synth.preview import contact_sheet, load_samples

ERRORS_TITLE = (
    "error map of the hardest test images (those the {reference} row wins by most; "
    "yellow: labelled crack; green: crack found, red: false crack, blue: crack missed)"
)
#: Without the reference row among the report's rows (report.hardest_images's other pick).
ERRORS_TITLE_LOWEST = (
    "error map of the hardest test images (those the rows score lowest on; "
    "yellow: labelled crack; green: crack found, red: false crack, blue: crack missed)"
)
#: The labels' colour in the error map (RGB), apart from the error key's three
TRUTH_COLOR = (255, 210, 0)


def errors_title(rows: Collection[str], reference: str) -> str:
    """The error map's title for the pick ``report.hardest_images`` makes of these rows: the
    photos the reference row wins by most where it has rows to win against, else those the
    rows score lowest on (an oracle-only report's title had named a win over no row)."""
    if reference in rows and len(rows) > 1:
        return ERRORS_TITLE.format(reference=reference)
    return ERRORS_TITLE_LOWEST


class RowModel(NamedTuple):
    """What draws a row in the error map: its per-image scores and its model, behind the
    real-to-synthetic ``generator`` for a row that translates the test photos (testtime)."""

    scores: Path
    checkpoint: Path
    generator: Path | None = None


def sample_grids(
    sets: dict[str, Path], out_dir: Path, synth: DictConfig, num: int, seed: int
) -> dict[str, Path]:
    """A contact sheet of each existing folder in ``sets`` (title -> folder), the same scene
    indices in each set made from the synthetic one. Each sheet is named by its folder
    (``grid_adapted.png``), not its place in ``sets``, so a file keeps its meaning from one
    report to the next."""
    grids = {}
    for title, folder in sets.items():
        if folder.is_dir():
            samples = load_samples(str(folder), None, synth, num, 0, seed)
            grids[title] = contact_sheet(samples, out_dir / f"grid_{folder.name}.png", nrow=num)
    return grids


def overlay_panels(path: Path, count: int = 3) -> list:
    """Split an evaluation overlay (image / truth / prediction stacked, 2 px padding)."""
    grid = cv2.imread(str(path))
    h = (grid.shape[0] - 2 * (count + 1)) // count
    return [grid[2 + k * (h + 2) : 2 + k * (h + 2) + h, 2:-2] for k in range(count)]


def labeled_strip(label: str, tiles: list) -> np.ndarray:
    """One figure row: BGR tiles side by side at half the first one's height (each keeps its
    shape: test photos of several sizes made concatenation fail, and no report was written),
    ``label`` in a white margin."""
    height = max(tiles[0].shape[0] // 2, 1)
    fitted = [
        cv2.resize(t, (max(round(t.shape[1] * height / t.shape[0]), 1), height)) for t in tiles
    ]
    strip = np.concatenate(fitted, axis=1)
    margin = np.full((strip.shape[0], 130, 3), 255, np.uint8)
    cv2.putText(
        margin, label, (4, strip.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1
    )
    return np.concatenate([margin, strip], axis=1)


def prediction_grid(
    overlays: dict[str, Path], out: Path, num_images: int = 3, truth: bool = True
) -> Path | None:
    """Rows: ground truth, then each row's prediction on the same real test images, from
    each row's evaluation overlays (row -> folder): the first ``num_images`` test photos every
    row has an overlay of (rows scored with another ``num_overlays`` keep their own count).
    ``truth`` False: photos without labels, whose overlays are the photo and the prediction
    (gan.evaluate.segment_unlabeled); the first row is the photos. None where the rows share
    none."""
    names = [{f.name for f in folder.glob("*.png")} for folder in overlays.values()]
    shared = sorted(set.intersection(*names))[:num_images] if names else []
    if not shared:
        return None
    count = 3 if truth else 2
    panels = {
        row: [overlay_panels(folder / n, count) for n in shared] for row, folder in overlays.items()
    }
    first = next(iter(panels.values()))
    rows = [labeled_strip("ground truth" if truth else "photo", [p[count - 2] for p in first])]
    rows += [labeled_strip(row, [p[-1] for p in tiles]) for row, tiles in panels.items()]
    if len({r.shape for r in rows}) != 1:  # the same photo scored at another size
        return None
    cv2.imwrite(str(out), np.concatenate(rows, axis=0))
    return out


def error_grid(
    runs: dict[str, RowModel],
    reference: str,
    test: tuple[str, str],
    evaluate: DictConfig,
    out: Path,
    num_images: int = 3,
) -> Path | None:
    """Where the rows fail: the real test images (``test``: photo and mask folders) on which
    the ``reference`` row (the oracle) beats the others by most, each row's model (``runs``)
    drawn over them in found / false / missed colours.
    These pictures say what the simulator still lacks (e.g. a texture it never drew)."""
    from torch.nn.functional import interpolate

    from gan.devices import pick_device
    from gan.evaluate import (
        crack_probabilities,
        labeled_samples,
        load_segmenter,
        read_rows,
        reverse_generator,
    )
    from gan.report import hardest_images
    from gan.visual import error_overlay, overlay_masks

    if not runs:
        return None
    per_image = {
        row: {r["stem"]: r["f1"] for r in read_rows(run.scores)} for row, run in runs.items()
    }
    stems = hardest_images(per_image, reference, num_images)
    samples, names = labeled_samples(*test)
    chosen = [samples[names.index(stem)] for stem in stems if stem in names]
    if not chosen:
        return None
    # each photo as it was scored: at eval_size, or its own size (all had taken the first's,
    # a 4:3 photo drawn 2:1 beside the predictions figure's true shapes)
    sizes = [tuple(evaluate.eval_size or s.image.shape[:2]) for s in chosen]

    def fit(x: torch.Tensor, size: tuple, mode: str) -> torch.Tensor:  # (C,H,W) -> (C, *size)
        return interpolate(x[None].float(), size=size, mode=mode)[0]

    photos = [
        fit(torch.from_numpy(s.image).permute(2, 0, 1), hw, "area").round().to(torch.uint8)
        for s, hw in zip(chosen, sizes)
    ]
    truth = [
        fit(torch.from_numpy(s.semantic)[None], hw, "nearest")[0].long()
        for s, hw in zip(chosen, sizes)
    ]

    def bgr(images: list[torch.Tensor]) -> list:
        return [np.ascontiguousarray(im.permute(1, 2, 0).numpy()[..., ::-1]) for im in images]

    rows = [labeled_strip("real photo", bgr(photos))]
    # the labels in a colour of their own: red is the error key's false crack
    labels = [overlay_masks(p[None], t[None], color=TRUTH_COLOR)[0] for p, t in zip(photos, truth)]
    rows.append(labeled_strip("ground truth", bgr(labels)))
    device = pick_device(evaluate.device)
    for row, run in runs.items():
        model = load_segmenter(run.checkpoint, device)
        through = reverse_generator(run.generator)
        at, batch = evaluate.eval_size, evaluate.batch_size
        probs = crack_probabilities(model, chosen, at, batch, 0, f"error map: {row}", through)
        pred = [
            (fit(p[None], hw, "bilinear")[0] > 0.5).long() for (_, p, _), hw in zip(probs, sizes)
        ]
        drawn = [error_overlay(p, t, q) for p, t, q in zip(photos, truth, pred)]
        rows.append(labeled_strip(row, bgr(drawn)))
    cv2.imwrite(str(out), np.concatenate(rows, axis=0))
    return out
