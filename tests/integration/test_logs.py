"""Log volume: one line per connection event, nothing per health check from the WebSocket library."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.support import client, running_system, wait_for


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
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
        await wait_for(lambda: any(" closed code=" in r.getMessage() for r in caplog.records))
    wire = [r for r in caplog.records if r.name.endswith(".wire") and r.levelno < logging.WARNING]
    assert wire == [], [r.getMessage() for r in wire]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert sum(" open path=" in line for line in lines) == 1  # one line per connection event
    assert sum(" closed code=" in line for line in lines) == 1


async def test_each_http_request_is_one_debug_access_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="openalgo_proxy")
    async with running_system() as system:
        caplog.clear()
        await _get(system.proxy.port, "/healthz?token=secret")
        await _get(system.proxy.port, "/nope")
        await asyncio.sleep(0)
    access = [r for r in caplog.records if r.getMessage().startswith("http ")]
    assert [r.levelno for r in access] == [logging.DEBUG, logging.DEBUG]
    first, second = (r.getMessage() for r in access)
    assert first.startswith("http 127.0.0.1:") and first.endswith(" GET /healthz 200"), first
    assert second.endswith(" GET /nope 404") and "secret" not in first
    info = [r for r in caplog.records if r.levelno >= logging.INFO and "proxy" in r.name]
    assert all("healthz" not in r.getMessage() for r in info)
