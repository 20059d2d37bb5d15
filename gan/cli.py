"""What every entry point in tools/ shares: config resolvers and one-line errors.

A user who points the tool at a bad folder or runs out of disk should read one line naming the
file and the cause, not a traceback; the process exits non-zero and nothing already written is
touched (every writer in the project writes a temp file and renames it).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from shutil import which
from typing import Any, NoReturn

from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, ValidationError

from gan.resolvers import register_resolvers  # noqa: F401  (every tool's, from here)
from gan.start import (
    HELD_STOP,
    STOP_NAMES,
    Terminated,
    end_quiet_start,
    interrupt_for,
    quiet_exit,
    take_pythons,
)
from synth.distributions import ConfigError, checked_count, is_count
from synth.io import DataError, list_images, unwritable_folder
from synth.processes import affinity_cpus, usable_cpus

#: Errors whose message says it all, wherever they come from. Those of torch, Lightning and
#: the training code are in ``expected_errors`` once loaded: importing them here made every
#: tool load torch and Lightning, four of check_data's five seconds to check two photos.
EXPECTED = (DataError, ConfigError, FileNotFoundError, KeyError)

#: Library notices that say nothing about the user's run, hidden so the ones that do stand out.
EXPECTED_WARNINGS = (
    # Lightning's own call into torch's pytree API, repeated for every Trainer a pipeline builds.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # By design: CrackSegmenter augments on the device in its own on_after_batch_transfer.
    r"You have overridden `on_after_batch_transfer` in `LightningModule`",
    # torch 2.14 marks torch.jit deprecated; the issue asks for TorchScript, which tools/
    # export.py still writes and checks against the model (three notices an export).
    r"`torch\.jit\.\w+` is deprecated",
)


#: Lightning's info lines that advertise a product rather than report on the run.
EXPECTED_NOTICES = ("litlogger",)


class DropExpectedNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in EXPECTED_NOTICES)


def quiet_expected_warnings() -> None:
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    notices = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, DropExpectedNotices) for f in notices.filters):
        notices.addFilter(DropExpectedNotices())


#: Trainer settings Lightning takes as whole numbers, and those it takes as any number; a typo
#: (``trainer.max_steps=2k``) otherwise fails inside the Trainer as a comparison of str and int.
TRAINER_WHOLE = (
    "max_steps",
    "max_epochs",
    "min_steps",
    "log_every_n_steps",
    "accumulate_grad_batches",
    "check_val_every_n_epoch",
    "num_sanity_val_steps",
)
TRAINER_NUMBERS = (
    "val_check_interval",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "gradient_clip_val",
)


#: Trainer settings Lightning divides by (val_check_interval=0: a ZeroDivisionError).
POSITIVE_TRAINER_KEYS = ("val_check_interval", "log_every_n_steps", "accumulate_grad_batches")


#: Counts the tools' own configs share by name, with their least sensible value; a tool
#: without the key skips it, and null stays allowed where a tool gives it a meaning.
TOOL_COUNTS = {
    "repeats": 1,
    "min_images": 1,  # the benchmarks' timed repeats (0 ended in 'no median for empty data')
    "batch_size": 1,
    "num_workers": 0,
    "num_overlays": 0,
    "shard_size": 1,
    "num_samples": 1,
    "workers": 1,
    "shard_start": 0,
    "eval_max_images": 2,
    "num_synthetic": 1,
    "max_real": 1,
    "num": 1,
    "nrow": 1,
    "start": 0,
    "near_px": 0,
    "tile": 32,  # windows of predict and evaluate; smaller leaves a U-Net almost no context
    # the benchmarks' sizes (train_batch=0 timed an empty step and printed a speed-up)
    "train_batch": 1,
    "eval_batch": 1,
    "train_crop": 16,
    "warmup": 0,
    "threads": 1,
    "ngf": 1,
    "blocks": 1,
    "batch": 1,
}


#: Counts of the pipeline's stages beyond the tools' (its translation's measure; bench_gan
#: checks its own ``size``, which its networks bound).
STAGE_COUNTS = {**TOOL_COUNTS, "max_images": 2, "size": 16}


def stage_nodes(node: DictConfig, where: str) -> Iterator[tuple[str, DictConfig]]:
    """``node`` and the nodes under it, by dotted name, trainers left out (checked apart)."""
    yield where, node
    for key, child in node.items_ex(resolve=False):
        if isinstance(child, DictConfig) and key != "trainer":
            yield from stage_nodes(child, f"{where}.{key}")


def check_stage_settings_shared(stages: DictConfig | dict) -> None:
    """The pipeline stages' counts and devices under the names the tools give them, before
    any work and named by their stage: stages.translate.batch_size=0 was range()'s traceback
    once the GAN had trained, stages.evaluate.tile=5 ran 5 px windows for minutes, and a
    stage's device=bogus failed when the stage came, its message without the stage's key."""
    if not isinstance(stages, DictConfig):  # a tool's, not the pipeline's: torch not needed
        return
    from gan.devices import pick_device

    nodes = [
        pair
        for name, stage in stages.items_ex(resolve=False)
        if isinstance(stage, DictConfig)
        for pair in stage_nodes(stage, f"stages.{name}")
    ]
    for where, node in nodes:
        for key, least in STAGE_COUNTS.items():
            if node.get(key) is not None:
                checked_count(node[key], f"{where}.{key}", least)
        if isinstance(node.get("device"), str):
            try:
                pick_device(node.device)
            except ConfigError as err:
                raise ConfigError(f"{where}.{err}") from err


def check_shared_settings(cfg: DictConfig) -> None:
    """The settings every tool shares (``seed``, the trainer's counts, batch sizes and other
    counts), checked before any work: ``seed=abc`` failed in int() with no key named, after
    the data was read, and ``batch_size=0`` in torch's DataLoader."""
    check_yes_no_settings(cfg)
    seed = cfg.get("seed")
    if seed is not None and not is_count(seed, 0):
        raise ConfigError(f"seed={seed!r}: expected a whole number >= 0")
    for key, least in TOOL_COUNTS.items():
        if cfg.get(key) is not None:
            checked_count(cfg[key], key, least)
    stages = cfg.get("stages") or {}
    check_stage_settings_shared(stages)
    trainers = {"trainer": cfg.get("trainer")} | {
        f"stages.{name}.trainer": node.get("trainer")
        for name, node in stages.items()
        if isinstance(node, DictConfig)
    }
    for where, trainer in trainers.items():
        if isinstance(trainer, DictConfig):
            check_accelerator(trainer.get("accelerator"), where)
            check_precision(trainer.get("precision"), where)
        for key in TRAINER_WHOLE + TRAINER_NUMBERS if isinstance(trainer, DictConfig) else ():
            value = trainer.get(key)
            whole = isinstance(value, int) and not isinstance(value, bool)
            number = whole or isinstance(value, float)
            if value is not None and not (whole if key in TRAINER_WHOLE else number):
                kind = "a whole number" if key in TRAINER_WHOLE else "a number"
                raise ConfigError(f"{where}.{key}={value!r}: expected {kind}")
            if key in POSITIVE_TRAINER_KEYS and value is not None and value <= 0:
                raise ConfigError(f"{where}.{key}={value!r}: expected a number > 0 (or null)")


#: Words Hydra's override grammar keeps as strings (true and false alone are yes/no there),
#: which a tool's ``if cfg.flag`` took as true: ``replace_stale=no`` replaced a finished set.
YES_NO_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})

#: The yes/no settings, by name wherever they sit (a tool's own, a node's, the trainer's, a
#: callback's or logger's): true, false or null (where null has a meaning), nothing else;
#: ``overlay=maybe`` counted as true. tests/test_configs.py checks that every true or false in
#: conf/ is named here. Left out: settings that also take a word (ModelCheckpoint's
#: ``save_last``: 'link'; wandb's ``log_model``: 'all'; the Trainer's ``deterministic``: 'warn').
YES_NO_SETTINGS = frozenset(
    {
        # the tools' and nodes' own
        "average_seeds", "channels_last", "compile", "enabled", "evaluate", "light",
        "masks_optional", "optional", "overlay", "progress", "replace_stale", "residual",
        "segmenter_on_fake", "semantic", "skip_bad_photos",
        # Lightning's Trainer, callbacks and loggers; the launchers'
        "auto_insert_metric_name", "barebones", "benchmark", "default_hp_metric",
        "detect_anomaly", "enable_checkpointing", "enable_model_summary",
        "enable_progress_bar", "enable_version_counter", "find_unused_parameters",
        "inference_mode", "offline", "save_on_train_epoch_end", "stderr_to_stdout",
        "sync_batchnorm", "use_distributed_sampler",
    }
)  # fmt: skip


def check_yes_no_settings(cfg: DictConfig) -> None:
    """A yes/no setting (YES_NO_SETTINGS) holding anything but true, false or null, and any
    setting holding one of YES_NO_WORDS (no config file writes one; a command line does),
    refused with the words it takes: Hydra keeps ``overlay=maybe`` as a word, and a tool's
    ``if cfg.overlay`` counted it as true. A value still to be resolved (``${...}``) is
    left to the setting it names."""

    def walk(node: dict, where: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{where}{key}.")
            elif isinstance(value, str) and value.strip().lower() in YES_NO_WORDS:
                raise ConfigError(
                    f"{where}{key}={value}: a yes/no setting takes true or false (Hydra "
                    f"reads {value!r} as a word, and a word counts as true)"
                )
            elif key in YES_NO_SETTINGS and not yes_no_or_unresolved(value):
                raise ConfigError(f"{where}{key}={value!r}: expected true or false")

    walk(OmegaConf.to_container(cfg, resolve=False), "")


def yes_no_or_unresolved(value: object) -> bool:
    """True, false, null, or an interpolation (``${...}``) whose target is checked itself."""
    return value is None or isinstance(value, bool) or (isinstance(value, str) and "${" in value)


#: Lightning's precision settings (its Trainer's ``precision``), the usual ones first.
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
PRECISION_ALIASES = (
    "32", "16", "bf16", "64", 32, 16, 64, "transformer-engine", "transformer-engine-float16"
)  # fmt: skip


def check_precision(precision: object, where: str) -> None:
    """A precision Lightning does not know, named with those it does: Lightning's ValueError
    came through Hydra's instantiation as a 4-line 'Error in call to target'."""
    if precision is None or precision in PRECISIONS + PRECISION_ALIASES:
        return
    raise ConfigError(
        f"{where}.precision={precision!r}: expected one of {', '.join(PRECISIONS)} "
        "(the mixed ones on GPUs)"
    )


def check_accelerator(accelerator: object, where: str) -> None:
    """A GPU asked for on a machine torch sees none on, said with the way out: Lightning's
    "No supported gpu backend found!" named neither the setting nor the CPU config."""
    if accelerator not in ("cuda", "gpu"):
        return
    import torch  # here: a tool without a trainer setting never loads it

    cuda = torch.cuda.is_available()
    if accelerator == "cuda" and not cuda:
        seen = "no CUDA GPU"
    elif accelerator == "gpu" and not (cuda or torch.backends.mps.is_available()):
        seen = "no GPU (CUDA or Apple MPS)"
    else:
        return
    raise ConfigError(
        f"{where}.accelerator={accelerator}: torch sees {seen} on this machine; trainer=cpu, "
        f"or {where}.accelerator=auto to take a GPU where there is one"
    )


class HydraStartChecks(Callback):
    """What Hydra would stop on with its own traceback before any tool code runs: the run
    folder it makes under ``paths.log_dir`` (a file there), and a sweep's launcher settings
    that do not resolve. Every tool takes this callback through the ``paths`` config
    (``conf/hydra_callbacks``), and Hydra calls it first."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable_run_folder(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable_run_folder(config, "sweep")
        refuse_unresolved_launcher(config)
        refuse_shared_runs(config)


def refuse_shared_runs(config: DictConfig) -> None:
    """A sweep whose jobs would share one run or output folder (gan.sweeps), in one line."""
    from gan.sweeps import check_distinct_runs

    try:
        check_distinct_runs(config)
    except ConfigError as err:
        refuse_before_hydra(str(err))


def refuse_unresolved_launcher(config: DictConfig) -> None:
    """``hydra/launcher=slurm_jobs trainer=ddp`` asks SLURM for ``trainer.devices`` GPUs a
    node, and the ddp preset's ``auto`` is no count (the job is sized before it starts): it
    was omegaconf's traceback from inside Hydra once the sweep began; as was a sweep sent to
    SLURM from a machine without it (submitit's "Could not detect srun"). A setting naming
    one the tool has not (``${trainer.devices}`` in tools/render.py's sweep) was omegaconf's
    InterpolationKeyError as a callback's traceback."""
    launcher = config.hydra.get("launcher")
    if launcher is None:
        return
    try:
        OmegaConf.to_container(launcher, resolve=True)
    except ValidationError as err:
        raw = OmegaConf.to_container(launcher, resolve=False).get(str(err.key), "")
        why = str(err).splitlines()[0].split(": ", 1)[-1]
        if "trainer.devices" in str(raw):
            why += "; a cluster job is sized before it starts: trainer.devices=<GPUs a node>"
        refuse_before_hydra(f"hydra.launcher.{err.key}={raw}: {why}")
    except InterpolationResolutionError as err:  # a setting naming one the tool lacks
        raw = OmegaConf.to_container(launcher, resolve=False).get(str(err.key), "")
        refuse_before_hydra(f"hydra.launcher.{err.key}={raw}: {str(err).splitlines()[0]}")
    if "Slurm" in str(launcher.get("_target_")) and not which("srun"):
        refuse_before_hydra(
            "hydra/launcher=slurm_jobs: no srun on this machine (SLURM's); run the sweep "
            "from the cluster's login node, or hydra/launcher=local_jobs here"
        )


def refuse_before_hydra(why: str) -> NoReturn:
    """One line and exit 1, as run_cli says a refused setting (no tool code has run yet)."""
    print(f"error: {why}", file=sys.stderr, flush=True)
    sys.exit(1)


def refuse_unwritable_run_folder(config: DictConfig, mode: str) -> None:
    """Named by ``paths.log_dir`` where the fault is there, as the pipeline names its other
    paths."""
    folder = config.hydra[mode].dir
    if (why := unwritable_folder(folder)) is None:
        return
    log_dir = config.get("paths", {}).get("log_dir")
    if log_dir and Path(folder).is_relative_to(log_dir) and (said := unwritable_folder(log_dir)):
        why = f"paths.log_dir={log_dir}: {said}"
    else:
        why = f"Hydra's {mode} folder {folder}: {why}"
    refuse_before_hydra(why)


def loaded(module: str, name: str) -> tuple[type[BaseException], ...]:
    """Error class ``name`` of ``module`` once some code imported the module (() before):
    naming it here must not import it, which would cost every tool's start (wandb about a
    second; gan.export pulls in the whole evaluation stack, 0.3 s; torch and Lightning four
    seconds, for tools such as check_data and render that never use them)."""
    found = sys.modules.get(module)
    return (getattr(found, name),) if found is not None else ()


def expected_errors() -> tuple[type[BaseException], ...]:
    """EXPECTED and the expected errors of the modules loaded so far (one not loaded raised
    nothing)."""
    return (
        *EXPECTED,
        *loaded("gan.callbacks", "NonFiniteLossError"),
        *loaded("gan.checkpoint", "UnsafeCheckpointError"),
        *loaded("gan.export", "ExportMismatchError"),
        # Lightning's: trainer=gpu where there is none, and the like
        *loaded("lightning.fabric.utilities.exceptions", "MisconfigurationException"),
    )


def user_message(err: BaseException) -> str:
    """An expected error's own words. A DataLoader worker's error arrives re-raised as
    ``Caught DataError in DataLoader worker process 1.`` followed by the worker's traceback;
    its last line holds the message, after the error's class name."""
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if message.startswith("Caught ") and "Original Traceback" in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return message


#: The signal the tool's own handler (``_raise_stop``) last raised for, None before any.
RAISED_FOR: dict[str, int | None] = {"signal": None}


def _raise_stop(signum: int, frame: Any) -> None:
    # Lightning's fit calls the SIGTERM handler it found beside its own: there the stop is
    # polite (the step in flight finishes and is saved), so only the tool's own handler raises.
    if signal.getsignal(signum) is _raise_stop:
        RAISED_FOR["signal"] = signum
        raise interrupt_for(signum)


@contextmanager
def stops_as_interrupts() -> Iterator[None]:
    """A scheduler's time limit, ``kill`` or Ctrl-C while rendering, translating or scoring:
    SIGTERM would end Python at once, silently and with no word of what is kept; both now
    raise a KeyboardInterrupt (``Terminated`` for SIGTERM) and note which signal it was, in
    ``RAISED_FOR``. Lightning turns one raised while a fit sets up or tears down into
    ``Detected KeyboardInterrupt`` and exit 1, which must still read as the stop it was."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = take_pythons(_raise_stop)
    RAISED_FOR["signal"] = None
    try:
        yield
    except Exception as err:
        # The interrupt can land anywhere, mid-way through a library's bookkeeping (OmegaConf
        # while a checkpoint was restored): a clean-up that then trips on what it left half
        # done raised its own error in the stop's place, an ``error:`` line and exit 1
        # (seen by tools/soak_stops.py). It is still the stop, and says what broke off.
        sig = RAISED_FOR["signal"]
        if sig is None:
            raise
        raise interrupt_for(sig) from err
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def signal_that_killed_a_worker(err: BaseException) -> int | None:
    """SIGTERM or SIGINT when ``err``, or an error it was raised in the handling of, is
    torch's ``DataLoader worker (pid N) is killed by signal: Terminated.`` (or
    ``Interrupt``), else None. Lightning's clean-up after it can fail in turn (``Please call
    iter(combined_loader) first``), and that error came out in the stop's place."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        message = str(err)
        if isinstance(err, RuntimeError) and "DataLoader worker (pid" in message:
            for sig in (signal.SIGTERM, signal.SIGINT):
                if f"killed by signal: {signal.strsignal(sig)}" in message:
                    return sig
        # torch's "DataLoader worker (pid(s) N) exited unexpectedly" is raised from the
        # "killed by signal" one: the chain goes on (a soak stop read exit 1 there)
        err = err.__cause__ or err.__context__
    return None


def exit_on_stop(sig: int, said: str, rerun: str | None = "resume") -> NoReturn:
    """A stopped tool's last line, and 128 + the signal as its code, as a shell reports it:
    a scheduler or ``pipeline && next`` must see the stop, never a 0. Said by rank zero
    alone: a DDP run's other ranks stop with it, and said it again."""
    # a DDP run loaded Lightning; a tool that did not (check_data, render) is rank zero
    rank_zero = sys.modules.get("lightning.pytorch.utilities.rank_zero")
    if getattr(getattr(rank_zero, "rank_zero_only", None), "rank", 0) == 0:
        tail = f": rerun the same command to {rerun}" if rerun else ""
        print(f"{said}{tail}", file=sys.stderr, flush=True)
    sys.exit(128 + sig)


#: What the running tool keeps staged for a rerun (``run_cli``'s ``staged``), said on a stop.
STAGED: dict[str, str | None] = {"kept": None}


def stopped(sig: int, said: str, resumes: bool, kept: str) -> NoReturn:
    """A tool that resumes says what it kept; one that does not (a benchmark, predict: their
    outputs are replaced only once complete) that they are as they were, and that a rerun
    starts over, or resumes from what it staged (predict's finished photos)."""
    if resumes:
        exit_on_stop(sig, f"{said}; {kept}")
    if HELD_STOP["came"]:  # held back while the outputs went in place (gan.start.StopsHeld)
        exit_on_stop(sig, f"{said} as its outputs went in place; they are whole", None)
    if STAGED["kept"]:
        exit_on_stop(sig, f"{said}; its earlier outputs are as they were, {STAGED['kept']}")
    exit_on_stop(sig, f"{said}; its earlier outputs are as they were", "start over")


def wandb_advice(message: str) -> str:
    """wandb's error as one line, with the way out that fits: a key where none is set, else
    offline logging, since the server is what failed (it said to set the key that was set)."""
    first = (message.strip().splitlines() or ["failed"])[0]
    # WANDB_MODE, where set, decides over the logger's offline setting (gan.loggers)
    offline = (
        "WANDB_MODE=offline logs"
        if os.environ.get("WANDB_MODE") in ("online", "run")
        else "logger.wandb.offline=true logs"
    )
    if os.environ.get("WANDB_API_KEY"):
        return (
            f"wandb: {first} (WANDB_API_KEY is set: the server could not be reached or "
            f"refused the key; {offline} without a server)"
        )
    return f"wandb: {first} (or set WANDB_API_KEY; {offline} without an account)"


#: Set to the count where a tool set ``OMP_NUM_THREADS`` from a CPU quota itself, so that the
#: DDP ranks it starts, which inherit both, tell that count from one the user set.
QUOTA_THREADS = "GAN_QUOTA_THREADS"


def cap_threads() -> None:
    """This process's threads at most the CPUs it may use (``usable_cpus``): torch's and
    OpenCV's own counts follow the affinity (``taskset -c 0`` gives 1) but not a cgroup CPU
    quota: under ``docker run --cpus=2`` on a 64-core node their operators would run up to 64
    threads on 2 CPUs' time. Never raised. OpenCV's threads and torch's inter-op threads
    (which no variable sets) are always capped; torch's intra-op threads are left alone where
    the user set ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` (torch's own count follows them).
    Lowered, ``OMP_NUM_THREADS`` says the same to the processes the tool starts: Lightning's
    DDP ranks (which share it out, ``gan.callbacks.RankThreads``) and render's workers. A
    tool that has not loaded torch (check_data, render) does not load it here, which would
    cost it four seconds: the variable alone, set where a quota lowers the count, is what
    torch reads when it loads."""
    cpus = usable_cpus()
    cap_opencv_threads(cpus)
    torch = sys.modules.get("torch")
    if torch is not None:
        lower_interop_threads(torch, cpus)
    if user_set_threads():
        return
    if torch is None:
        lowered = cpus < affinity_cpus()
    else:
        lowered = torch.get_num_threads() > cpus
        if lowered:
            torch.set_num_threads(cpus)
    if lowered:
        os.environ["OMP_NUM_THREADS"] = os.environ[QUOTA_THREADS] = str(cpus)


def user_set_threads() -> bool:
    """Whether the user set torch's thread count (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``),
    not a tool from a CPU quota (``QUOTA_THREADS`` names the count it set)."""
    omp = os.environ.get("OMP_NUM_THREADS")
    ours = omp is not None and omp == os.environ.get(QUOTA_THREADS)
    return "MKL_NUM_THREADS" in os.environ or (omp is not None and not ours)


def cap_opencv_threads(cpus: int) -> None:
    """OpenCV's thread pool at most ``cpus`` (never raised); render's spawned workers run one
    each (``synth.render``). Never called in a forked DataLoader worker: there it waited
    forever on the pool the tool's process had started (``gan.data.quiet_worker``)."""
    import cv2  # loaded already: synth.io, which every tool imports, reads with it

    if cv2.getNumThreads() > cpus:
        cv2.setNumThreads(cpus)


def lower_interop_threads(torch: types.ModuleType, cpus: int) -> None:
    """torch's inter-op pool (``torch.jit.fork``'s tasks) at most ``cpus``: its default
    counts the affinity, not a quota, and ``OMP_NUM_THREADS`` does not set it. torch takes
    the count once a process and only before inter-op work started; later (a second tool run
    in one process) it raises, and the count is left as it is."""
    if torch.get_num_interop_threads() > cpus:
        try:
            torch.set_num_interop_threads(cpus)
        except RuntimeError:
            pass


def run_cli(
    fn: Callable[..., Any], *args: Any, resumes: bool = True, staged: str | None = None
) -> Any:
    """Run ``fn``; expected failures become ``error: <message>`` on stderr and exit code 1.
    ``resumes=False``: a tool whose outputs replace the earlier ones only once complete (a
    benchmark, predict), whose stop says they are as they were (predict said that its
    finished shards were kept). ``staged``: what such a tool keeps staged for its rerun to
    resume (predict: its finished photos); without it a rerun starts over."""
    quiet_expected_warnings()
    cap_threads()
    HELD_STOP["came"] = False  # of this run's outputs alone (a test runs many in a process)
    STAGED["kept"] = staged
    try:
        if args and isinstance(args[0], DictConfig):
            check_shared_settings(args[0])
        # the start-up's handlers give way to the tool's own with no work between: a SIGTERM
        # there would meet Python's default (exit 143 without a word)
        in_a_tool = end_quiet_start()
        with stops_as_interrupts():
            result = fn(*args)
        if in_a_tool:
            quiet_exit()
        return result
    except loaded("lightning.pytorch.utilities.exceptions", "SIGTERMException"):
        # Lightning's stop on SIGTERM is a SystemExit with no code: exit 0, as if the run had
        # finished. A scheduler or `pipeline && next` must see the stop: 128 + 15, as a shell
        # would (128 + 2 for Ctrl-C, which gan.callbacks.CtrlCStopsAfterTheStep turns into it).
        from gan.callbacks import STOPPED_BY

        sig = STOPPED_BY["signal"]
        name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        stopped(sig, f"stopped by {name}", resumes, "checkpoints are kept")
    except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C or SIGTERM outside training
        if isinstance(err, SystemExit):  # Lightning's exit 1 for the interrupt it caught
            sig = RAISED_FOR["signal"]
            if sig is None:
                raise
        else:
            sig = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
        broke = err.__cause__
        said = f"{STOP_NAMES[sig]}"
        said += f" ({user_message(broke).splitlines()[0]}, as it stopped)" if broke else ""
        stopped(sig, said, resumes, "finished shards, stages and checkpoints are kept")
    except InstantiationException as err:  # a config node's own check, as Hydra wraps it
        if not isinstance(err.__cause__, expected_errors()):
            raise
        print(f"error: {err.__cause__}", file=sys.stderr, flush=True)
        sys.exit(1)
    except loaded("wandb.errors", "Error") as err:  # no API key, a bad key, no server
        print(f"error: {wandb_advice(str(err))}", file=sys.stderr, flush=True)
        sys.exit(1)
    except expected_errors() as err:
        print(f"error: {user_message(err)}", file=sys.stderr, flush=True)
        sys.exit(1)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {err.filename}" if err.filename else ""
            print(
                f"error: out of disk space{where}; earlier outputs are intact, "
                "free space and rerun the same command to resume",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(1)
        if err.filename is not None:  # a folder that is a file, a file one may not write...
            print(f"error: {err.filename}: {err.strerror or err}", file=sys.stderr, flush=True)
            sys.exit(1)
        raise
    except Exception as err:  # last: EXPECTED errors and OSErrors are had above
        sig = signal_that_killed_a_worker(err)
        if sig is None:
            raise
        # A group-wide signal that reached a DataLoader worker before its quiet_worker start
        # ran (it ignores both after): torch names the worker's death, mid-step.
        said = f"{STOP_NAMES[sig]} (a starting DataLoader worker died of it)"
        stopped(sig, said, resumes, "checkpoints are kept")


def check_measure_settings(cfg: Any) -> None:
    """What measure_translated_set will need, checked before any image is made (tools/
    translate.py and tools/fda.py run it first): the Inception file and the measuring size."""
    from gan.fid import check_inception_weights

    if cfg.evaluate:
        check_inception_weights(cfg.inception_weights)
        checked_count(cfg.eval_size, "eval_size", 16)
        list_images(cfg.real_dir)  # a missing folder was said after the whole translation


def measure_translated_set(cfg: Any, moved_by: str = "Translation") -> dict:
    """The ``evaluate`` step of tools/translate.py and tools/fda.py (one config layout:
    src_dir, out_dir, real_dir, inception_weights, eval_max_images, eval_size): the set's
    distance to the real photos and its grey and texture shifts, into its card and printed."""
    from gan.translate import describe_gap, measure_translation

    gap = measure_translation(
        cfg.src_dir,
        cfg.out_dir,
        cfg.real_dir,
        cfg.inception_weights,
        cfg.eval_max_images,
        cfg.eval_size,
    )
    if gap:
        print(describe_gap(gap, moved_by), flush=True)
    return gap
