"""Domain-randomization knobs: every simulator parameter is a small distribution spec.

A config value is one of::

    0.3                          constant (numbers, strings, booleans, lists are returned as-is)
    {uniform: [a, b]}            float uniform in [a, b)
    {loguniform: [a, b]}         float whose log is uniform (scale-like knobs: widths, densities)
    {normal: [mu, sigma]}        Gaussian
    {choice: [x, y, ...], p: [...]}   one element, optional probabilities (default uniform)
    {randint: [a, b]}            integer in [a, b], both ends inclusive

Options of ``choice`` may be distributions themselves, which gives mixtures such as
``{choice: [0.0, {uniform: [0.02, 0.08]}], p: [0.7, 0.3]}`` (off 70 % of the time).

Keeping the form in YAML (instead of code) lets a user widen or pin any knob from the command
line, e.g. ``synth.crack.width=4`` or ``'synth.crack.meander={uniform:[0.1,0.2]}'`` (the same
form); another form replaces the old one once it is removed,
``'~synth.crack.width' '+synth.crack.width={uniform:[3,6]}'`` (Hydra merges a mapping into
the old one, and refused ``synth.crack.width={uniform:[3,6]}`` over a ``choice``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

FORMS = ("uniform", "loguniform", "normal", "choice", "randint")


class ConfigError(ValueError):
    """A config value that composes but makes no sense (a malformed knob distribution, a bad
    seed list); the message names the key, and the CLIs print it in one line."""


def is_number(value: object, whole: bool = False) -> bool:
    """A number (a whole one with ``whole``) as YAML gives it: ``true`` is no number."""
    return isinstance(value, int if whole else int | float) and not isinstance(value, bool)


def is_count(value: object, least: int) -> bool:
    return is_number(value, whole=True) and value >= least


def checked_count(value: int, key: str, least: int = 1) -> int:
    """A whole-number setting of at least ``least`` (a batch size, a crop, a worker count)."""
    if not is_count(value, least):
        raise ConfigError(f"{key}={value!r}: expected a whole number >= {least}")
    return int(value)


def _pair(spec: Any, key: str, form: str) -> tuple[float, float]:
    """Two numbers; a range's low end first, a normal's spread not negative (``[6, 3]`` failed
    inside numpy as ``low >= high``, ``[2, x]`` as a float conversion, both with a traceback)."""
    numbers = isinstance(spec, list | tuple) and len(spec) == 2
    numbers = numbers and all(is_number(v) for v in spec)
    if not numbers:
        raise ConfigError(f"{key}: '{form}' needs two numbers [a, b], got {spec!r}")
    a, b = float(spec[0]), float(spec[1])
    if form == "normal" and b < 0:
        raise ConfigError(f"{key}: 'normal' needs [mean, std] with std >= 0, got {spec!r}")
    if form != "normal" and a > b:
        raise ConfigError(f"{key}: '{form}' needs [a, b] with a <= b, got {spec!r}")
    return a, b


def sample_value(value: Any, rng: np.random.Generator, key: str = "<value>") -> Any:
    """Draw one value from a knob spec (see module docstring); constants pass through."""
    if not isinstance(value, Mapping):
        return value
    form = _form(value, key)
    spec = value[form]
    if form == "choice":
        # An option may itself be a distribution (a mixture), e.g. {choice: [0, {uniform: ..}]}.
        return sample_value(_choice(spec, value.get("p"), rng, key), rng, key)
    a, b = _pair(spec, key, form)
    if form == "uniform":
        return a + (b - a) * float(rng.random())
    if form == "normal":
        return float(rng.normal(a, b))
    if form == "randint":
        return int(rng.integers(int(a), int(b) + 1))
    if a <= 0 or b <= 0:
        raise ConfigError(f"{key}: loguniform bounds must be positive, got [{a}, {b}]")
    return float(np.exp(np.log(a) + (np.log(b) - np.log(a)) * rng.random()))


def _form(value: Mapping, key: str) -> str:
    """The single distribution name of a mapping spec, or a ConfigError naming ``key``."""
    if len(value) == 1:
        form = next(iter(value))
        if form in FORMS:
            return form
    elif len(value) == 2 and "choice" in value and "p" in value:
        return "choice"
    raise ConfigError(
        f"{key}: unknown distribution {dict(value)!r}; use a number or one of "
        f"{{uniform|loguniform|normal|randint: [a, b]}} or {{choice: [...], p: [...]}}"
    )


def _choice(options: Any, p: Any, rng: np.random.Generator, key: str) -> Any:
    """One option; plain-Python cumulative sampling (rng.choice with p costs ~20 us a call)."""
    if not isinstance(options, list | tuple) or not options:
        raise ConfigError(f"{key}: 'choice' needs a non-empty list, got {options!r}")
    if p is None:
        return options[int(rng.integers(len(options)))]
    if (
        not isinstance(p, list | tuple)
        or len(p) != len(options)
        or any(not isinstance(w, int | float) or w < 0 for w in p)
        or sum(p) <= 0
    ):
        raise ConfigError(f"{key}: 'p' must be {len(options)} non-negative weights, got {p!r}")
    u = float(rng.random()) * sum(p)
    for option, weight in zip(options, p):
        u -= weight
        if u < 0:
            return option
    return options[-1]


def is_spec(value: Any) -> bool:
    """Whether a mapping is a distribution spec (vs. a config section of knobs).

    A one-key mapping with a non-mapping value is a spec even when the key is unknown, so a
    typo such as ``{gauss: [0, 1]}`` errors instead of passing as a section.
    """
    if not isinstance(value, Mapping):
        return False
    if any(f in value for f in (*FORMS, "p")):
        return True
    return len(value) == 1 and not isinstance(next(iter(value.values())), Mapping)


def validate(tree: Mapping, prefix: str = "") -> None:
    """Check every knob of a config tree parses, so a typo fails before rendering starts."""
    rng = np.random.default_rng(0)
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and not is_spec(value):
            validate(value, prefix=f"{key}.")
        else:
            sample_value(value, rng, key)


def support(value: Any) -> list[tuple[float, float]]:
    """The ranges a knob's draws fall in (a normal's within four spreads of its mean), one per
    option of a choice; none for words and flags."""
    if isinstance(value, bool) or not isinstance(value, int | float | Mapping):
        return []
    if not isinstance(value, Mapping):
        return [(float(value), float(value))]
    form = _form(value, "<value>")
    if form == "choice":
        return [r for option in value["choice"] for r in support(option)]
    a, b = _pair(value[form], "<value>", form)
    return [(a - 4 * b, a + 4 * b)] if form == "normal" else [(a, b)]


def options(value: Any) -> list[tuple[str, Any]]:
    """What a knob can draw, one entry per constant or range: ``("value", 3)`` for a
    constant (a choice's options included), ``(form, spec)`` for a range."""
    if not isinstance(value, Mapping):
        return [("value", value)]
    form = _form(value, "<value>")
    if form == "choice":
        return [o for option in value["choice"] for o in options(option)]
    return [(form, value[form])]


#: What a bound says of a knob's draws, for the message: (least, most, least allowed itself).
Bounds = tuple[float, float, bool]


def check_bounds(tree: Mapping, bounds: Mapping[str, Bounds], prefix: str = "") -> None:
    """Every knob named in ``bounds`` (dotted, under ``prefix``) drawn only within them."""
    for key, (least, most, inclusive) in bounds.items():
        node: Any = tree
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        for low, high in support(node):
            if (low < least if inclusive else low <= least) or high > most:
                span = f"{'>=' if inclusive else '>'} {least:g}"
                if most < float("inf"):  # "from 0 to 32" read as if 0 itself were taken
                    span = f"from {least:g} to {most:g}" if inclusive else f"{span} and <= {most:g}"
                raise ConfigError(f"{prefix}{key}={node!r}: its draws must be {span}")


class Knobs:
    """Samples knobs of one config section and records what it drew (for sample metadata)."""

    def __init__(self, section: Mapping, rng: np.random.Generator, prefix: str) -> None:
        self.section = section
        self.rng = rng
        self.prefix = prefix
        self.drawn: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        key = f"{self.prefix}.{name}"
        if name not in self.section:
            raise ConfigError(f"{key}: missing from the simulator config")
        value = sample_value(self.section[name], self.rng, key)
        self.drawn[key] = round(value, 5) if isinstance(value, float) else value
        return value
