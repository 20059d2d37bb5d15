"""Fixtures shared by the test modules."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


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
