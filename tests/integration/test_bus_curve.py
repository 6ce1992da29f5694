"""ZeroMQ CURVE on a TCP bus, with real sockets: the authenticated path streams; a subscriber
without the keys (plain or with an unlisted key) reads nothing; a publisher without the server
key (plain, or CURVE with a key of its own) never reaches a client, whether it binds where a
proxy connects or connects to a forwarder's feed side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.bus import SEQ, run_forwarder
from openalgo_proxy.bus_curve import BusGuard, BusKeys, Role, secure_context
from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import Client, client, free_port, wait_for

FORGED_LTP = 1.23


@dataclass
class Keys:
    folder: Path
    stranger: Path  # a key folder of its own: a client key the bus does not list

    def settings(self, client_key: str = "proxy", folder: Path | None = None) -> BusSettings:
        return BusSettings(curve=True, keys_dir=str(folder or self.folder), client_key=client_key)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    bus = BusKeys(tmp_path / "bus-keys")
    bus.create_server()
    bus.add_client("proxy")
    bus.add_client("feed")
    stranger = BusKeys(tmp_path / "stranger")
    stranger.create_server()
    stranger.add_client("proxy")
    # the stranger knows the real server's public key (public keys are not secrets)
    (stranger.directory / "server.key").unlink()
    (stranger.directory / "server.key").write_bytes((bus.directory / "server.key").read_bytes())
    return Keys(bus.directory, stranger.directory)


@contextlib.contextmanager
def secured(settings: BusSettings, role: Role) -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    guard: BusGuard = secure_context(ctx, settings, role)
    try:
        yield ctx
    finally:
        guard.close()
        ctx.destroy(linger=0)


@contextlib.asynccontextmanager
async def proxy_on(ctx: zmq.Context[zmq.Socket[bytes]], endpoints: list[str]) -> AsyncIterator[ProxyServer]:
    server = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": endpoints}), ctx=ctx)
    await server.start()
    try:
        await wait_for(lambda: server.ready()[0], within=20)
        yield server
    finally:
        await server.stop(within=2.0)


@contextlib.asynccontextmanager
async def feed_on(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, *, connect: bool = False) -> AsyncIterator[Feed]:
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=20.0, seed=7))
    feed = Feed(adapter, endpoint, bus_connect=connect, status_interval=0.5, coalesce_window=0.005, ctx=ctx)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.stop()


async def _ticks_for(c: Client, seconds: float) -> list[dict[str, object]]:
    """Every RELIANCE tick the client gets during `seconds` (at least one must come)."""
    ticks = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        with contextlib.suppress(TimeoutError):
            ticks.append(await c.market_data(within=max(0.01, deadline - loop.time())))
    assert ticks, "the authenticated feed's ticks stopped"
    return ticks


def _forged_frames() -> list[list[bytes]]:
    data = {"symbol": "RELIANCE", "exchange": "NSE", "ltp": FORGED_LTP, "ltt": 0, "timestamp": "x"}
    return [[b"NSE|RELIANCE|1", SEQ.pack(2**52 + i), json.dumps(data).encode()] for i in range(20)] + [
        [b"#status|forged", SEQ.pack(1), b'{"broker":"forged","state":"connected"}']
    ]


class Forger:
    """A publisher in a thread, sending forged frames every 20 ms until stopped; counts the
    subscriptions it saw (a peer whose handshake failed never sends one)."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self.subscriptions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            for frames in _forged_frames():
                with contextlib.suppress(zmq.Again):
                    self.sock.send_multipart(frames, zmq.NOBLOCK)
            if self.sock.type == zmq.XPUB and poller.poll(20):
                with contextlib.suppress(zmq.Again):
                    while self.sock.recv(zmq.NOBLOCK):
                        self.subscriptions += 1
            else:
                self._stop.wait(0.02)

    def __enter__(self) -> Forger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(linger=0)


def _reads_anything(sock: zmq.Socket[bytes], within: float) -> bool:
    return bool(sock.poll(int(within * 1000), zmq.POLLIN))


async def test_only_key_holders_read_a_curve_bus(keys: Keys) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with secured(keys.settings(), Role.SERVER) as feed_ctx, secured(keys.settings(), Role.CLIENT) as proxy_ctx:
        async with (
            feed_on(feed_ctx, endpoint),
            proxy_on(proxy_ctx, [endpoint]) as proxy,
            client(f"ws://127.0.0.1:{proxy.port}") as c,
        ):
            reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success"
            await c.market_data(within=5)
            plain_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            with secured(keys.settings(folder=keys.stranger), Role.CLIENT) as stranger_ctx:
                eavesdroppers = [plain_ctx.socket(zmq.SUB), stranger_ctx.socket(zmq.SUB)]
                try:
                    for sock in eavesdroppers:
                        sock.setsockopt(zmq.SUBSCRIBE, b"")
                        sock.connect(endpoint)
                    reads = await asyncio.gather(
                        *(asyncio.to_thread(_reads_anything, sock, 1.5) for sock in eavesdroppers),
                        _ticks_for(c, 1.5),
                    )
                    assert reads[:2] == [False, False], "a subscriber without the bus keys read the bus"
                finally:
                    for sock in eavesdroppers:
                        sock.close(linger=0)
            plain_ctx.term()


async def test_a_publisher_without_the_server_key_never_reaches_a_client(keys: Keys) -> None:
    feed_endpoint = f"tcp://127.0.0.1:{free_port()}"
    plain_endpoint = f"tcp://127.0.0.1:{free_port()}"
    impostor_endpoint = f"tcp://127.0.0.1:{free_port()}"
    with (
        secured(keys.settings(), Role.SERVER) as feed_ctx,
        secured(keys.settings(), Role.CLIENT) as proxy_ctx,
        secured(keys.settings("proxy", folder=keys.stranger), Role.SERVER) as impostor_ctx,
    ):
        plain_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        plain = plain_ctx.socket(zmq.XPUB)
        plain.bind(plain_endpoint)
        impostor = impostor_ctx.socket(zmq.XPUB)  # CURVE, but with a server key of its own
        impostor.bind(impostor_endpoint)
        with Forger(plain) as forger_plain, Forger(impostor) as forger_impostor:
            async with (
                feed_on(feed_ctx, feed_endpoint),
                proxy_on(proxy_ctx, [feed_endpoint, plain_endpoint, impostor_endpoint]) as proxy,
                client(f"ws://127.0.0.1:{proxy.port}") as c,
            ):
                reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
                assert reply["status"] == "success"
                ticks = await _ticks_for(c, 2.0)
                forged = [t for t in ticks if t["data"]["ltp"] == FORGED_LTP]  # type: ignore[index]
                assert not forged, f"{len(forged)} forged ticks reached the client"
                assert "forged" not in proxy.feeds()
        assert forger_plain.subscriptions == 0 and forger_impostor.subscriptions == 0
        plain_ctx.term()


async def test_behind_a_curve_forwarder_only_listed_feeds_publish(keys: Keys) -> None:
    frontend = f"tcp://127.0.0.1:{free_port()}"
    backend = f"tcp://127.0.0.1:{free_port()}"
    forwarder_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    guard = secure_context(forwarder_ctx, keys.settings(), Role.SERVER)
    forwarder = threading.Thread(target=run_forwarder, args=(frontend, backend, forwarder_ctx), daemon=True)
    forwarder.start()
    plain_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    plain = plain_ctx.socket(zmq.PUB)  # a publisher without a client key, at the feeds' side
    plain.connect(frontend)
    try:
        with (
            secured(keys.settings("feed"), Role.CLIENT) as feed_ctx,
            secured(keys.settings(), Role.CLIENT) as proxy_ctx,
            Forger(plain),
        ):
            async with (
                feed_on(feed_ctx, frontend, connect=True),
                proxy_on(proxy_ctx, [backend]) as proxy,
                client(f"ws://127.0.0.1:{proxy.port}") as c,
            ):
                reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
                assert reply["status"] == "success"
                ticks = await _ticks_for(c, 2.0)
                assert not [t for t in ticks if t["data"]["ltp"] == FORGED_LTP]  # type: ignore[index]
                assert "forged" not in proxy.feeds()
    finally:
        plain_ctx.term()
        guard.close()
        forwarder_ctx.term()  # the forwarder's loop ends and closes its sockets
        forwarder.join(5)
