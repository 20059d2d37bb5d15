"""The report's figures: which test images the error map picks, how it colours a model's
errors, and the prediction figure built from the evaluation overlays."""

from __future__ import annotations

import cv2
import torch

from gan.evaluate import save_overlay
from gan.pipeline_report import agreement_line
from gan.report import hardest_images
from gan.report_figures import (
    ERRORS_TITLE,
    ERRORS_TITLE_LOWEST,
    error_grid,
    errors_title,
    prediction_grid,
)
from gan.visual import ERROR_COLORS, error_overlay


def test_hardest_images_are_where_the_reference_beats_the_other_rows_most():
    f1 = {
        "synthetic": {"a": 0.9, "b": 0.2, "c": 0.5, "d": 0.1},
        "adapted": {"a": 0.9, "b": 0.4, "c": 0.5, "d": 0.1},
        "oracle": {"a": 0.9, "b": 0.9, "c": 0.6, "d": 0.1, "only_here": 1.0},
    }
    # Gaps to the oracle: b 0.6, c 0.1, a 0, d 0 (tie broken by name); 'only_here' lacks rows.
    assert hardest_images(f1, "oracle", 3) == ["b", "c", "a"]
    # Without the reference among the rows: the lowest mean F1 first.
    del f1["oracle"]
    assert hardest_images(f1, "oracle", 2) == ["d", "b"]
    assert hardest_images({"oracle": {"x": 0.2, "y": 0.1}}, "oracle", 1) == ["y"]


def test_error_overlay_colours_found_false_and_missed_pixels_apart():
    image = torch.full((3, 2, 2), 100, dtype=torch.uint8)
    truth = torch.tensor([[1, 1], [0, 0]])
    pred = torch.tensor([[1, 0], [1, 0]])
    drawn = error_overlay(image, truth, pred, alpha=1.0)
    found, missed = drawn[:, 0, 0].tolist(), drawn[:, 0, 1].tolist()
    false, right = drawn[:, 1, 0].tolist(), drawn[:, 1, 1].tolist()
    assert found == list(ERROR_COLORS["found"])
    assert false == list(ERROR_COLORS["false crack"])
    assert missed == list(ERROR_COLORS["missed"])
    assert right == [100, 100, 100]  # true background stays the photo


def test_prediction_figure_stacks_the_truth_over_each_rows_predictions(tmp_path):
    """From the evaluation overlays (photo / truth / prediction): one strip of truths, then
    one per row, each of that row's predictions on the same photos; rows that scored other
    photos, or none, give no figure rather than a misleading one."""
    photo = torch.full((3, 16, 20), 120, dtype=torch.uint8)
    truth = torch.zeros(16, 20, dtype=torch.long)
    truth[6:9] = 1
    folders = {}
    for row, predicted in (("synthetic", 0), ("oracle", 1)):
        folders[row] = tmp_path / row
        folders[row].mkdir()
        for k in range(2):
            save_overlay(photo, truth, torch.full_like(truth, predicted), folders[row] / f"{k}.png")
    out = prediction_grid(folders, tmp_path / "predictions.png")
    figure = cv2.imread(str(out))
    strips = figure.shape[0] // 3
    assert figure.shape[0] == 3 * strips == 3 * (16 // 2)  # truth + two rows, half size
    assert figure.shape[1] == 130 + 2 * (20 // 2)  # label margin + two photos
    tinted = [figure[k * strips : (k + 1) * strips, 130:, 2].mean() for k in range(3)]
    assert tinted[1] == 120 and tinted[2] > tinted[0] > tinted[1]  # none; all red; a band
    # A row scored with fewer overlays: the photos every row has (the figure vanished)
    (folders["oracle"] / "1.png").unlink()
    assert cv2.imread(str(prediction_grid(folders, tmp_path / "p.png"))).shape[1] == 130 + 10
    (folders["oracle"] / "0.png").rename(folders["oracle"] / "2.png")
    assert prediction_grid(folders, tmp_path / "p.png") is None  # no photo in common
    assert prediction_grid({"oracle": tmp_path / "missing"}, tmp_path / "p.png") is None


def test_photos_without_labels_are_drawn_above_each_rows_predictions(tmp_path):
    """Without test labels a row's overlays are the photo and its prediction
    (segment_unlabeled): the first strip is the photos, then each row's masks."""
    photo = torch.full((3, 16, 20), 120, dtype=torch.uint8)
    folders = {}
    for row, predicted in (("synthetic", 0), ("adapted", 1)):
        folders[row] = tmp_path / row
        folders[row].mkdir()
        save_overlay(photo, None, torch.full((16, 20), predicted).long(), folders[row] / "a.png")
    figure = cv2.imread(str(prediction_grid(folders, tmp_path / "p.png", truth=False)))
    assert figure.shape[:2] == (3 * 8, 130 + 10)  # photos + two rows, half size
    red = [figure[k * 8 : (k + 1) * 8, 130:, 2].mean() for k in range(3)]
    green = [figure[k * 8 : (k + 1) * 8, 130:, 1].mean() for k in range(3)]
    assert red[0] == red[1] == green[0] == green[1] == 120  # the photo; no crack
    assert red[2] > 120  # all crack, tinted red


def test_the_prediction_figure_takes_test_photos_of_several_sizes(tmp_path):
    """Scored each at its own size (``eval_size=null``), photos of two heights made the
    figure's strips fail to join: the report stage ended in a traceback, no report written."""
    folder = tmp_path / "oracle"
    folder.mkdir()
    for name, (h, w) in {"a": (16, 20), "b": (24, 36), "c": (12, 40)}.items():
        photo = torch.full((3, h, w), 120, dtype=torch.uint8)
        save_overlay(
            photo,
            torch.zeros(h, w, dtype=torch.long),
            torch.ones(h, w).long(),
            folder / f"{name}.png",
        )
    figure = cv2.imread(str(prediction_grid({"oracle": folder}, tmp_path / "p.png")))
    # every tile at half the first one's height, each keeping its shape
    assert figure.shape[:2] == (2 * 8, 130 + 10 + 12 + 27)


def test_error_map_needs_a_scored_row(tmp_path):
    assert error_grid({}, "oracle", ("img", "lab"), None, tmp_path / "e.png") is None


def test_a_report_keeps_only_the_figures_it_shows(tmp_path):
    """An earlier report's figure (a row or a set no longer in it) is not left in img/; a
    figure drawn elsewhere is copied there, one drawn in the report folder is shown where it
    lies (not copied: each lay twice), and img/ goes once it holds nothing."""
    from gan.report import write_report

    figure = tmp_path / "grid_synthetic.png"
    figure.write_bytes(b"png")
    report = tmp_path / "report"
    (report / "img").mkdir(parents=True)
    (report / "img" / "grid_3.png").write_bytes(b"old")
    rows = [{"source": "oracle", "f1": 0.8, "tol_f1": 0.9, "crack_iou": 0.7, "wall_s": 1.0}]
    write_report(report, rows, "cfg: 1", {"samples": figure}, "notes", [])
    assert sorted(p.name for p in (report / "img").iterdir()) == ["grid_synthetic.png"]
    assert 'src="img/grid_synthetic.png"' in (report / "report.html").read_text()

    inside = report / "errors.png"
    inside.write_bytes(b"png")
    write_report(report, rows, "cfg: 1", {"errors": inside}, "notes", [])
    assert not (report / "img").exists() and inside.read_bytes() == b"png"
    assert 'src="errors.png"' in (report / "report.html").read_text()
    assert "![errors](errors.png)" in (report / "report.md").read_text()


def test_the_error_map_draws_the_testtime_row_through_its_generator(tmp_path):
    """The testtime row has no model of its own: it is the source-only model on the photos
    as the GAN's generator translates them, and the error map draws it so (it was left out)."""
    from _gan_fixtures import tiny_gan
    from _task_fixtures import make_folder
    from omegaconf import OmegaConf

    from gan.evaluate import crack_probabilities, evaluate_folder
    from gan.report_figures import RowModel
    from gan.task import CrackSegmenter
    from synth.io import ImageFolder

    img, lab = make_folder(tmp_path / "real", n=3)
    torch.manual_seed(0)
    model, gan = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval(), tiny_gan()
    # An untrained model's crack probability is all but constant: centre it on the threshold,
    # so that half the pixels are cracks and any change of the input moves some of them.
    found = crack_probabilities(model, ImageFolder(img))
    with torch.no_grad():
        model.net.head.bias[1] -= torch.cat([p.flatten() for _, p, _ in found]).logit().median()
    ckpt, gan_ckpt = tmp_path / "task.ckpt", tmp_path / "gan.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    torch.save({"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}, gan_ckpt)
    evaluate_folder(model, img, lab, tmp_path / "run", eval_size=None, batch_size=2)
    scores = tmp_path / "run" / "per_image.csv"
    runs = {
        "synthetic": RowModel(scores, ckpt),
        "again": RowModel(scores, ckpt),
        "testtime": RowModel(scores, ckpt, gan_ckpt),
    }
    evaluate = OmegaConf.create({"eval_size": None, "batch_size": 2, "device": "cpu"})
    out = error_grid(runs, "oracle", (str(img), str(lab)), evaluate, tmp_path / "e.png")
    figure = cv2.imread(str(out))
    strip = figure.shape[0] // 5  # photo, truth, then the three rows
    synthetic, again, testtime = (figure[k * strip : (k + 1) * strip, 130:] for k in (2, 3, 4))
    assert (synthetic == again).all()  # drawing is deterministic: a difference is the generator
    assert (synthetic != testtime).any()


def test_the_error_map_keeps_each_photos_shape_and_draws_labels_apart_from_errors(tmp_path):
    """Scored at their own sizes, photos took the first one's shape (a 4:3 photo drawn 2:1),
    and the labels were drawn red, the key's colour for a false crack."""
    from _task_fixtures import make_folder
    from omegaconf import OmegaConf

    from gan.evaluate import evaluate_folder
    from gan.report_figures import RowModel
    from gan.task import CrackSegmenter

    img, lab = make_folder(tmp_path / "real", n=2, h=32, w=48, prefix="a")
    make_folder(tmp_path / "real", n=1, h=32, w=96, prefix="b")
    torch.manual_seed(0)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    ckpt = tmp_path / "task.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    evaluate_folder(model, img, lab, tmp_path / "run", eval_size=None, batch_size=1)
    runs = {"synthetic": RowModel(tmp_path / "run" / "per_image.csv", ckpt)}
    evaluate = OmegaConf.create({"eval_size": None, "batch_size": 1, "device": "cpu"})
    figure = cv2.imread(str(error_grid(runs, "oracle", (img, lab), evaluate, tmp_path / "e.png")))
    assert figure.shape[1] == 130 + 24 + 24 + 48  # every tile at half height, its own shape
    truth = figure[16:32, 130:].astype(int)  # BGR: the second strip
    tinted = truth[..., 2] - truth[..., 0] > 40
    assert tinted.any() and (truth[..., 2] - truth[..., 1])[tinted].max() < 60  # yellow


def test_the_error_maps_title_says_which_pick_it_shows() -> None:
    """An oracle-only report's title named the photos the oracle wins by most, over no row
    (``hardest_images`` then picks those the rows score lowest on, as without an oracle)."""
    assert errors_title(["adapted", "oracle"], "oracle") == ERRORS_TITLE.format(reference="oracle")
    assert errors_title(["oracle"], "oracle") == ERRORS_TITLE_LOWEST
    assert errors_title(["adapted", "synthetic"], "oracle") == ERRORS_TITLE_LOWEST
    assert "oracle row wins" in ERRORS_TITLE.format(reference="oracle")


def test_rows_that_called_no_pixel_crack_are_said_so_in_the_agreement_line() -> None:
    """Two rows whose masks hold no crack have no IoU: the report said a bare "n/a", which
    reads as a measure that failed, after short training the usual case."""
    line = agreement_line({"synthetic / adapted": None, "synthetic / testtime": 0.5}, 0)
    assert "synthetic / adapted n/a (neither called any pixel crack), " in line
    assert "synthetic / testtime 0.50;" in line
