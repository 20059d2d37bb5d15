"""One way to build a Trainer and run fit from a Hydra config, shared by every training stage.

It owns what every run needs and no model should repeat: callbacks and loggers from
``_target_`` nodes, the full resolved config and git revision in each logger, and resuming
from ``last.ckpt`` with optimizer state when ``ckpt_path=last``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf

from gan.callbacks import RankThreads, RunSeed, raise_late_stop, saved_seed
from gan.checkpoint import UnsafeCheckpointError, check_resumable
from gan.loggers import clear_earlier_run
from synth.distributions import ConfigError, is_count
from synth.io import DataError, read_json, write_json_atomic

#: In a run's checkpoint folder: the W&B run its training logs to (wandb_run_id).
WANDB_RUN_RECORD = "wandb_run.json"


def git_output(*args: str) -> str:
    """stdout of a git command run in this package's checkout."""
    out = subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
    )
    return out.stdout.strip()


def git_revision() -> str:
    """Revision of the checkout the run came from (``unknown`` outside a git tree)."""
    try:
        rev = git_output("rev-parse", "--short", "HEAD")
        dirty = git_output("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("-dirty" if dirty else "")) if rev else "unknown"


def instantiate_group(
    node: DictConfig | None, extra: Callable[[DictConfig], dict] = lambda child: {}
) -> list:
    """Instantiate every ``_target_`` child of a config node (callbacks, loggers), in order;
    ``extra(child)``: keyword arguments a child is given beside its config."""
    if not node:
        return []
    return [
        instantiate(child, **extra(child))
        for child in node.values()
        if child and "_target_" in child
    ]


def build_trainer(
    cfg: DictConfig, with_loggers: bool = True, wandb_id: str | None = None, **overrides
) -> pl.Trainer:
    callbacks = [*instantiate_group(cfg.get("callbacks")), RunSeed(cfg.get("seed")), RankThreads()]
    loggers = build_loggers(cfg, wandb_id) if with_loggers else []
    if not loggers:  # no logger (``~logger``): Lightning's LR monitor refused to start
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def build_loggers(cfg: DictConfig, wandb_id: str | None = None) -> list:
    """The ``logger`` node's loggers, in order; ``wandb_id``: the W&B run a W&B logger that
    names none logs to (``wandb_run_id``)."""

    def run_id(node: DictConfig) -> dict:
        named = node.get("id") is not None or node.get("version") is not None
        return {"id": wandb_id} if wandb_id and is_wandb(node) and not named else {}

    return instantiate_group(cfg.get("logger"), run_id)


def is_wandb(node: DictConfig) -> bool:
    return str(node.get("_target_", "")).rsplit(".", 1)[-1] == "WandbLogger"


def wandb_run_id(cfg: DictConfig, ckpt_dir: Path, resuming: bool) -> str | None:
    """The W&B run a training logs to, where a W&B logger is on: a resume takes the run its
    checkpoint folder recorded, so a training stopped and resumed (a Ctrl-C, a requeue) is one
    W&B run with one curve, where each restart had been a new run; a fresh start takes a new
    run, recorded there (rank zero's; other ranks log nothing)."""
    if not any(n and is_wandb(n) for n in (cfg.get("logger") or {}).values()):
        return None
    record = ckpt_dir / WANDB_RUN_RECORD
    if resuming and record.is_file():
        with contextlib.suppress(DataError):  # a damaged record: a new run, as before
            found = read_json(record).get("id")
            if isinstance(found, str) and found:
                return found
    new = secrets.token_hex(4)
    if rank_zero_only.rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record, {"id": new})
    return new


def resolve_ckpt_path(ckpt_path: str | None, ckpt_dir: str | Path) -> str | None:
    """``last`` means <ckpt_dir>/last.ckpt when it exists (a fresh run otherwise)."""
    if ckpt_path in (None, "", "none", "null"):
        return None
    if ckpt_path == "last":
        last = Path(ckpt_dir) / "last.ckpt"
        return str(last) if last.is_file() else None
    if Path(ckpt_path).is_dir():  # "checkpoint file not found" misled for a folder that is
        last = Path(ckpt_path) / "last.ckpt"
        hint = f"; its last.ckpt: ckpt_path={last}" if last.is_file() else ""
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: a folder, not a checkpoint file{hint}")
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: checkpoint file not found")
    return str(ckpt_path)


#: Hyperparameters a resume cannot change: Lightning restores the optimizer's param groups
#: (learning rate, weight decay, betas) and the scheduler's state over them. Loss weights and
#: the schedule's shape (its lambda is rebuilt from the new values) do change on a resume.
OPTIMIZER_KEYS = frozenset({"lr", "lr_g", "lr_d", "lr_s", "weight_decay", "beta1", "scheduler"})


def check_same_settings(path: str, checkpoint: dict, module: pl.LightningModule) -> None:
    """Refuse to resume a model with another learning rate, weight decay or scheduler than it
    was made with: the restored optimizer kept the old value while the run's config recorded
    the new one (and a OneCycle schedule failed mid-run)."""
    saved = checkpoint.get("hyper_parameters") or {}
    wanted = dict(module.hparams)
    differ = sorted(
        key
        for key in OPTIMIZER_KEYS & saved.keys() & wanted.keys()
        if saved[key] != wanted[key]  # numbers and names: plain values in both
    )
    if differ:
        raise UnsafeCheckpointError(
            f"{path}: made with another {', '.join(differ)}; a resume restores the old "
            "optimizer, so the new value would go unused; start over with ckpt_path=null or "
            "a new run_name="
        )


def check_same_seed(path: str, checkpoint: dict, seed: int | None) -> None:
    """Refuse to resume another seed's model: it would be carried on, saved and scored under
    this seed's name (a sweep ``seed=0,1`` with one ``run_name=``)."""
    saved = saved_seed(checkpoint)
    if saved is not None and seed is not None and saved != seed:
        raise UnsafeCheckpointError(
            f"{path}: trained with seed={saved}, not seed={seed}; give each seed its own "
            f"run_name= (the default name carries the seed), resume with seed={saved}, or "
            "start over with ckpt_path=null"
        )


def check_same_data(path: str, checkpoint: dict, datamodule: pl.LightningDataModule) -> None:
    """Refuse to resume a model on other data than it was trained on: resumed with another
    ``gan_data.real_dir`` or ``synthetic_dir`` (or ``task_data.train_dir``, or another EL2N
    selection of it), a model was carried on over two data sets and saved as one run. Where
    the data module records what it trains on (``trained_on``, kept in its checkpoints), each
    folder's listing is compared, not its place: a folder moved or renamed with the same files
    resumes. A checkpoint from before the record resumes. The data a model is only scored on
    (the task model's test photos) is no part of the record: a trained model is scored again
    on new photos."""
    trained_on = getattr(datamodule, "trained_on", None)
    saved = (checkpoint.get(type(datamodule).__qualname__) or {}).get("trained_on")
    if not callable(trained_on) or not isinstance(saved, dict):
        return
    now = trained_on()
    then = {key: saved[key] for key in now if isinstance(saved.get(key), dict)}
    differ = [key for key in then if then[key].get("listing") != now[key]["listing"]]
    if differ:
        said = []
        for key in differ:  # ``shown``: how an entry that is no folder (a selection) is said
            old = then[key].get("shown", then[key].get("folder"))
            new = now[key].get("shown", now[key].get("folder"))
            than = "when it was trained" if old == new else f"{old}, which it was trained on"
            said.append(f"{key}={new} {now[key].get('differs', 'holds other files')} than {than}")
        raise UnsafeCheckpointError(
            f"{path}: trained on other data: {', and '.join(said)}; resume with the folders "
            "it was trained on, or start over with ckpt_path=null or a new run_name="
        )
    for key in then:
        if then[key].get("folder") != now[key].get("folder"):
            rank_zero_info(
                f"{path}: {key} moved from {then[key].get('folder')} to {now[key]['folder']}, "
                "with the same files; resuming"
            )


def check_fixed_schedule(path: str, checkpoint: dict, max_steps: int | None) -> None:
    """A OneCycle schedule keeps its total step count in its state: resumed with another
    budget, it failed mid-run with torch's 'Tried to step 7 times' traceback."""
    for state in checkpoint.get("lr_schedulers") or []:
        total = state.get("total_steps") if isinstance(state, dict) else None
        if isinstance(total, int) and is_count(max_steps, 1) and total != max_steps:
            raise UnsafeCheckpointError(
                f"{path}: its OneCycle schedule was built for {total} steps, not "
                f"trainer.max_steps={max_steps}; resume with trainer.max_steps={total}, or "
                "start over with ckpt_path=null or a new run_name="
            )


def check_budget_reaches(path: str, checkpoint: dict, max_steps: int | None) -> None:
    """Refuse a checkpoint already past the step budget: Lightning stopped at once with
    'max_steps reached', and the tool went on as if the run had trained to the budget (a
    GAN at step 45 reported and scored as the 40-step run asked for)."""
    step = checkpoint.get("global_step", 0)
    if isinstance(max_steps, int) and 0 < max_steps < step:
        raise UnsafeCheckpointError(
            f"{path}: at step {step}, past trainer.max_steps={max_steps}; resume with a budget "
            f"of at least {step}, or start over with ckpt_path=null or a new run_name="
        )


def starts_over(ckpt_path: str | None, ckpt_dir: str | Path) -> bool:
    """``ckpt_path=null`` where the run's last.ckpt exists: training starts from scratch and
    its first save replaces that file (the checkpoint callback keeps no ``last-v1.ckpt``)."""
    return (
        resolve_ckpt_path(ckpt_path, ckpt_dir) is None and (Path(ckpt_dir) / "last.ckpt").is_file()
    )


def log_run_config(trainer: pl.Trainer, cfg: DictConfig) -> None:
    """Full resolved config + git revision into every logger (hparams / wandb config)."""
    log_config(trainer.loggers, cfg)


def log_config(loggers: list, cfg: DictConfig) -> None:
    params = OmegaConf.to_container(cfg, resolve=True)
    params["git_revision"] = git_revision()
    for logger in loggers:
        logger.log_hyperparams(params)
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_config_text(logger, params)


@rank_zero_only
def _tensorboard_config_text(logger: TensorBoardLogger, params: dict) -> None:
    """TensorBoard only writes hparams.yaml (no summary) without an hp metric, so the config
    also goes in as a text summary: visible in the TEXT tab, next to the curves it produced."""
    text = OmegaConf.to_yaml(OmegaConf.create(params))
    logger.experiment.add_text("config", f"    {text.replace(chr(10), chr(10) + '    ')}", 0)


def log_outside_a_fit(
    cfg: DictConfig, record_dir: Path, metrics: dict[str, float], step: int, config: bool
) -> None:
    """``metrics`` at ``step`` into the tracker runs of ``cfg.run_name`` with no Trainer: a
    row scored again (another evaluation size, new test labels) kept its old test scores
    there, and the testtime row, which trains nothing, had no run at all. The W&B run is the
    one ``record_dir`` recorded (``wandb_run_id``); ``config``: the run's config too, for a
    run no fit described."""
    loggers = build_loggers(cfg, wandb_run_id(cfg, record_dir, resuming=True))
    if config:
        log_config(loggers, cfg)
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
    close_runs(loggers)


def close_runs(loggers: list) -> None:
    """Flush every logger and end the wandb run. WandbLogger attaches to a run still open in
    the process, so without this every later stage of the pipeline would log into the first
    stage's run (and wandb would drop its steps as out of order)."""
    for logger in loggers:
        logger.finalize("success")
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()


def build_model(cfg: DictConfig, node: DictConfig) -> pl.LightningModule:
    """Instantiate a model right after seeding with ``cfg.seed``, so its initial weights depend
    on the seed alone (not on whatever drew random numbers before), and a run is repeatable."""
    pl.seed_everything(cfg.get("seed", 0), workers=True)
    return instantiate(node)


@contextlib.contextmanager
def run_folder_held(folder: Path) -> Iterator[None]:
    """This process's hold on a run's checkpoint folder while it trains: two runs of one
    ``run_name`` at once both trained into one last.ckpt and metrics.csv (one's from-scratch
    clean-up deleted the other's rows) and both said they had finished. A second is refused,
    naming the first's pid. An flock on ``.lock`` there, so the kernel drops it with the
    process (a kill -9 too), and the file goes with the hold; rank zero's alone under DDP.
    Where the filesystem has no locks, nothing is held."""
    if rank_zero_only.rank != 0:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = take_lock(folder / ".lock")
    try:
        yield
    finally:
        if fd is not None:
            (folder / ".lock").unlink(missing_ok=True)  # before the lock goes with the close
            os.close(fd)


def take_lock(path: Path) -> int | None:
    """An exclusive flock on ``path``, holding this pid; None where the filesystem has none.
    A file its holder unlinked as this one opened it is taken again, made anew."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 16, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(
                f"{path.parent}: another run is training into it now (pid {holder or '?'}); "
                "let it finish, or give this run its own run_name="
            ) from None
        except OSError:  # no locks on this filesystem
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)


def several_devices(devices: object) -> bool:
    """Whether ``trainer.devices`` asks for more than one process (``auto`` left as is)."""
    if isinstance(devices, bool):
        return False
    if isinstance(devices, int):
        return devices > 1 or devices == -1
    if isinstance(devices, str):
        picked = [d for d in devices.split(",") if d.strip()]
        return (
            len(picked) > 1 or devices.strip() == "-1" or (devices.isdigit() and int(devices) > 1)
        )
    return isinstance(devices, Sequence) and len(devices) > 1


def unused_parameter_search(trainer: DictConfig, module: pl.LightningModule) -> dict:
    """The GAN on several devices without the ddp presets (``trainer.devices=2``): each of its
    steps leaves one network without gradients, and Lightning's plain DDP failed at the first
    backward with a 60-line traceback per rank; it gets DDP that looks for them, as the
    presets set (conf/trainer/ddp.yaml). The task model uses every parameter at every step:
    under the presets it gets DDP that does not look, which cost a traversal of the autograd
    graph a step and torch's warning from each rank."""
    strategy = trainer.get("strategy", "auto")
    if module.automatic_optimization:
        if isinstance(strategy, DictConfig) and strategy.get("find_unused_parameters"):
            return {"strategy": instantiate(strategy, find_unused_parameters=False)}
        return {}
    if strategy not in ("auto", "ddp") or not several_devices(trainer.get("devices")):
        return {}
    return {"strategy": "ddp_find_unused_parameters_true"}


@contextlib.contextmanager
def unrecorded_if_never_started(ckpt_dir: Path, ckpt_path: str | None) -> Iterator[Callable]:
    """A fresh run that failed before training (W&B refused: no key, no server) left the W&B
    run record it had just written, alone in a new checkpoint folder; both go (the folder
    where nothing else is in it, once the run's lock is gone). ``start()``: training began."""
    began = []
    try:
        yield lambda: began.append(True)
    except BaseException:
        if ckpt_path is None and not began and rank_zero_only.rank == 0:
            (ckpt_dir / WANDB_RUN_RECORD).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # other files there: the folder stays
                ckpt_dir.rmdir()
        raise


def is_finished(checkpoint: dict, max_steps: int | None) -> bool:
    """A checkpoint at its run's step budget: resuming it trains nothing."""
    return isinstance(max_steps, int) and 0 < max_steps <= checkpoint.get("global_step", 0)


def fit(
    cfg: DictConfig,
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    then_tests: bool = False,
    once_allowed: Callable[[], None] | None = None,
) -> pl.Trainer:
    """Train ``module``; resumes from the run's last.ckpt when ``cfg.ckpt_path == 'last'``.
    A rerun of a finished run opens no logger, which would be an empty dashboard run, unless
    the tool tests next (``then_tests``: the scores are that run's content). ``once_allowed``
    runs once the checkpoint to resume has passed every check, before training: what the run
    records beside its checkpoints (train_task's pruning.json) is not rewritten by a refused
    resume."""
    # seeded again (data order follows the seed, not the draws of the model's building);
    # build_model said "Seed set to ..." once
    pl.seed_everything(cfg.get("seed", 0), workers=True, verbose=False)
    ckpt_dir = Path(cfg.paths.ckpt_dir) / cfg.run_name
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), ckpt_dir)
    finished = False
    if ckpt_path is not None:  # before any logger touches the run's files
        checkpoint = check_resumable(ckpt_path, module)
        check_same_settings(ckpt_path, checkpoint, module)
        check_same_seed(ckpt_path, checkpoint, cfg.get("seed"))
        check_same_data(ckpt_path, checkpoint, datamodule)
        check_budget_reaches(ckpt_path, checkpoint, cfg.trainer.get("max_steps"))
        check_fixed_schedule(ckpt_path, checkpoint, cfg.trainer.get("max_steps"))
        finished = is_finished(checkpoint, cfg.trainer.get("max_steps"))
    elif starts_over(cfg.get("ckpt_path"), ckpt_dir):
        rank_zero_info(f"starting over (ckpt_path=null): {ckpt_dir / 'last.ckpt'} is replaced")
    if finished and not then_tests:
        rank_zero_info(
            f"{ckpt_path}: already trained to trainer.max_steps={cfg.trainer.max_steps}; "
            "nothing to do, no logger opened"
        )
    # held before the run's logs, records and checkpoints are touched
    with unrecorded_if_never_started(ckpt_dir, ckpt_path) as start, run_folder_held(ckpt_dir):
        if once_allowed is not None:
            once_allowed()
        with_loggers = then_tests or not finished
        wandb_id = wandb_run_id(cfg, ckpt_dir, ckpt_path is not None) if with_loggers else None
        overrides = unused_parameter_search(cfg.trainer, module)
        if not getattr(datamodule, "validates", True):  # no labels: Lightning's loop of none
            overrides["limit_val_batches"] = 0  # said "Total length ... is zero" at each
        trainer = build_trainer(cfg, with_loggers=with_loggers, wandb_id=wandb_id, **overrides)
        if ckpt_path is None and trainer.is_global_zero:  # from scratch: no earlier curve
            if gone := clear_earlier_run(trainer.loggers):
                rank_zero_info(f"from scratch: {len(gone)} log files of an earlier run removed")
        log_run_config(trainer, cfg)
        start()
        trainer.fit(
            module,
            datamodule=datamodule,
            ckpt_path=ckpt_path,
            weights_only=True,  # a resumed checkpoint may not run code on load
        )
    raise_late_stop(trainer)
    return trainer
