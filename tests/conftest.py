from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import System, running_system


@pytest.fixture
async def system() -> AsyncIterator[System]:
    async with running_system() as running:
        yield running
