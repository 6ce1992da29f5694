from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from tests.skip_summary import summary
from tests.support import System, running_system


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (each pytest-xdist worker too) gets its own runtime directory: the default
    ipc:// bus of every `openalgo-proxy` it starts is then its own, never another worker's, another
    test run's or an installation's on this machine."""
    runtime = tempfile.mkdtemp(prefix="openalgo-proxy-tests-")  # mode 0700, as the bus directory needs
    os.environ["XDG_RUNTIME_DIR"] = runtime
    config.add_cleanup(lambda: shutil.rmtree(runtime, ignore_errors=True))


@pytest.fixture
async def system() -> AsyncIterator[System]:
    async with running_system() as running:
        yield running


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for the whole test session (skips only when it cannot be installed)."""
    from tests.postgres_support import postgres_bin, private_cluster

    if postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries (make postgres installs them)")
    with private_cluster() as url:
        yield url


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
