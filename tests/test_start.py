"""A stop while a tool starts (torch and the rest loading) is one line, not a traceback."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import string
import sys
import time
from pathlib import Path

import pytest
from _cli_fixtures import ROOT, composed, run_tool, signal_when

from gan.cli import run_cli
from gan.start import (
    answer_config_questions,
    config_groups,
    end_quiet_start,
    misspelt_setting,
    quiet_start,
    refuse_null_groups,
    refuse_pipeline_presets,
    refuse_unquoted_values,
    say_misspelt_settings,
    tool_help,
)


@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGINT, 130, "interrupted by Ctrl-C"),
    (signal.SIGTERM, 143, "stopped by SIGTERM"),
])  # fmt: skip
def test_a_stop_while_a_tool_loads_is_one_line(
    sig: signal.Signals, code: int, said: str, tmp_path: Path
) -> None:
    """Half a second in, the tool is still importing torch (4 s here): before, Ctrl-C there
    printed a KeyboardInterrupt traceback through torch's imports and SIGTERM ended it
    without a word. (train_task: check_data, once stopped here, no longer loads torch.)"""
    started = time.monotonic()
    log = tmp_path / "stopped.log"
    overrides = [f"paths.data_dir={tmp_path / 'none'}", f"paths.log_dir={tmp_path / 'logs'}"]
    ready = lambda: time.monotonic() - started > 0.5  # noqa: E731
    assert signal_when("train_task", overrides, ready, sig, log, group=True) == code
    assert log.read_text() == f"{said} while starting; nothing was done\n"


def test_run_cli_hands_the_signals_back_to_python(python_signal_defaults: None) -> None:
    """Once the tool's work begins its own stops apply: Ctrl-C and SIGTERM are interrupts
    (render's wind-down, training's polite stop), not the start-up line and exit."""

    def interrupted_by(sig: signal.Signals) -> str:
        try:
            os.kill(os.getpid(), sig)
        except KeyboardInterrupt as err:
            return type(err).__name__
        return "nothing"

    quiet_start([])
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert run_cli(interrupted_by, signal.SIGINT) == "KeyboardInterrupt"
    assert run_cli(interrupted_by, signal.SIGTERM) == "Terminated"


def test_a_stop_as_a_tool_exits_says_its_work_is_done(python_signal_defaults: None) -> None:
    """Once run_cli's work has returned, a SIGTERM (a time limit as the job ends) ended the
    tool without a word, as if work were lost; in a tool's process it is one line now. In
    any other (a test, a notebook) run_cli leaves Python's handlers as it found them."""
    run_cli(lambda: None)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    quiet_start([])
    run_cli(lambda: None)
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler) and handler.__name__ == "_stop_while_exiting"
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_sweep_or_an_ignored_signal_is_left_alone(python_signal_defaults: None) -> None:
    """A sweep's launching process waits on its jobs (submitit's): no run_cli ends its start,
    so it keeps Python's defaults. A Ctrl-C the shell ignores (``&``) stays ignored."""
    quiet_start(["-m", "seed=0,1"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_start([])
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    end_quiet_start()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_every_tool_takes_the_signals_before_its_other_imports() -> None:
    """A tool that goes through run_cli imports ``_quiet_start`` before anything heavy
    (hydra, torch): a new tool that forgets it has the traceback back."""
    tools = Path(__file__).resolve().parents[1] / "tools"
    checked = []
    for tool in sorted(tools.glob("*.py")):
        tree = ast.parse(tool.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        if "run_cli" not in names:
            continue
        modules = [  # in order
            name.split(".")[0]
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
        ]
        # the standard library's may come first: it loads in no time
        heavy = [m for m in modules if m not in sys.stdlib_module_names and m != "__future__"]
        assert heavy[0] == "_quiet_start", f"{tool.name}: first import {heavy[0]}"
        checked.append(tool.name)
    assert {"pipeline.py", "render.py", "train_gan.py", "train_task.py"} <= set(checked)


def test_a_config_group_set_to_null_is_one_line_with_the_way_to_leave_it_out() -> None:
    """``logger=null`` was Hydra's traceback (``Config group override must be a string or a
    list. Got NoneType``) before any tool code ran."""
    proc = run_tool("train_task", "trainer.max_steps=1", "+logger=NULL", timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: +logger=NULL: a config group takes one of its options "
        "(csv, many, tensorboard, wandb); to leave it out, write '~logger'\n"
    )


@pytest.mark.parametrize("arg", ["seed=null", "~logger", "logger=csv", "nosuch=null", "-m"])
def test_null_is_left_to_hydra_where_it_is_not_a_config_group(arg: str) -> None:
    """A value may be null; a group removed, named, or unknown is Hydra's to say."""
    refuse_null_groups(Path(__file__).resolve().parents[1] / "conf", [arg])


def test_a_path_hydra_cannot_read_unquoted_is_one_line_with_it_quoted(capsys) -> None:
    """A photo folder named in letters outside ASCII or with brackets (``/data/фото``,
    ``/data/photos (2)``) was Hydra's "LexerNoViableAltException" and a link to its grammar."""
    for arg, quoted in [
        ("paths.data_dir=/data/фото", """'paths.data_dir="/data/фото"'"""),
        ("input_dir=/my photos (2)/é", """'input_dir="/my photos (2)/é"'"""),
    ]:
        with pytest.raises(SystemExit) as stop:
            refuse_unquoted_values(["seed=1", arg])
        assert stop.value.code == 1
        assert capsys.readouterr().err == (
            f"error: {arg}: Hydra reads a value with letters outside ASCII, brackets or the "
            f"like only in quotes: {quoted}\n"
        )
    for fine in ("paths.data_dir='/data/фото'", "seed=0,1", "x=[a,b]", "-m", "a=b c", "é=1"):
        refuse_unquoted_values([fine])  # Hydra reads it, or quotes would not help: Hydra's


def test_a_dict_of_paths_hydra_cannot_read_is_one_line_with_each_path_quoted(capsys) -> None:
    """``import_from={image_dir: /my renders (2)/img, ...}``: the line quoted the dict whole,
    which Hydra reads as a string, and the pipeline then refused it as not a dict."""
    arg = "stages.render.import_from={image_dir: /r (2)/img, mask_dir: /r (2)/mask}"
    with pytest.raises(SystemExit):
        refuse_unquoted_values([arg])
    fixed = """stages.render.import_from={image_dir: "/r (2)/img", mask_dir: "/r (2)/mask"}"""
    assert capsys.readouterr().err.endswith(f": '{fixed}'\n")
    refuse_unquoted_values([fixed])  # the line's own suggestion reads


@pytest.mark.parametrize(
    ("arg", "fixed"),
    [
        ("paths.data_dir=~/photos", "paths.data_dir={home}/photos"),
        ("stages.render.import_from={image_dir: ~/r/img, mask_dir: ~/r/mask}",
         "'stages.render.import_from={{image_dir: {home}/r/img, mask_dir: {home}/r/mask}}'"),
    ],
)  # fmt: skip
def test_a_tilde_is_one_line_with_the_home_folder_written_out(capsys, arg: str, fixed: str) -> None:
    """``paths.data_dir=~/photos`` was Hydra's "LexerNoViableAltException" (several lines and
    a link), and quoted, a folder named ``~`` that is nowhere."""
    with pytest.raises(SystemExit) as stop:
        refuse_unquoted_values([arg])
    assert stop.value.code == 1
    said = capsys.readouterr().err
    assert said.startswith(f"error: {arg}: ") and "~" in said and said.count("\n") == 1
    assert said.endswith(f": {fixed.format(home=Path.home())}\n")


def test_a_pipeline_preset_given_to_a_single_stage_tool_is_one_line() -> None:
    """``experiment=label_free`` set train_task's run name to ``label_free`` for every source
    (a second source said "already trained" and scored the first's model under its name);
    ``experiment=full`` was Hydra's "Could not override 'gan'"."""
    proc = run_tool("train_task", "experiment=full", timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: experiment=full is a preset of the pipeline (it names the pipeline's run, "
        "which every train_task run would share): python tools/pipeline.py experiment=full, "
        "or give train_task the settings you want from it on the command line\n"
    )
    conf = Path(__file__).resolve().parents[1] / "conf"
    for tool, arg in [
        ("train_task", "experiment=label_free"),
        ("train_gan", "experiment=tiny_gan,sim2real_cpu"),
    ]:
        with pytest.raises(SystemExit) as stop:
            refuse_pipeline_presets(conf, tool, ["-m", arg])
        assert stop.value.code == 1


@pytest.mark.parametrize(("tool", "arg"), [
    ("pipeline", "experiment=label_free"),  # the presets' own tool
    ("train_task", "experiment=tiny_gan"),  # names no run: its settings are the tool's
    ("train_gan", "experiment=tiny_pipeline"),
    ("evaluate", "experiment=full"),  # no presets at all: Hydra's to say
    ("train_task", "run_name=full"),
])  # fmt: skip
def test_presets_that_name_no_run_or_the_pipeline_itself_are_left_alone(tool, arg) -> None:
    refuse_pipeline_presets(Path(__file__).resolve().parents[1] / "conf", tool, [arg])


@pytest.mark.parametrize(("resumes", "said"), [
    (True, "stopped by SIGTERM; checkpoints are kept: rerun the same command to resume"),
    (False, "stopped by SIGTERM; its earlier outputs are as they were: "
            "rerun the same command to start over"),
])  # fmt: skip
def test_a_fit_stopped_in_a_tool_that_does_not_resume_says_a_rerun_starts_over(
    resumes: bool, said: str, capsys, monkeypatch, python_signal_defaults: None
) -> None:
    """A benchmark stopped in its timed fit said "checkpoints are kept ... to resume": it
    keeps none, and its rerun times everything again."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from gan.callbacks import STOPPED_BY

    monkeypatch.setitem(STOPPED_BY, "signal", signal.SIGTERM)

    def stopped_by_lightning() -> None:
        raise SIGTERMException  # Lightning's stop of a fit on SIGTERM

    with pytest.raises(SystemExit) as stop:
        run_cli(stopped_by_lightning, resumes=resumes)
    assert stop.value.code == 143
    assert capsys.readouterr().err == said + "\n"


@pytest.fixture
def no_torch(tmp_path: Path) -> str:
    """A PYTHONPATH entry on which torch and Lightning fail to import."""
    for name in ("torch", "lightning"):
        (tmp_path / "blocked" / name).mkdir(parents=True)
        (tmp_path / "blocked" / name / "__init__.py").write_text("raise ImportError('loaded')")
    return f"{tmp_path / 'blocked'}{os.pathsep}{ROOT}"


def test_help_and_a_config_are_shown_before_torch_loads(no_torch: str, tmp_path: Path) -> None:
    """``--help`` and ``--cfg job`` took 6 s (torch and Lightning load first); they are
    Hydra's own answers, for the tool's config under its name, resolvers included."""
    proc = run_tool("evaluate", "--help", PYTHONPATH=no_torch)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Score a trained task checkpoint on real labeled images")
    assert "\npython tools/evaluate.py ckpt=" in proc.stdout  # the docstring's examples
    assert "\nsource: adapted, " in proc.stdout and "run_name: task_adapted" in proc.stdout
    root = f"paths.root_dir={tmp_path}"
    proc = run_tool("evaluate", "--cfg", "job", "--resolve", root, PYTHONPATH=no_torch)
    assert proc.returncode == 0, proc.stderr
    assert f"out_dir: {tmp_path}/outputs/eval/task_adapted\n" in proc.stdout  # models_name
    proc = run_tool("train_gan", "--cfg", "hydra", PYTHONPATH=no_torch)
    assert proc.returncode == 0 and "name: train_gan\n" in proc.stdout  # the job's name


@pytest.mark.parametrize("tool", ["soak_stops", "bench_synth"])  # soak loads torch: 4 s
def test_an_argparse_tools_help_shows_its_whole_docstring(tool: str) -> None:
    """As the Hydra tools' ``--help`` does: what it does and its example commands. It showed
    the docstring's first line alone, which cut soak_stops' first sentence at "and check"."""
    script = ROOT / "tools" / f"{tool}.py"
    proc = run_tool(tool, "--help")
    assert proc.returncode == 0, proc.stderr
    assert ast.get_docstring(ast.parse(script.read_text())) in proc.stdout


def test_check_data_and_render_run_without_torch(no_torch: str, tmp_path: Path) -> None:
    """Neither uses torch or Lightning, whose imports were four of check_data's five seconds:
    each runs, and says a bad input in its one line, where they cannot load."""
    root, data = f"paths.root_dir={tmp_path}", f"paths.data_dir={tmp_path / 'none'}"
    proc = run_tool("check_data", root, data, PYTHONPATH=no_torch)
    assert proc.stderr == f"error: {tmp_path}/none/train_img: image folder not found\n"
    assert proc.returncode == 1
    taken = tmp_path / "synthetic"
    taken.write_text("not a folder")
    proc = run_tool("render", root, f"out_dir={taken}", "num_samples=1", PYTHONPATH=no_torch)
    assert proc.returncode == 1 and proc.stderr.endswith(f"error: {taken}: File exists\n")


@pytest.mark.parametrize("asks", [
    ["--cfg", "hydra", "--resolve"],
    ["--cfg=hydra", "--resolve"],
    ["-chydra", "--re"],  # Hydra's parser reads both: -c's value attached, --resolve cut short
])  # fmt: skip
def test_the_hydra_config_resolved_says_where_a_run_writes(
    asks: list[str], tmp_path: Path, capsys, monkeypatch
) -> None:
    """``--cfg hydra --resolve`` (where will this run write its logs and Hydra's record?) was
    an InterpolationKeyError traceback: Hydra kept the hydra node alone before it resolved,
    and its run folder names ``paths.log_dir`` and ``run_name``. In this process: no tool
    start, no run."""
    args = [*asks, f"paths.log_dir={tmp_path}", "seed=2"]
    monkeypatch.setattr(sys, "argv", [str(ROOT / "tools" / "train_task.py"), *args])
    with pytest.raises(SystemExit) as stop:
        answer_config_questions(ROOT / "conf", "train_task", args)
    out = capsys.readouterr().out
    assert stop.value.code == 0
    run_dir = re.escape(f"hydra:\n  run:\n    dir: {tmp_path}/hydra/task_adapted-seed2/")
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.\d{3}_pid\d+\n"  # the run_stamp resolver's
    assert re.match(run_dir + stamp, out), out[:300]
    assert "\n  help:" not in out and "${" not in out  # Hydra's hydra node, all of it resolved
    assert "\n    subdir: ???\n" in out  # a sweep job's number: a run's alone, as --cfg all shows


def test_flags_that_do_not_go_together_are_hydras_words_in_one_line(no_torch: str) -> None:
    proc = run_tool("fda", "--cfg", "job", "-m", "beta=0.01,0.05", PYTHONPATH=no_torch)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be "
        "specified\n"
    )


def test_a_run_still_loads_the_tool(no_torch: str, tmp_path: Path) -> None:
    """Only a question is answered early: a run goes on to the tool (here, to its imports)."""
    proc = run_tool("evaluate", f"paths.root_dir={tmp_path}", PYTHONPATH=no_torch)
    assert proc.returncode == 1 and "ImportError: loaded" in proc.stderr


def test_a_dollar_in_a_tools_docstring_reaches_its_help_as_written(tmp_path: Path) -> None:
    """Hydra fills the help in as a string.Template: ``${paths.x}`` was a KeyError there."""
    script = tmp_path / "tool.py"
    script.write_text('"""Costs $5; out_dir=${paths.output_dir}/x."""\n')
    header = tool_help(script)
    assert string.Template(header).substitute() == "Costs $5; out_dir=${paths.output_dir}/x.\n"


@pytest.mark.parametrize(("tool", "arg", "said"), [
    ("pipeline", "stages.task.sedes=[0]",
     "no setting 'stages.task.sedes'; did you mean 'stages.task.seeds'?"),
    ("pipeline", "stages.tsak.seeds=[0]", "no setting 'stages.tsak'; did you mean 'stages.task'?"),
    ("pipeline", "stages.task.zzz=1", "no setting 'stages.task.zzz' under 'stages.task' "
     "(its settings: run_prefix, seeds, sources, trainer)"),
    ("pipeline", "task.seeds=[0]", "no setting 'task.seeds'; did you mean 'stages.task.seeds'"),
    ("pipeline", "gann=resnet", "no setting 'gann'; did you mean 'gan'?"),
    ("train_task", "logger.wandb.offline=false", "no setting 'logger.wandb': 'wandb' is an "
     "option of config group 'logger', not chosen (logger=wandb chooses it)"),
    ("train_task", "experment=full", "no setting 'experment'; did you mean 'experiment'?"),
    ("train_task", "zzz=1", "no setting 'zzz' (the settings and config groups: callbacks, "),
    ("pipeline", "experiment=ful",
     "no option 'ful' in config group 'experiment'; did you mean 'experiment=full'?"),
    ("pipeline", "gan=cyclegn",
     "no option 'cyclegn' in config group 'gan' (its options: light, resnet)"),
    ("pipeline", "hydra/launcher=slurm_job", "no option 'slurm_job' in config group "
     "'hydra/launcher'; did you mean 'hydra/launcher=slurm_jobs'?"),
])  # fmt: skip
def test_a_misspelt_setting_group_or_option_is_named_with_the_nearest(
    tool: str, arg: str, said: str
) -> None:
    """Hydra's answer to ``stages.task.sedes=[0]`` was six lines that advised
    ``+stages.task.sedes=[0]``, which adds a setting no code reads."""
    with pytest.raises(Exception) as failed:
        composed(tool, [arg])
    assert (misspelt_setting(failed.value, CONF_GROUPS) or "").startswith(said)


CONF_GROUPS = config_groups(ROOT / "conf")


def test_an_option_a_preset_names_is_said_with_the_presets_file(tmp_path: Path) -> None:
    """A preset's ``override /gan: lite`` was said as the command line's ``gan=lite``, with
    ``gan=light`` to type: the file to mend went unnamed (Hydra's words named the tool's
    config); the command line's own choice is still said as before."""
    from hydra import compose, initialize_config_dir

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    (conf / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /gan: lite  # light, misspelt\n"
    )
    with pytest.raises(Exception) as failed, initialize_config_dir(str(conf), version_base="1.3"):
        compose("train_gan", ["experiment=mine"])
    said = misspelt_setting(failed.value, CONF_GROUPS, conf, ["experiment=mine"])
    assert said == (
        "no option 'lite' in config group 'gan', named in conf/experiment/mine.yaml; "
        "did you mean 'gan: light'?"
    )
    typed = misspelt_setting(failed.value, CONF_GROUPS, conf, ["experiment=mine", "+gan=lite"])
    assert typed == "no option 'lite' in config group 'gan'; did you mean 'gan=light'?"


def test_other_composition_errors_are_left_to_hydra() -> None:
    for tool, arg in [
        ("train_task", "+seed=1"),  # set already
        ("train_task", "~nosuch"),  # nothing to delete
        ("train_task", "seed=[1"),  # no value
        ("render", "synth.crack.width={uniform:[3,6]}"),  # a mapping merged into a number
    ]:
        with pytest.raises(Exception) as failed:
            composed(tool, [arg])
        assert misspelt_setting(failed.value, CONF_GROUPS) is None, arg
    assert misspelt_setting(KeyError("stages.task.sedes"), CONF_GROUPS) is None


def test_hydras_error_report_says_a_misspelt_setting_in_one_line(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tool's (tools/_quiet_start.py): Hydra composes and runs inside its report, which
    says a misspelt setting in one line, exit 1, and any other error as before; and every
    error as before with ``HYDRA_FULL_ERROR=1``."""
    from hydra._internal import utils

    with pytest.raises(Exception) as failed:
        composed("train_task", ["trainer.max_stpes=3"])

    def fails(err: BaseException = failed.value) -> None:
        raise err

    monkeypatch.setattr(utils, "run_and_report", utils.run_and_report)  # put back after
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    say_misspelt_settings(ROOT / "conf")
    with pytest.raises(SystemExit) as stop:
        utils.run_and_report(fails)
    assert stop.value.code == 1
    said = "error: no setting 'trainer.max_stpes'; did you mean 'trainer.max_steps'?\n"
    assert capsys.readouterr().err == said
    with pytest.raises(SystemExit):
        utils.run_and_report(lambda: fails(ValueError("not a setting")))
    assert "ValueError: not a setting" in capsys.readouterr().err  # Hydra's own report
    assert utils.run_and_report(lambda: 3) == 3
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(type(failed.value)):
        utils.run_and_report(fails)
