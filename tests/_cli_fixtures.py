"""Running the real entry points in tools/ as subprocesses on tiny data with tiny models.

Fault, scale and tracking tests go through the command line a user types, so they exercise
Hydra, ``gan.cli.run_cli`` and the Trainer exactly as in production, just at 32-48 px. A
tool's refusals, which need none of a start's seconds of imports, run its ``main`` in the
test process instead (``tool_exit_code``), each tool's command line being run for real too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from gan.checkpoint import load_checkpoint
from synth.processes import start_as_job

ROOT = Path(__file__).resolve().parents[1]


def tool_env(**extra: str) -> dict[str, str]:
    """One thread per process (the machine is shared), never any network for wandb."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def tool_cmd(tool: str, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / f"{tool}.py"), *overrides]


def exit_code_in_process(fn: Callable, config: str, overrides: list[str]) -> int | str | None:
    """Compose ``conf/<config>.yaml`` as the tool would and run ``fn`` through the tool's own
    ``run_cli`` in this process (a tool start is seconds of imports; many refusal cases
    share one); its exit code. Read what it said with pytest's ``capsys``."""
    import pytest

    from gan.cli import run_cli

    with pytest.raises(SystemExit) as stop:
        run_cli(fn, composed(config, overrides))
    return stop.value.code


def composed(config: str, overrides: list[str]):
    """``conf/<config>.yaml`` with ``overrides``, as Hydra composes it for the tool."""
    from hydra import compose, initialize_config_dir

    from gan.cli import register_resolvers

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(config, overrides)


def tool_module(tool: str) -> ModuleType:
    """``tools/<tool>.py`` as a module of this process. Its first import, ``_quiet_start``,
    is left out: it takes Ctrl-C and SIGTERM for a tool's process, and this one is pytest's."""
    sys.modules.setdefault("_quiet_start", ModuleType("_quiet_start"))
    name = f"_tool_{tool}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{tool}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def tool_exit_code(tool: str, *overrides: str) -> int | str | None:
    """``python tools/<tool>.py <overrides>`` in this process: the tool's own ``main`` (its
    ``run_cli`` and settings) on the config Hydra composes for it; its exit code, 0 when it
    returns. For refusals, which need none of a tool start's seconds of imports; each tool's
    command line is run for real elsewhere. Read what it said with pytest's ``capsys``."""
    main = tool_module(tool).main
    try:
        main(composed(tool, list(overrides)))
    except SystemExit as stop:
        return stop.code
    return 0


def run_tool(
    tool: str, *overrides: str, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess:
    """Run ``tools/<tool>.py`` to completion with Hydra overrides; output captured as text."""
    return subprocess.run(
        tool_cmd(tool, *overrides),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=tool_env(**env),
    )


def run_tools_at_once(
    *commands: tuple[str, list[str]], timeout: float = 240
) -> list[subprocess.CompletedProcess]:
    """Run independent ``(tool, overrides)`` commands side by side, each to completion, as
    ``run_tool`` runs one: each tool is one thread (``tool_env``), so on CI's two cores two
    runs take the time of one. Output goes through files (a pipe left unread while another
    command is waited on could fill and stall its tool)."""
    with tempfile.TemporaryDirectory() as folder:
        logs = [
            (Path(folder) / f"{i}.out", Path(folder) / f"{i}.err") for i in range(len(commands))
        ]
        procs = []
        for (tool, overrides), (out, err) in zip(commands, logs):
            with out.open("w") as stdout, err.open("w") as stderr:
                cmd = tool_cmd(tool, *overrides)
                procs.append(
                    subprocess.Popen(
                        cmd, cwd=ROOT, stdout=stdout, stderr=stderr, text=True, env=tool_env()
                    )
                )
        try:
            codes = [proc.wait(timeout=timeout) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return [
            subprocess.CompletedProcess(proc.args, code, out.read_text(), err.read_text())
            for proc, code, (out, err) in zip(procs, codes, logs)
        ]


def kill_when(
    tool: str, overrides: list[str], ready: Callable[[], bool], timeout: float = 120
) -> bool:
    """Start the tool, SIGKILL it as soon as ``ready()`` holds; False if it finished first."""
    return signal_when(tool, overrides, ready, signal.SIGKILL, timeout=timeout) is not None


def terminate_when(
    tool: str, overrides: list[str], ready: Callable[[], bool], log: Path, timeout: float = 120
) -> int | None:
    """Start the tool, SIGTERM it (as ``kill PID`` or a scheduler's time limit would) once
    ``ready()`` holds; its exit code, or None if it finished first. stderr goes to ``log``."""
    return signal_when(tool, overrides, ready, signal.SIGTERM, log, timeout)


def signal_when(
    tool: str,
    overrides: list[str],
    ready: Callable[[], bool],
    sig: signal.Signals,
    log: Path | None = None,
    timeout: float = 120,
    group: bool | None = None,
    again_after: float | None = None,
) -> int | None:
    """Start the tool, send ``sig`` once ``ready()`` holds and wait; its exit code, or None if
    it finished first. SIGKILL goes to the whole process group (DataLoader workers die with
    it), and so does SIGINT, as a terminal's Ctrl-C; any other signal to the tool's process
    alone, which must stop its workers itself, unless ``group`` (Slurm's scancel signals
    every process of the job). ``again_after`` seconds: a second ``sig``, as an impatient user's.
    stderr goes to ``log`` if given (a pipe could fill up and block the tool)."""
    with open(log or os.devnull, "w") as err:
        proc = start_as_job(
            tool_cmd(tool, *overrides),
            cwd=ROOT,
            env=tool_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if ready():
                    for delay in (0.0,) if again_after is None else (0.0, again_after):
                        time.sleep(delay)
                        if group or (group is None and sig in (signal.SIGKILL, signal.SIGINT)):
                            os.killpg(proc.pid, sig)
                        else:
                            proc.send_signal(sig)
                    return proc.wait(timeout=60)
                time.sleep(0.02)
            return None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def common_overrides(tmp: Path) -> list[str]:
    """Every artefact under ``tmp``; checkpoint every step; no progress bar."""
    return [
        f"paths.root_dir={tmp}",
        f"paths.data_dir={tmp / 'real'}",
        f"paths.output_dir={tmp / 'out'}",
        "trainer=cpu",
        "trainer.log_every_n_steps=1",
        "~callbacks.progress_bar",
        "+trainer.enable_progress_bar=false",
        "callbacks.model_checkpoint.every_n_train_steps=1",
    ]


#: A GAN of a few thousand parameters on 32 px crops, one image grid per step (the preset
#: tools/soak.py uses too).
TINY_GAN = ["experiment=tiny_gan"]


def gan_overrides(tmp: Path, synthetic: Path, steps: int = 2) -> list[str]:
    """A GAN of a few thousand parameters on 32 px crops."""
    return [
        *common_overrides(tmp),
        f"trainer.max_steps={steps}",
        f"gan_data.synthetic_dir={synthetic}",
        f"gan_data.real_dir={tmp / 'real' / 'train_img'}",
        *TINY_GAN,
    ]


def task_overrides(tmp: Path, steps: int = 2) -> list[str]:
    """The oracle source (real folder + masks, fully validated in setup), 32 px crops."""
    return [
        *common_overrides(tmp),
        "source=oracle",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        "task.net.base=4",
        "task.net.depth=2",
        "task.warmup_steps=0",
        "task_data.crop_size=32",
        "task_data.batch_size=2",
        "task_data.eval_batch_size=2",
        "task_data.eval_size=null",
        "task_data.num_workers=0",
    ]


def tree_digest(root: Path, skip: tuple[str, ...] = ("hydra",)) -> dict[str, str]:
    """sha256 of every file under ``root`` (paths containing a ``skip`` part left out)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not set(p.relative_to(root).parts) & set(skip)
    }


def pipeline_overrides(tmp: Path) -> list[str]:
    """tools/pipeline.py on 48 px renders, a tiny GAN and a tiny U-Net; all under ``tmp``."""
    return [
        f"paths.data_dir={tmp / 'real'}",
        f"paths.output_dir={tmp / 'out'}",
        f"paths.ckpt_dir={tmp / 'ckpt'}",
        f"paths.log_dir={tmp / 'logs'}",
        "trainer=cpu",
        "~callbacks.progress_bar",
        "experiment=tiny_pipeline",
    ]


def assert_same_weights(ckpt: Path, expected: Path, stopped_at: int) -> None:
    """Bit-identical weights: a resumed run against one never stopped."""
    final, want = load_checkpoint(ckpt)["state_dict"], load_checkpoint(expected)["state_dict"]
    assert final.keys() == want.keys()
    different = [k for k in final if not torch.equal(final[k], want[k])]
    assert not different, f"stopped at step {stopped_at}: {different[:5]} differ"


def straight_ckpt(tmp_path: Path) -> Path:
    """``last.ckpt`` of the reference run (``run_name=straight``), never stopped."""
    return tmp_path / "checkpoints" / "straight" / "last.ckpt"


def tensorboard_points(folder: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every point in a folder's TensorBoard event files (the value 0
    for an image or a text)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    points = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                number = value.tensor.float_val[0] if value.tensor.float_val else 0.0
                points.append((value.tag, event.step, number))
    return points
