"""Every entry-point config composes, and the presets nobody runs on CPU (the ``full``
experiment, the GPU trainers) still build the modules they name: a renamed argument or a
missing preset fails here, not hours into a user's GPU job."""

from __future__ import annotations

import copy
import os
import re
import shlex
from datetime import datetime, timedelta
from pathlib import Path

import hydra.core.utils
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import gan.resolvers
from gan.cli import register_resolvers
from gan.cyclegan import SemanticCycleGAN
from gan.rows import SOURCES, derive, source_overrides
from gan.task import CrackSegmenter
from synth.scene import plain_config, render_crack_scene
from synth.stats import compute_stats, texture_level

CONF = Path(__file__).resolve().parents[1] / "conf"
ENTRY_POINTS = sorted(p.stem for p in CONF.glob("*.yaml"))
register_resolvers()


def composed(name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def test_every_tool_has_its_config() -> None:
    tools = {p.stem for p in (CONF.parent / "tools").glob("*.py")}
    assert set(ENTRY_POINTS) <= tools, "a config in conf/ with no tool to run it"
    assert {"pipeline", "train_gan", "train_task", "evaluate", "predict"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_config_composes_and_resolves(name: str) -> None:
    cfg = composed(name)
    if "paths" in cfg:  # the benchmarks make their own data
        assert cfg.paths.data_dir, "paths.data_dir must be set by default"
    # every interpolation resolves (hydra's own are set only inside a run)
    OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_tool_that_takes_paths_checks_its_run_folder_before_hydra_makes_it(
    name: str,
) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(name, return_hydra_config=True)
    checks = [c._target_ for c in cfg.hydra.callbacks.values()]
    assert checks == (["gan.cli.HydraStartChecks"] if "paths" in cfg else [])


class StoppedClock(datetime):
    """A clock that reads one instant, ``at``, for a test of two runs started together."""

    at = datetime(2025, 6, 1, 12, 30, 5, 123456)

    @classmethod
    def now(cls, tz: object = None) -> datetime:
        return cls.at


def folders(cfg: DictConfig, pid: int, monkeypatch: pytest.MonkeyPatch) -> list:
    """A tool's run and sweep folders as the process ``pid`` resolves them from ``cfg``."""
    monkeypatch.setattr(os, "getpid", lambda: pid)
    return [OmegaConf.select(cfg, f"hydra.{mode}.dir") for mode in ("run", "sweep")]


def hydra_block(name: str) -> DictConfig:
    """A tool's own ``hydra:`` block, beside the settings its folders are named by (composing
    all sixteen tools took 2-3 s; no config group sets a Hydra folder)."""
    block = OmegaConf.load(CONF / f"{name}.yaml").hydra
    return OmegaConf.create({"paths": {"log_dir": "/logs"}, "run_name": "r", "hydra": block})


def test_two_runs_started_together_get_folders_of_their_own(monkeypatch) -> None:
    """``for s in 0 1; do train_task seed=$s & done`` (one run name: the seed goes in
    ``run_name`` only past 0) started both in one second, and ``${now:...}`` gave them one
    Hydra folder: one's .hydra record replaced the other's, their logs interleaved. Two
    processes at one instant (both clocks stopped: Hydra's ``now`` and ours; each its own
    config, as each process composes its own) differ, run and sweep folders alike, each under
    ``paths.log_dir`` and named by the time first. Within one config the folder stays at every
    resolution, however late, in a copy, and in a sweep job's config (Hydra composes it anew
    and copies the launching config's cache in; under submitit, in another process)."""
    monkeypatch.setattr(gan.resolvers, "datetime", StoppedClock)
    monkeypatch.setattr(hydra.core.utils, "datetime", StoppedClock)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg, job = (compose("train_task", return_hydra_config=True) for _ in range(2))
    first = folders(cfg, 4242, monkeypatch)
    later = StoppedClock.at + timedelta(seconds=1)
    monkeypatch.setattr(StoppedClock, "at", later)  # resolved later, in another process
    OmegaConf.copy_cache(from_config=cfg, to_config=job)  # as Hydra's load_sweep_config
    for again in (cfg, copy.deepcopy(cfg), job):
        assert folders(again, 5151, monkeypatch) == first
    tools = [n for n in ENTRY_POINTS if "${" in str(OmegaConf.load(CONF / f"{n}.yaml").hydra)]
    assert {"train_task", "evaluate", "pipeline"} <= set(tools)
    for name in tools:
        monkeypatch.setattr(StoppedClock, "at", datetime(2025, 6, 1, 12, 30, 5, 123456))
        one, other = (
            folders(hydra_block(name), 4242, monkeypatch),
            folders(hydra_block(name), 4243, monkeypatch),
        )
        assert None not in one, f"{name}: no sweep folder of its own (Hydra's: ./multirun/)"
        assert one[0] != other[0] and one[1] != other[1], (name, one, other)
        for folder in one:
            assert folder.startswith("/logs/hydra/"), (name, folder)
            assert Path(folder).name.startswith("2025-06-01_12-30-05"), (name, folder)


@pytest.mark.parametrize("value", ["", "/my/photos"])
def test_an_empty_data_dir_variable_means_the_default_folder(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SIM2REAL_DATA_DIR=`` left in a shell is unset, as ``${VAR:-default}`` reads it; the
    data folder was ``/train_img``'s parent, the file system's root."""
    monkeypatch.setenv("SIM2REAL_DATA_DIR", value)
    monkeypatch.setenv("SIM2REAL_OUTPUT_DIR", "")
    paths = OmegaConf.to_container(composed("check_data").paths, resolve=True)
    assert paths["data_dir"] == (value or "./../shared/data/deepcrack")
    assert paths["output_dir"] == "./outputs"


def test_each_seed_of_a_training_tool_is_its_own_run() -> None:
    """``seed=0,1`` (a sweep, the README's SLURM example) gave both jobs one checkpoint folder,
    and the second seed resumed the first's model."""
    names = {
        (tool, seed): composed(tool, f"seed={seed}").run_name
        for tool in ("train_task", "train_gan")
        for seed in (0, 1)
    }
    assert names == {
        ("train_task", 0): "task_adapted",
        ("train_task", 1): "task_adapted-seed1",
        ("train_gan", 0): "adapt",
        ("train_gan", 1): "adapt-seed1",
    }
    assert composed("train_task", "seed=2", "source=oracle").out_dir.endswith(
        "runs/task_oracle-seed2"
    )


@pytest.mark.parametrize(
    ("tool", "sub"), [("evaluate", "eval"), ("predict", "predict"), ("export", "export")]
)
def test_what_a_model_makes_goes_to_a_folder_named_by_the_model(tool: str, sub: str) -> None:
    """Named by run_name alone, the oracle's scores were replaced by the source-only model's
    under "task_adapted"; a model behind a generator makes other masks again."""

    def out_dir(*overrides: str) -> str:
        return str(composed(tool, "paths.output_dir=/o", *overrides).out_dir)

    assert out_dir() == f"/o/{sub}/task_adapted"
    assert out_dir("ckpt=/c/pipeline-task-oracle/last.ckpt") == f"/o/{sub}/pipeline-task-oracle"
    assert (
        out_dir(
            "ckpt='/c/st0-task-synthetic/epoch=1-step=20.ckpt'",
            "translate_with=/c/sa5-adapt/last.ckpt",
        )
        == f"/o/{sub}/st0-task-synthetic-epoch=1-step=20+sa5-adapt"
    )
    if tool == "evaluate":  # AdaBN's scores replaced the plain model's in its folder
        adabn = out_dir("ckpt=/c/t/last.ckpt", "recalibrate_bn_on=/d/train_img/")
        assert adabn == f"/o/{sub}/t+adabn-train_img"


@pytest.mark.parametrize("tool", ["evaluate", "predict", "export"])
def test_a_checkpoint_beside_the_user_is_named_by_its_folder(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ckpt=last.ckpt`` (the user in the run's folder) had a folder of no name: out_dir was
    ``outputs/<tool's>/`` itself, shared by every such model, and ``ckpt=../last.ckpt``
    made it ``outputs/``."""
    run = tmp_path / "pipeline-task-oracle"
    (run / "sub").mkdir(parents=True)
    sub = {"evaluate": "eval"}.get(tool, tool)

    def out_dir(ckpt: str) -> str:
        return str(composed(tool, "paths.output_dir=/o", f"ckpt={ckpt}").out_dir)

    monkeypatch.chdir(run)
    assert out_dir("last.ckpt") == f"/o/{sub}/pipeline-task-oracle"
    assert out_dir("./best.ckpt") == f"/o/{sub}/pipeline-task-oracle-best"
    monkeypatch.chdir(run / "sub")
    assert out_dir("../last.ckpt") == f"/o/{sub}/pipeline-task-oracle"


def test_full_experiment_builds_the_reference_generator_at_256_px() -> None:
    cfg = composed("pipeline", "experiment=full", "trainer=gpu")
    assert (cfg.gan_data.crop_size, cfg.task_data.crop_size) == (256, 256)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    adapt = derive(cfg, {"trainer": cfg.stages.adapt.trainer})
    assert adapt.trainer.max_steps == 40000 and adapt.trainer.accelerator == "gpu"

    gan = instantiate(cfg.gan)
    assert isinstance(gan, SemanticCycleGAN)
    assert gan.hparams.generator["kind"] == "resnet" and gan.hparams.generator["blocks"] == 9
    with torch.no_grad():
        assert gan.g_ab(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_the_gan_lr_schedule_follows_its_step_budget() -> None:
    """Decay to zero at the last GAN step, whatever the budget; at the default 800 steps the
    values every recorded generator was trained with (600 + 200), so none is retrained."""
    for overrides, expected in [
        ((), (600, 200)),
        (("stages.adapt.trainer.max_steps=2400",), (1800, 600)),
        (("experiment=full",), (20000, 20000)),
        # full's schedule was fixed: 10000 steps never decayed
        (("experiment=full", "stages.adapt.trainer.max_steps=10000"), (5000, 5000)),
    ]:
        gan = composed("pipeline", *overrides).gan
        assert (gan.decay_start_step, gan.decay_steps) == expected, overrides
    gan = composed("train_gan", "trainer.max_steps=300").gan
    assert (gan.decay_start_step, gan.decay_steps) == (150, 150)


def test_the_pipeline_knows_every_source_config_and_no_other() -> None:
    assert sorted(SOURCES) == sorted(p.stem for p in (CONF / "source").glob("*.yaml"))


@pytest.mark.parametrize("source", sorted(p.stem for p in (CONF / "source").glob("*.yaml")))
def test_every_task_source_builds_under_the_full_experiment(source: str) -> None:
    cfg = derive(composed("pipeline", "experiment=full"), source_overrides(source))
    assert cfg.source_name == source
    assert isinstance(instantiate(cfg.task), CrackSegmenter)
    data = instantiate(cfg.task_data)
    assert data.crop_size == 256


def preset_scenes(synth_preset: str, count: int, size: int) -> list:
    """The first ``count`` scenes (seed 0) of a ``synth`` preset, rendered at ``size`` px."""
    cfg = plain_config(composed("pipeline", f"synth={synth_preset}").synth)
    cfg["size"] = size
    return [render_crack_scene(cfg, 0, i) for i in range(count)]


def scene_texture(synth_preset: str, count: int = 12, size: int = 64) -> np.ndarray:
    """Texture level of each of ``count`` scenes (seed 0) under a ``synth`` preset."""
    return np.array([texture_level(s.image) for s in preset_scenes(synth_preset, count, size)])


def test_texture_presets_draw_the_same_scenes_smoother() -> None:
    # synth=roughest / rough / medium / smooth scale flat_rims' fine-texture ranges only (1.4x,
    # 1/1.4, 1/1.96, 0.31x), so each (seed, index) draws the same scene with stronger or
    # fainter grain: each preset must read rougher or smoother than the one before.
    flat = scene_texture("flat_rims")
    assert (scene_texture("roughest") > flat).all()
    rough, medium, smooth = (scene_texture(p) / flat for p in ("rough", "medium", "smooth"))
    assert (rough < 1).all() and 0.7 < np.median(rough) < 0.9
    assert (medium < rough).all() and 0.55 < np.median(medium) < 0.75
    assert (smooth < medium).all() and 0.4 < np.median(smooth) < 0.6


def synth_section(preset: str) -> dict:
    """The crack knobs of a ``synth`` preset that shape its section (depth, rim fade)."""
    crack = composed("pipeline", f"synth={preset}").synth.crack
    return {"depth": crack.depth, "edge_fade": crack.edge_fade}


def test_the_default_draws_the_photos_v_shaped_section_and_flat_rims_the_old_one() -> None:
    # the photos read 0.596, flat_rims 0.797 on 300 full-size scenes (README)
    ratios = {}
    for preset in ("flat_rims", "default"):
        scenes = preset_scenes(preset, count=16, size=128)
        ratios[preset] = compute_stats((s.image, s.semantic) for s in scenes)["rim / core darkness"]
    assert ratios["default"] < 0.8 * ratios["flat_rims"], ratios


@pytest.mark.parametrize("preset", ["roughest", "rough", "medium", "smooth"])
def test_texture_presets_keep_the_flat_section_their_figures_were_measured_with(
    preset: str,
) -> None:
    assert synth_section(preset) == synth_section("flat_rims") != synth_section("default")


def test_soft_rims_names_the_default_so_sessions_24_to_30_commands_draw_the_same_scenes() -> None:
    assert composed("pipeline", "synth=soft_rims").synth == composed("pipeline").synth


def test_the_main_job_runs_the_goal_rows_and_leaves_self_training_to_the_benchmarks() -> None:
    # self-training costs the main job ~4 min and scores below its teacher at 400 steps
    assert list(composed("pipeline").stages.task.sources) == [
        "synthetic",
        "randomized",
        "adapted",
        "testtime",
        "oracle",
    ]
    tiny = composed("pipeline", "experiment=tiny_pipeline").stages.task.sources
    assert "selftrained" in tiny and set(composed("pipeline").stages.task.sources) < set(tiny)


def test_the_cpu_benchmark_experiment_runs_every_row_on_three_seeds_for_4800_steps() -> None:
    cfg = composed("pipeline", "experiment=sim2real_cpu")
    stage = cfg.stages.task
    assert sorted(stage.sources) == sorted(
        ["synthetic", "randomized", "adapted", "testtime", "selftrained", "oracle"]
    )
    assert list(stage.seeds) == [0, 1, 2] and stage.trainer.max_steps == 4800
    assert cfg.stages.self_train.teacher == "synthetic"
    assert cfg.stages.self_train.photo_repeats == 2
    assert cfg.paths.output_dir.endswith("outputs/sim2real")
    assert cfg.stages.adapt.trainer.max_steps == composed("pipeline").stages.adapt.trainer.max_steps


def test_the_label_free_experiment_segments_the_training_photos_in_folders_of_its_own() -> None:
    from gan.rows import scored

    cfg = composed("pipeline", "experiment=label_free", "paths.data_dir=/my/photos")
    assert not scored(cfg) and cfg.task_data.test_img == "/my/photos/train_img"
    assert "oracle" not in cfg.stages.task.sources  # it needs labels
    assert cfg.paths.output_dir.endswith("/outputs/label_free") and cfg.run_name == "label_free"


@pytest.mark.parametrize("experiment", ["full", "sim2real_cpu", "label_free"])
def test_the_outputs_variable_moves_an_experiments_outputs_too(monkeypatch, experiment) -> None:
    """The experiments wrote under ./outputs whatever SIM2REAL_OUTPUT_DIR said; it now holds
    their own subfolders."""
    from gan.cli import register_resolvers

    register_resolvers()
    monkeypatch.setenv("SIM2REAL_OUTPUT_DIR", "/data/runs")
    out = composed("pipeline", f"experiment={experiment}").paths.output_dir
    assert out == "/data/runs/" + {"sim2real_cpu": "sim2real"}.get(experiment, experiment)


@pytest.mark.parametrize("name", ["pipeline", "train_gan", "train_task"])
def test_a_misspelt_experiment_is_refused_with_the_choices_not_run_as_the_default(
    name: str,
) -> None:
    """``experiment=sim2real_cpuu`` must not quietly run the 20-minute default in place of
    the 5-hour table."""
    with pytest.raises(Exception, match=r"Could not find 'experiment/sim2real_cpuu'") as err:
        composed(name, "experiment=sim2real_cpuu")
    assert "sim2real_cpu" in str(err.value).split("Available options")[1]


def readme_config_groups() -> dict[str, set[str]]:
    """The README's "Config groups" table: each group's options, without their notes."""
    readme = (CONF.parent / "README.md").read_text()
    table = readme.split("## Config groups (`conf/`)")[1].split("\n## ")[0]
    groups = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        options = re.sub(r"\([^()]*(\([^()]*\)[^()]*)*\)", "", cells[1])  # notes, nested once
        groups[cells[0].strip("`")] = {o.strip() for o in options.split(",")}
    return groups


def conf_leaves(node: object) -> list[tuple[str, object]]:
    """(key, value) of every setting in a config file's YAML, at any depth."""
    if isinstance(node, list):
        return [leaf for item in node for leaf in conf_leaves(item)]
    if not isinstance(node, dict):
        return []
    return [
        leaf
        for key, value in node.items()
        for leaf in ([(key, value)] if not isinstance(value, dict | list) else conf_leaves(value))
    ]


def test_every_yes_no_setting_in_conf_is_checked_as_one() -> None:
    """gan.cli refuses a yes/no setting holding anything but true, false or null by its name
    (overlay=maybe counted as true): a new flag in conf/ must be named there, and a name there
    must hold nothing else in any config (that setting's words would be refused)."""
    import yaml

    from gan.cli import YES_NO_SETTINGS

    takes_a_word_too = {"save_last", "log_model"}  # 'link', 'all'
    leaves = [leaf for f in CONF.rglob("*.yaml") for leaf in conf_leaves(yaml.safe_load(f.open()))]
    flags = {key for key, value in leaves if isinstance(value, bool)}
    assert flags - takes_a_word_too <= YES_NO_SETTINGS
    others = {
        key
        for key, value in leaves
        if not isinstance(value, bool) and value is not None and "${" not in str(value)
    }
    assert not others & YES_NO_SETTINGS


@pytest.mark.parametrize(
    ("tool", "setting"),
    [
        ("preview", "overlay=maybe"),
        ("compare_runs", "average_seeds=2"),
        ("pipeline", "stages.translate.measure.enabled=sometimes"),
        ("train_task", "+trainer.enable_progress_bar=maybe"),
    ],
)
def test_a_yes_no_setting_given_another_value_is_one_line(tool, setting, capsys) -> None:
    """Only yes/no words (``no``, ``off``) were refused; any other word counted as true
    (``overlay=maybe`` drew overlays), before any work."""
    from _cli_fixtures import tool_exit_code

    assert tool_exit_code(tool, setting) == 1
    key, value = setting.lstrip("+").split("=")
    expected = f"error: {key}={value if value.isdigit() else repr(value)}: expected true or false"
    assert capsys.readouterr().err.strip() == expected


def test_the_readme_lists_every_option_of_every_config_group() -> None:
    """A preset added to conf/ without a word in the README went unseen (``source=fda``)."""
    groups = readme_config_groups()
    on_disk = {p.name for p in CONF.iterdir() if p.is_dir()} | {"hydra/launcher"}
    assert set(groups) == on_disk - {"hydra"}
    for group, options in groups.items():
        assert options == {p.stem for p in (CONF / group).glob("*.yaml")}, group


#: Where the README's commands are: each line of a fenced block, or an inline code span
#: (which may wrap onto the next line); then ``python tools/<tool>.py`` and its arguments in it.
README_SNIPPET = re.compile(r"^```\w*\n(?P<block>.*?)^```|`(?P<span>[^`]+)`", re.S | re.M)
README_COMMAND = re.compile(r"python tools/(\w+)\.py(.*)")


def readme_commands() -> list[tuple[int, str, list[str]]]:
    """The README's set-up section and its "Stages and commands" table as a user copies them:
    (line, tool, overrides) for each ``python tools/<tool>.py ...`` of a Hydra tool (one with
    ``conf/<tool>.yaml``). Overrides are the arguments as the shell splits them (quotes,
    ``# comments``), up to an ``&&``; placeholders such as ``ckpt=...`` stay as written,
    Hydra reads them as values."""
    readme = (CONF.parent / "README.md").read_text()
    start = readme.index("## Set-up")
    commands = []
    for snippet in README_SNIPPET.finditer(readme, start, readme.index("## Config groups")):
        line = readme.count("\n", 0, snippet.start()) + 1
        if snippet["block"] is not None:
            texts = [(line + 1 + n, text) for n, text in enumerate(snippet["block"].splitlines())]
        else:
            texts = [(line, snippet["span"].replace("\n", " "))]
        for at, text in texts:
            found = README_COMMAND.search(text)
            if found is None or not (CONF / f"{found[1]}.yaml").is_file():
                continue
            args = shlex.split(found[2], comments=True)
            commands.append((at, found[1], args[: args.index("&&")] if "&&" in args else args))
    return commands


def test_the_readme_commands_are_found() -> None:
    """The extraction itself: a README reworded past its regex must not pass on no commands."""
    commands = readme_commands()
    assert {"pipeline", "check_data", "predict", "train_task", "evaluate"} <= {
        tool for _, tool, _ in commands
    }
    assert len(commands) >= 25
    every_args = [args for _, _, args in commands]
    assert ["ckpt=...", "input_dir=photos/"] in every_args  # a table row
    # the set-up's predict command, whose backticks wrap onto a second and third line
    assert any("input_dir=/my/new_photos" in args for args in every_args)


@pytest.mark.parametrize(
    ("line", "tool", "overrides"),
    readme_commands(),
    ids=[f"README.md:{line}-{tool}" for line, tool, _ in readme_commands()],
)
def test_every_readme_command_composes(line: int, tool: str, overrides: list[str]) -> None:
    """A key renamed in conf/ left the README's commands failing in Hydra's words for the user
    who copied them; here it fails the tests, naming the README line."""
    try:
        OmegaConf.to_container(composed(tool, *overrides), resolve=True)
    except Exception as err:
        said = str(err).splitlines()[0]  # Hydra's first line: "Could not override 'x'."
        pytest.fail(f"README.md:{line}: python tools/{tool}.py {' '.join(overrides)}: {said}")
