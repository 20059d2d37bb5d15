"""A sweep whose jobs would share one run or output folder, refused before any job starts.

``train_task -m task.dice_weight=0.0,1.0`` named both jobs ``task_oracle``: job #1 resumed
job #0's ``last.ckpt`` ("already trained") and rewrote its metrics.json with the same scores;
a pipeline sweep over ``gan.lambda_cycle`` had each job remove the one before's outputs as
stale (with ``hydra/launcher=local_jobs``, while it ran). The run name carries the seed and
the source alone, so a seed or source sweep is sound and any other is not, unless the
command names each job's run itself.

The other tools' jobs each write one ``out_dir``: ``evaluate -m eval_size=...`` rewrote one
metrics.json job after job, and ``fda -m beta=...`` stopped at job #1 (the folder was made
with another beta) or, with ``replace_stale=true``, deleted job #0's set. Jobs that differ
only in their block of shards (render's ``shard_start``/``shard_count``) fill one dataset
together, as they are meant to.

Each job's config is composed as Hydra's sweeper composes it (its own check that a batch
composes does the same work; about 0.1 s a job), and the folders it writes to are compared:
a simpler rule on the swept keys alone (a sweep must include ``seed`` or ``source``) would
refuse ``run_name='x-${gan.lambda_cycle}'`` sweeps that are sound and pass ``seed=0,1
run_name=x`` that is not.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from synth.distributions import ConfigError

#: Settings in which jobs sharing an ``out_dir`` may differ: each renders its own shards.
SHARD_BLOCK_KEYS = frozenset({"shard_start", "shard_count"})

#: A swept value that may stand in a folder's name as it is.
FOLDER_NAME_PART = re.compile(r"[\w.+-]+")


def is_training_tool(config: DictConfig) -> bool:
    """train_task, train_gan and the pipeline: the tools that name a run (``run_name``) and
    resume it (``ckpt_path``). The other tools write to an ``out_dir`` alone."""
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
    """The folders a job writes to, by what names them: a training job's checkpoints and
    logs (``<ckpt_dir>/<run_name>``, ``<log_dir>/<run_name>``; the pipeline's adapt and task
    runs are named from its run name), ``out_dir`` where the tool has one (train_task's
    scores; the other tools' whole output), and the pipeline's ``paths.output_dir``, which
    holds every stage's outputs."""
    with hydra_config_of(job):
        places = {}
        if is_training_tool(job):
            name = str(job.run_name)
            places[f"{job.paths.ckpt_dir}/{name}"] = f"checkpoints of run_name={name}"
            places[f"{job.paths.log_dir}/{name}"] = f"logs of run_name={name}"
        if "out_dir" in job:
            places[str(job.out_dir)] = f"out_dir={job.out_dir}"
        if "stages" in job:
            places[str(job.paths.output_dir)] = f"paths.output_dir={job.paths.output_dir}"
    return {os.path.normpath(os.path.abspath(path)): what for path, what in places.items()}


def differing(jobs: list[list[str]]) -> list[str]:
    """The swept keys whose values tell these jobs apart (each job's overrides in one order)."""
    return [pair[0].split("=", 1)[0] for pair in zip(*jobs) if len(set(pair)) > 1]


def suggestion(job: DictConfig, jobs: list[list[str]], keys: list[str]) -> str:
    """Overrides that give each job its own run: the run name with the swept values in it
    (and, for the pipeline, its own outputs folder); for the other tools, the ``out_dir``."""
    own = [key for key in keys if key not in SHARD_BLOCK_KEYS]  # blocks share a dataset
    tag = "".join(
        f"-{key.rsplit('.', 1)[-1].rsplit('/', 1)[-1]}{value_of(job, jobs, key)}" for key in own
    )
    raw = OmegaConf.to_container(job, resolve=False)
    if not is_training_tool(job):
        return f"'out_dir=\"{raw['out_dir']}{tag}\"'"
    said = [f"'run_name=\"{raw['run_name']}{tag}\"'"]  # quoted: a comma would make a sweep
    if "stages" in job:
        with hydra_config_of(job):
            said.append(f"'paths.output_dir=\"{job.paths.output_dir}/{tag[1:]}\"'")
    return " ".join(said)


def value_of(job: DictConfig, jobs: list[list[str]], key: str) -> str:
    """An interpolation of the swept setting's value; a config group's by its chosen option
    (its node is no value to name a run by); the job's number where a value would make a
    poor folder name (a path, a list)."""
    pairs = [line.split("=", 1) for overrides in jobs for line in overrides]
    values = [value for swept, value in pairs if swept == key]
    if not all(FOLDER_NAME_PART.fullmatch(value) for value in values):
        return "${hydra:job.num}"
    key = key.lstrip("+~")
    if isinstance(OmegaConf.select(job, key, default=None), DictConfig):
        return f"${{hydra:runtime.choices.{key}}}"
    return f"${{{key}}}"


def check_distinct_runs(config: DictConfig) -> None:
    """Refuse a sweep two of whose jobs would write to one run or output folder (see the
    module's docstring)."""
    if not is_training_tool(config) and "out_dir" not in config:
        return  # a tool that writes no folder of its own (check_data): nothing to share
    jobs = job_overrides(config)
    sharing: dict[str, list[int]] = {}
    said: dict[str, str] = {}
    for num, overrides in enumerate(jobs):
        for place, what in job_places(config, overrides, num).items():
            sharing.setdefault(place, []).append(num)
            said.setdefault(place, what)
    for place, nums in sharing.items():
        shared = [jobs[num] for num in nums]
        if len(nums) > 1 and not shard_blocks(shared):
            refuse_shared(config, shared, nums, said[place])


def shard_blocks(jobs: list[list[str]]) -> bool:
    """Jobs that render blocks of one dataset: they differ, and only in their shards."""
    keys = set(differing(jobs))
    return bool(keys) and keys <= SHARD_BLOCK_KEYS


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
    if is_training_tool(config):
        shared = f"share one run ({what}): each resumes or replaces the one before's"
    else:
        shared = f"write to one folder ({what}): each replaces or refuses the one before's"
    raise ConfigError(
        f"jobs {which} of this sweep ({', '.join(keys)}) would {shared}; give each job its "
        f"own, e.g. {suggestion(compose_job(config, jobs[0], nums[0]), jobs, keys)}"
    )


def compose_job(config: DictConfig, overrides: list[str], num: int) -> DictConfig:
    """Job ``num``'s config, as Hydra's launchers compose it (``${hydra:job.num}`` too)."""
    loader = GlobalHydra.instance().config_loader()
    job = loader.load_sweep_config(master_config=config, sweep_overrides=overrides)
    with open_dict(job):
        job.hydra.job.num = num
    return job


def job_places(config: DictConfig, overrides: list[str], num: int) -> dict[str, str]:
    """A job's run folders; none for a job that does not compose or resolve, which Hydra
    then says in its own words as it checks the batch (this check must not say it first,
    as a callback's traceback)."""
    try:
        return run_places(compose_job(config, overrides, num))
    except Exception:  # any composition error is Hydra's to report
        return {}
