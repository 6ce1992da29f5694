"""Log volume: one line per connection event, nothing per health check from the WebSocket library."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.support import client, running_system


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_health_checks_and_connections_are_not_logged_twice(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_system() as system:
        for path in ("/healthz", "/readyz", "/healthz"):
            assert b" 200 " in (await _get(system.proxy.port, path)).split(b"\r\n", 1)[0]
        async with client(system.url) as c:
            await c.reply({"action": "ping"})
        await asyncio.sleep(0)  # the close is logged by the server side
    wire = [r for r in caplog.records if r.name.endswith(".wire") and r.levelno < logging.WARNING]
    assert wire == [], [r.getMessage() for r in wire]
