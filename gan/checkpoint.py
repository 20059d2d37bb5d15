"""Loading checkpoints safely: tensors and plain containers only, never code."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf


def plain(node: Any) -> Any:
    """Config nodes as plain containers, so the hyper-parameters a model saves into its
    checkpoints load with ``weights_only=True`` (a DictConfig would need unpickling)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return {k: plain(v) for k, v in node.items()}
    return node


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that needs arbitrary unpickling (it could run code) was refused."""


def load_checkpoint(
    path: str | Path | None, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict:
    """``torch.load(weights_only=True)``, with errors that name the file. ``mmap``: tensors
    stay on disk until read, for a look at names and shapes only (torch maps only its zip
    format; any other file is read whole, so it meets the same checks)."""
    if path is None or str(path) == "":
        raise FileNotFoundError("no checkpoint given (null): pass the path of a .ckpt file")
    path = Path(path)
    if path.is_dir():
        inside = " (its last.ckpt?)" if (path / "last.ckpt").is_file() else ""
        raise FileNotFoundError(f"{path}: a folder, not a checkpoint file{inside}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found{checkpoints_beside(path)}")
    is_zip = zipfile.is_zipfile(path)
    if export := exported_as(path, is_zip):  # torch.load's warning, then "weights_only" advice
        raise UnsafeCheckpointError(
            f"{path}: {export} export (tools/export.py), not a training checkpoint; "
            "pass the .ckpt it was exported from"
        )
    if not is_zip and not is_pickle(path):
        raise UnsafeCheckpointError(
            f"{path}: unreadable checkpoint, cut short or not one (torch saves a zip "
            "archive; this file is not one)"
        )
    mmap = mmap and is_zip
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path}: refused, it holds objects other than tensors and plain containers "
            f"(weights_only=True): {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, ValueError, KeyError) as err:  # cut short, or not torch's
        # torch's first sentence says what failed; the rest is advice about saving
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
        raise UnsafeCheckpointError(
            f"{path}: unreadable checkpoint, cut short or not one ({first})"
        ) from err


def checkpoints_beside(path: Path) -> str:
    """The runs' checkpoints in the folder the missing one's run folder would be in: the
    tools' default (``checkpoints/task_adapted``) is not the pipeline's
    (``pipeline-task-adapted``), and "not found" alone left the user to look."""
    runs = path.parent.parent
    found = sorted(runs.glob(f"*/{path.name}")) if runs.is_dir() else []
    if not found:
        return ""
    shown = ", ".join(str(p.relative_to(runs)) for p in found[:6])
    more = f" and {len(found) - 6} more" if len(found) > 6 else ""
    return f"; in {runs}: {shown}{more}"


def exported_as(path: Path, is_zip: bool) -> str | None:
    """The format of a tools/export.py file given where a checkpoint goes, with its article
    ("an ONNX"), else None. ONNX is told by its suffix (a protobuf has no magic bytes): the
    export beside the .pt was "unreadable checkpoint, cut short or not one", as if damaged."""
    if is_zip and is_torchscript(path):
        return "a TorchScript"
    if not is_zip and path.suffix.lower() == ".onnx":
        return "an ONNX"
    return None


def is_torchscript(path: Path) -> bool:
    """A ``torch.jit.save`` archive: code and constants beside the data, which a checkpoint
    never holds."""
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") for n in archive.namelist())


def is_pickle(path: Path) -> bool:
    """Starts as a pickle does (protocol 2 or later): torch's legacy format, or a file that
    needs the unpickler's refusal rather than a guess."""
    with path.open("rb") as file:
        return file.read(1) == b"\x80"


def check_resumable(path: str | Path, module: torch.nn.Module) -> dict:
    """Fail before training, naming the file, where a checkpoint to resume from is unreadable
    or holds another model (another kind, width or depth); Lightning would print hundreds of
    key names after building everything. Memory-mapped: Lightning reads the file again to
    resume, and a full-size GAN's 320 MB took 0.15 s to read here, 0.01 s to map. Returns
    the (mapped) checkpoint."""
    checkpoint = load_checkpoint(path, mmap=True)
    state = checkpoint.get("state_dict", {})
    wanted = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    held = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    differ = sorted(k for k in wanted.keys() | held.keys() if wanted.get(k) != held.get(k))
    if differ:
        raise UnsafeCheckpointError(
            f"{path}: holds another model than this config builds ({len(differ)} weights "
            f"differ, e.g. {differ[0]}); start over with ckpt_path=null or a new run_name="
        )
    return checkpoint


def module_state(checkpoint: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The sub-state of one submodule (``prefix.`` keys) of a Lightning checkpoint."""
    state = checkpoint.get("state_dict", checkpoint)
    start = prefix.rstrip(".") + "."
    return {k[len(start) :]: v for k, v in state.items() if k.startswith(start)}


def gather_ranks(state: dict, world_size: int) -> dict:
    """A per-process state as a checkpoint holds it: as is in one process, every rank's under
    DDP (a collective: every rank builds the checkpoint, rank 0 writes it)."""
    if world_size == 1:
        return state
    ranks = [None] * world_size
    torch.distributed.all_gather_object(ranks, state)
    return {"ranks": ranks}


def own_rank(saved: dict, world_size: int, rank: int) -> dict | None:
    """This rank's part of a :func:`gather_ranks` state; None if saved on another rank count."""
    ranks = saved.get("ranks", [saved])
    return ranks[rank] if len(ranks) == world_size else None
