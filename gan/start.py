"""Ctrl-C or SIGTERM while a tool starts or exits: one line, not a traceback.

Loading torch, Lightning and the rest takes seconds; Python's defaults in that time are a
KeyboardInterrupt traceback through torch's imports for Ctrl-C and a silent end for SIGTERM.
Every entry point in ``tools/`` calls ``quiet_start`` first (``tools/_quiet_start.py``; never
library code: importing gan must not touch a program's signals), which stops the tool with
one line and 128 + the signal; ``gan.cli.run_cli`` hands the signals back to Python's
defaults as the tool's work begins, where its own stops take over, and once the work is done
takes them again (``quiet_exit``) for the tool's last moments. Standard library only, so it
loads in milliseconds (Hydra loads only to answer ``--help`` or ``--cfg``).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded only where a command line went wrong
    from argparse import Namespace

    from omegaconf import DictConfig

#: How a stop is named in its one line (the start-up one and gan.cli's).
STOP_NAMES = {signal.SIGTERM: "stopped by SIGTERM", signal.SIGINT: "interrupted by Ctrl-C"}

#: Python's own handlers, the first of each what a hand-back restores (None: a handler set
#: outside Python). Any other is someone else's: submitit's job runner handles SIGTERM itself,
#: a shell that started the tool with ``&`` ignores Ctrl-C; those are left as they are.
PYTHON_HANDLERS = {
    signal.SIGINT: (signal.default_int_handler,),
    signal.SIGTERM: (signal.SIG_DFL, None),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training, raised where Ctrl-C's KeyboardInterrupt would be, so the same
    cleanups run: render cancels the shards not begun, a staged folder is left unrenamed."""


def interrupt_for(sig: int) -> KeyboardInterrupt:
    """What a stop raises outside training's polite one: Terminated for SIGTERM, Ctrl-C's
    KeyboardInterrupt for SIGINT (gan.cli.run_cli reads the signal back from its type)."""
    return Terminated() if sig == signal.SIGTERM else KeyboardInterrupt()


def take_pythons(handler: object) -> dict[int, object]:
    """``handler`` for Ctrl-C and SIGTERM where they have Python's own handlers (anyone
    else's is left as it is); what it replaced, by signal, for the caller to put back."""
    return {
        sig: signal.signal(sig, handler)
        for sig, python in PYTHON_HANDLERS.items()
        if signal.getsignal(sig) in python
    }


def _stop_while_starting(sig: int, frame: FrameType | None) -> None:
    print(f"{STOP_NAMES[sig]} while starting; nothing was done", file=sys.stderr, flush=True)
    os._exit(128 + sig)  # no unwinding through a half-imported module


#: Hydra's sweep flags: the launching process waits on jobs (its launcher's, submitit's) and
#: no run_cli of its own ends the start; it keeps Python's defaults.
SWEEP_FLAGS = {"-m", "--multirun", "hydra.mode=MULTIRUN"}


def quiet_start(argv: list[str] | None = None) -> None:
    """Take Ctrl-C and SIGTERM while they have Python's defaults (a signal ignored by the
    shell, or handled by a launcher such as submitit, is left as it is)."""
    if not SWEEP_FLAGS & set(sys.argv[1:] if argv is None else argv):
        take_pythons(_stop_while_starting)


def end_quiet_start() -> bool:
    """Python's defaults back, for the tool's own stops (run_cli's, Lightning's); whether
    quiet_start (or an earlier run_cli's quiet_exit) had taken them: this is a tool's
    process, not a test's or a notebook's."""
    took = False
    for sig, python in PYTHON_HANDLERS.items():
        if signal.getsignal(sig) in (_stop_while_starting, _stop_while_exiting):
            signal.signal(sig, python[0])
            took = True
    return took


def _stop_while_exiting(sig: int, frame: FrameType | None) -> None:
    print(f"{STOP_NAMES[sig]} as the tool exited; its work is done", file=sys.stderr, flush=True)
    os._exit(128 + sig)


def quiet_exit() -> None:
    """After a tool's work, while it exits (Hydra's teardown, a logger's last sync): a stop
    there ended it without a word (SIGTERM) or with a traceback (Ctrl-C), as if work were
    lost; it is one line that says the work is done."""
    take_pythons(_stop_while_exiting)


#: ``group=null`` as Hydra's override grammar reads it (null in any case), after an optional
#: ``+``/``++`` and before an optional ``@package``.
_NULL_GROUP = re.compile(r"^\+{0,2}([\w/.-]+?)(?:@[\w.]*)?=(?i:null)$")


def refuse_null_groups(conf_dir: Path, argv: list[str] | None = None) -> None:
    """``logger=null`` ended in Hydra's traceback (``Config group override must be a string
    or a list. Got NoneType``) before any tool code runs; it is one line naming the group's
    options and the way to leave the group out, ``'~logger'``."""
    for arg in sys.argv[1:] if argv is None else argv:
        found = _NULL_GROUP.match(arg)
        if found is None or not (conf_dir / found[1]).is_dir():
            continue
        group = found[1]
        options = ", ".join(sorted(f.stem for f in (conf_dir / group).glob("*.yaml")))
        print(
            f"error: {arg}: a config group takes one of its options ({options}); "
            f"to leave it out, write '~{group}'",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)


#: ``~`` where a shell would expand it: a value's start, or the start of a dict entry's value
#: or a list item's (``{image_dir: ~/renders/img, ...}``), before ``/`` or the value's end.
_HOME = re.compile(r"(^|[{\[:,]\s*)~(?=/|\s*[,}\]]|$)")
QUOTES = ("'", '"')  # a value Hydra already reads as quoted
#: A dict entry's key and the ``:`` after it, inside ``{...}``.
_ENTRY = re.compile(r",\s*(?=[\w.-]+\s*:)")


def quoted_value(key: str, value: str) -> str:
    """``key=value`` with the value in the quotes Hydra needs: a dict's entries each quoted
    (``{image_dir: "/my renders/img", ...}``), since the dict quoted whole is a string and
    was refused as not a dict; any other value quoted whole."""
    if value.startswith("{") and value.endswith("}"):
        entries = []
        for entry in _ENTRY.split(value[1:-1]):
            name, _, item = entry.partition(":")
            item = item.strip()
            item = item if item[:1] in QUOTES else '"' + item + '"'
            entries.append(f"{name.strip()}: {item}")
        return f"{key}={{{', '.join(entries)}}}"
    return f'{key}="{value}"'


def refuse_unquoted_values(argv: list[str] | None = None) -> None:
    """A value Hydra's override grammar reads only in quotes (a photo folder named in letters
    outside ASCII, ``/data/фото``, or with brackets, ``/data/photos (2)``) was Hydra's
    "LexerNoViableAltException" and a link to its grammar; it is one line with the argument
    quoted as Hydra and the shell read it. ``~`` (``paths.data_dir=~/photos``), which Hydra
    reads only quoted and then does not expand, is one line with the home folder written
    out. Hydra's parser loads only for such arguments."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if "=" in a and a[0] != "-"]
    odd = [a for a in args if not a.isascii() or any(c in a.split("=", 1)[1] for c in "()~")]
    if not odd:
        return
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()

    def reads(arg: str) -> bool:
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            return False
        return True

    for arg in odd:
        if reads(arg):
            continue
        key, value = arg.split("=", 1)
        said = "letters outside ASCII, brackets or the like only in quotes"
        if _HOME.search(value):
            value = _HOME.sub(lambda m: m[1] + str(Path.home()), value)
            said = "~ only in quotes, and then as a folder named ~, not expanded"
        fixed = f"{key}={value}" if reads(f"{key}={value}") else quoted_value(key, value)
        if value[:1] in "'\"" or '"' in value or not reads(fixed):
            continue  # quotes would not help: Hydra's to say
        print(
            f"error: {arg}: Hydra reads a value with {said}: {shlex.quote(fixed)}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)


#: ``experiment=<name>`` on a command line (values of a sweep, comma-separated).
_EXPERIMENT = re.compile(r"^\+{0,2}experiment=(.+)$")
#: A top-level ``run_name:`` in a config file.
_RUN_NAME = re.compile(r"^run_name:", re.MULTILINE)


def refuse_pipeline_presets(conf_dir: Path, tool: str, argv: list[str] | None = None) -> None:
    """A preset that names the pipeline's run (``run_name: label_free``: full, sim2real_cpu,
    label_free) given to a single-stage tool: it replaced the tool's own run name, so
    ``train_task experiment=label_free`` with another source said "already trained" and
    scored the first source's model under the second's name, and ``experiment=full`` (which
    swaps the pipeline's GAN) ended in Hydra's "Could not override 'gan'". Refused before
    Hydra composes, for tools with presets but no pipeline stages (train_task, train_gan)."""
    config = conf_dir / f"{tool}.yaml"
    text = config.read_text() if config.is_file() else ""
    if "- experiment: null" not in text or re.search(r"^stages:", text, re.MULTILINE):
        return
    for arg in sys.argv[1:] if argv is None else argv:
        found = _EXPERIMENT.match(arg)
        for name in found[1].split(",") if found else ():
            preset = conf_dir / "experiment" / f"{name.strip()}.yaml"
            if preset.is_file() and _RUN_NAME.search(preset.read_text()):
                print(
                    f"error: experiment={name.strip()} is a preset of the pipeline (it names "
                    f"the pipeline's run, which every {tool} run would share): python "
                    f"tools/pipeline.py experiment={name.strip()}, or give {tool} the settings "
                    "you want from it on the command line",
                    file=sys.stderr,
                    flush=True,
                )
                sys.exit(1)


def answer_config_questions(conf_dir: Path, tool: str, argv: list[str] | None = None) -> None:
    """``--help``, ``--cfg job`` or ``--info`` need the config alone: Hydra answers them here,
    before torch and Lightning load (5-6 s of every tool's start, for an answer that takes
    under one), and the tool exits. The answer is Hydra's own, for the tool's config and under
    the tool's name (a task function whose code names the tool's script, as the tool's own
    ``@hydra.main`` does), with the resolvers a ``--resolve`` needs. Hydra's own parser says
    what was asked, so every form it reads is answered here (``--cfg=hydra``, ``-chydra``,
    ``--res``). For Hydra's tools, which have ``conf/<tool>.yaml`` (tools/_quiet_start asks;
    the argparse ones answer their own)."""
    args = sys.argv[1:] if argv is None else argv
    if not any(arg.startswith("-") for arg in args):  # overrides alone: a run, Hydra not loaded
        return
    from hydra._internal.utils import get_args_parser

    asked = get_args_parser().parse_args(args)  # Hydra's own usage error, exit 2, where wrong
    if not is_question(asked):
        return  # a run (a sweep, another config named): the tool's own
    import hydra
    from omegaconf import OmegaConf

    from gan.resolvers import register_resolvers

    register_resolvers()
    script = str(Path(sys.argv[0]).resolve())
    if asked.help:  # what the tool does, where Hydra says "powered by Hydra"
        OmegaConf.register_new_resolver("tool_help", lambda: tool_help(Path(script)))
        sys.argv.append("hydra.help.header=${tool_help:}")
    task = types.FunctionType(_runs_nothing.__code__.replace(co_filename=script), {}, tool)
    task.__module__ = "__main__"
    try:
        if resolved_hydra_asked(asked):
            show_resolved_hydra(conf_dir, tool, asked)
        else:
            hydra.main(version_base="1.3", config_path=str(conf_dir), config_name=tool)(task)()
    except BrokenPipeError:  # ``--help | head``: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except ValueError as err:  # flags that do not go together (``--cfg job -m``): Hydra's own
        print(f"error: {err}", file=sys.stderr, flush=True)  # words, without its traceback
        sys.exit(1)
    sys.exit(0)


def is_question(asked: Namespace) -> bool:
    """Whether Hydra's reading of a command line shows something and runs nothing (help, a
    config, where it came from); ``--resolve`` alone too, for Hydra to say it needs ``--cfg``."""
    shows = asked.help or asked.hydra_help or asked.cfg or asked.shell_completion
    return bool(shows or asked.resolve or asked.info is not None)


def resolved_hydra_asked(asked: Namespace) -> bool:
    """``--cfg hydra --resolve`` alone, with the tool's config (Hydra's own answer for
    everything else: help first, flags that do not go together, another config folder)."""
    others = asked.help or asked.hydra_help or asked.run or asked.multirun
    others = others or asked.shell_completion or asked.info is not None
    elsewhere = asked.config_path or asked.config_dir or asked.experimental_rerun
    return asked.cfg == "hydra" and asked.resolve and not (others or elsewhere)


def show_resolved_hydra(conf_dir: Path, tool: str, asked: Namespace) -> None:
    """``--cfg hydra --resolve``, where a run writes its logs and Hydra's record: Hydra keeps
    the ``hydra`` node alone before it resolves, so ``${paths.log_dir}`` and ``${run_name}``
    in the run folder were an InterpolationKeyError traceback. Here the whole config is
    composed (Hydra's compose API, as ``@hydra.main`` composes it), the ``hydra`` node is
    resolved against it, then shown as Hydra shows it (without its help texts, in the
    package asked). What only a run sets (``hydra.job.num``, ``hydra.runtime.output_dir``
    and what names them, the job log's file) is ``???``, as ``--cfg all --resolve`` shows it."""
    from hydra import compose, initialize_config_dir
    from hydra._internal import utils
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import Container, OmegaConf, open_dict

    def show() -> None:
        with initialize_config_dir(str(conf_dir), job_name=tool, version_base="1.3"):
            cfg = compose(asked.config_name or tool, asked.overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # ``${hydra:...}``, as Hydra's --cfg has it
        OmegaConf.set_readonly(cfg.hydra, None)
        OmegaConf.resolve(cfg.hydra)
        shown = OmegaConf.masked_copy(cfg, "hydra")
        with open_dict(shown.hydra):
            del shown.hydra["hydra_help"], shown.hydra["help"]
        package = None if asked.package == "_global_" else asked.package
        picked = shown if package is None else OmegaConf.select(shown, package)
        if picked is None:
            sys.stderr.write(f"package '{package}' not found in config\n")
            sys.exit(1)
        if not isinstance(picked, Container):
            print(picked)
            return
        sys.stdout.write((f"# @package {package}\n" if package else "") + OmegaConf.to_yaml(picked))

    held = HydraConfig.instance().cfg  # a test's process goes on: its HydraConfig as it was
    try:
        utils.run_and_report(show)  # errors as Hydra's (a misspelt setting: one line)
    finally:
        HydraConfig.instance().cfg = held


def tool_help(script: Path) -> str:
    """A tool's docstring (what it does, example commands) as its ``--help`` header; a ``$``
    doubled, since Hydra fills the help in as a ``string.Template``."""
    import ast

    doc = ast.get_docstring(ast.parse(script.read_text())) or script.stem
    return doc.replace("$", "$$") + "\n"


def _runs_nothing(cfg: object) -> None:
    """What a question's answer runs: nothing (Hydra calls no task for them)."""


def say_misspelt_settings(conf_dir: Path) -> None:
    """A misspelt setting, config group or group option on the command line as one line with
    the nearest names (``misspelt_setting``), exit 1. Hydra's own answer to
    ``stages.task.sedes=[0]`` was six lines advising ``+stages.task.sedes=[0]``, which adds a
    setting no code reads. Hydra composes and runs the task inside its error report
    (``run_and_report``); that report is wrapped here, so nothing more runs while the command
    line is fine, the config Hydra failed on is at hand in its error, and any other error is
    Hydra's to report as before (``HYDRA_FULL_ERROR=1``: every error, its full trace)."""
    from hydra._internal import utils

    hydras = getattr(utils, "run_and_report", None)
    if hydras is None or getattr(hydras, "says_misspelt", False):
        return  # another Hydra (tests/test_start.py says so) or wrapped already

    def run_and_report(func: Callable[[], object]) -> object:
        def or_one_line() -> object:
            try:
                return func()
            except Exception as err:  # conf/ read here alone: nothing added to a start
                full = os.environ.get("HYDRA_FULL_ERROR") == "1" or utils.is_under_debugger()
                said = None if full else misspelt_setting(err, config_groups(conf_dir), conf_dir)
                if said is None:
                    raise
                print(f"error: {said}", file=sys.stderr, flush=True)
                sys.exit(1)

        return hydras(or_one_line)

    run_and_report.says_misspelt = True  # type: ignore[attr-defined]
    utils.run_and_report = run_and_report


def config_groups(conf_dir: Path) -> dict[str, list[str]]:
    """The config groups in ``conf_dir`` (its folders) and each one's options (its files)."""
    return {
        path.name: sorted(option.stem for option in path.glob("*.yaml"))
        for path in sorted(conf_dir.iterdir())
        if path.is_dir()
    }


#: Hydra's first words for a setting the command line names that the config has not.
_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'\.")


def misspelt_setting(
    err: BaseException,
    groups: Mapping[str, list[str]],
    conf_dir: Path | None = None,
    argv: Sequence[str] | None = None,
) -> str | None:
    """What Hydra's composition error ``err`` says of a name the command line got wrong, in
    one line with the nearest names; None for any other error. ``groups``: the config groups
    and their options, looked among at the top (``experiment`` is a group with no setting of
    its own) and under a group (``logger.wandb`` is there with ``logger=wandb``). An option
    the command line (``argv``, sys.argv's by default) did not name came from a preset's
    defaults list: its files in ``conf_dir`` are named (Hydra named the tool's config)."""
    from omegaconf import DictConfig

    options, missing = getattr(err, "options", None), getattr(err, "missing_cfg_file", None)
    if options and isinstance(missing, str) and "/" in missing:  # ``experiment=ful``
        group, _, option = missing.rpartition("/")
        typed = sys.argv[1:] if argv is None else argv
        files: list[str] = []
        if conf_dir is not None and not option_typed(typed, group, option):  # a preset's
            files = preset_files(conf_dir, group, option)
        said = f"no option '{option}' in config group '{group}'"
        said += f", named in {' and '.join(files)}" if files else ""
        near = [f"{group}{': ' if files else '='}{name}" for name in get_close(option, options)]
        return did_you_mean(said, near, f"{said} (its options: {', '.join(options)})")
    cause = err.__cause__
    node, key = getattr(cause, "parent_node", None), getattr(cause, "full_key", None)
    given = _COULD_NOT_OVERRIDE.match(str(err))
    if given is None or not key or not isinstance(node, DictConfig):
        return None
    if str(key).startswith(f"{given[1]}."):  # a name in a mapping merged into the setting:
        return None  # Hydra's words, which README.md explains (a knob given another form)
    return no_such_setting(node, str(key), groups)


def option_typed(argv: Sequence[str], group: str, option: str) -> bool:
    """Whether the command line chose ``option`` of ``group`` (``gan=x``, ``+gan=x``)."""
    return any(arg.lstrip("+") == f"{group}={option}" for arg in argv)


def preset_files(conf_dir: Path, group: str, option: str) -> list[str]:
    """The config files whose defaults list chooses ``option`` of ``group``
    (``- override /gan: lite``), as paths from the folder holding ``conf_dir``."""
    chooses = re.compile(
        rf"^\s*-\s*(override\s+)?/?{re.escape(group)}\s*:\s*{re.escape(option)}\s*(#.*)?$",
        re.MULTILINE,
    )
    return sorted(
        str(path.relative_to(conf_dir.parent))
        for path in conf_dir.rglob("*.yaml")
        if chooses.search(path.read_text(errors="replace"))
    )


def no_such_setting(node: DictConfig, key: str, groups: Mapping[str, list[str]]) -> str:
    """``key`` is not in ``node``, the config at its level: the nearest names beside it, or
    else the same name or one near it anywhere in the config (``task.seeds``: the pipeline's
    ``stages.task.seeds``), or else the names there are."""
    where, _, name = key.rpartition(".")
    names = sorted({str(k) for k in node.keys()} | (set() if where else set(groups)))
    near = [f"{where}.{n}" if where else n for n in get_close(name, names)]
    if not near:
        keys = dotted_keys(node._get_root(), key)
        lasts = get_close(name, sorted({last(k) for k in keys}))
        near = sorted(
            (k for k in keys if last(k) in lasts),
            key=lambda k: (-likeness(name, last(k)), -likeness(key, k)),
        )
    if name in groups.get(where, ()):  # an option of the group, not the one chosen
        otherwise = f"no setting '{key}': '{name}' is an option of config group '{where}', "
        otherwise += f"not chosen ({where}={name} chooses it)"
    elif where:
        otherwise = f"no setting '{key}' under '{where}' (its settings: {', '.join(names)})"
    else:
        otherwise = f"no setting '{key}' (the settings and config groups: {', '.join(names)})"
    return did_you_mean(f"no setting '{key}'", near[:3], otherwise)


def get_close(name: str, names: list[str]) -> list[str]:
    """``names`` that look like a misspelling of ``name``, nearest first; those clearly
    farther than the nearest left out (``max_stpes``: ``max_steps``, not ``max_epochs``)."""
    from difflib import get_close_matches

    near = get_close_matches(name, names, n=3, cutoff=0.6)
    return [n for n in near if likeness(name, n) > likeness(name, near[0]) - 0.1]


def likeness(name: str, other: str) -> float:
    """How alike two names are, 0 to 1 (difflib's ratio, which ``get_close_matches`` ranks by)."""
    from difflib import SequenceMatcher

    return SequenceMatcher(None, name, other).ratio()


def last(key: str) -> str:
    """A dotted name's last part: ``stages.task.seeds``'s ``seeds``."""
    return key.rpartition(".")[2]


def dotted_keys(root: object, key: str) -> list[str]:
    """Every setting's dotted name in ``root`` (a config) but ``key``; Hydra's own only for a
    ``key`` under ``hydra``."""
    from omegaconf import OmegaConf

    def walk(node: dict, where: str) -> list[str]:
        found = []
        for name, value in node.items():
            found.append(f"{where}{name}")
            if isinstance(value, dict):
                found += walk(value, f"{where}{name}.")
        return found

    tree = OmegaConf.to_container(root, resolve=False)  # type: ignore[arg-type]
    if not key.startswith("hydra."):
        tree.pop("hydra", None)  # type: ignore[union-attr]
    return [found for found in walk(tree, "") if found != key]  # type: ignore[arg-type]


def did_you_mean(said: str, near: list[str], otherwise: str) -> str:
    """``said``; did you mean the ``near`` names? Where none is near, ``otherwise``."""
    if not near:
        return otherwise
    names = [f"'{n}'" for n in near]
    either = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return f"{said}; did you mean {either}?"


#: Ctrl-C and SIGTERM, held back while a tool puts its finished outputs in place.
HELD = (signal.SIGINT, signal.SIGTERM)
#: Whether a stop came while they were held: the outputs it would have cut are whole, and the
#: stop's line says so (gan.cli), not that the earlier ones are as they were.
HELD_STOP = {"came": False}


class StopsHeld:
    """A stop held back from ``start()`` to the block's end, then taken: predict's commit
    (thousands of renames) stopped part way left a mix of the new model's masks and the old
    one's under "its earlier outputs are as they were", and evaluate's overlays could be new
    beside old scores. The handlers are swapped, not the signal mask: the kernel hands a
    process's signal to any thread that does not block it, and Python runs the handler in
    the main thread at once."""

    def __enter__(self) -> StopsHeld:
        self.saved: dict[int, object] = {}
        self.came: int | None = None
        HELD_STOP["came"] = False
        return self

    def _note(self, sig: int, frame: FrameType | None) -> None:
        self.came = self.came or sig

    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.saved = {sig: signal.signal(sig, self._note) for sig in HELD}

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        if self.came is None:
            return
        HELD_STOP["came"] = True
        handler = self.saved[self.came]
        if callable(handler):
            handler(self.came, None)  # the tool's own stop (an interrupt), now
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), self.came)
