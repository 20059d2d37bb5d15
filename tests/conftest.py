"""Fixtures shared by the test modules."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import rich

import synth.processes


@pytest.fixture
def python_signal_defaults() -> Iterator[None]:
    """Ctrl-C's and SIGTERM's handlers as Python sets them, for a test that sends itself
    signals; the session's own handlers are back after it."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def checkout_entries() -> set[Path]:
    """What a test could leave in the checkout: checkpoints/'s entries, logs/'s, and the
    run folders of Hydra's ``logs/hydra/<tool>/<time>_pid<N>`` (two levels, not a walk of logs/)."""
    root = Path(__file__).resolve().parents[1]
    found: set[Path] = set()
    for pattern in ("checkpoints/*", "logs/*", "logs/hydra/*/*"):
        found.update(root.glob(pattern))
    return found


@pytest.fixture(autouse=True)
def leaves_the_checkout_alone(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test writes under its tmp_path, never into the checkout's checkpoints/ (a Trainer
    without ``default_root_dir`` saved Lightning's own ``epoch=1-step=20.ckpt`` there on every
    run, kept by the ignore rules) or logs/ (a tool run without a ``paths.log_dir`` or
    ``paths.root_dir`` left Hydra's run folder there, eight a CI run)."""
    before = checkout_entries()
    yield
    after = checkout_entries()
    assert not after - before, f"{request.node.name} wrote {sorted(map(str, after - before))}"


@pytest.fixture(autouse=True)
def no_cpu_quota(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """In the test process, ``usable_cpus`` reads no cgroup CPU quota (a tree with nothing in
    it): the tests that fake an affinity of 2 or 3 CPUs expect that count on a CI machine
    limited by a quota too. Tools the tests start as processes read the machine's own."""
    empty = tmp_path_factory.getbasetemp() / "no-cgroups"
    monkeypatch.setattr(synth.processes, "CGROUP_ROOT", empty)


@pytest.fixture(autouse=True)
def own_rich_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own rich console: Lightning's RichProgressBar reconfigures rich's global
    one in place (``rich.reconfigure``), and a test that gave it ``file=StringIO()`` with
    ``force_terminal`` left every later progress bar in the process redirecting stderr into
    that test's buffer (a stall line said under ``gan.evaluate.batches`` went there)."""
    monkeypatch.setattr(rich, "_console", None)
