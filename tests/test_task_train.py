"""End to end on tiny data: training lowers the loss; the Hydra entry point writes metrics;
evaluate/predict write their files; exports match PyTorch."""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _task_fixtures import make_folder, make_shards

from gan.checkpoint import UnsafeCheckpointError
from gan.compare import pooled_f1
from gan.evaluate import evaluate_folder, load_segmenter, predict_folder, read_counts
from gan.export import CrackProbability, export_model
from gan.networks import UNet
from gan.task import CrackSegmenter
from gan.task_data import SegmentationDataModule
from synth.distributions import ConfigError
from synth.io import DataError, ImageFolder, read_mask, write_json_atomic

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def test_tiny_training_lowers_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    img, lab = make_folder(tmp_path / "real", n=2)
    dm = SegmentationDataModule(
        str(make_shards(tmp_path / "syn", n=8, h=32, w=32)),
        str(img),
        str(lab),
        crop_size=32,
        batch_size=8,
        num_workers=0,
    )
    dm.setup("fit")
    model = CrackSegmenter(
        net={"name": "unet", "base": 8, "depth": 2}, lr=1e-2, scheduler="constant"
    )
    opt = model.configure_optimizers()["optimizer"]
    batch = next(iter(dm.train_dataloader()))
    losses = []
    for _ in range(25):
        loss = model.training_loss(batch["image"], batch["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def tiny_task_overrides(tmp: Path, img: Path, lab: Path | None) -> list[str]:
    """tools/train_task.py on synthetic shards under ``tmp``, 3 steps of a tiny U-Net."""
    return [
        "source=synthetic",
        f"paths.output_dir={tmp / 'out'}",
        f"paths.ckpt_dir={tmp / 'ckpt'}",
        f"paths.log_dir={tmp / 'logs'}",
        f"task_data.test_img={img}",
        f"task_data.test_lab={'null' if lab is None else lab}",
        "task_data.crop_size=32",
        "task_data.batch_size=4",
        "task_data.num_workers=0",
        "task.net.base=4",
        "task.net.depth=2",
        "trainer.max_steps=3",
        "trainer.val_check_interval=2",  # a validation at step 2
        "trainer.accelerator=cpu",
        "~callbacks.progress_bar",
        "task.warmup_steps=1",
    ]


def run_train_task(tmp: Path, extra: list[str] | None = None) -> tuple[dict, Path]:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from gan.cli import register_resolvers
    from gan.runner import fit

    register_resolvers()  # as every tool does: run_name is ${seeded:...}
    syn = make_shards(tmp / "out" / "synthetic", n=8, h=32, w=32)
    img, lab = make_folder(tmp / "real", n=3, h=32, w=48)
    overrides = [*tiny_task_overrides(tmp, img, lab), "task_data.eval_size=null", *(extra or [])]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train_task", overrides=overrides)
    assert cfg.task_data.train_dir == str(syn)
    dm, module = instantiate(cfg.task_data), instantiate(cfg.task)
    trainer = fit(cfg, module, dm)
    results = trainer.test(module, datamodule=dm, ckpt_path=None)[0]
    return results, Path(cfg.paths.ckpt_dir) / cfg.run_name / "last.ckpt"


def test_train_task_config_fit_test_evaluate_predict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results, ckpt = run_train_task(tmp_path)
    assert {"test/f1", "test/tol_f1", "test/crack_iou", "test/miou"} <= set(results)
    assert ckpt.is_file()
    model = load_segmenter(ckpt)
    assert model.hparams.net["base"] == 4

    img, lab = tmp_path / "real" / "img", tmp_path / "real" / "lab"
    result = evaluate_folder(
        model, img, lab, tmp_path / "eval", eval_size=None, batch_size=2, num_overlays=2
    )
    rows = list(csv.DictReader(open(tmp_path / "eval" / "per_image.csv")))
    assert [r["stem"] for r in rows] == ["img0", "img1", "img2"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_images"] == 3
    assert result["f1"] == pytest.approx(results["test/f1"], abs=1e-5)
    assert len(list((tmp_path / "eval" / "overlays").glob("*.png"))) == 2
    # each photo's pixel counts, from which any subset's pooled F1 is recomputed
    counts = read_counts(tmp_path / "eval" / "per_image.csv")
    assert sorted(counts) == ["img0", "img1", "img2"]
    labelled = [int((read_mask(p) > 0).sum()) for p in sorted(lab.iterdir())]
    assert [tp + fn for tp, _, fn in counts.values()] == labelled and sum(labelled) > 0
    pooled = pooled_f1(np.sum(list(counts.values()), axis=0))
    assert pooled == pytest.approx(result["f1"], abs=1e-5)

    # A sharded (synthetic or translated) set is scored the same way, its masks inside.
    shards = make_shards(tmp_path / "scored", n=3)
    on_shards = evaluate_folder(model, shards, None, tmp_path / "eval_shards", eval_size=None)
    rows = list(csv.DictReader(open(tmp_path / "eval_shards" / "per_image.csv")))
    assert on_shards["num_images"] == len(rows) == 3 and len({r["stem"] for r in rows}) == 3
    assert 0.0 <= on_shards["precision"] <= 1.0
    with pytest.raises(DataError, match="a photo folder needs its masks"):
        evaluate_folder(model, img, None, tmp_path / "eval_none")

    decoded: list[int] = []
    read = ImageFolder.__getitem__
    monkeypatch.setattr(ImageFolder, "__getitem__", lambda f, i: decoded.append(i) or read(f, i))
    written = predict_folder(model, img, tmp_path / "pred", eval_size=[16, 24], batch_size=2)
    assert sorted(p.name for p in written) == ["img0.png", "img1.png", "img2.png"]
    # each photo decoded twice: checked before any work, then once for the net and the overlay
    assert sorted(decoded) == [0, 0, 1, 1, 2, 2]
    import cv2

    for stem in ("img0", "img1", "img2"):
        mask = cv2.imread(str(tmp_path / "pred" / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (32, 48) and set(mask.ravel().tolist()) <= {0, 255}
        assert (tmp_path / "pred" / "overlays" / f"{stem}.png").is_file()

    # Into the same folders again, on other photos: only this run's results are left there.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(img / "img1.png", other / "new.png")
    monkeypatch.undo()
    predict_folder(model, other, tmp_path / "pred", eval_size=[16, 24])
    for sub in ("masks", "overlays"):
        assert [p.name for p in (tmp_path / "pred" / sub).glob("*.png")] == ["new.png"]

    # A run that fails on a later photo leaves the earlier run's results as they were.
    before = {p: p.read_bytes() for p in (tmp_path / "pred").rglob("*") if p.is_file()}
    shutil.copytree(img, tmp_path / "broken")
    (tmp_path / "broken" / "img2.png").write_bytes(b"not a png")
    (tmp_path / "broken" / "img0.png").write_bytes(b"")
    # every bad photo in one line, before any is segmented (one run per bad file before)
    with pytest.raises(DataError, match=r"img0.png: .* \(and 1 more bad files: .*img2.png"):
        predict_folder(model, tmp_path / "broken", tmp_path / "pred", batch_size=1)
    with pytest.raises(DataError, match=r"img0.png: .* \(and 1 more bad files: .*img2.png"):
        evaluate_folder(model, tmp_path / "broken", lab, tmp_path / "pred_eval")
    after = {p: p.read_bytes() for p in (tmp_path / "pred").rglob("*") if p.is_file()}
    assert after == before and not list((tmp_path / "pred").glob(".*"))
    # Photos in the folder a run writes its masks to would be replaced by their masks.
    with pytest.raises(ConfigError, match="is where this run writes its masks"):
        predict_folder(model, tmp_path / "pred" / "masks", tmp_path / "pred")
    evaluate_folder(model, img, lab, tmp_path / "eval", eval_size=None, num_overlays=1)
    assert [p.name for p in (tmp_path / "eval" / "overlays").glob("*.png")] == ["img0.png"]


def test_predictions_never_replace_or_remove_pngs_these_tools_did_not_write(tmp_path) -> None:
    """``out_dir=project`` beside a user's ``project/masks`` of hand-labelled masks: they were
    replaced by predictions, and the others deleted as "PNGs of an earlier run"."""
    img, lab = make_folder(tmp_path / "real", n=2)
    torch.manual_seed(0)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    project = tmp_path / "project"
    shutil.copytree(lab, project / "masks")
    (project / "masks" / "labelled_by_hand.png").write_bytes(b"mine")

    def files() -> dict:
        return {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}

    before = files()
    with pytest.raises(ConfigError, match=r"project/masks holds 3 images these tools did not"):
        predict_folder(model, img, project)
    assert files() == before  # nothing replaced, removed or added
    shutil.copytree(lab, project / "scores" / "overlays")
    with pytest.raises(ConfigError, match=r"scores/overlays holds 2 images these tools did not"):
        evaluate_folder(model, img, lab, project / "scores", eval_size=None)
    # the pipeline's own run folder (overlays from before the records) is scored over
    evaluate_folder(model, img, lab, project / "scores", eval_size=None, owned=True)
    # what these tools wrote, a later run replaces and removes
    predict_folder(model, img, tmp_path / "pred")
    (img / "img0.png").unlink()
    predict_folder(model, img, tmp_path / "pred")
    for sub in ("masks", "overlays"):
        assert [p.name for p in (tmp_path / "pred" / sub).glob("*.png")] == ["img1.png"]


def test_predictions_never_stand_beside_a_users_masks_of_another_kind(tmp_path) -> None:
    """A user's ``masks/img0.bmp``: predict wrote ``img0.png`` beside it, and evaluate took the
    PNG over the BMP without a word, scoring the model against its own output (F1 1.0)."""
    img, lab = make_folder(tmp_path / "real", n=2)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    masks = tmp_path / "project" / "masks"
    masks.mkdir(parents=True)
    for path in lab.glob("*.png"):
        cv2.imwrite(str(masks / f"{path.stem}.bmp"), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(ConfigError, match=r"project/masks holds 2 images these tools did not"):
        predict_folder(model, img, tmp_path / "project")
    assert sorted(p.name for p in masks.iterdir()) == ["img0.bmp", "img1.bmp"]
    (masks / "img1.png").write_bytes((lab / "img1.png").read_bytes())  # by hand, say
    with pytest.raises(DataError, match=r"masks: img1.bmp and img1.png share the stem 'img1'"):
        evaluate_folder(model, img, masks, tmp_path / "scores", eval_size=None)


def test_a_scoring_that_fails_leaves_the_earlier_results_as_they_were(tmp_path: Path) -> None:
    """Scoring replaced an earlier run's overlays photo by photo, so a run that failed on a
    later mask left the new overlays beside the old run's metrics.json and per_image.csv."""
    torch.manual_seed(0)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    img, lab = make_folder(tmp_path / "real", n=3)
    out = tmp_path / "eval"
    evaluate_folder(model, img, lab, out, eval_size=None, batch_size=1, num_overlays=3)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    torch.manual_seed(1)
    other = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "real", broken)
    (broken / "lab" / "img2.png").write_bytes(b"not a png")
    (out / ".overlays.tmp-999999999").mkdir()  # a killed run's staging
    with pytest.raises(DataError, match="img2.png"):
        evaluate_folder(other, broken / "img", broken / "lab", out, eval_size=None, batch_size=1)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(out.glob(".*"))
    with pytest.raises(ConfigError, match=r"out_dir=.*metrics\.json: a file, not a folder"):
        evaluate_folder(model, img, lab, out / "metrics.json", eval_size=None)


def test_ema_switch_checkpoints_and_scores_the_averaged_weights(tmp_path: Path) -> None:
    """task.ema_decay > 0: last.ckpt's state_dict (what evaluate/predict/export load) is the
    moving average, not the weights the same seed and steps train without it."""
    _, ckpt = run_train_task(tmp_path / "ema", ["task.ema_decay=0.5"])
    _, plain_ckpt = run_train_task(tmp_path / "plain")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    trained = torch.load(plain_ckpt, map_location="cpu", weights_only=True)
    assert "averaging_state" in saved and "averaging_state" not in trained
    averaged = saved["state_dict"]
    changed = [k for k in averaged if not torch.equal(averaged[k], trained["state_dict"][k])]
    assert any(k.endswith("weight") for k in changed)
    model = load_segmenter(ckpt)
    assert all(torch.equal(v, averaged[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="ema_decay"):
        CrackSegmenter(ema_decay=1.0)


def test_pruned_training_run(tmp_path: Path) -> None:
    from gan.pruning import prune_training_set

    syn = make_shards(tmp_path / "syn", n=8, h=32, w=32)
    img, lab = make_folder(tmp_path / "real", n=2, h=32, w=32)
    dm = SegmentationDataModule(
        str(syn), str(img), str(lab), crop_size=32, batch_size=2, num_workers=0
    )
    dm.setup("fit")  # as tools/train_task.py does, to fail on bad data before scoring
    assert len(dm.train_set) == 8
    kept = prune_training_set(
        dm,
        {"name": "unet", "base": 4, "depth": 2},
        0.5,
        str(tmp_path / "p.json"),
        score_after_steps=2,
        seeds=[0],
        batch_size=4,
    )
    assert len(kept) == 4 and json.loads((tmp_path / "p.json").read_text())["kept"] == kept
    dm.setup("fit")  # the set built before the selection trained on all 8 samples
    assert dm.train_set.indices == kept and len(dm.train_set) == 4


def test_the_tool_trains_on_the_pruned_samples_and_a_rerun_reuses_them(tmp_path: Path) -> None:
    """The tool opened the training set before pruning, and trained on all of it while its
    log and pruning.json said a quarter was kept."""
    from _cli_fixtures import run_tool, task_overrides

    from synth.toy import write_toy_real_folder

    write_toy_real_folder(tmp_path / "real", n=4)
    args = [*task_overrides(tmp_path), "prune.keep_fraction=0.5", "prune.score_after_steps=1"]
    first = run_tool("train_task", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "out" / "runs" / "task_oracle"
    kept = json.loads((run / "pruning.json").read_text())["kept"]
    assert len(kept) == 2 and "EL2N pruning kept 2 samples" in first.stdout
    assert json.loads((run / "metrics.json").read_text())["train_samples"] == 2
    again = run_tool("train_task", *args, "trainer.max_steps=3")  # resumed: selection reused
    assert again.returncode == 0 and "EL2N pruning kept" not in again.stdout
    # The selection is recorded by the indices it keeps, not by where they are written: the
    # first run kept them in memory, its rerun read them from pruning.json; both trained on
    # the same samples.
    assert "Restored all states from the checkpoint" in again.stderr
    ckpt = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    record = torch.load(ckpt, weights_only=True)["SegmentationDataModule"]["trained_on"]
    assert record["task_data.train_indices"]["shown"] == f"{run / 'pruning.json'} (2 of 4 samples)"
    rescored = run_tool("train_task", *args, "prune.seeds=[1]", "ckpt_path=null")
    assert rescored.returncode == 0 and "EL2N pruning kept 2 samples" in rescored.stdout


@pytest.mark.parametrize(
    "net", [{"name": "unet", "base": 4, "depth": 2}, {"name": "lraspp_mobilenet_v3_large"}]
)
def test_export_matches_pytorch(tmp_path: Path, net: dict) -> None:
    from gan.task import build_net

    torch.manual_seed(0)
    report = export_model(build_net(**net), tmp_path, sample_hw=(64, 64), check_hw=(50, 70))
    assert Path(report["onnx"]).is_file() and Path(report["torchscript"]).is_file()
    assert set(report["max_abs_diff"]) == {"onnx", "torchscript"}
    assert max(report["max_abs_diff"].values()) < 1e-4


def test_an_exported_file_or_a_missing_checkpoint_given_as_ckpt_says_what_to_pass(
    tmp_path: Path,
) -> None:
    """The TorchScript file as ckpt= was torch's warning, then advice about weights_only, and
    the ONNX file "unreadable checkpoint, cut short or not one", as if damaged; a
    missing default checkpoint (checkpoints/task_adapted) did not name those beside it (the
    pipeline's pipeline-task-adapted)."""
    from gan.task import build_net

    report = export_model(build_net("unet", base=4, depth=2), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.load's own warning is not reached
        with pytest.raises(UnsafeCheckpointError, match=r"crack_segmenter.pt: a TorchScript "):
            load_segmenter(report["torchscript"])
    with pytest.raises(UnsafeCheckpointError) as onnx:
        load_segmenter(report["onnx"])
    assert str(onnx.value).endswith(
        "crack_segmenter.onnx: an ONNX export (tools/export.py), not a training checkpoint; "
        "pass the .ckpt it was exported from"
    )
    for run in ("pipeline-task-oracle", "pipeline-adapt"):
        (tmp_path / "ckpt" / run).mkdir(parents=True)
        (tmp_path / "ckpt" / run / "last.ckpt").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as missing:
        load_segmenter(tmp_path / "ckpt" / "task_adapted" / "last.ckpt")
    assert str(missing.value).endswith(
        f"last.ckpt: checkpoint file not found; in {tmp_path / 'ckpt'}: "
        "pipeline-adapt/last.ckpt, pipeline-task-oracle/last.ckpt"
    )


def test_an_export_names_its_smallest_photo_and_refuses_to_trace_or_check_below_it(
    tmp_path: Path,
) -> None:
    """PyTorch pads a photo under the U-Net's 2**depth px a side; the traced graphs cannot, so
    they failed (TorchScript) or segmented it wrongly (ONNX) at such sizes."""
    net = UNet(3, 2, 4, 3)  # 8 px
    with pytest.raises(ConfigError, match=r"check_hw=\[6, 40\]: .* at least 8 px a side"):
        export_model(net, tmp_path / "x", sample_hw=(64, 64), check_hw=(6, 40))
    with pytest.raises(ConfigError, match=r"sample_hw=\[40, 7\]: .* at least 8 px a side"):
        export_model(net, tmp_path / "x", sample_hw=(40, 7), check_hw=(50, 70))
    assert not (tmp_path / "x").exists()
    report = export_model(net, tmp_path / "x", sample_hw=(8, 16), check_hw=(9, 8))
    assert report["smallest_side"] == 8 and max(report["max_abs_diff"].values()) < 1e-4
    (tmp_path / "file").write_text("")  # the error named the temp file it could not write
    with pytest.raises(ConfigError, match=r"^out_dir=.*file: a file, not a folder$"):
        export_model(net, tmp_path / "file", sample_hw=(8, 16), check_hw=(9, 8))


def test_an_export_says_what_its_graph_takes_and_what_it_left_unchecked(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Nothing recorded the input's scaling: photos scaled the usual way (/255) gave empty
    masks; an ONNX file left unchecked (no onnxruntime) said nothing; a check that fails
    leaves an earlier export as it was; a name with folders wrote outside out_dir."""
    import gan.export
    from gan.export import ExportMismatchError

    net = UNet(3, 2, 4, 2)
    first = export_model(net, tmp_path / "x", sample_hw=(8, 16), check_hw=(9, 8))
    assert first["input"]["range"] == [-1, 1] and first["input"]["from_uint8"] == "x / 127.5 - 1"
    assert first["input"]["channels"] == "RGB" and first["output"]["name"] == "crack_prob"
    before = {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir()}
    monkeypatch.setattr(gan.export, "run_onnx", lambda path, images: None)
    report = export_model(net, tmp_path / "y", sample_hw=(8, 16), check_hw=(9, 8))
    assert set(report["max_abs_diff"]) == {"torchscript"} and Path(report["onnx"]).is_file()
    assert "note: onnxruntime is not installed, so the ONNX file is not checked" in (
        capsys.readouterr().out
    )

    def mismatch(*args, **kwargs):
        raise ExportMismatchError("differs")

    monkeypatch.setattr(gan.export, "check_exports", mismatch)
    with pytest.raises(ExportMismatchError):
        export_model(net, tmp_path / "x", sample_hw=(8, 16), check_hw=(9, 8))
    assert {p.name: p.read_bytes() for p in (tmp_path / "x").iterdir()} == before
    for name in ("../escape", "a/b", ".."):
        with pytest.raises(ConfigError, match="a file name without folders"):
            export_model(net, tmp_path / "z", name=name)
    assert not (tmp_path / "escape.onnx").exists() and not (tmp_path / "z").exists()


def test_a_torchscript_export_keeps_nothing_for_a_backward_pass(tmp_path: Path) -> None:
    """Its outputs required a gradient: a caller without no_grad kept every activation (2.5
    GB where 1.4 GB does on a 1024x1024 photo), and ``.numpy()`` on them failed."""
    net = UNet(3, 2, 4, 2)
    report = export_model(
        net, tmp_path, sample_hw=(16, 16), check_hw=(20, 12), formats=("torchscript",)
    )
    out = torch.jit.load(report["torchscript"])(torch.rand(1, 3, 20, 24) * 2 - 1)
    assert not out.requires_grad and out.numpy().shape == (1, 1, 20, 24)
    assert all(p.requires_grad for p in net.parameters())  # the caller's net as it was


def test_export_json_says_how_to_get_predicts_masks_from_another_language(tmp_path) -> None:
    """A photo under smallest_side gave another output from the ONNX graph than predict's,
    and a 16-bit photo scaled the usual way (/65535) another from 12-bit data; export.json
    said neither, so a consumer of the graph could not get the masks predict writes."""
    from synth.io import read_image

    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = UNet(3, 2, 4, 3).eval()  # 8 px
    provenance = {"checkpoint": "/runs/task/last.ckpt"}
    report = export_model(
        net, tmp_path, "crack_segmenter", (16, 16), (20, 12), provenance=provenance
    )
    said = report["input"]
    record = json.loads((tmp_path / "export.json").read_text())  # a library call's too
    assert record == json.loads(json.dumps({**report, **provenance}))
    assert "mode='edge'" in said["below_smallest_side"] and "EXIF" in said["decoding"]
    photo = np.random.default_rng(0).uniform(-1, 1, (5, 11, 3)).astype(np.float32)
    padded = np.pad(photo, ((0, 3), (0, 0), (0, 0)), mode="edge").transpose(2, 0, 1)[None]
    session = ort.InferenceSession(report["onnx"], providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": np.ascontiguousarray(padded)})[0][..., :5, :11]
    with torch.no_grad():
        expected = CrackProbability(net)(torch.from_numpy(photo).permute(2, 0, 1)[None])
    assert np.abs(got - expected.numpy()).max() < 1e-4
    assert "4095" in said["from_uint16"]  # the rule, as the test spells it out here
    twelve_bit = (np.arange(3 * 4 * 3).reshape(3, 4, 3) * 113).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "p.png"), twelve_bit[..., ::-1])
    by_rule = np.round(twelve_bit * (255 / 4095)).astype(np.uint8)
    assert (read_image(tmp_path / "p.png") == by_rule).all()


def test_an_export_clears_the_temp_files_of_one_killed_mid_write(
    tmp_path: Path, monkeypatch
) -> None:
    """A killed export's hidden temp files (its ``finally`` never ran) stayed for good, and
    so did one whose pid a later process got (after a reboot): it read as a live export's."""
    import os
    import time

    import gan.staging

    dead = tmp_path / ".crack_segmenter.onnx.tmp-999999999"
    alive = tmp_path / f".crack_segmenter.pt.tmp-{os.getppid()}"  # an export still running
    reused = tmp_path / f".crack_segmenter.old.tmp-{os.getpid()}"  # its pid: a later process's
    for path in (dead, alive, reused, tmp_path / ".other.onnx.tmp-999999999"):
        path.write_bytes(b"half")
    real_start, later = gan.staging.started_at, time.time() + 60
    monkeypatch.setattr(
        gan.staging, "started_at", lambda pid: later if pid == os.getpid() else real_start(pid)
    )
    export_model(UNet(3, 2, 4, 2), tmp_path, sample_hw=(16, 16), check_hw=(20, 12))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".crack_segmenter.pt.tmp-" + str(os.getppid()),
        ".other.onnx.tmp-999999999",
        "crack_segmenter.onnx",
        "crack_segmenter.pt",
        "export.json",
    ]


def test_an_export_killed_as_its_files_take_their_names_leaves_no_earlier_export_json(
    tmp_path: Path, monkeypatch
) -> None:
    """export.json was written after the files took their names: an export killed in between
    left the new files beside the earlier export.json, which named another checkpoint. Now an
    export.json present is always of the files beside it (killed: none, until the rerun)."""
    from _cli_fixtures import tool_exit_code

    import gan.export

    class Killed(BaseException):  # as SIGKILL: nothing of the tool's handles it
        pass

    def kill(*args: object) -> None:
        raise Killed

    ckpts = [tmp_path / "task0.ckpt", tmp_path / "task1.ckpt"]
    for seed, ckpt in enumerate(ckpts):
        torch.manual_seed(seed)
        model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2})
        torch.save(
            {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt
        )
    out = tmp_path / "x"
    args = ["sample_hw=[16,16]", "check_hw=[20,12]", "formats=torchscript", f"out_dir={out}"]
    assert tool_exit_code("export", f"ckpt={ckpts[0]}", *args) == 0
    first = (out / "crack_segmenter.pt").read_bytes()
    assert json.loads((out / "export.json").read_text())["checkpoint"] == str(ckpts[0])
    monkeypatch.setattr(gan.export, "write_json_atomic", kill)  # after the renames
    with pytest.raises(Killed):
        tool_exit_code("export", f"ckpt={ckpts[1]}", *args)
    assert (out / "crack_segmenter.pt").read_bytes() != first  # the new file, and no record
    assert [p.name for p in out.iterdir()] == ["crack_segmenter.pt"]
    # killed as the first file takes its name: the record is gone already
    write_json_atomic(out / "export.json", {"checkpoint": str(ckpts[0])})
    monkeypatch.setattr(gan.export.os, "replace", kill)
    with pytest.raises(Killed):
        export_model(UNet(3, 2, 4, 2), out, sample_hw=(16, 16), check_hw=(20, 12))
    assert not (out / "export.json").exists()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("sample_hw=384", "error: sample_hw=384: expected [H, W], two positive whole numbers"),
        ("check_hw=null", "error: check_hw=null: expected [H, W], two positive whole numbers"),
        ("atol=abc", "error: atol='abc': expected a number >= 0"),
        ("name=null", "error: name=None: expected a file name, e.g. crack_segmenter"),
    ],
    ids=["sample_hw", "check_hw", "atol", "name"],
)
def test_a_mistyped_export_setting_is_one_line_before_the_checkpoint_is_read(
    tmp_path: Path, capsys, setting: str, said: str
) -> None:
    """Each was a traceback (``tuple(384)``, ``None >= 0``...), the first two in the tool
    before any check ran; the checkpoint, missing here, is not reached."""
    from _cli_fixtures import tool_exit_code

    code = tool_exit_code("export", f"ckpt={tmp_path / 'none.ckpt'}", setting)
    assert (code, capsys.readouterr().err.strip()) == (1, said)
    assert not (tmp_path / "outputs").exists()


def test_export_check_detects_mismatch(tmp_path: Path) -> None:
    from gan.export import check_exports, export_torchscript

    model = CrackProbability(UNet(3, 2, 4, 2)).eval()
    x = torch.rand(1, 3, 32, 32)
    path = export_torchscript(CrackProbability(UNet(3, 2, 4, 2)), tmp_path / "other.pt", x)
    with pytest.raises(RuntimeError, match="differs"):
        check_exports(model, None, path, x)


@pytest.mark.parametrize("formats", [("onxx",), ("torchscript", "onxx"), ()])
def test_an_unknown_export_format_is_refused_not_dropped(tmp_path: Path, formats: tuple) -> None:
    from gan.export import export_model
    from synth.distributions import ConfigError

    with pytest.raises(ConfigError, match=r"choose one or more of \['onnx', 'torchscript'\]"):
        export_model(UNet(3, 2, 4, 2), tmp_path / "x", formats=formats)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("channels_last", [True, False])
def test_inference_net_predicts_like_the_module_and_leaves_it_intact(channels_last: bool) -> None:
    torch.manual_seed(0)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}, channels_last=channels_last)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)  # non-trivial statistics to fold
        bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.rand(2, 3, 36, 52) * 2 - 1
    net = model.inference_net()
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 0


def test_a_task_checkpoint_initialises_a_network_whole(tmp_path: Path) -> None:
    """A Lightning checkpoint of this project names its network 'net.': every tensor was
    refused ('no tensor matches the model'), though the loader says it takes one."""
    from gan.task import build_net, load_local_weights

    trained = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2})
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "last.ckpt")
    net = build_net("unet", base=4, depth=2, weights_path=str(tmp_path / "last.ckpt"))
    for key, value in net.state_dict().items():
        assert torch.equal(value, trained.net.state_dict()[key]), key
    wider = build_net("unet", base=8, depth=2)
    assert load_local_weights(wider, tmp_path / "last.ckpt") < len(wider.state_dict())


def test_predict_and_evaluate_take_large_photos_in_windows(tmp_path, monkeypatch, capsys):
    """``tile``: photos larger than it go through in overlapping windows; without it, a photo
    over LARGE_PHOTO pixels is segmented whole, and a note names the way out first."""
    import cv2

    import gan.evaluate

    img, lab = make_folder(tmp_path / "real", n=2)  # 48 x 64
    torch.manual_seed(0)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    monkeypatch.setattr(gan.evaluate, "LARGE_PHOTO", 48 * 64 - 1)
    predict_folder(model, img, tmp_path / "whole", batch_size=1)
    out = capsys.readouterr().out  # once, not for each photo
    assert out.count("go through the network whole; should memory run out, tile=512") == 1
    predict_folder(model, img, tmp_path / "tiled", tile=32)
    assert "note:" not in capsys.readouterr().out
    for name in ("img0.png", "img1.png"):
        whole, windows = (
            cv2.imread(str(tmp_path / run / "masks" / name), cv2.IMREAD_UNCHANGED)
            for run in ("whole", "tiled")
        )
        assert whole.shape == windows.shape == (48, 64) and (whole == windows).mean() > 0.95
    scored = evaluate_folder(model, img, lab, tmp_path / "e", eval_size=None, tile=32)
    assert scored["num_images"] == 2


def test_a_full_disk_at_the_record_leaves_the_earlier_predictions_and_their_record(
    tmp_path, monkeypatch
) -> None:
    """The folder's record of what these tools wrote comes before the files move: a full disk
    between would have left new PNGs unrecorded, refused by the next run as a user's."""
    import errno

    import gan.staging

    img, _ = make_folder(tmp_path / "real", n=2)
    torch.manual_seed(0)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    predict_folder(model, img, tmp_path / "pred")
    before = {p: p.read_bytes() for p in (tmp_path / "pred").rglob("*") if p.is_file()}

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    (img / "img0.png").rename(img / "new.png")
    monkeypatch.setattr(gan.staging, "write_json_atomic", full)
    with pytest.raises(OSError):
        predict_folder(model, img, tmp_path / "pred")
    results = {p: p.read_bytes() for p in (tmp_path / "pred").glob("[!.]*/*") if p.is_file()}
    assert results == before  # the finished photos stay staged, hidden, for the rerun
    monkeypatch.undo()
    predict_folder(model, img, tmp_path / "pred")  # its own files: not refused
    assert sorted(p.name for p in (tmp_path / "pred" / "masks").glob("*.png")) == [
        "img1.png",
        "new.png",
    ]


def test_masks_drawn_black_on_white_are_said(tmp_path: Path, capsys) -> None:
    """Inverted masks read as crack nearly everywhere and scored a plausible F1 silently."""
    img, lab = make_folder(tmp_path / "real", n=3)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    evaluate_folder(model, img, lab, tmp_path / "right", eval_size=None)
    assert "note" not in capsys.readouterr().out
    for path in lab.glob("*.png"):
        cv2.imwrite(str(path), 255 - cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    evaluate_folder(model, img, lab, tmp_path / "inverted", eval_size=None)
    said = capsys.readouterr().out
    assert f"note: {lab}: 3 of 3 masks mark more than half their pixels as crack" in said
    assert "masks drawn black on white need inverting" in said


def test_a_stop_while_predictions_go_in_place_is_taken_once_they_are_whole(
    tmp_path: Path, monkeypatch, capsys, python_signal_defaults: None
) -> None:
    """A SIGTERM during the commit (thousands of renames) left some masks of the new model
    beside the old one's, under "its earlier outputs are as they were"."""
    import os
    import signal

    from gan.cli import run_cli

    img, _ = make_folder(tmp_path / "real", n=4)
    torch.manual_seed(0)
    old, new = (CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval() for _ in "ab")
    predict_folder(new, img, tmp_path / "new")
    predict_folder(old, img, tmp_path / "out")
    replace = os.replace

    def stopped_at_the_first_rename(src, dst) -> None:
        if Path(src).suffix != ".png":  # the staging journal's, before the commit
            return replace(src, dst)
        monkeypatch.setattr(os, "replace", replace)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler would raise here, one file in
        replace(src, dst)

    monkeypatch.setattr(os, "replace", stopped_at_the_first_rename)
    with pytest.raises(SystemExit) as stop:
        run_cli(predict_folder, new, img, tmp_path / "out", resumes=False)
    assert stop.value.code == 143
    said = capsys.readouterr().err
    assert said == "stopped by SIGTERM as its outputs went in place; they are whole\n"
    for sub in ("masks", "overlays"):
        made = sorted((tmp_path / "new" / sub).glob("*.png"))
        assert [p.read_bytes() for p in made] == [
            (tmp_path / "out" / sub / p.name).read_bytes() for p in made
        ]


def test_a_prediction_corrected_by_hand_is_not_replaced_by_a_rerun(tmp_path: Path) -> None:
    """The README promises a user's own masks are never replaced; a predicted mask fixed by
    hand in out_dir/masks was overwritten by the next run without a word."""
    img, _ = make_folder(tmp_path / "real", n=2)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    predict_folder(model, img, tmp_path / "out")
    predict_folder(model, img, tmp_path / "out")  # untouched: replaced as before
    shutil.copytree(tmp_path / "out", tmp_path / "copy", copy_function=shutil.copy)  # new times
    predict_folder(model, img, tmp_path / "copy")
    fixed = tmp_path / "out" / "masks" / "img1.png"
    cv2.imwrite(str(fixed), np.full((48, 64), 255, np.uint8))
    with pytest.raises(ConfigError, match=r"\(img1.png \(changed since written\)\)"):
        predict_folder(model, img, tmp_path / "out")
    assert (cv2.imread(str(fixed), cv2.IMREAD_GRAYSCALE) == 255).all()


def test_evaluate_and_predict_keep_out_of_each_others_folders(tmp_path: Path) -> None:
    """evaluate into predict's out_dir replaced most of its overlays with its own (another
    layout) beside predict's masks, saying so only after the fact."""
    img, lab = make_folder(tmp_path / "real", n=2)
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    predict_folder(model, img, tmp_path / "pred")
    before = {p: p.read_bytes() for p in (tmp_path / "pred").rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"pred/overlays holds predict's results, which evalu"):
        evaluate_folder(model, img, lab, tmp_path / "pred", eval_size=None)
    assert {p: p.read_bytes() for p in (tmp_path / "pred").rglob("*") if p.is_file()} == before
    evaluate_folder(model, img, lab, tmp_path / "scores", eval_size=None)
    with pytest.raises(ConfigError, match=r"scores/overlays holds evaluate's results, which pre"):
        predict_folder(model, img, tmp_path / "scores")


def test_photos_stretched_to_another_shape_by_eval_size_are_said(tmp_path: Path, capsys) -> None:
    """eval_size's default is DeepCrack's 384x544: a user's portrait photos were stretched
    to it, cracks and all, with the report's "resized to 384x544" the only trace."""
    model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
    img, lab = make_folder(tmp_path / "wide", n=2, h=48, w=64)
    evaluate_folder(model, img, lab, tmp_path / "same", eval_size=(48, 64))
    assert "note" not in capsys.readouterr().out
    img, lab = make_folder(tmp_path / "tall", n=2, h=64, w=32)
    evaluate_folder(model, img, lab, tmp_path / "stretched", eval_size=(48, 64))
    assert capsys.readouterr().out.startswith(
        f"note: {img}: photos such as img0.png (64x32) are resized to eval_size 48x64 (HxW), "
        "stretching cracks with them; eval_size=null scores each photo at its own size\n"
    )


def test_a_training_without_test_labels_trains_and_says_how_to_segment_the_photos(
    tmp_path: Path, capsys, recwarn
) -> None:
    """The product's user has photos and no labels: test_lab=null was a folder named 'None'
    refused as missing before any training; now the model trains (no validation, nothing
    scored) and the tool says how to segment the photos."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from gan.cli import register_resolvers
    from gan.task_training import train_task

    register_resolvers()
    make_shards(tmp_path / "out" / "synthetic", n=8, h=32, w=32)
    img, _ = make_folder(tmp_path / "real", n=3, h=32, w=48)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train_task", overrides=tiny_task_overrides(tmp_path, img, None))
    metrics = train_task(cfg)
    assert metrics["scored"] is False and metrics["global_step"] == 3
    assert not any(k.startswith("test/") for k in metrics)
    said = capsys.readouterr()
    assert "not scored" in said.out and f"input_dir={img}" in said.out
    # no validation loop over nothing, which Lightning warned of at each validation
    assert not [w for w in recwarn if "Total length" in str(w.message)]
    with pytest.raises(DataError, match="no test labels"):
        instantiate(cfg.task_data).setup("test")
    everything = instantiate(cfg.task_data)  # what the pipeline reads before old outputs go
    everything.setup()
    assert everything.val_set is None and len(everything.train_set) == 8
    # the photos its last line names, missing: said before any training
    gone = tiny_task_overrides(tmp_path, tmp_path / "gone", None)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train_task", overrides=gone)
    with pytest.raises(DataError, match="gone: image folder not found"):
        train_task(cfg)


def test_the_share_called_crack_is_of_all_pixels_not_a_mean_of_photos(tmp_path, monkeypatch):
    """Photos of two sizes, one all crack: the share is of the pixels (the report's header),
    where a mean of the photos' shares read 0.5."""
    import gan.evaluate as evaluate

    photos = tmp_path / "photos"
    photos.mkdir()
    sizes = {"a": (16, 16), "b": (16, 48)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(photos / f"{name}.png"), np.full((h, w, 3), 128, np.uint8))

    def all_crack_first(model, folder, *args, **kwargs):
        for i, path in enumerate(folder.images):
            h, w = sizes[path.stem]
            yield i, torch.full((h, w), 1.0 if i == 0 else 0.0), np.full((h, w, 3), 128, np.uint8)

    monkeypatch.setattr(evaluate, "crack_probabilities", all_crack_first)
    result = evaluate.segment_unlabeled(None, photos, tmp_path / "out", None, num_overlays=1)
    assert result["crack_share"] == pytest.approx(256 / (256 + 768))
    assert result["scored"] is False and result["num_images"] == 2
    assert sorted(p.name for p in (tmp_path / "out" / "masks").glob("*.png")) == ["a.png", "b.png"]
    assert [p.name for p in (tmp_path / "out" / "overlays").glob("*.png")] == ["a.png"]


# ---------------------------------------------------- a resume on other data (train_task)


@pytest.fixture(scope="module")
def task_run(tmp_path_factory) -> Path:
    """tools/train_task.py trained 2 steps under ``<root>`` twice: the oracle on
    ``real/train_img`` + ``train_lab`` (run task_oracle) and on the shards in
    ``out/synthetic`` (task_synthetic); other photos (``other/``) and shards beside them."""
    from _cli_fixtures import run_tool

    from synth.toy import write_toy_real_folder

    root = tmp_path_factory.mktemp("task_resume")
    write_toy_real_folder(root / "real", n=4)
    write_toy_real_folder(root / "other", n=3)
    make_shards(root / "out" / "synthetic", n=8, h=32, w=32)
    make_shards(root / "other_syn", n=6, h=32, w=32)
    for source in ("oracle", "synthetic"):
        proc = run_tool("train_task", *resume_overrides(root, 2, source))
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def resume_overrides(root: Path, steps: int, source: str = "oracle") -> list[str]:
    from _cli_fixtures import task_overrides

    return [
        *(o for o in task_overrides(root, steps) if not o.startswith("source=")),
        f"source={source}",
        "trainer.val_check_interval=1",  # a run resumed at step 2 validates at step 3
    ]


def rerun_task(root: Path, steps: int, source: str, *extra: str):
    from _cli_fixtures import run_tool

    return run_tool("train_task", *resume_overrides(root, steps, source), *extra)


def refused_here(capsys, root: Path, steps: int, source: str, *extra: str) -> tuple[str, list[str]]:
    """rerun_task refused, run in this process (a tool start is seconds of imports; the runs
    that train are the tool's own): exit 1, no traceback (one would fail the test). What it
    printed, and its error lines."""
    from _cli_fixtures import tool_exit_code

    code = tool_exit_code("train_task", *resume_overrides(root, steps, source), *extra)
    said = capsys.readouterr()
    assert code == 1, said.err[-3000:]
    return said.out, [line for line in said.err.splitlines() if line.startswith("error: ")]


def task_files(root: Path) -> dict[str, dict]:
    from _cli_fixtures import tree_digest

    return {sub: tree_digest(root / sub) for sub in ("checkpoints", "logs", "out/runs")}


def refusal(root: Path, source: str, said: str) -> str:
    last = root / "checkpoints" / f"task_{source}" / "last.ckpt"
    return (
        f"error: {last}: trained on other data: {said}; resume with the folders it was "
        "trained on, or start over with ckpt_path=null or a new run_name="
    )


@pytest.mark.parametrize("case", ["photos", "shards", "mixed"])
def test_a_task_model_resumed_on_other_data_is_refused_before_any_logger(
    task_run: Path, case: str, capsys
) -> None:
    """Resumed with another task_data.train_dir (a photo folder and its masks, another
    sharded set, or the set pooled with another), train_task carried the model on over two
    data sets, saved as one run. Refused in one line, the run's files untouched."""
    root = task_run
    if case == "photos":
        source, other = "oracle", root / "other"
        extra = [f"task_data.train_dir={other / 'train_img'}"]
        extra.append(f"task_data.train_mask_dir={other / 'train_lab'}")
        said = ", and ".join(
            f"task_data.{key}={other / sub} holds other files than {root / 'real' / sub}, "
            "which it was trained on"
            for key, sub in (("train_dir", "train_img"), ("train_mask_dir", "train_lab"))
        )
    else:
        source, syn, other = "synthetic", root / "out" / "synthetic", root / "other_syn"
        given = f"{syn} + {other}" if case == "mixed" else str(other)
        extra = [
            f"task_data.train_dir=[{syn},{other}]"
            if case == "mixed"
            else f"task_data.train_dir={other}"
        ]
        said = f"task_data.train_dir={given} holds other files than {syn}, which it was trained on"
    before = task_files(root)
    _, lines = refused_here(capsys, root, 3, source, *extra)
    assert lines == [refusal(root, source, said)]
    assert task_files(root) == before


def test_a_task_model_resumed_on_another_pruned_selection_is_refused(
    task_run: Path, tmp_path: Path, capsys
) -> None:
    """EL2N pruning selects which samples are trained on: a run trained on the whole set and
    resumed with prune.keep_fraction=0.5 had trained on half of it from then on. Refused
    before the scoring (which took minutes only to be refused), pruning.json unwritten."""
    root = tmp_path / "run"
    shutil.copytree(task_run, root, symlinks=True)
    before = task_files(root)
    prune = ("prune.keep_fraction=0.5", "prune.score_after_steps=1")
    last = root / "checkpoints" / "task_oracle" / "last.ckpt"
    refused_before_scoring(
        refused_here(capsys, root, 3, "oracle", *prune),
        f"error: {last}: trained on all 4 samples of task_data.train_dir, while "
        "prune.keep_fraction=0.5 trains on 2; resume with prune.keep_fraction=1, or start "
        "over with ckpt_path=null or a new run_name=",
    )
    assert task_files(root) == before


def refused_before_scoring(said: tuple[str, list[str]], line: str) -> None:
    """A resume refused (refused_here) in ``line`` alone, before EL2N pruning scored the set."""
    out, lines = said
    assert lines == [line]
    assert "EL2N pruning kept" not in out


def test_a_pruned_task_model_resumed_with_other_prune_settings_is_refused_before_scoring(
    tmp_path: Path, capsys
) -> None:
    """Resumed with another keep_fraction, a pruned run scored the whole set again and was
    refused after, its pruning.json rewritten with the selection refused (a rerun with the
    old settings then scored again). Refused first, naming the settings it was made with;
    with no pruning.json to say them, the selection is scored and refused by the data
    check, and pruning.json is written only for a resume that goes on."""
    from synth.toy import write_toy_real_folder

    write_toy_real_folder(tmp_path / "real", n=4)
    prune = ["prune.score_after_steps=1"]
    first = rerun_task(tmp_path, 2, "oracle", "prune.keep_fraction=0.5", *prune)
    assert first.returncode == 0, first.stderr[-3000:]
    pruning = tmp_path / "out" / "runs" / "task_oracle" / "pruning.json"
    made = pruning.read_bytes()
    before = task_files(tmp_path)
    last = tmp_path / "checkpoints" / "task_oracle" / "last.ckpt"
    refused_before_scoring(
        refused_here(capsys, tmp_path, 3, "oracle", "prune.keep_fraction=0.75", *prune),
        f"error: {last}: trained on the EL2N selection in {pruning}, made with "
        "prune.keep_fraction=0.5; resume with those settings, or start over with "
        "ckpt_path=null or a new run_name=",
    )
    assert task_files(tmp_path) == before
    pruning.unlink()
    out, lines = refused_here(capsys, tmp_path, 3, "oracle", "prune.keep_fraction=0.75", *prune)
    assert "EL2N pruning kept 3 samples" in out
    assert len(lines) == 1 and "selects other samples than" in lines[0]
    assert not pruning.exists()
    again = rerun_task(tmp_path, 3, "oracle", "prune.keep_fraction=0.5", *prune)
    assert again.returncode == 0, again.stderr[-3000:]
    assert pruning.read_bytes() == made


@pytest.mark.parametrize("source", ["oracle", "synthetic"])
def test_a_task_model_whose_data_moved_with_the_same_files_resumes(
    task_run: Path, tmp_path: Path, source: str
) -> None:
    """The checkpoint records each folder's listing (names and sizes; a sharded set's, shard
    by shard), not only its place: a run and its data copied elsewhere whole resume there,
    and say so."""
    moved = tmp_path / "moved"
    shutil.copytree(task_run, moved, symlinks=True)
    proc = rerun_task(moved, 3, source)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = moved / "checkpoints" / f"task_{source}" / "last.ckpt"
    folders = {"train_dir": "real/train_img", "train_mask_dir": "real/train_lab"}
    if source == "synthetic":
        folders = {"train_dir": "out/synthetic"}
    for key, sub in folders.items():
        said = f"{last}: task_data.{key} moved from {task_run / sub} to {moved / sub}, with the"
        assert said in proc.stderr
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 3
    record = saved["SegmentationDataModule"]["trained_on"]
    assert record["task_data.train_dir"]["folder"] == str(moved / folders["train_dir"])


def test_a_task_checkpoint_from_before_the_record_resumes_and_records_its_data(
    task_run: Path, tmp_path: Path, capsys
) -> None:
    """A checkpoint saved before data was recorded resumes as it did, whatever the folders
    (nothing says what it was trained on), and its next save records them."""
    old = tmp_path / "old"
    shutil.copytree(task_run, old, symlinks=True)
    last = old / "checkpoints" / "task_oracle" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["SegmentationDataModule"]
    torch.save(checkpoint, last)
    other = task_run / "other"
    folders = [f"task_data.train_dir={other / 'train_img'}"]
    folders.append(f"task_data.train_mask_dir={other / 'train_lab'}")
    proc = rerun_task(old, 3, "oracle", *folders)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained on other data" not in proc.stderr and " moved from " not in proc.stderr
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 3
    record = saved["SegmentationDataModule"]["trained_on"]
    assert record["task_data.train_dir"]["folder"] == str(other / "train_img")
    _, lines = refused_here(capsys, old, 4, "oracle")  # from now on, its data is known
    assert len(lines) == 1 and "trained on other data" in lines[0]


@pytest.mark.parametrize("steps", [2, 3])
def test_a_task_model_scored_on_other_test_photos_resumes(
    task_run: Path, tmp_path: Path, steps: int
) -> None:
    """The test (and validation) photos score the model, they do not train it: a finished
    run scored again on new test photos, or one resumed and scored on them, is not refused
    (the pipeline scores its trained rows again on new test photos so)."""
    root = tmp_path / "run"
    shutil.copytree(task_run, root, symlinks=True)
    other = task_run / "other"
    tests = [f"task_data.test_img={other / 'test_img'}", f"task_data.test_lab={other / 'test_lab'}"]
    proc = rerun_task(root, steps, "oracle", *tests)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained on other data" not in proc.stderr
    metrics = json.loads((root / "out" / "runs" / "task_oracle" / "metrics.json").read_text())
    assert metrics["global_step"] == steps
