"""Render a sharded synthetic dataset in parallel, resumably, bit-identically.

* One task = one shard: a worker renders its samples and writes them with
  ``io.write_shard`` (temp dir + rename), so a killed run leaves only ``*.tmp-*`` dirs, which
  the next run deletes before skipping the shards that are complete.
* Sample ``i`` depends only on ``(seed, i)``, so the bytes on disk do not depend on
  ``workers``, on the order shards finish, or on which cluster job rendered them.
* ``shard_start``/``shard_count`` select a contiguous block of shards: N jobs given disjoint
  blocks render disjoint parts of one dataset into the same folder; whichever job sees all
  shards complete writes ``dataset_card.json``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import multiprocessing as mp
import platform
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from synth import distributions
from synth.distributions import ConfigError, checked_count, is_number
from synth.io import (
    CARD,
    CLASS_MAP,
    MANIFEST,
    MAX_SHARDS,
    RENDER_SPEC,
    DataError,
    clean_partial_shards,
    is_shard_complete,
    num_shards,
    read_json,
    shard_name,
    shard_range,
    write_json_atomic,
    write_shard,
)
from synth.processes import (
    die_with_parent,
    ignore_stops,
    main_script_left_out,
    stops_ignored,
    usable_cpus,
)
from synth.scene import SIMULATOR_VERSION, plain_config, render_crack_scene
from synth.surface import TINTS

SPEC = RENDER_SPEC
T = TypeVar("T")


def _render_shard(
    cfg: dict, out_dir: str, shard_id: int, shard_size: int, n: int, seed: int
) -> int:
    """Worker task: render and atomically write one shard; returns its sample count."""
    indices = shard_range(shard_id, shard_size, n)
    write_shard(out_dir, shard_id, (render_crack_scene(cfg, seed, i) for i in indices))
    return len(indices)


def _init_worker() -> None:
    """One OpenCV thread per process: parallelism comes from processes, not oversubscription.
    Pool workers leave Ctrl-C and SIGTERM to the main process, which cancels the shards not
    begun (one message, not a traceback per worker), and end with it."""
    cv2.setNumThreads(1)
    if mp.current_process().name != "MainProcess":
        ignore_stops()
        die_with_parent()


MIN_SIZE = 8  # pixels: smaller scenes hold no crack a network could learn from
#: pixels: a scene's float buffers grow with its area (20000 px a side was killed for memory,
#: 100000 failed in cv2 asking for 40 GB); 16 times DeepCrack's photo area
MAX_SIZE = 2048


INF = float("inf")
#: A cell grid finer than any scene's pixels draws nothing more: at most MAX_SIZE cells a side
#: (2048 renders a 2048 px scene in 1.5-1.9 s, a default one in 1.5 s; 5000 noise_base_cells
#: took 1 s and 360 MB at 256 px, 32000 mottle_cells asked for 7.6 GB, 96000 streak_cells ran
#: past 20 s).
MAX_CELLS = MAX_SIZE
#: A blur's cost grows with its sigma times the area: at MAX_SIZE a sigma of 32 px costs 0.2 to
#: 1.3 s more than a default scene (camera.blur_sigma, three channels, the most), 100 px 14 s;
#: 1.4e6 px failed in OpenCV (std::bad_alloc), and grain_blur=1300 drew a flat image.
MAX_BLUR = 32.0
#: Knobs a renderer takes only in a range. Out of it a draw failed mid-render inside OpenCV or
#: numpy (halo_sigma=0: a Gaussian kernel; step=0: a division; meander<0, width_variation<0
#: or speckle_density<0: a scale; mottle_coverage=0 or 1: a quantile), or was
#: rendered as something else without a word (p_stain=1.5 as 1, a negative noise as none,
#: jpeg_quality=150 clamped by OpenCV with a warning per image). Every ``p_*`` is a share.
#: A stone of aggregate is a pixel across at least: at a radius of 0.05 px, 4.4 s of a 128 px
#: scene went to drawing 420,000 stones no pixel could show (0.16 s at 1 px on 512 px).
#: The upper ends were measured on one scene of 256 px and of MAX_SIZE (2048 px, a default one
#: 1.5 s) with one knob at its end, the rest at their defaults: beyond them a scene took over
#: 5 s, over 1 GB, failed, or drew a blank image. Knobs multiply each other's cost (a long
#: crack in fine steps, many wide pores): ``check_crack_walk`` and ``check_pore_area`` refuse
#: those found slow together. Heavy ends together elsewhere (2048 px: a 1 px aggregate filled 10
#: times, 5 speckles a pixel, every blur at 32 px, 16 cracks of width_variation=10 with 100
#: branches, 100,000 pores of radius 100, perspective) took 16 s a scene on the 2-core machine.
KNOB_BOUNDS: dict[str, distributions.Bounds] = {
    "ignore_band": (0, 64, True),
    "crack.num_cracks": (1, 16, True),
    # 100 a crack: 1.5 s at 2048 px with 16 cracks; 1000 took 9 s, 3 million past 20 s at 256 px
    "crack.num_branches": (0, 100, True),
    # 1e5 px: 0.9 s at 2048 px with 16 cracks and 100 branches, all crack (42 s before the
    # radius dilation ran as a running max); 1e40 overflowed the radii to a blank image
    "crack.width": (0, 1e5, False),
    # 10 (log-std): 1.5 s at 2048 px with 3 cracks (32 s before the running max); 450
    # overflowed the radii to a blank image
    "crack.width_variation": (0, 10, True),
    # 0.01 px: 0.8 s at 2048 px; 1e-6 took 16 s and 3.7 GB at 256 px before a MemoryError.
    # 1e5 px: 2 walk steps, the line drawn off the image; 4e6 took 2.7 s and 1.5 GB at 256 px
    "crack.step": (0.01, 1e5, True),
    "crack.meander": (0, INF, True),
    "crack.jitter": (0, INF, True),
    "crack.edge_roughness": (0, INF, True),
    "crack.halo_sigma": (0, MAX_BLUR, False),
    # image sizes: 1000 is 1 s at 2048 px; 2.2 million ran past 20 s at 256 px
    "crack.length": (0, 1000, False),
    # of the parent's length: 4500 took 0.2 s at 256 px, 1 s at 2048; 450,000 ran past 20 s.
    # A negative one drew the shortest branch
    "crack.branch_length": (0, 1000, True),
    # 1000 times the parent's width; 1e40 overflowed the radii to a blank image. A negative
    # one drew no branch beyond the junction
    "crack.branch_width_ratio": (0, 1000, True),
    "surface.aggregate_radius": (1, INF, True),
    # stone size / pitch: 10 is 4.3 s at 2048 px with 1 px stones (1.3, the default's end, is
    # 3.3 s); 1300 ran past 30 s at 2048 px. A negative fill drew its mirror image
    "surface.aggregate_fill": (0, 10, True),
    # 100,000 pores: 2.3 s at 2048 px (a loop, one pore at a time); a million took 23 s at 256.
    # With pore_radius: check_pore_area
    "surface.pore_count": (0, 100_000, True),
    # px: 1e5 is 1 s at 2048 px; 1e10 failed in OpenCV (cv2.ellipse takes 32-bit axes)
    "surface.pore_radius": (0, 1e5, False),
    "surface.grain_blur": (0, MAX_BLUR, True),
    # stones a pixel: at 5 nearly every pixel is one (2.3 s, 640 MB at 2048 px); 20 took 9 s
    # and 2.3 GB, 20000 asked for 9.8 GB at 256 px
    "surface.speckle_density": (0, 5, True),
    "surface.noise_base_cells": (0, MAX_CELLS, True),
    "surface.streak_cells": (0, MAX_CELLS, True),
    "surface.mottle_cells": (0, MAX_CELLS, True),
    "surface.relief_cells": (0, MAX_CELLS, True),
    "surface.mottle_coverage": (0, 1, True),
    "surface.mottle_edge": (0, INF, True),
    "surface.shadow_softness": (0, INF, True),
    # corner shift / size: up to 1/3 the quad stays convex; above it some draws fold the view
    # through a horizon (0.2 % of draws at 0.4, 9 % at 0.5, 62 % at 0.7), above 1 it shows the
    # scene's mirrored border. A negative one drew no perspective
    "camera.perspective": (0, 0.33, True),
    "camera.blur_sigma": (0, MAX_BLUR, False),
    "camera.noise_sigma": (0, INF, True),
    "camera.jpeg_quality": (1, 100, True),
}


#: Every knob the renderer reads, by section ("" is the top level); conf/synth/default.yaml
#: sets each. A name outside these was ignored without a word (``+synth.crack.widht=4``), and
#: one left out failed mid-render, after shards were written.
SCENE_KNOBS: dict[str, tuple[str, ...]] = {
    "": ("size", "p_no_crack", "ignore_band"),
    "surface": tuple(
        (
            "base_grey tint tint_strength colour_noise noise_amplitude noise_base_cells "
            "noise_octaves noise_persistence grain_amplitude grain_blur speckle_density "
            "speckle_contrast streak_amplitude streak_cells p_aggregate aggregate_radius "
            "aggregate_fill aggregate_contrast pore_count pore_radius pore_depth p_mottle "
            "mottle_cells mottle_coverage mottle_edge mottle_strength p_stain stain_strength "
            "p_paint paint_width paint_opacity p_watermark watermark_opacity illumination_gradient "
            "vignetting p_shadow shadow_strength shadow_softness relief_amplitude relief_cells"
        ).split()
    ),
    "crack": tuple(
        (
            "num_cracks num_branches width width_variation taper length step meander jitter "
            "branch_length branch_width_ratio edge_roughness depth depth_variation edge_fade "
            "halo_sigma halo_strength rim_brightness p_filled fill_brightness"
        ).split()
    ),
    "camera": tuple(
        ("p_perspective perspective p_blur blur_sigma noise_sigma p_jpeg jpeg_quality").split()
    ),
}
OPTIONAL_KNOBS = {"ignore_band"}  # read with a default (0: off)
#: Knobs drawn as whole numbers: a float was truncated (``num_cracks={uniform: [1, 3]}``
#: drew 1 or 2, never 3), without a word.
COUNT_KNOBS = {
    "ignore_band",
    "crack.num_cracks",
    "crack.num_branches",
    "surface.noise_base_cells",
    "surface.noise_octaves",
    "surface.streak_cells",
    "surface.pore_count",
    "surface.mottle_cells",
    "surface.relief_cells",
    "camera.jpeg_quality",
}
#: Knobs drawn as words, and the words each takes; every other knob draws numbers.
WORD_KNOBS = {"surface.tint": tuple(TINTS)}


def check_knob_names(cfg: dict) -> None:
    """Every knob named in ``SCENE_KNOBS`` present, and no other (a typo), in one line."""
    for section, names in SCENE_KNOBS.items():
        node = cfg if not section else cfg.get(section)
        where = f"synth.{section}." if section else "synth."
        if section and section not in cfg:
            raise ConfigError(f"synth.{section}: missing from the simulator config")
        if not isinstance(node, dict):
            raise ConfigError(f"synth.{section}={node!r}: expected a section of knobs")
        known = set(names) | ({s for s in SCENE_KNOBS if s} if not section else set())
        for name in node:
            if name not in known:
                near = difflib.get_close_matches(str(name), sorted(known), n=1)
                hint = f" (did you mean {where}{near[0]}?)" if near else ""
                raise ConfigError(f"{where}{name}: not a simulator knob{hint}")
        for name in names:
            if name not in node and name not in OPTIONAL_KNOBS:
                raise ConfigError(
                    f"{where}{name}: missing from the simulator config "
                    "(conf/synth/default.yaml sets every knob)"
                )


def check_knob_types(cfg: dict) -> None:
    """Each knob draws what the renderer takes: numbers, whole numbers for counts, the known
    words for a word knob; the top-level ``p_no_crack`` and ``ignore_band`` one number.
    ``synth.crack.depth=abc`` or ``p_no_crack={uniform: [0.1, 0.2]}`` failed mid-render, a
    traceback from a worker after shards were written; ``p_filled=true`` escaped the share's
    bounds."""
    for section, names in SCENE_KNOBS.items():
        node = cfg if not section else cfg[section]
        for name in names:
            key = f"{section}.{name}" if section else name
            if name not in node or key == "size":  # size: its own check and message
                continue
            value = node[name]
            if not section and isinstance(value, dict):  # read as they stand, not drawn
                raise ConfigError(
                    f"synth.{key}={value!r}: one number for the whole set, not a distribution"
                )
            for form, drawn in distributions.options(value):
                if key in WORD_KNOBS:
                    ok = form == "value" and drawn in WORD_KNOBS[key]
                    want = f"one of {list(WORD_KNOBS[key])}"
                elif key in COUNT_KNOBS:
                    ok = form == "randint" or (form == "value" and is_number(drawn, whole=True))
                    want = "whole numbers (a whole number, {randint: [a, b]} or a choice of them)"
                else:
                    ok = form != "value" or is_number(drawn)
                    want = "numbers"
                if not ok:
                    raise ConfigError(f"synth.{key}={value!r}: its draws must be {want}")


def share_bounds(cfg: dict, prefix: str = "") -> dict[str, distributions.Bounds]:
    """Every ``p_*`` knob of the tree, as a share from 0 to 1."""
    found = {}
    for name, value in cfg.items():
        if isinstance(value, dict) and not distributions.is_spec(value):
            found |= share_bounds(value, f"{prefix}{name}.")
        elif name.startswith("p_"):
            found[f"{prefix}{name}"] = (0.0, 1.0, True)
    return found


def checked_scene_config(cfg_synth: Any) -> dict:
    """The simulator's settings as plain data, every knob parsed, drawn only where the renderer
    takes it, and the size in range, so a typo fails in one line before anything is rendered
    or written."""
    cfg = plain_config(cfg_synth)
    check_knob_names(cfg)
    distributions.validate(cfg)
    check_knob_types(cfg)
    distributions.check_bounds(cfg, KNOB_BOUNDS | share_bounds(cfg), "synth.")
    size = cfg.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < MIN_SIZE:
        raise ConfigError(f"synth.size={size!r}: expected a whole number of pixels >= {MIN_SIZE}")
    if size > MAX_SIZE:
        raise ConfigError(
            f"synth.size={size}: at most {MAX_SIZE} px a side (memory grows with the area; "
            "the task model trains on crops, and tests on photos of any size)"
        )
    check_crack_walk(cfg)
    check_pore_area(cfg)
    return cfg


#: Steps of crack walk a scene may take at most, cracks and branches together: 2.6 million
#: took 1.1 s and 0.3 GB of a 256 px scene (the default config's most: about 3,100 at 256 px,
#: 25,000 at 2048). Each knob's own bounds let their ends together through:
#: crack.length=1000 with crack.step=0.01 at 2048 px ran 21 s into a MemoryError at 4.1 GB.
MAX_WALK_STEPS = 4_000_000


def check_crack_walk(cfg: dict) -> None:
    """The most walk steps a scene's cracks can take (``num_cracks`` x ``length`` x size /
    ``step``, and each branch ``branch_length`` of its parent's), refused over
    ``MAX_WALK_STEPS`` in one line naming the knobs: seconds and gigabytes a scene.

    A branch's length is its parent's steps times one draw of ``step`` and it walks in
    another (``synth.crack.branch_path``), so a step drawn from a range walks up to its
    largest over its smallest times more: step={choice: [0.01, 100]}, counted as the fine
    steps alone, passed and took 73 s and 18 GB of one 256 px scene."""
    crack = cfg.get("crack", {})

    def most(name: str) -> float:
        return largest(crack, name)

    step = min(low for low, _ in distributions.support(crack.get("step")))
    spread = most("step") / step
    mains = most("num_cracks") * most("length") * cfg["size"] / step
    per_main = most("num_branches") * most("branch_length")
    branches = 1 + per_main * spread
    steps = mains * branches
    if steps > MAX_WALK_STEPS:
        walked = branch_spread(spread if per_main else 1)
        raise ConfigError(
            f"synth.crack: a scene may walk {steps:,.0f} crack steps, more than "
            f"{MAX_WALK_STEPS:,} (num_cracks up to {most('num_cracks'):g} x length up to "
            f"{most('length'):g} x size {cfg['size']} / step from {step:g}, x {branches:g} with "
            f"the branches{walked}): seconds and gigabytes a scene; shorten the cracks or "
            "lengthen the steps"
            + (", or narrow step's range" if mains * (1 + per_main) <= MAX_WALK_STEPS else "")
        )


def largest(section: dict, name: str) -> float:
    """The most a knob of ``section`` can draw (a normal's within four spreads of its mean)."""
    return max(high for _, high in distributions.support(section.get(name)))


#: Pixels a scene's pores may cover, all told. Pores are drawn one at a time, each over its
#: area (the scene's at most), so their cost is their count times their area, which each
#: knob's bounds let through together: at 2048 px 100,000 pores of pore_radius=1000 ran past
#: 60 s, 20,000 as wide as the scene 40 s. At the limit 100,000 of radius 178 take 8.5 s,
#: 2,380 over the whole scene 2.2 s (a 2048 px scene of the default config: 1-1.7 s).
MAX_PORE_AREA = 1e10


def check_pore_area(cfg: dict) -> None:
    """The most pixels a scene's pores can cover (``pore_count`` x pi ``pore_radius`` squared,
    each at most the scene's area), refused over ``MAX_PORE_AREA`` in one line naming the
    knobs: seconds to minutes a scene."""
    surface, size = cfg.get("surface", {}), cfg["size"]
    count, radius = largest(surface, "pore_count"), largest(surface, "pore_radius")
    area = count * min(np.pi * radius**2, size**2)
    if area > MAX_PORE_AREA:
        raise ConfigError(
            f"synth.surface: a scene's pores may cover {area:,.0f} px, more than "
            f"{MAX_PORE_AREA:,.0f} (pore_count up to {count:g} x pi x pore_radius up to "
            f"{radius:g} squared, each at most size {size} squared): they are drawn one at a "
            "time, seconds to minutes a scene; draw fewer or smaller pores"
        )


def branch_spread(spread: float) -> str:
    """What a step range adds to the branches in ``check_crack_walk``'s line, where it does."""
    return "" if spread == 1 else f", each walked in up to {spread:g} times its length's steps"


def check_spec(out_dir: Path, spec: dict) -> None:
    """Refuse to resume into a folder rendered with another config, seed or layout."""
    path = out_dir / SPEC
    if not path.is_file():
        if any(out_dir.glob(f"shard-*/{MANIFEST}")):  # they would pass for this render's
            raise DataError(
                f"{out_dir}: holds shards but no {SPEC}, so what rendered them is unknown "
                "(a translated set, or a spec deleted); use a new out_dir or delete the old one"
            )
        write_json_atomic(path, spec)
        return
    old = recorded_spec(path, spec)
    changed = spec_differences(old, spec)
    if changed is not None and not any(out_dir.glob("shard-*")):
        # nothing rendered under the old spec (a render that failed on a setting before its
        # first shard): a corrected rerun was refused as "rendered with other settings"
        write_json_atomic(path, spec)
        return
    if changed == ["simulator_version"]:
        raise DataError(
            f"{path}: {out_dir} was rendered by simulator version {old['simulator_version']}, "
            f"and this is version {SIMULATOR_VERSION}, whose scenes differ; use a new out_dir "
            "or delete the old one"
        )
    if changed is not None:
        keys = ", ".join(changed[:4]) or "the spec's format"
        if len(changed) > 4:  # the first four alone read as all of them
            keys += f" and {len(changed) - 4} more"
        imported = old.get("kind") == "imported"  # synth.imported's spec
        made = (
            "imported from other files or settings" if imported else "rendered with other settings"
        )
        raise DataError(
            f"{path}: {out_dir} was {made} ({keys}); use a new out_dir or delete the old one"
        )


def spec_difference(path: Path, spec: dict) -> list[str] | None:
    """None where ``path`` holds no spec or this one; else the dotted keys that differ ([]
    where only the spec's format does)."""
    if not path.is_file():
        return None
    return spec_differences(recorded_spec(path, spec), spec)


def recorded_spec(path: Path, spec: dict) -> dict:
    """The spec ``path`` holds, to compare with ``spec``: a render's from before versions were
    recorded read as version 1's (an import's, synth.imported, has no version). A damaged
    spec: one line naming it."""
    old = read_json(path)
    return {"simulator_version": 1, **old} if "simulator_version" in spec else old


def spec_differences(old: dict, spec: dict) -> list[str] | None:
    """None where ``old`` is ``spec``; else the dotted keys that differ ([]: only the format)."""
    version = old.get("simulator_version") == spec.get("simulator_version")
    if old.get("hash") == spec["hash"] and version:
        return None
    return differing_keys(old, spec)


def spec_changes(
    out_dir: str | Path, cfg_synth: Any, num_samples: int, shard_size: int, seed: int
) -> list[str]:
    """The settings a folder's render spec differs in from these ([]: the same, or no spec
    yet), so a caller that owns the folder can render it anew instead of being refused."""
    return folder_spec_changes(
        out_dir, make_spec(plain_config(cfg_synth), num_samples, shard_size, seed)
    )


def folder_spec_changes(out_dir: str | Path, spec: dict) -> list[str]:
    """The keys a folder's spec differs in from ``spec`` ([]: the same, or no spec yet)."""
    changed = spec_difference(Path(out_dir) / SPEC, spec)
    return [] if changed is None else changed or ["format"]


def differing_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two specs (``config`` read as ``synth``)."""
    keys = []
    for key in sorted(old.keys() | new.keys()):
        if key == "hash":
            continue
        name = f"{prefix}{'synth' if key == 'config' and not prefix else key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += differing_keys(a, b, f"{name}.")
        elif a != b:
            keys.append(name)
    return keys


def make_spec(cfg: dict, num_samples: int, shard_size: int, seed: int) -> dict:
    """What made a render: the settings (hashed, as specs always were) and the simulator's
    version (outside the hash, so the specs of version 1 renders made before it was recorded
    still match)."""
    body = {"config": cfg, "num_samples": num_samples, "shard_size": shard_size, "seed": seed}
    return {**body, "simulator_version": SIMULATOR_VERSION, "hash": spec_hash(body)}


def spec_hash(body: dict) -> str:
    """What a spec is compared by: the settings that shape the set's bytes."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def check_counts(
    num_samples: Any,
    shard_size: Any,
    seed: Any,
    workers: Any,
    shard_start: Any,
    shard_count: Any,
    out_dir: Any,
) -> None:
    """Each setting a whole number in its range, and an output folder named, in one line
    (``shard_count=abc`` or ``seed=null`` failed deep inside with Python's TypeError, and
    ``out_dir=''`` rendered into the folder the command ran in)."""
    least = {"num_samples": 1, "shard_size": 1, "seed": 0, "workers": 0, "shard_start": 0}
    values = dict(zip(least, (num_samples, shard_size, seed, workers, shard_start)))
    if shard_count is not None:  # null: every shard from shard_start on
        least["shard_count"], values["shard_count"] = 0, shard_count
    for key, value in values.items():
        checked_count(value, key, least[key])
    if num_shards(num_samples, shard_size) > MAX_SHARDS:  # shard-100000 was written, never read
        raise ConfigError(
            f"num_samples={num_samples}, shard_size={shard_size}: "
            f"{num_shards(num_samples, shard_size)} shards, at most {MAX_SHARDS} (folders "
            f"{shard_name(0)} to {shard_name(MAX_SHARDS - 1)}); raise shard_size"
        )
    if out_dir is None or not str(out_dir).strip():
        raise ConfigError(f"out_dir={out_dir!r}: name the folder to render into")


def select_shards(total: int, shard_start: int, shard_count: int | None) -> range:
    """The block of shard ids a job owns; disjoint blocks partition the dataset."""
    if shard_start < 0 or (shard_count is not None and shard_count < 0):
        raise ConfigError(f"shard_start/shard_count must be >= 0, got {shard_start}/{shard_count}")
    end = total if shard_count is None else min(total, shard_start + shard_count)
    return range(min(shard_start, total), end)


def render_dataset(
    cfg_synth: Any,
    out_dir: str | Path,
    num_samples: int,
    shard_size: int,
    seed: int,
    workers: int = 1,
    shard_start: int = 0,
    shard_count: int | None = None,
    progress: bool = True,
) -> dict:
    """Render (or finish rendering) the selected shards; returns a summary dict."""
    t0 = time.perf_counter()
    cfg = checked_scene_config(cfg_synth)
    check_counts(num_samples, shard_size, seed, workers, shard_start, shard_count, out_dir)
    total = num_shards(num_samples, shard_size)
    selected = select_shards(total, shard_start, shard_count)
    if not selected:  # checked before the folder and its spec are written
        raise ConfigError(
            "shard_count=0: selects no shard (null: every shard from shard_start on)"
            if shard_count == 0
            else f"shard_start={shard_start}: past the last shard ({total - 1}) of "
            f"{num_samples} samples in shards of {shard_size}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_spec(out, make_spec(cfg, num_samples, shard_size, seed))
    clean_partial_shards(out, selected)
    todo = [s for s in selected if not is_shard_complete(out, s)]
    jobs = [(cfg, str(out), s, shard_size, num_samples, seed) for s in todo]
    done = sum(len(shard_range(s, shard_size, num_samples)) for s in selected if s not in todo)
    rendered = _run(jobs, workers, progress, done)
    complete = all(is_shard_complete(out, s) for s in range(total))
    # A finished dataset is left untouched: it may be shared or mounted read-only.
    if complete and (todo or not (out / CARD).is_file()):
        write_card(out, cfg, num_samples, shard_size, seed)
    return {
        "out_dir": str(out),
        "num_shards": total,
        "selected_shards": [selected.start, selected.stop],
        "rendered_shards": len(todo),
        "skipped_shards": len(selected) - len(todo),
        "rendered_samples": rendered,
        "seconds": round(time.perf_counter() - t0, 3),
        "complete": complete,
        "card": str(out / CARD) if complete else None,
    }


def usable_workers(workers: int, jobs: int, doing: str = "rendering") -> int:
    """At most one process a shard to render and one a CPU this process may run on (a Slurm
    job's, or a container's CPU quota, not the node's): ``workers=1000`` started a process
    each, numpy and OpenCV loaded in every one, rendering no faster than one a CPU. Said in
    a line where the CPUs make it fewer than asked (fewer shards than workers is not said);
    the scenes do not depend on it."""
    cpus = usable_cpus()
    if workers > cpus and jobs > cpus:
        print(f"workers={workers}: {cpus} CPUs here, {doing} with {cpus}", file=sys.stderr)
    return max(1, min(workers, jobs, cpus))


def _run(jobs: list[tuple], workers: int, progress: bool, done: int = 0) -> int:
    """Run shard jobs in-process (workers <= 1) or over a process pool, with a progress bar
    that counts the ``done`` samples of shards already complete (a resumed render's bar read
    3/3 where 7 of 10 shards had been rendered)."""
    if not jobs:
        return 0
    count = sum(len(shard_range(j[2], j[3], j[4])) for j in jobs)
    with progress_bar(progress) as bar, shard_workers(workers, len(jobs)) as pool:
        task = bar.add_task("rendering", total=done + count, completed=done)
        run_jobs(pool, _render_shard, jobs, lambda n: bar.advance(task, n))
    return count


@contextmanager
def shard_workers(
    workers: int, jobs: int, doing: str = "rendering"
) -> Iterator[ProcessPoolExecutor | None]:
    """The processes ``jobs`` shard tasks run on (``usable_workers``), for ``run_jobs``:
    None where that is one, the tasks then run in this process (one OpenCV thread, as a
    worker's, restored after). One pool serves every batch of jobs given it (an import
    reads every file, then writes shards), started once."""
    workers = usable_workers(workers, jobs, doing)
    if workers <= 1:
        threads = cv2.getNumThreads()
        _init_worker()
        try:
            yield None
        finally:
            cv2.setNumThreads(threads)
        return
    # spawn: workers must not inherit the progress bar's refresh thread (fork + threads).
    pool = ProcessPoolExecutor(workers, mp.get_context("spawn"), _init_worker)
    try:
        yield pool
    finally:
        pool.shutdown()


def run_jobs(
    pool: ProcessPoolExecutor | None,
    task: Callable[..., T],
    jobs: list[tuple],
    finished: Callable[[T], None],
) -> list[T]:
    """``task(*job)`` for each job, on ``pool`` (None: here, in order); ``finished`` is
    called with each result as it comes (the progress bar), and the results are returned in
    the jobs' order, whatever order they finished in. A stop (Ctrl-C, SIGTERM) lets the jobs
    in flight finish and cancels the rest (``_stop_pool``). ``task`` is a module's function:
    spawned workers import it by name."""
    if pool is None:
        results = []
        for job in jobs:
            results.append(task(*job))
            finished(results[-1])
        return results
    futures: list[Future] = []
    try:
        with stops_ignored(), main_script_left_out():  # workers are born ignoring stops
            futures = [pool.submit(task, *job) for job in jobs]
        for fut in as_completed(futures):
            finished(fut.result())
    except KeyboardInterrupt:
        _stop_pool(pool, futures)
        raise
    return [fut.result() for fut in futures]


def progress_bar(progress: bool) -> Any:
    """A rich progress bar of samples written, on stderr: the tools' stdout is their JSON
    summary (``render.py > summary.json``)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (  # one bar: rich's default columns hold one already, and it was drawn twice
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, disable=not progress, console=Console(stderr=True))


def _stop_pool(pool: ProcessPoolExecutor, futures: list[Future]) -> None:
    """A first Ctrl-C (or SIGTERM): the shards in flight finish (each is whole or absent) and
    the rest are cancelled. A second one while they finish means now: the workers are killed
    (they ignore both signals) and their temp folders wait for the rerun's clean-up.

    The wait is on the futures, never in ``pool.shutdown``: a stop that interrupts its
    ``Thread.join`` leaves Python 3.11 sure that the pool's manager thread has ended while it
    runs on, to fail at exit on the pipes the shutdown closed (a traceback after the tool's
    last line, once in a few second stops); left to the executor, the second stop had hung
    the tool at exit. The caller's ``pool.shutdown`` then finds the work over."""
    print(
        "stopping: the shards in flight finish first (stop again, Ctrl-C or SIGTERM, to drop them)",
        file=sys.stderr,
        flush=True,
    )
    for fut in futures:
        fut.cancel()  # the shards not yet started; one already started goes on
    try:
        wait(futures)
    except KeyboardInterrupt:
        _kill_workers(pool)
        raise


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """This pool's workers only (not every child of the process, say a logger's service)."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
        return
    for worker in list((getattr(pool, "_processes", None) or {}).values()):
        worker.kill()


def shard_stats(out: Path, total: int) -> list[dict]:
    """Per-shard sample count, crack-free count and mean crack share, from the manifests."""
    rows = []
    for s in range(total):
        metas = [json.loads(x) for x in (out / shard_name(s) / MANIFEST).read_text().splitlines()]
        shares = [m["crack_share"] for m in metas]
        rows.append(
            {
                "shard": s,
                "samples": len(metas),
                "crack_free": sum(x == 0 for x in shares),
                "crack_share_mean": round(float(np.mean(shares)), 6) if shares else 0.0,
            }
        )
    return rows


def versions(*packages: str) -> dict[str, str]:
    """Versions of what shaped the output, plus any installed ``packages`` named: a score or
    a render that moved between two machines can be traced to a package that moved."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:  # e.g. running from a plain checkout
            return "unknown"

    found = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "sim2real": installed("sim2real"),
    }
    return found | {name: installed(name) for name in packages}


def write_card(out: Path, cfg: dict, num_samples: int, shard_size: int, seed: int) -> None:
    """Dataset card: everything needed to reproduce and judge the dataset."""
    card = {
        "kind": "synthetic",
        "generator": "synth.scene.render_crack_scene",
        "simulator_version": SIMULATOR_VERSION,
        "config": cfg,
        "seed": seed,
        "num_samples": num_samples,
        "shard_size": shard_size,
        "versions": versions(),
        "class_map": {str(k): v for k, v in CLASS_MAP.items()},
        "statistics": card_statistics(out, num_shards(num_samples, shard_size)),
    }
    write_json_atomic(out / CARD, card)


def card_statistics(out: Path, total: int) -> dict:
    """A card's statistics: crack share and crack-free share, overall and per shard."""
    rows = shard_stats(out, total)
    n = sum(r["samples"] for r in rows)
    return {
        "samples": n,
        "crack_share_mean": round(
            sum(r["crack_share_mean"] * r["samples"] for r in rows) / max(n, 1), 6
        ),
        "crack_free_fraction": round(sum(r["crack_free"] for r in rows) / max(n, 1), 6),
        "per_shard": rows,
    }
