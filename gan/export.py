"""Export the task model for deployment: ONNX (any runtime) and TorchScript (C++/mobile).

Exported graphs output the crack probability (B, 1, H, W) rather than logits, so a consumer
only thresholds at 0.5. Height and width are dynamic: the model segments any photo size.
Every export is checked against PyTorch on an input of a size other than the tracing one, which
catches a shape frozen into the graph. With ``translate_with`` the graph holds the GAN's
real-to-synthetic generator in front of the net (test-time translation, the ``testtime`` row),
so that row deploys as one file too.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan.data import checked_size, in_range
from gan.evaluate import MIN_GENERATOR_SIDE, ThroughGenerator
from gan.networks import UNet
from gan.staging import check_out_dir, process_alive, started_before_change
from synth.distributions import ConfigError
from synth.io import write_json_atomic


class CrackProbability(nn.Module):
    """Wraps a segmentation net: images in [-1, 1] -> crack probability (B, 1, H, W)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).softmax(1)[:, 1:2]


def register_missing_symbolics() -> None:
    """ONNX has had Atanh since opset 9, but the TorchScript-based exporter has no mapping for
    it, and the residual generator (``tanh(atanh(x) + h(x))``, the default) uses it."""
    torch.onnx.register_custom_op_symbolic("aten::atanh", lambda g, x: g.op("Atanh", x), 9)


def export_onnx(model: nn.Module, path: str | Path, sample: torch.Tensor, opset: int = 18) -> Path:
    """ONNX with dynamic batch/height/width, via the TorchScript-based exporter.

    The legacy exporter (``dynamo=False``) is used because it handles the U-Net's
    size-dependent interpolation with plain ``dynamic_axes`` and needs no extra packages.
    """
    register_missing_symbolics()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the generator's reflect-pad slices, left unfolded: two
        # lines of torch internals per export with translate_with that change nothing (the
        # export is compared with the model on two sizes right after)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            model.eval(),
            (sample,),
            str(path),
            input_names=["image"],
            output_names=["crack_prob"],
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "crack_prob": {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=opset,
            dynamo=False,
        )
    return path


def export_torchscript(model: nn.Module, path: str | Path, sample: torch.Tensor) -> Path:
    """TorchScript by tracing (the nets have no data-dependent control flow), of a copy whose
    weights need no gradient: the file's outputs required one, so a caller without no_grad
    (C++ without a NoGradGuard) kept every activation for a backward pass that never comes,
    2.2 GB where 1.2 GB does on a 1024x1024 photo (default U-Net), and a Python caller's
    ``.numpy()`` failed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frozen = copy.deepcopy(model).eval().requires_grad_(False)  # the caller's model untouched
    with torch.no_grad():
        traced = torch.jit.trace(frozen, sample, check_trace=False)
    traced.save(str(path))
    return path


def run_onnx(path: str | Path, images: torch.Tensor) -> np.ndarray | None:
    """Outputs from onnxruntime, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images.numpy()})[0]


@torch.no_grad()
def check_exports(
    model: nn.Module,
    onnx_path: Path | None,
    ts_path: Path | None,
    check_input: torch.Tensor,
    atol: float = 1e-4,
) -> dict[str, float]:
    """Max absolute difference of each export vs PyTorch; raises when above ``atol``."""
    expected = model.eval()(check_input)
    diffs: dict[str, float] = {}
    if ts_path is not None:
        got = torch.jit.load(str(ts_path))(check_input)
        diffs["torchscript"] = float((got - expected).abs().max())
    if onnx_path is not None:
        got_np = run_onnx(onnx_path, check_input)
        if got_np is not None:
            diffs["onnx"] = float(np.abs(got_np - expected.numpy()).max())
        else:  # written unchecked, which the report's diffs alone left unsaid
            print(
                "note: onnxruntime is not installed, so the ONNX file is not checked against "
                "PyTorch (pip install onnxruntime, or the project's [export] extra)"
            )
    bad = {k: v for k, v in diffs.items() if v > atol}
    if bad:
        raise ExportMismatchError(
            f"exported model differs from PyTorch by {bad} (atol {atol}); nothing written"
        )
    return diffs


#: What an exported graph takes and gives, in export.json: the graph carries no word of its
#: input's scaling, and photos scaled to [0, 1] (the usual /255) gave empty masks. The rest
#: is what tools/predict.py does that a graph cannot, for a consumer in another language to
#: get its masks: a photo under ``smallest_side`` gave another (ONNX) or no (TorchScript)
#: output; a 16-bit, grey or EXIF-turned photo is read as ``synth.io.read_image`` reads it.
INPUT_OUTPUT = {
    "input": {
        "name": "image",
        "shape": "(batch, 3, height, width)",
        "channels": "RGB",
        "dtype": "float32",
        "range": [-1, 1],
        "from_uint8": "x / 127.5 - 1",
        "from_uint16": "round(x * 255 / 4095) where no value of the photo exceeds 4095 "
        "(12-bit data), else round(x * 255 / 65535); then from_uint8",
        "decoding": "EXIF orientation applied; grey repeated into R, G and B; alpha dropped",
        "batch": "photos of one size; padding a smaller one changes its border's output",
        "below_smallest_side": "pad the bottom and right to smallest_side px by repeating "
        "the edge pixels (numpy.pad mode='edge'), then crop the output back (tools/predict.py "
        "does so, exactly for the model alone; with translate_with it pads after the "
        "generator, so there the result is close, not the same)",
    },
    "output": {
        "name": "crack_prob",
        "shape": "(batch, 1, height, width)",
        "meaning": "crack probability; a crack where > 0.5",
    },
}


class ExportMismatchError(RuntimeError):
    """An exported file computes something else than the PyTorch model it came from."""


FORMATS = ("onnx", "torchscript")


#: The record of an export, written by ``export_model`` once the files have their names: what
#: the graph takes, the checks' differences, and the caller's provenance (tools/export.py: the
#: checkpoint the files came from).
EXPORT_RECORD = "export.json"


def export_model(
    net: nn.Module,
    out_dir: str | Path,
    name: str = "crack_segmenter",
    sample_hw: tuple[int, int] = (128, 128),
    check_hw: tuple[int, int] = (96, 160),
    formats: tuple[str, ...] = FORMATS,
    atol: float = 1e-4,
    translate_with: nn.Module | None = None,
    provenance: dict | None = None,
) -> dict:
    """Export ``net`` (logits model), behind ``translate_with`` when given, in the given
    formats and verify them; returns a report. Files are written under temporary names and
    take their own only once checked, so a failed check leaves the folder as it was; an
    earlier export in a format not asked for now is removed, as export.json no longer
    describes it. The record's whole rule lives here: an earlier export.json is removed
    before the first file takes its name (``drop_earlier_record``) and the new one, the
    report with ``provenance``, is written once all have theirs."""
    sample_hw, check_hw = check_settings(formats, atol, name, sample_hw, check_hw)
    least = smallest_side(net, translate_with)
    for key, hw in (("sample_hw", sample_hw), ("check_hw", check_hw)):
        if min(hw) < least:
            raise ConfigError(
                f"{key}={list(hw)}: the exported graph takes photos of at least {least} px a "
                "side (tools/predict.py takes smaller ones)"
            )
    if sample_hw == check_hw:
        raise ConfigError(
            f"check_hw={list(check_hw)}: the same as sample_hw; the check is at another size, "
            "so an export that works only at the tracing size is caught"
        )
    if translate_with is not None:
        net = ThroughGenerator(translate_with.eval(), net)
    model = CrackProbability(net).cpu().eval()
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    clear_killed_exports(out_dir, name)
    final = {"onnx": out_dir / f"{name}.onnx", "torchscript": out_dir / f"{name}.pt"}
    temp = {k: p.with_name(f".{p.name}.tmp-{os.getpid()}") for k, p in final.items()}
    sample = torch.rand(1, 3, *sample_hw) * 2 - 1
    check_input = torch.rand(2, 3, *check_hw) * 2 - 1
    try:
        onnx_path = export_onnx(model, temp["onnx"], sample) if "onnx" in formats else None
        ts_path = (
            export_torchscript(model, temp["torchscript"], sample)
            if "torchscript" in formats
            else None
        )
        diffs = check_exports(model, onnx_path, ts_path, check_input, atol)
        drop_earlier_record(out_dir)
        for kind in FORMATS:
            if kind in formats:
                os.replace(temp[kind], final[kind])
            elif final[kind].is_file():
                final[kind].unlink()
                print(f"removed {final[kind]}: an earlier export, not asked for now")
    finally:
        for path in temp.values():
            path.unlink(missing_ok=True)
    report = {
        "onnx": str(final["onnx"]) if onnx_path else None,
        "torchscript": str(final["torchscript"]) if ts_path else None,
        "max_abs_diff": diffs,
        "smallest_side": least,
        **INPUT_OUTPUT,
    }
    write_json_atomic(out_dir / EXPORT_RECORD, {**report, **(provenance or {})})
    return report


def drop_earlier_record(out_dir: Path) -> None:
    """The earlier export's export.json, removed once the new files passed their checks and
    before the first takes its name: written after them, it stayed beside them where an
    export was killed in between, naming another checkpoint than theirs (and the formats and
    differences of the files they replaced). An export.json present is now always of the
    files beside it; a killed export leaves none, and its rerun writes it."""
    (out_dir / EXPORT_RECORD).unlink(missing_ok=True)


def check_settings(
    formats: Sequence[str],
    atol: object,
    name: object,
    sample_hw: Sequence[int] | None,
    check_hw: Sequence[int] | None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The export's own settings, refused in one line before the checkpoint is read: a
    mistyped one (``sample_hw=384``, ``check_hw=null``, ``atol=abc``, ``name=null``) was a
    traceback. The two sizes, as ``(H, W)``."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"formats={list(formats)}: choose one or more of {list(FORMATS)}")
    in_range(atol, "atol", 0, math.inf)  # -1 exported, then failed its check
    if not isinstance(name, str):  # name=null failed in pathlib
        raise ConfigError(f"name={name!r}: expected a file name, e.g. crack_segmenter")
    if Path(name).name != name or name in ("", ".", ".."):  # '../x' wrote outside out_dir
        raise ConfigError(f"name={name!r}: a file name without folders")
    sizes = [
        checked_size(hw, key, null=False)
        for key, hw in [("sample_hw", sample_hw), ("check_hw", check_hw)]
    ]
    return sizes[0], sizes[1]


def clear_killed_exports(out_dir: Path, name: str) -> None:
    """Remove the temp files of an export killed mid-write (SIGKILL, the OOM killer: its
    process gone, its ``finally`` never ran). Hidden, they stayed beside the exports for good,
    each as large as its export (tens of MB with the generator). A live process that got the
    killed writer's pid later (after a reboot) is not its writer: its file was kept for good."""
    for left in out_dir.glob(f".{name}.*.tmp-*"):
        pid = left.name.rsplit("-", 1)[-1]
        if not (process_alive(pid) and started_before_change(int(pid), left)):
            left.unlink(missing_ok=True)


def smallest_side(net: nn.Module, translate_with: nn.Module | None = None) -> int:
    """The least height and width an exported graph segments as PyTorch does. PyTorch pads a
    photo under the U-Net's ``2**depth`` px a side; a traced graph cannot (the pad widths
    would be frozen at the tracing size), and segmented such a photo wrongly or failed."""
    sides = [m.smallest_side for m in net.modules() if isinstance(m, UNet)]
    if translate_with is not None:
        sides.append(MIN_GENERATOR_SIDE)
    return max(sides, default=1)
