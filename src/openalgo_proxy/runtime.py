"""Running a component: the fastest event loop available and graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

STOP_WITHIN = 20.0  # seconds a component may take to stop before the process gives up on it


def run_until_signal(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    stop_within: float = STOP_WITHIN,
) -> int:
    """Start a component, wait for SIGINT or SIGTERM, stop it within a bound. Returns an exit code
    (1 if stopping overran the bound: the process exits anyway, so orchestrators never wait forever)."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await start()
        except BaseException:
            await _release(stop, stop_within)  # what did start is closed before the error is shown
            raise
        await stopping.wait()
        log.info("stopping")
        try:
            await asyncio.wait_for(stop(), stop_within)
        except TimeoutError:
            log.error("stop did not finish within %.0f s; exiting anyway", stop_within)
            return 1
        return 0

    return run(main())


async def _release(stop: Callable[[], Awaitable[None]], within: float) -> None:
    try:
        await asyncio.wait_for(stop(), within)
    except Exception:
        log.warning("cleaning up after a failed start failed", exc_info=True)


def run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
