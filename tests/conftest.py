from __future__ import annotations

from collections.abc import AsyncIterator, Generator

import pytest

from tests.skip_summary import summary
from tests.support import System, running_system


@pytest.fixture
async def system() -> AsyncIterator[System]:
    async with running_system() as running:
        yield running


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after pytest's own short summary
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """Close the run with what did not run for lack of a system tool and the command enabling it."""
    yield
    reasons = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reasons.append(str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr))
    lines = summary(reasons)
    if lines:
        terminalreporter.section("not run on this machine", yellow=True, bold=True)
        for line in lines:
            terminalreporter.line(line, yellow=True)
