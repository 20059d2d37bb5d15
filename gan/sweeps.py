"""A training sweep whose jobs would share one run, refused before any job starts.

``train_task -m task.dice_weight=0.0,1.0`` named both jobs ``task_oracle``: job #1 resumed
job #0's ``last.ckpt`` ("already trained") and rewrote its metrics.json with the same scores;
a pipeline sweep over ``gan.lambda_cycle`` had each job remove the one before's outputs as
stale (with ``hydra/launcher=local_jobs``, while it ran). The run name carries the seed and
the source alone, so a seed or source sweep is sound and any other is not, unless the
command names each job's run itself.

Each job's config is composed as Hydra's sweeper composes it (its own check that a batch
composes does the same work; about 0.1 s a job), and the folders it writes to are compared:
a simpler rule on the swept keys alone (a sweep must include ``seed`` or ``source``) would
refuse ``run_name='x-${gan.lambda_cycle}'`` sweeps that are sound and pass ``seed=0,1
run_name=x`` that is not.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from synth.distributions import ConfigError


def is_training_tool(config: DictConfig) -> bool:
    """train_task, train_gan and the pipeline: the tools that name a run (``run_name``) and
    resume it (``ckpt_path``). The other tools write to an ``out_dir`` of their own choosing
    that a sweep may share on purpose (render's shard blocks fill one dataset)."""
    return "run_name" in config and "ckpt_path" in config


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's BasicSweeper expands them: its config's
    ``hydra.sweeper.params`` and the command's overrides, sweeps in a cartesian product."""
    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()]
    lines += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        if override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:  # a range or interval sweep: Hydra's BasicSweeper refuses it itself
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*choices.values())]


@contextmanager
def hydra_config_of(job: DictConfig) -> Iterator[None]:
    """``${hydra:...}`` in a job's run name resolved against that job, as it will be."""
    held = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(job)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = held


def run_places(job: DictConfig) -> dict[str, str]:
    """The folders a training job writes to, by what names them: its checkpoints and logs
    (``<ckpt_dir>/<run_name>``, ``<log_dir>/<run_name>``; the pipeline's adapt and task runs
    are named from its run name), ``out_dir`` where the tool has one (train_task's scores),
    and the pipeline's ``paths.output_dir``, which holds every stage's outputs."""
    with hydra_config_of(job):
        name = str(job.run_name)
        paths = job.paths
        places = {
            f"{paths.ckpt_dir}/{name}": f"checkpoints of run_name={name}",
            f"{paths.log_dir}/{name}": f"logs of run_name={name}",
        }
        if "out_dir" in job:
            places[str(job.out_dir)] = f"out_dir={job.out_dir}"
        if "stages" in job:
            places[str(paths.output_dir)] = f"paths.output_dir={paths.output_dir}"
    return {os.path.normpath(os.path.abspath(path)): what for path, what in places.items()}


def differing(jobs: list[list[str]]) -> list[str]:
    """The swept keys whose values tell these jobs apart (each job's overrides in one order)."""
    return [pair[0].split("=", 1)[0] for pair in zip(*jobs) if len(set(pair)) > 1]


def suggestion(job: DictConfig, keys: list[str]) -> str:
    """Overrides that give each job its own run: the run name with the swept values in it
    (and, for the pipeline, its own outputs folder)."""
    tag = "".join(
        f"-{key.rsplit('.', 1)[-1].rsplit('/', 1)[-1]}{value_of(job, key)}" for key in keys
    )
    raw = OmegaConf.to_container(job, resolve=False)["run_name"]
    said = [f"'run_name=\"{raw}{tag}\"'"]  # quoted: a comma in it would make a sweep
    if "stages" in job:
        with hydra_config_of(job):
            said.append(f"'paths.output_dir=\"{job.paths.output_dir}/{tag[1:]}\"'")
    return " ".join(said)


def value_of(job: DictConfig, key: str) -> str:
    """An interpolation of the swept setting's value; a config group's by its chosen option
    (its node is no value to name a run by)."""
    key = key.lstrip("+~")
    if isinstance(OmegaConf.select(job, key, default=None), DictConfig):
        return f"${{hydra:runtime.choices.{key}}}"
    return f"${{{key}}}"


def check_distinct_runs(config: DictConfig) -> None:
    """Refuse a training sweep two of whose jobs would write to one run (see the module's
    docstring); other tools' sweeps are left alone."""
    if not is_training_tool(config):
        return
    jobs = job_overrides(config)
    sharing: dict[str, list[int]] = {}
    said: dict[str, str] = {}
    for num, overrides in enumerate(jobs):
        for place, what in job_places(config, overrides).items():
            sharing.setdefault(place, []).append(num)
            said.setdefault(place, what)
    for place, nums in sharing.items():
        if len(nums) > 1:
            refuse_shared(config, [jobs[num] for num in nums], nums, said[place])


def refuse_shared(config: DictConfig, jobs: list[list[str]], nums: list[int], what: str) -> None:
    """The jobs ``nums`` write to one run: named, with the swept keys and a way out that
    names every one of them in the run (a pair alone gave a way out the next pair refused)."""
    which = ", ".join(f"#{num}" for num in nums)
    keys = differing(jobs)
    if not keys:
        raise ConfigError(
            f"jobs {which} of this sweep are the same job ({' '.join(jobs[0])}): give each "
            "value once"
        )
    raise ConfigError(
        f"jobs {which} of this sweep ({', '.join(keys)}) would share one run ({what}): each "
        "resumes or replaces the one before's; give each job its own, e.g. "
        f"{suggestion(compose_job(config, jobs[0]), keys)}"
    )


def compose_job(config: DictConfig, overrides: list[str]) -> DictConfig:
    """One job's config, as Hydra's sweeper composes it to check a batch."""
    loader = GlobalHydra.instance().config_loader()
    return loader.load_sweep_config(master_config=config, sweep_overrides=overrides)


def job_places(config: DictConfig, overrides: list[str]) -> dict[str, str]:
    """A job's run folders; none for a job that does not compose or resolve, which Hydra
    then says in its own words as it checks the batch (this check must not say it first,
    as a callback's traceback)."""
    try:
        return run_places(compose_job(config, overrides))
    except Exception:  # any composition error is Hydra's to report
        return {}
