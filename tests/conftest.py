from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import System, running_system


@pytest.fixture
async def system() -> AsyncIterator[System]:
    async with running_system() as running:
        yield running


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for the whole test session (skips only when it cannot be installed)."""
    from tests.postgres_support import postgres_bin, private_cluster

    if postgres_bin() is None:
        pytest.skip("PostgreSQL binaries are not installed and `make postgres` could not install them")
    with private_cluster() as url:
        yield url
