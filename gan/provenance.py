"""What a pipeline stage's outputs were made from: its training data and the settings that
shape the model, as a JSON record (``provenance.json``) the pipeline compares on every rerun.

Records are made to compare equal when nothing that changes a model changed: folders are
resolved (and, under the outputs or the real-data folder, written relative to it),
measurements added to a dataset card later and files' locations beside their digests are left
out, and an option added to a model after a record was written counts at its default. A
folder of real photos or labels (one the pipeline did not make: it carries no dataset card) is
also recorded by its listing and its files' contents, so new or replaced files in it count as
new data.
"""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from gan.task_data import train_dirs
from synth.digests import contents_digest, listing_digest
from synth.io import CARD, list_images, read_card

#: Settings that change speed, logging or evaluation batches, never what a model learns.
RUN_ONLY_KEYS = frozenset(
    {
        "num_workers",
        "eval_batch_size",
        "log_images_every_n_steps",
        "num_log_images",
        "compile",
        "channels_last",
    }
)
#: Settings (and data_fingerprint's ``dir``) that name a folder: recorded as resolved paths,
#: so ``outputs`` and ``$PWD/outputs`` (or a symlink to it) are one folder, not a changed
#: setting; and under the outputs or real-data folder relative to it (OUTPUT_ROOT, DATA_ROOT),
#: so either moved or copied whole (another disk, an archived run, a cluster's mount point)
#: keeps its models.
FOLDER_KEYS = frozenset(
    {"synthetic_dir", "real_dir", "train_dir", "train_mask_dir", "dir", "image_dir"}
    | {"test_img", "test_lab", "val_img", "val_lab"}
)
#: The data a model is scored on, not trained on, and how: a task model's record leaves them
#: out (a corrected test label retrained every row, as did the tolerance F1's radius), and its
#: scores have a record of their own.
SCORING_KEYS = frozenset({"test_img", "test_lab", "val_img", "val_lab", "eval_size", "tolerance"})
OUTPUT_ROOT = "${paths.output_dir}"
DATA_ROOT = "${paths.data_dir}"
#: The folders records are written relative to: placeholder -> the folder it stands for now.
Roots = dict[str, Path]
#: Where a file or folder was, recorded beside the content digest that says what it is: a
#: translation's generator or a pseudo-label teacher (``checkpoint_sha256``), the photos
#: pseudo-labeled or lending their spectrum to FDA (``photos_sha256``, a listing_digest, with
#: ``photos_contents_sha256`` beside it, a contents_digest). Left out of provenance, so a moved
#: checkpoint, outputs or data folder is the same training data.
LOCATIONS_BESIDE = {
    "checkpoint_sha256": ("checkpoint",),
    "photos_sha256": ("image_dir", "real_dir"),
}
#: Where a translated set's scenes were (GAN or FDA): always left out, since the set's card
#: carries its source's card, which says what the scenes are.
SOURCE_LOCATION = "source_dir"
#: Digests added to records and cards after some were written: an older one takes the
#: current value once (with_new_defaults), rather than retraining everything made before. A
#: contents digest is adopted only where the listing digest (names and sizes) beside it, which
#: came first, still holds.
ADDED_DIGESTS = ("listings", "contents", "photos_sha256", "photos_contents_sha256")
#: What a record keeps of each folder outside the outputs: its listing (names and sizes),
#: and its files' contents.
FOLDER_DIGESTS = {"listings": listing_digest, "contents": contents_digest}


def adapt_fingerprint(cfg: DictConfig) -> dict:
    """What the GAN learns from: the synthetic set (its card holds the render spec) and the
    real folder, so a re-rendered simulator never meets a generator trained on the old one."""
    synthetic, real = Path(cfg.gan_data.synthetic_dir), Path(cfg.gan_data.real_dir)
    return {
        "synthetic_dir": str(synthetic),
        "card": read_card(synthetic),
        "real_dir": str(real),
        "real_images": len(list_images(real)) if real.is_dir() else 0,
    }


# card entries that describe the data without changing it (translate / pseudo_label scores)
MEASURED_ONLY = ("domain_gap", "scored_against")


def described_data(card: dict, *also_drop: str) -> dict:
    """A dataset card less the measurements added to it later (and ``also_drop``): what
    says which data a folder holds."""
    return {k: v for k, v in card.items() if k not in (*MEASURED_ONLY, *also_drop)}


def data_fingerprint(stage: DictConfig) -> dict:
    """What a task model was trained on: the folders and their dataset cards (render spec,
    translation checkpoint digest), so new training data is never met by an old checkpoint.
    A measurement added to a card later (tools/translate.py's domain gap) changes nothing."""
    folders = train_dirs(stage.task_data.train_dir)
    return {"train_dirs": [{"dir": str(f), "card": described_data(read_card(f))} for f in folders]}


def settings_fingerprint(stage: DictConfig, keys: tuple[str, ...]) -> dict:
    """The resolved settings at ``keys`` (dotted), minus run-only ones: a rerun with another
    learning rate or loss weight must retrain, not reuse a model made with the old one."""

    def plain(value):
        if isinstance(value, dict):
            left_out = RUN_ONLY_KEYS | SCORING_KEYS
            return {k: plain(v) for k, v in value.items() if k not in left_out}
        return [plain(v) for v in value] if isinstance(value, list) else value

    settings = {}
    for key in keys:
        value = OmegaConf.select(stage, key)
        settings[key] = (
            plain(OmegaConf.to_container(value, resolve=True))
            if OmegaConf.is_config(value)
            else value
        )
    return settings


def resolve_folders(tree: object, roots: Roots | None = None) -> object:
    """``tree`` with every FOLDER_KEYS value (a path or a list of paths) as recorded_folder
    writes it; everything else as it was."""
    if isinstance(tree, list):
        return [resolve_folders(v, roots) for v in tree]
    if not isinstance(tree, dict):
        return tree
    return {
        k: map_folders(v, lambda f: recorded_folder(f, roots))
        if k in FOLDER_KEYS
        else resolve_folders(v, roots)
        for k, v in tree.items()
    }


def map_folders(value: object, fn) -> object:
    """``fn`` on a FOLDER_KEYS value: one path, or each of a list of paths."""
    if isinstance(value, list):
        return [map_folders(v, fn) for v in value]
    return fn(value) if isinstance(value, str) else value


def named_folders(tree: object) -> list[str]:
    """Every folder a fingerprint names (its FOLDER_KEYS values), in order, once each."""
    found: list[str] = []
    if isinstance(tree, list):
        for v in tree:
            found += named_folders(v)
    elif isinstance(tree, dict):
        for k, v in tree.items():
            if k in FOLDER_KEYS:
                map_folders(v, found.append)
            else:
                found += named_folders(v)
    return list(dict.fromkeys(found))


def folder_digests(provenance: dict, roots: Roots | None = None) -> dict[str, dict[str, str]]:
    """``{"listings": {recorded folder: digest}, "contents": {...}}`` (FOLDER_DIGESTS) for
    each existing folder the fingerprint names, but the datasets the pipeline made (under the
    outputs folder, with a dataset card, which the record holds); {} when none. Real photos
    and labels carry no dataset card, so without them a photo replaced in place, or another
    dataset of the same layout under a moved ``paths.data_dir``, would be met by models made
    from the old files; wherever they are, the outputs folder included."""
    outputs = (roots or {}).get(OUTPUT_ROOT)
    folders = {}
    for folder in named_folders(without_locations(provenance)):
        if folder.startswith("${"):
            continue
        path = Path(folder).resolve()
        made_here = outputs and path.is_relative_to(outputs.resolve())
        if path.is_dir() and not (made_here and (path / CARD).is_file()):
            folders[recorded_folder(folder, roots)] = path
    if not folders:
        return {}
    return {
        key: {name: digest(path) for name, path in folders.items()}
        for key, digest in FOLDER_DIGESTS.items()
    }


def without_locations(tree: object) -> object:
    """``tree`` less the location beside each content digest (LOCATIONS_BESIDE: a file is
    what its digest says, wherever it was when the digest was taken) and every
    SOURCE_LOCATION."""
    if isinstance(tree, list):
        return [without_locations(v) for v in tree]
    if not isinstance(tree, dict):
        return tree
    located = {SOURCE_LOCATION}
    for digest, locations in LOCATIONS_BESIDE.items():
        if digest in tree:
            located.update(locations)
    return {k: without_locations(v) for k, v in tree.items() if k not in located}


def recorded_folder(folder: str, roots: Roots | None) -> str:
    """``folder`` absolute and free of symlinks; under one of ``roots`` (the outputs folder,
    the real-data folder) written as ``${paths.output_dir}/<relative path>`` (or
    ``${paths.data_dir}/...``) instead, the innermost root winning when one holds the other."""
    if folder.startswith("${"):
        return folder
    path = Path(folder).resolve()
    holding = [(p, root.resolve()) for p, root in (roots or {}).items()]
    holding = [(p, root) for p, root in holding if path.is_relative_to(root)]
    if not holding:
        return str(path)
    placeholder, root = max(holding, key=lambda held: len(held[1].parts))
    relative = path.relative_to(root).as_posix()
    return placeholder if relative == "." else f"{placeholder}/{relative}"


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, object] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def constructor_defaults(target: str) -> dict[str, object]:
    """Keyword defaults of a ``_target_`` class's constructor ({} when it cannot be imported),
    nested dicts for the option dicts it hands on (its ``OPTION_CLASSES``), as JSON values."""
    try:
        return option_defaults(get_class(target))
    except Exception:  # noqa: BLE001 - an unknown target simply has no defaults to offer
        return {}


def option_defaults(consumer: object) -> dict[str, object]:
    params = inspect.signature(consumer).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    for name, inner in getattr(consumer, "OPTION_CLASSES", {}).items():
        defaults[name] = option_defaults(inner)
    return json.loads(json.dumps(defaults, default=str))  # () == [], as in a record


#: Trainer settings that shape a model, recorded since session 43 (the step count and
#: precision were before), each with the value that trained the models recorded without it:
#: a record lacking one is read as made with that value, or with the setting unset.
ADDED_TRAINER_SETTINGS: dict[str, object] = {
    "trainer.max_epochs": -1,
    "trainer.min_steps": None,
    "trainer.accumulate_grad_batches": None,
    "trainer.gradient_clip_val": None,
    "trainer.gradient_clip_algorithm": None,
    "trainer.limit_train_batches": None,
    "trainer.devices": 1,
    "trainer.num_nodes": None,
}
TRAINER_SETTINGS = ("trainer.max_steps", "trainer.precision", *ADDED_TRAINER_SETTINGS)

#: Scoring settings recorded with a row's scores since session 49 (``eval_size`` was before),
#: each with the value the scores recorded without it were made with: a changed
#: ``stages.evaluate.num_overlays`` or ``tile`` had kept the old overlays and scores, and
#: scores from before the disc tolerance (``gan.task.TOLERANCE_SHAPE``) are made again.
ADDED_SCORING_SETTINGS: dict[str, object] = {
    "tile": None,
    "num_overlays": 8,
    "tolerance": 2,
    "tolerance_shape": "square",
}


def with_new_defaults(old: dict, new: dict) -> dict:
    """``old`` plus the model options it predates, where the new run leaves them at the model
    class's default: adding an option that keeps the old behaviour (say gan.semantic_target,
    default 'mask', or task.augment.drop, default none) must not throw away every generator
    and task model trained before it. A record from before folder listings takes the
    current ones: its folders are trusted as they are, once, and listed from then on."""
    old = with_added_digests(old, new)
    settings = new.get("settings", {})
    for group, node in settings.items():
        before = old.get("settings", {}).get(group)
        if isinstance(node, dict) and isinstance(before, dict) and "_target_" in node:
            fill_defaults(before, node, constructor_defaults(node["_target_"]))
    recorded = old.get("settings")
    if isinstance(recorded, dict):  # scoring data, recorded with the training until session 43
        old["settings"] = drop_keys(recorded, SCORING_KEYS)
        recorded = old["settings"]
        for kind in FOLDER_DIGESTS:  # and digested: those of folders no longer named go
            kept = {k: v for k, v in old.get(kind, {}).items() if k in new.get(kind, {})}
            old.pop(kind, None)
            if kept or kind in new:
                old[kind] = kept
    for key, shipped in ADDED_TRAINER_SETTINGS.items():
        if isinstance(recorded, dict) and key in settings and key not in recorded:
            if settings[key] in (None, shipped):
                recorded[key] = settings[key]
    return with_scoring_defaults(old, new.get("test"))


def with_scoring_defaults(old: dict, test: object) -> dict:
    """``old`` with the scoring settings its ``test`` entry predates, where the new run leaves
    them as they were (``ADDED_SCORING_SETTINGS``)."""
    before = old.get("test")
    if isinstance(before, dict) and isinstance(test, dict):
        for key, shipped in ADDED_SCORING_SETTINGS.items():
            if key in test and key not in before and test[key] == shipped:
                before[key] = shipped
    return old


def drop_keys(tree: object, keys: frozenset[str]) -> object:
    """``tree`` without ``keys`` at any depth."""
    if isinstance(tree, dict):
        return {k: drop_keys(v, keys) for k, v in tree.items() if k not in keys}
    return [drop_keys(v, keys) for v in tree] if isinstance(tree, list) else tree


def with_added_digests(old: object, new: object) -> object:
    """A copy of ``old`` (a record or card, locations not yet left out) given each
    ADDED_DIGESTS entry it lacks where ``new`` has one at the same place, and the same
    location beside it: what it was made from is trusted as it stands where nothing moved,
    once, then digested."""
    old = copy.deepcopy(old)
    adopt_added_digests(old, new)
    return old


def adopt_added_digests(old: object, new: object) -> None:
    """with_added_digests, in place."""
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for before, now in zip(old, new):
            adopt_added_digests(before, now)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return
    for key in ADDED_DIGESTS:
        beside = LOCATIONS_BESIDE.get(key, ())
        if key in new and key not in old and all(old.get(k) == new.get(k) for k in beside):
            old[key] = new[key]
    for key in old.keys() & new.keys():
        adopt_added_digests(old[key], new[key])


def fill_defaults(before: dict, node: dict, defaults: dict) -> None:
    """Add to ``before`` each key of ``node`` it lacks whose value is the default; recurse
    into option dicts both sides have."""
    for key, value in node.items():
        if key not in before:
            if key in defaults and defaults[key] == value:
                before[key] = value
        elif isinstance(value, dict) and isinstance(before[key], dict):
            inner = defaults.get(key)
            fill_defaults(before[key], value, inner if isinstance(inner, dict) else {})


def what_changed(old: dict | None, new: dict) -> str:
    """'training data changed' / 'settings changed (gan.lr_g, ...)', for the log."""
    if old is None:
        return "no record of what its outputs were made from"
    before, after = flatten(old), flatten(new)
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if any(k.startswith("data.") for k in keys):
        return "training data changed"
    digested = [k for k in keys if k.split(".")[0] in FOLDER_DIGESTS]
    keys = [k for k in keys if k not in digested]
    if not keys:
        folders = dict.fromkeys(k.split(".", 1)[1] for k in digested)
        return f"files changed in {', '.join(folders)}"
    shown = [k.removeprefix("settings.") for k in keys[:4]]
    return f"settings changed ({', '.join(shown)}{', ...' if len(keys) > 4 else ''})"
