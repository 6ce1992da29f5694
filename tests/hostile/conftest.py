"""Every hostile test also requires that nothing reached the logs as an error or a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    bad = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not bad, "errors or tracebacks logged: " + "; ".join(f"{r.name}: {r.getMessage()[:200]}" for r in bad[:5])
