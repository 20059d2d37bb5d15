"""Knob specs: every documented form samples in range; malformed specs name their key."""

from __future__ import annotations

import numpy as np
import pytest
from _synth_fixtures import SYNTH_CONF
from omegaconf import OmegaConf

from synth.distributions import ConfigError, Knobs, sample_value, validate
from synth.scene import plain_config


def draws(spec: object, n: int = 2000) -> list:
    rng = np.random.default_rng(0)
    return [sample_value(spec, rng, "k") for _ in range(n)]


def test_constants_pass_through() -> None:
    assert draws(0.3, 3) == [0.3] * 3
    assert draws("grey", 2) == ["grey"] * 2


@pytest.mark.parametrize(
    ("spec", "lo", "hi"),
    [
        ({"uniform": [2, 3]}, 2, 3),
        ({"loguniform": [0.01, 1]}, 0.01, 1),
        ({"randint": [1, 3]}, 1, 3),
    ],
)
def test_ranges(spec: dict, lo: float, hi: float) -> None:
    values = np.array(draws(spec))
    assert values.min() >= lo and values.max() <= hi


def test_randint_is_inclusive_and_loguniform_is_log_spread() -> None:
    assert set(draws({"randint": [1, 3]})) == {1, 2, 3}
    logs = np.log10(draws({"loguniform": [0.01, 1]}))
    assert abs(np.median(logs) + 1) < 0.1  # median of 10^U(-2, 0) is 0.1


def test_normal_and_choice_weights() -> None:
    values = np.array(draws({"normal": [5, 2]}))
    assert abs(values.mean() - 5) < 0.2 and abs(values.std() - 2) < 0.2
    picks = draws({"choice": ["a", "b"], "p": [0.9, 0.1]})
    assert 0.85 < picks.count("a") / len(picks) < 0.95


def test_choice_of_distributions_is_a_mixture() -> None:
    values = draws({"choice": [0.0, {"uniform": [5, 6]}], "p": [0.5, 0.5]})
    assert 0.0 in values and any(5 <= v <= 6 for v in values)


@pytest.mark.parametrize(
    "spec",
    [
        {"uniformm": [0, 1]},
        {"uniform": [0, 1], "p": [1]},
        {"uniform": [0]},
        {"loguniform": [0, 1]},
        {"choice": []},
        {"choice": ["a", "b"], "p": [1]},
        {"choice": ["a", "b"], "p": [-1, 2]},
    ],
)
def test_bad_specs_name_the_key(spec: dict) -> None:
    with pytest.raises(ConfigError, match=r"crack\.width"):
        sample_value(spec, np.random.default_rng(0), "crack.width")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"randint": [6, 3]}, r"'randint' needs \[a, b\] with a <= b, got \[6, 3\]"),
        ({"uniform": [2, "x"]}, r"'uniform' needs two numbers \[a, b\], got \[2, 'x'\]"),
        ({"normal": [0.5, -0.1]}, r"'normal' needs \[mean, std\] with std >= 0"),
        ({"uniform": [True, 2]}, r"'uniform' needs two numbers"),
    ],
)
def test_ranges_that_make_no_sense_are_one_line_naming_the_key(spec: dict, message: str) -> None:
    """They failed inside numpy (``low >= high``) or in a float conversion, as tracebacks."""
    with pytest.raises(ConfigError, match=rf"^crack\.width: {message}"):
        sample_value(spec, np.random.default_rng(0), "crack.width")
    assert sample_value({"randint": [3, 3]}, np.random.default_rng(0)) == 3  # a <= b holds


def test_an_unknown_tint_names_the_knob_and_the_tints() -> None:
    """A KeyError printed only ``error: purple``."""
    from synth.scene import render_crack_scene

    cfg = plain_config(OmegaConf.load(SYNTH_CONF))
    cfg["size"], cfg["surface"]["tint"] = 32, "purple"
    with pytest.raises(
        ConfigError, match=r"^synth\.surface\.tint: 'purple' is not one of \['grey'"
    ):
        render_crack_scene(cfg, 0, 0)


@pytest.mark.parametrize(("key", "value"), [("num_cracks", 0), ("width", -5)])
def test_a_crack_scene_that_would_draw_no_crack_is_one_line(key: str, value: float) -> None:
    """It rendered an empty mask recorded as ``has_crack: true``."""
    from synth.scene import render_crack_scene

    cfg = plain_config(OmegaConf.load(SYNTH_CONF))
    cfg["size"], cfg["p_no_crack"], cfg["crack"][key] = 32, 0.0, value
    with pytest.raises(ConfigError, match=rf"^synth\.crack: drew .*{key}={value}"):
        render_crack_scene(cfg, 0, 0)


def test_validate_walks_the_tree_and_default_config_is_valid() -> None:
    cfg = plain_config(OmegaConf.load(SYNTH_CONF))
    validate(cfg)
    cfg["crack"]["depth"] = {"gauss": [0, 1]}
    with pytest.raises(ConfigError, match=r"crack\.depth"):
        validate(cfg)


def test_knobs_record_draws_and_reject_missing_keys() -> None:
    knobs = Knobs({"a": {"uniform": [0, 1]}}, np.random.default_rng(0), "surface")
    value = knobs("a")
    assert knobs.drawn == {"surface.a": round(value, 5)}
    with pytest.raises(ConfigError, match=r"surface\.b"):
        knobs("b")
