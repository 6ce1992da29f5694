"""The one task-cancel helper."""

from __future__ import annotations

import asyncio
import logging

import pytest

from openalgo_proxy.tasks import cancel_and_wait


async def test_cancels_and_waits_for_every_task() -> None:
    ended: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    tasks = [asyncio.create_task(worker(n)) for n in "ab"]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks, None)
    assert sorted(ended) == ["a", "b"] and all(t.cancelled() for t in tasks)
    await cancel_and_wait()  # nothing to do


async def test_an_error_while_stopping_is_logged_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="openalgo_proxy.tasks"):
        await cancel_and_wait(task)
    assert "stubborn" in caplog.text and "cleanup failed" in caplog.text


async def test_a_finished_task_keeps_its_result() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fails())
    await asyncio.wait([task])
    await cancel_and_wait(task)
    with pytest.raises(ValueError, match="boom"):
        await task


async def test_the_callers_own_cancellation_propagates() -> None:
    stopping, release = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopping.set()
            await release.wait()

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.wait_for(stopping.wait(), 2)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, 2)
    release.set()
    await asyncio.wait_for(asyncio.wait([inner]), 2)
