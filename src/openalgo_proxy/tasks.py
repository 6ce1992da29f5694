"""Stopping background tasks: the one way this package cancels a task and waits for it to end."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task (None skipped) and wait until all have ended.

    The tasks' own CancelledError is absorbed; an exception a task ended with is logged, not
    lost. If the caller itself is cancelled while waiting, that cancellation propagates (unlike
    ``with suppress(CancelledError): await task``, which would swallow it).
    """
    waiting = [task for task in tasks if task is not None]
    if not waiting:
        return
    for task in waiting:
        task.cancel()
    await asyncio.wait(waiting)
    for task in waiting:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s ended with an error while being stopped", _name(task), exc_info=exc)


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
