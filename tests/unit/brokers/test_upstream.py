"""The upstream connection shell against a tiny loopback broker: sync, resubscribe, stall, heartbeats,
credential refresh, malformed input, and no credential in any log record."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from openalgo_proxy.brokers.base import Backoff, ConnectionState
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from tests.support import wait_for


@dataclass
class FakeBroker:
    """Accepts `?token=good`; keeps each connection's subscription set; `silent` stops heartbeats."""

    token: str = "good"
    heartbeat: float = 0.05
    silent: bool = False
    sets: list[set[str]] = field(default_factory=list)
    connections: list[ServerConnection] = field(default_factory=list)
    refused: int = 0
    server: Server | None = None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if f"token={self.token}" not in request.path:
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad token\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        subs: set[str] = set()
        self.sets.append(subs)
        self.connections.append(ws)

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.heartbeat)
                if not self.silent:
                    await ws.send("hb")

        task = asyncio.create_task(beat())
        try:
            async for message in ws:
                request = json.loads(message)
                subs.difference_update(request.get("unsub", []))
                subs.update(request.get("sub", []))
                for key in request.get("sub", []):
                    await ws.send(key.encode())
        finally:
            task.cancel()

    def drop_all(self) -> None:
        for ws in self.connections:
            ws.transport.abort()
        self.connections.clear()


class FakeUpstream(UpstreamConnection[str, int]):
    def __init__(self, url: str, token: str, stall_timeout: float) -> None:
        # no protocol pings: the fake server answers them even when `silent`
        super().__init__(
            "fake[0]", Settings(stall_timeout=stall_timeout, ping_interval=None), Backoff(0.01, 0.05, 0.05)
        )
        self.url, self.token = url, token
        self.received: list[str] = []
        self.refreshes = 0

    async def handshake(self) -> Handshake:
        return Handshake(f"{self.url}/?token={self.token}")

    def requests(self, sent: Mapping[str, int], wanted: Mapping[str, int]) -> list[Frame]:
        sub = sorted(k for k in wanted if k not in sent)
        unsub = sorted(k for k in sent if k not in wanted)
        return [json.dumps({"sub": sub, "unsub": unsub})] if sub or unsub else []

    def is_heartbeat(self, message: Frame) -> bool:
        return message == "hb"

    def on_message(self, message: Frame) -> None:
        if not isinstance(message, bytes) or not message.isalpha():
            raise ValueError(f"bad message {message!r}")
        self.received.append(message.decode())

    async def refresh_credentials(self) -> None:
        self.refreshes += 1
        self.token = "good"


@pytest.fixture
async def broker() -> AsyncIterator[tuple[FakeBroker, str]]:
    fake = FakeBroker()
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        fake.server = server
        port = next(iter(server.sockets)).getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}"


async def test_sync_then_exact_resubscribe_after_a_drop(broker: tuple[FakeBroker, str]) -> None:
    fake, url = broker
    conn = FakeUpstream(url, "good", stall_timeout=2.0)
    conn.set_wanted({"AA": 1, "BB": 1})
    conn.start()
    try:
        await wait_for(lambda: fake.sets and fake.sets[-1] == {"AA", "BB"})
        conn.set_wanted({"BB": 1, "CC": 1})
        await wait_for(lambda: fake.sets[-1] == {"BB", "CC"})
        assert conn.state is ConnectionState.CONNECTED and conn.sent == {"BB": 1, "CC": 1}
        fake.drop_all()
        await wait_for(lambda: len(fake.sets) == 2 and fake.sets[-1] == {"BB", "CC"})
        assert conn.reconnects == 1 and "CC" in conn.received
    finally:
        await conn.stop()
    assert conn.state is ConnectionState.CLOSED


async def test_a_task_cancelled_while_it_stops_a_connection_ends_cancelled(broker: tuple[FakeBroker, str]) -> None:
    """The feed's sync task closes pooled connections inside `set_wanted`; when the feed stops it
    cancels that task, which must then end, not swallow the cancellation and wait forever."""
    _, url = broker
    conn = FakeUpstream(url, "good", stall_timeout=2.0)
    conn.set_wanted({"AA": 1})
    conn.start()
    await wait_for(lambda: conn.state is ConnectionState.CONNECTED)
    more_work = asyncio.Event()

    async def sync_loop() -> None:
        await conn.stop()
        await more_work.wait()  # a sync loop waits for the next change

    sync = asyncio.create_task(sync_loop())
    await asyncio.sleep(0)  # `sync` is now awaiting the connection's task inside stop()
    sync.cancel()
    await asyncio.wait([sync], timeout=5.0)
    more_work.set()  # lets a task that swallowed the cancellation finish, so nothing is left behind
    assert sync.done() and sync.cancelled(), "the cancellation was swallowed by stop()"
    assert conn.state is ConnectionState.CLOSED


async def test_heartbeats_are_liveness_and_silence_is_a_stall(broker: tuple[FakeBroker, str]) -> None:
    fake, url = broker
    conn = FakeUpstream(url, "good", stall_timeout=0.3)
    conn.set_wanted({"AA": 1})
    conn.start()
    try:
        await wait_for(lambda: conn.heartbeats >= 15, within=5.0)  # ~2.5 stall timeouts of heartbeats only
        assert conn.stalls == 0 and conn.connects == 1
        fake.silent = True
        await wait_for(lambda: conn.stalls >= 1 and conn.connects >= 2, within=5.0)
        fake.silent = False
        await wait_for(lambda: fake.sets[-1] == {"AA"} and conn.state is ConnectionState.CONNECTED)
    finally:
        await conn.stop()


async def test_refused_credentials_are_refreshed_and_never_logged(
    broker: tuple[FakeBroker, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = broker
    caplog.set_level(logging.DEBUG)
    conn = FakeUpstream(url, "s3cr3t-expired", stall_timeout=2.0)
    conn.set_wanted({"AA": 1})
    conn.start()
    try:
        await wait_for(lambda: conn.state is ConnectionState.CONNECTED)
        assert fake.refused == 1 and conn.refreshes == 1
    finally:
        await conn.stop()
    # the client's records only (the fake server logs its own request line)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("openalgo_proxy"))
    assert "HTTP 401" in text and "s3cr3t" not in text and "token=good" not in text


async def test_malformed_input_is_counted_and_survived(broker: tuple[FakeBroker, str]) -> None:
    fake, url = broker
    conn = FakeUpstream(url, "good", stall_timeout=2.0)
    conn.set_wanted({"AA": 1})
    conn.start()
    try:
        await wait_for(lambda: "AA" in conn.received)
        await fake.connections[-1].send(b"\x00\xff")
        await fake.connections[-1].send("not json either")
        await wait_for(lambda: conn.decode_errors == 2)
        conn.set_wanted({"AA": 1, "BB": 1})
        await wait_for(lambda: "BB" in conn.received)
        assert conn.connects == 1
    finally:
        await conn.stop()
