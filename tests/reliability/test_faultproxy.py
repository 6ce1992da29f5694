"""The fault proxy itself, against a loopback echo server: every switch does what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.reliability.faultproxy import Direction, FaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def fp() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy("127.0.0.1", port) as proxy:
        yield proxy
    server.close()
    await server.wait_closed()


async def _open(fp: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", fp.port)


async def test_forwards_both_ways_and_counts(fp: FaultProxy) -> None:
    reader, writer = await _open(fp)
    writer.write(b"hello")
    assert await asyncio.wait_for(reader.readexactly(5), 2) == b"hello"
    assert fp.bytes_up == 5 and fp.bytes_down == 5 and fp.accepted == 1
    writer.close()


def test_refuses_non_loopback_targets() -> None:
    for host in ("10.0.0.1", "8.8.8.8", "192.168.1.1"):
        with pytest.raises(ValueError, match="loopback"):
            FaultProxy(host, 80)


async def test_latency_is_added(fp: FaultProxy) -> None:
    fp.faults.latency = 0.15
    reader, writer = await _open(fp)
    started = time.monotonic()
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 3)
    assert time.monotonic() - started >= 0.3  # once each way
    writer.close()


async def test_bandwidth_cap(fp: FaultProxy) -> None:
    fp.faults.bandwidth = 20_000
    reader, writer = await _open(fp)
    started = time.monotonic()
    writer.write(bytes(10_000))
    await asyncio.wait_for(reader.readexactly(10_000), 5)
    assert time.monotonic() - started >= 0.4  # 10 kB at 20 kB/s, at least once
    writer.close()


@pytest.mark.parametrize("switch", ["blackhole", "mute_down", "mute_up"])
async def test_silence_switches_keep_the_socket_open_but_forward_nothing(fp: FaultProxy, switch: str) -> None:
    reader, writer = await _open(fp)
    writer.write(b"a")
    await asyncio.wait_for(reader.readexactly(1), 2)
    if switch == "blackhole":
        fp.faults.blackhole = True
    else:
        fp.faults.mute = Direction.DOWN if switch == "mute_down" else Direction.UP
    writer.write(b"b")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    assert not reader.at_eof() and fp.live == 1
    fp.faults.clear()
    writer.write(b"c")
    # a muted reply was read and discarded: only the new one arrives
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"c"
    writer.close()


async def test_blackhole_accepts_new_connections_silently(fp: FaultProxy) -> None:
    fp.faults.blackhole = True
    reader, writer = await _open(fp)
    writer.write(b"ping")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    assert fp.accepted == 1 and fp.bytes_up == 0
    writer.close()


async def test_reset_on_accept_and_reset_all(fp: FaultProxy) -> None:
    fp.faults.reset = True
    reader, writer = await _open(fp)
    with pytest.raises(ConnectionResetError):
        writer.write(b"x")
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(1), 2)
    fp.faults.reset = False
    reader, writer = await _open(fp)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 2)
    assert fp.reset_all() == 1
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 2)


async def test_cut_after_n_bytes(fp: FaultProxy) -> None:
    fp.faults.cut_after = 100
    reader, writer = await _open(fp)
    writer.write(bytes(40))
    await asyncio.wait_for(reader.readexactly(40), 2)  # 80 bytes forwarded, both ways
    writer.write(bytes(40))
    got = b""
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        while True:
            got += await asyncio.wait_for(reader.readexactly(1), 2)
    assert len(got) < 40
    assert fp.bytes_up + fp.bytes_down <= 100
