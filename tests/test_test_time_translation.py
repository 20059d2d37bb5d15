"""Test-time translation: the photos go through the GAN's real-to-synthetic generator before
the task model, in scoring, prediction and their commands; the overlays show the photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _cli_fixtures import run_tools_at_once, tool_exit_code
from _gan_fixtures import tiny_gan
from _task_fixtures import make_folder
from torch import nn

from gan.evaluate import crack_probabilities, evaluate_folder, predict_folder, reverse_generator
from gan.task import CrackSegmenter
from gan.translate import translate_batch
from synth.distributions import ConfigError
from synth.io import DataError, ImageFolder, read_image, write_png


class Negate(nn.Module):
    """A 'generator' whose effect is known: the photographic negative."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


def segmenter() -> CrackSegmenter:
    torch.manual_seed(0)
    return CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()


def test_scores_through_a_generator_are_the_scores_of_the_translated_photos(tmp_path):
    img, lab = make_folder(tmp_path / "real", n=3)
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    for path in sorted(img.iterdir()):
        write_png(negatives / path.name, 255 - read_image(path), rgb=True)
    model = segmenter()
    common = dict(eval_size=None, batch_size=2, num_overlays=1)
    through = evaluate_folder(
        model, img, lab, tmp_path / "through", **common, translate_with=Negate()
    )
    direct = evaluate_folder(model, negatives, lab, tmp_path / "direct", **common)
    plain = evaluate_folder(model, img, lab, tmp_path / "plain", **common)
    for key in ("f1", "precision", "recall", "crack_iou"):
        assert through[key] == pytest.approx(direct[key], abs=1e-6), key
    assert through["num_images"] == plain["num_images"] == 3

    def probabilities(folder, translate_with=None):
        found = crack_probabilities(model, ImageFolder(folder), translate_with=translate_with)
        return torch.stack([prob for _, prob, _ in found])

    through, direct = probabilities(img, Negate()), probabilities(negatives)
    torch.testing.assert_close(through, direct)
    assert not torch.allclose(through, probabilities(img), atol=1e-3)
    # the overlay is drawn on the photo as it is, not on its translation
    (overlay,) = (tmp_path / "through" / "overlays").glob("*.png")
    (plain_overlay,) = (tmp_path / "plain" / "overlays").glob("*.png")
    top = read_image(overlay)[: read_image(overlay).shape[0] // 3]
    assert np.array_equal(top, read_image(plain_overlay)[: top.shape[0]])


def test_prediction_through_a_generator_matches_prediction_on_its_output(tmp_path):
    img, _ = make_folder(tmp_path / "real", n=2)
    model = segmenter()
    gen = tiny_gan().g_ba.eval()
    predict_folder(model, img, tmp_path / "through", translate_with=gen)
    translated = tmp_path / "translated"
    translated.mkdir()
    from gan.data import to_tensor
    from gan.translate import to_uint8, translate_batch

    for path in sorted(img.iterdir()):
        out = to_uint8(translate_batch(gen, to_tensor(read_image(path))[None]))[0]
        write_png(translated / path.name, out, rgb=True)
    predict_folder(model, translated, tmp_path / "direct")
    agree = [
        (read_image(tmp_path / "through" / "masks" / p.name) == read_image(m)).mean()
        for p in sorted(img.iterdir())
        for m in [tmp_path / "direct" / "masks" / p.name]
    ]
    assert min(agree) > 0.99  # the same up to the 8-bit rounding of the saved translation
    assert reverse_generator(None) is None
    # A photo too small for the generator is named, not a padding error from inside torch;
    # every such photo, before the network runs (found one at a time, mid-run, before)
    write_png(img / "tiny.png", np.zeros((4, 4, 3), np.uint8), rgb=True)
    write_png(img / "tinz.png", np.zeros((4, 5, 3), np.uint8), rgb=True)
    with pytest.raises(DataError, match=r"tiny\.png: 4x4 px \(HxW\), smaller than the 8 px") as e:
        predict_folder(model, img, tmp_path / "through", translate_with=gen)
    assert "(and 1 more bad files: " in str(e.value) and "tinz.png: 4x5 px" in str(e.value)
    (img / "tinz.png").unlink()
    # every photo resized below it: the setting is named (it was said of the first photo)
    for run in (
        lambda: predict_folder(model, img, tmp_path / "t", eval_size=[6, 9], translate_with=gen),
        lambda: evaluate_folder(model, img, img, tmp_path / "e", [6, 9], translate_with=gen),
    ):
        with pytest.raises(ConfigError, match=r"^eval_size=\[6, 9\]: smaller than the 8 px"):
            run()


def test_scoring_through_a_generator_refuses_a_photo_too_small_for_it(tmp_path):
    """Scoring took a 5 x 6 photo through the generator that prediction refuses, and a 1 x 1
    one failed inside torch's padding: both tools hold to one rule, by file."""
    img, lab = make_folder(tmp_path / "real", n=2)
    write_png(img / "small.png", np.zeros((5, 6, 3), np.uint8), rgb=True)
    write_png(lab / "small.png", np.zeros((5, 6), np.uint8))
    gen = tiny_gan().g_ba.eval()
    with pytest.raises(DataError, match=r"small\.png: 5x6 px \(HxW\), smaller than the 8 px"):
        evaluate_folder(segmenter(), img, lab, tmp_path / "out", eval_size=None, translate_with=gen)
    scores = evaluate_folder(segmenter(), img, lab, tmp_path / "plain", eval_size=None)
    assert scores["num_images"] == 3  # the task model alone takes it


#: the reference generator, and the default one (residual: atanh, which ONNX needed mapped)
GENERATORS = {
    "resnet": {"kind": "resnet", "ngf": 8, "blocks": 1},
    "light-residual": {
        "kind": "light",
        "ngf": 8,
        "blocks": 1,
        "residual": True,
        "upsample": "resize",
    },
}


@pytest.mark.parametrize(
    "check_hw, generator",
    [
        ((61, 83), "resnet"),
        ((62, 66), "resnet"),
        ((68, 72), "resnet"),
        ((61, 83), "light-residual"),
    ],
)
def test_an_export_with_the_generator_is_testtime_at_sizes_off_the_tracing_one(
    tmp_path, check_hw, generator
):
    """Traced at 64 x 64, where the generator needs no padding; checked where it needs 3, 2 or
    none, then at 45 x 70: a pad width frozen at tracing fails the check or the comparison."""
    from gan.export import CrackProbability, export_model

    gen, net = tiny_gan(generator=GENERATORS[generator]).g_ba.eval(), segmenter().net.eval()
    torch.manual_seed(1)
    for p in gen.parameters():  # the residual one starts as the identity: move it off
        p.data.add_(torch.randn_like(p) * 0.1)
    report = export_model(net, tmp_path, sample_hw=(64, 64), check_hw=check_hw, translate_with=gen)
    assert max(report["max_abs_diff"].values()) < 1e-4
    assert set(report["max_abs_diff"]) == {"onnx", "torchscript"}
    x = torch.rand(1, 3, 45, 70) * 2 - 1
    exported = torch.jit.load(report["torchscript"])
    with torch.no_grad():
        got, alone = exported(x), CrackProbability(net)(x)
        expected = net(translate_batch(gen, x)).softmax(1)[:, 1:2]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, alone, atol=1e-3)  # the generator is in the graph


def refused(capsys: pytest.CaptureFixture[str], tool: str, *overrides: str) -> str:
    """The tool's refusal, run in this process: exit 1 and its one line."""
    code = tool_exit_code(tool, *overrides)
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_evaluate_predict_and_export_commands_take_a_gan_checkpoint(tmp_path, capsys):
    """Each command for real; their refusals (and export's rerun) in this process."""
    img, lab = make_folder(tmp_path / "real", n=2)
    model, gan = segmenter(), tiny_gan()
    ckpt, gan_ckpt = tmp_path / "task.ckpt", tmp_path / "gan.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    torch.save({"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}, gan_ckpt)
    logs = f"paths.log_dir={tmp_path / 'logs'}"  # Hydra's run folder, not the checkout's
    common = [f"ckpt={ckpt}", "eval_size=null", f"translate_with={gan_ckpt}", logs]
    (img / "scan.webp").write_bytes(b"RIFF")  # a kind neither tool reads: said, not lost
    sizes = ["sample_hw=[32,32]", "check_hw=[29,39]"]
    evaluated, predicted, proc = run_tools_at_once(  # three folders of their own
        ("evaluate", [*common, f"test_img={img}", f"test_lab={lab}", f"out_dir={tmp_path}/e"]),
        ("predict", [*common, f"input_dir={img}", f"out_dir={tmp_path}/p"]),
        (
            "export",
            [f"ckpt={ckpt}", f"translate_with={gan_ckpt}", *sizes, f"out_dir={tmp_path}/x", logs],
        ),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    scored = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert scored["translated_with"] == str(gan_ckpt) and scored["num_images"] == 2
    assert "note: 1 file of another kind" in evaluated.stdout and "scan.webp" in evaluated.stdout
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert len(list((tmp_path / "p" / "masks").glob("*.png"))) == 2
    assert "note: 1 file of another kind" in predicted.stdout and "scan.webp" in predicted.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = json.loads((tmp_path / "x" / "export.json").read_text())
    assert exported["translated_with"] == str(gan_ckpt) and exported["checkpoint"] == str(ckpt)
    assert "Warning" not in proc.stderr  # torch's constant-folding lines, two an export
    assert max(exported["max_abs_diff"].values()) < 1e-4
    # A check that fails writes nothing: the earlier export stands, and it is one line.
    before = {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir()}
    for bad, says in [
        ("atol=-1", "atol=-1: expected a number >= 0"),
        ("check_hw=[32,32]", "check_hw=[32, 32]: the same as sample_hw"),
    ]:
        assert says in refused(
            capsys, "export", f"ckpt={ckpt}", *sizes, bad, f"out_dir={tmp_path}/x"
        )
        assert {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir()} == before
    # Again into the same folder, one format named as one word: the other format's file goes.
    again = ("formats=torchscript", f"out_dir={tmp_path}/x")
    assert tool_exit_code("export", f"ckpt={ckpt}", *sizes, *again) == 0
    exported = json.loads((tmp_path / "x" / "export.json").read_text())
    assert exported["onnx"] is None and "translated_with" not in exported
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "crack_segmenter.pt",
        "export.json",
    ]
    err = refused(
        capsys, "export", f"ckpt={ckpt}", f"translate_with={ckpt}", f"out_dir={tmp_path}/z"
    )
    assert "no generator" in err and not (tmp_path / "z").exists()
    err = refused(capsys, "evaluate", f"ckpt={ckpt}", f"recalibrate_bn_on={img}", *common[1:])
    assert "recalibrate_bn_on and translate_with together" in err
    err = refused(
        capsys, "predict", f"ckpt={ckpt}", f"input_dir={img}", "translate_with=nowhere.ckpt"
    )
    assert "nowhere.ckpt" in err
    err = refused(
        capsys, "predict", f"ckpt={gan_ckpt}", f"input_dir={img}", f"out_dir={tmp_path}/q"
    )
    assert f"{gan_ckpt}: no task model in it" in err and not (tmp_path / "q").exists()


class Centre(nn.Module):
    """A 'generator' with per-image statistics, as instance norm has: padding would move them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean((1, 2, 3), keepdim=True)


def test_a_photo_scores_alike_whatever_shares_its_batch(tmp_path):
    """Photos of several sizes at their own size (eval_size=None): padding one to its batch's
    largest would change what the network and the generator see near its border."""
    photos, masks = tmp_path / "img", tmp_path / "lab"
    photos.mkdir(), masks.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(20, 28), (28, 20), (20, 28), (17, 23)]):
        write_png(photos / f"{i}.png", rng.integers(0, 255, (h, w, 3), np.uint8), rgb=True)
        write_png(masks / f"{i}.png", (rng.random((h, w)) > 0.9).astype(np.uint8) * 255)
    model = segmenter()
    for translate_with in (None, Centre()):
        found = {
            n: [
                p
                for _, p, _ in crack_probabilities(
                    model, ImageFolder(photos), None, n, 0, "", translate_with
                )
            ]
            for n in (1, 4)
        }
        for alone, batched in zip(found[1], found[4]):
            torch.testing.assert_close(alone, batched)
        scores = {
            n: evaluate_folder(
                model,
                photos,
                masks,
                tmp_path / f"eval{n}",
                None,
                n,
                0,
                translate_with=translate_with,
            )
            for n in (1, 4)
        }
        assert scores[1]["f1"] == pytest.approx(scores[4]["f1"], abs=1e-6)
        rows = [(tmp_path / f"eval{n}" / "per_image.csv").read_text() for n in (1, 4)]
        assert rows[0] == rows[1]
