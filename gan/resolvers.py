"""The config resolvers every tool's configs use: light (omegaconf and the standard library),
so a config can be composed and shown before torch loads (``gan.start.answer_config_questions``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gan.run_names import run_key, unseeded


def env_or(name: str, default: Any = None) -> Any:
    """The environment variable ``name``, or ``default`` when it is unset *or empty*, as the
    shell's ``${VAR:-default}``: ``oc.env`` keeps an empty value, and ``SIM2REAL_DATA_DIR=``
    left over in a shell turned the data folder into ``/train_img``."""
    value = os.environ.get(name, "")
    return value if value else default


def seeded(name: str, seed: Any) -> str:
    """A run's name for one seed: ``name`` for seed 0, ``name-seed<N>`` otherwise, as the
    pipeline names its rows' seeds, so ``seed=0,1`` gives two runs, not one run the second
    seed silently resumed. A seed that is no number is named as it is and refused by
    check_shared_settings."""
    return run_key(name, seed, 0)


def models_name(ckpt: Any, translate_with: Any = None, bn_recalibrated_on: Any = None) -> str:
    """A folder name for what a checkpoint (and a generator in front) makes: its run folder's
    name, with the file's stem where it is not ``last``; ``+adabn-<folder>`` where its
    BatchNorm statistics are re-estimated on a photo folder first (evaluate's
    ``recalibrate_bn_on``: it shared the plain model's folder and replaced its scores). The
    tools' default out_dir was named by ``run_name`` alone, so scoring another model there
    replaced the first's scores under the first's name. A relative path is made absolute
    first (as the tool opens it): the folder of ``ckpt=last.ckpt`` had no name, so out_dir
    was ``outputs/export/`` itself, shared by every such model, and ``ckpt=../last.ckpt``
    wrote into ``outputs/``."""

    def name(path: Any) -> str:
        path = Path(os.path.abspath(str(path)))
        if not path.parent.name:  # a checkpoint at the filesystem's root
            return path.stem
        return path.parent.name + ("" if path.stem == "last" else f"-{path.stem}")

    named = name(ckpt) + (f"+{name(translate_with)}" if translate_with else "")
    if bn_recalibrated_on:
        named += f"+adabn-{Path(os.path.abspath(str(bn_recalibrated_on))).name}"
    return named


def parent(path: Any) -> str:
    """The folder holding ``path``: where a tool keeps what sits beside its output folder
    (import_renders' digest cache, next to the set as the pipeline's is next to its stage
    folders)."""
    return str(Path(str(path)).parent)


def run_stamp() -> str:
    """The name of a run's Hydra folder: its start time to the millisecond and the process's
    id, as ``2025-06-01_12-30-05.123_pid4242``. ``${now:%Y-%m-%d_%H-%M-%S}`` alone gave two
    runs of one tool started in the same second (``seed=$s &`` in a shell loop, a job
    array's tasks) one folder: one run's .hydra record replaced the other's and their logs
    interleaved. The time comes first, so the folders still sort by it; the pid tells apart
    processes on one machine, the milliseconds those on two. Registered cached, as Hydra's
    ``now``: a config resolves the same folder every time, and a sweep's jobs (which Hydra
    composes anew, with the launching config's cache copied in, in other processes under
    submitit) the launching process's sweep folder."""
    now = datetime.now()
    return f"{now:%Y-%m-%d_%H-%M-%S}.{now.microsecond // 1000:03d}_pid{os.getpid()}"


def register_resolvers() -> None:
    """``${div:a,b}`` (integer division) and ``${minus:a,b}`` for schedules derived from step
    counts (the GAN's LR decay follows its step budget); ``${env_or:VAR,default}`` for the
    paths a user moves with an environment variable; ``${seeded:name,${seed}}`` for run names
    and ``${unseeded:name}`` for the name a run's seeds share; ``${models_name:ckpt,gen}``
    for the folder of what a model makes; ``${parent:path}`` for the folder holding a path;
    ``${run_stamp:}`` for a run's own Hydra folder (``run_stamp``)."""
    if not OmegaConf.has_resolver("seeded"):
        OmegaConf.register_new_resolver("seeded", seeded)
    if not OmegaConf.has_resolver("unseeded"):
        OmegaConf.register_new_resolver("unseeded", unseeded)
    if not OmegaConf.has_resolver("models_name"):
        OmegaConf.register_new_resolver("models_name", models_name)
    if not OmegaConf.has_resolver("env_or"):
        OmegaConf.register_new_resolver("env_or", env_or)
    if not OmegaConf.has_resolver("parent"):
        OmegaConf.register_new_resolver("parent", parent)
    if not OmegaConf.has_resolver("run_stamp"):
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)
    if not OmegaConf.has_resolver("div"):
        OmegaConf.register_new_resolver("div", lambda a, b: int(a) // int(b))
    if not OmegaConf.has_resolver("minus"):
        OmegaConf.register_new_resolver("minus", lambda a, b: int(a) - int(b))
