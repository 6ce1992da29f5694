"""Stopping background tasks: the one way this package cancels a task and waits for it to end."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task still running (None and finished ones skipped) and wait until all have ended.

    Their CancelledError is absorbed; an exception one of them ends with while being stopped is
    logged, not lost. A task that had already finished is left as it is: whoever awaits it sees its
    result. If the caller itself is cancelled while waiting, that cancellation propagates (unlike
    ``with suppress(CancelledError): await task``, which would swallow it).
    """
    running = [task for task in tasks if task is not None and not task.done()]
    if not running:
        return
    for task in running:
        task.cancel()
    await asyncio.wait(running)
    for task in running:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s ended with an error while being stopped", _name(task), exc_info=exc)


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
