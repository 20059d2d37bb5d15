"""The pipeline's rows: which exist, what each trains on and which stages it needs.

A row is one choice of the task model's training data ('synthetic', 'adapted', 'oracle', ...),
scored on the real test set and shown as one line of the report. Everything here reads the
config only, so a typo in a row, seed or goal fails before any work is done.
"""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from synth.distributions import ConfigError, is_count

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
SOURCES = (
    "synthetic",
    "randomized",
    "adapted",
    "adapted_randomized",
    "mixed",
    "fda",
    "selftrained",
    "oracle",
)
NEEDS_ADAPTED = ("adapted", "adapted_randomized", "mixed")  # train on the GAN's translations
NEEDS_FDA = ("fda",)  # train on the spectral swap's translations
# zero-label rows that can teach (selftrained cannot teach itself; oracle saw real labels)
TEACHERS = tuple(s for s in SOURCES if s not in ("selftrained", "oracle"))
# rows that train nothing: 'testtime' scores the source-only row's model on test photos sent
# through the GAN's real-to-synthetic generator
TEST_TIME_ROWS = {"testtime": "synthetic"}
ROWS = (*SOURCES, *TEST_TIME_ROWS)
LISTS = ("ours", "baselines")  # stages.report.goal's lists of rows


def derive(cfg: DictConfig, overrides: dict | DictConfig) -> DictConfig:
    """A stage's config: the pipeline config with that stage's overrides merged in."""
    stage = copy.deepcopy(cfg)
    with open_dict(stage):
        return OmegaConf.merge(stage, overrides)  # type: ignore[return-value]


def source_overrides(name: str) -> DictConfig:
    """conf/source/<name>.yaml: what makes a task run 'synthetic', 'adapted', ... ."""
    path = CONF_DIR / "source" / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"stages.task.sources: unknown source {name!r} (no {path})")
    return OmegaConf.load(path)


def scored(cfg: DictConfig) -> bool:
    """Whether the rows are scored: the test photos have labels (``task_data.test_lab``).
    Without them (the product's user, with unlabeled photos alone) each row segments the
    photos instead, and the report shows its masks with no score."""
    from gan.task_data import has_labels

    return has_labels(cfg.task_data.get("test_lab"))


def scored_or_segmented(cfg: DictConfig) -> str:
    """How the lines of a row name what follows its training: a row without test labels
    had been 'scored again' in the log and 'scored' in the report."""
    return "scored" if scored(cfg) else "segmented"


def checked_sources(cfg: DictConfig) -> list[str]:
    """stages.task.sources, refused before any work when empty or naming an unknown row."""
    sources = list(cfg.stages.task.sources)
    unknown = [s for s in sources if s not in ROWS]
    if unknown or not sources:
        what = f"unknown {unknown}" if unknown else "no row"
        raise KeyError(f"stages.task.sources: {what}; choose from {list(ROWS)}")
    return sources


def training_row(cfg: DictConfig, source: str) -> str:
    """The row whose training data ``source`` trains on ('selftrained': its teacher's)."""
    return teacher_of(cfg) if source == "selftrained" else source


def needs_adapted(cfg: DictConfig, source: str) -> bool:
    return training_row(cfg, source) in NEEDS_ADAPTED


def needs_gan(cfg: DictConfig, source: str) -> bool:
    """A row that needs the GAN trained: on its translated scenes, or (testtime) its
    real-to-synthetic generator in front of a model at test time."""
    return needs_adapted(cfg, source) or source in TEST_TIME_ROWS


def needs_fda(cfg: DictConfig, source: str) -> bool:
    return training_row(cfg, source) in NEEDS_FDA


def needs_render(cfg: DictConfig, source: str) -> bool:
    """Every row but the oracle trains on rendered scenes (or, 'testtime', scores a model that
    did), so a run of the oracle alone renders nothing."""
    return training_row(cfg, source) != "oracle"


def teacher_of(cfg: DictConfig) -> str:
    """The row whose models label the real photos for 'selftrained' (its band checked too)."""
    from gan.pseudo_label import check_band

    check_band(cfg.stages.self_train.low, cfg.stages.self_train.high)
    repeats = cfg.stages.self_train.photo_repeats
    if not is_count(repeats, 1):
        raise ConfigError(
            f"stages.self_train.photo_repeats={repeats!r}: a whole number >= 1 (how many times "
            "the pseudo-labeled photos are pooled with the teacher's training data)"
        )
    teacher = cfg.stages.self_train.teacher
    if teacher not in TEACHERS:
        raise ConfigError(
            f"stages.self_train.teacher={teacher!r}: choose a zero-label row {list(TEACHERS)}"
        )
    return teacher


def report_goal(cfg: DictConfig) -> dict:
    """stages.report.goal as goal_checks' arguments, checked before any work is done, so a
    typo costs seconds rather than a finished run's report."""
    goal = OmegaConf.to_container(cfg.stages.report.goal)
    expected = {"ours", "baselines", "reference", "min_gain", "min_share"}
    if not isinstance(goal, dict) or set(goal) != expected:
        raise ConfigError(f"stages.report.goal: expected the keys {sorted(expected)}, got {goal}")
    unknown = [s for s in [*goal["ours"], *goal["baselines"], goal["reference"]] if s not in ROWS]
    if unknown:
        raise ConfigError(f"stages.report.goal: unknown rows {unknown}; choose from {list(ROWS)}")
    for key in ("min_gain", "min_share"):  # compared only once every row is trained
        value = goal[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"stages.report.goal.{key}={value!r}: expected a number, e.g. 0.05")
    return goal


def task_seeds(cfg: DictConfig) -> list[int]:
    """stages.task.seeds (null: the config's seed): distinct whole numbers, one model each."""
    seeds = cfg.stages.task.get("seeds")
    if seeds is None:
        return [int(cfg.seed)]
    if isinstance(seeds, (str, int)) or not seeds or not all(is_count(s, 0) for s in seeds):
        raise ConfigError(
            f"stages.task.seeds={seeds}: expected a list of whole numbers >= 0, e.g. [0,1,2]"
        )
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"stages.task.seeds={seeds}: seeds must be distinct")
    return seeds
