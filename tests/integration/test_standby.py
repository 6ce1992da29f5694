"""Two standby feeds for one account behind a real forwarder (in this process, real sockets):
exactly one ends up holding the account, the other holds nothing upstream, the holder serves the
wanted set it learned from the forwarder, and its metrics port reports it; of two holders the
younger steps down."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.bus import run_forwarder
from openalgo_proxy.feed import Feed
from openalgo_proxy.feed.metrics import FeedMetricsServer
from openalgo_proxy.feed.standby import StandbyFeed
from tests.ops_support import scrape
from tests.support import free_port, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def forwarder() -> AsyncIterator[tuple[str, str]]:
    frontend, backend = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    thread = threading.Thread(target=run_forwarder, args=(frontend, backend, ctx), daemon=True)
    thread.start()
    try:
        yield frontend, backend
    finally:
        ctx.term()  # ends zmq.proxy; the forwarder closes its sockets
        thread.join(5)
        assert not thread.is_alive()


def _factory(frontend: str, ctx: zmq.Context[zmq.Socket[bytes]], seed: int) -> Callable[[], Feed]:
    def make() -> Feed:
        adapter = SimulatedAdapter(FeedOptions(ticks_per_second=20, seed=seed))
        return Feed(adapter, frontend, bus_connect=True, status_interval=0.2, coalesce_window=0.005, ctx=ctx)

    return make


async def test_two_standbys_settle_on_one_holder(forwarder: tuple[str, str]) -> None:
    frontend, backend = forwarder
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    # a consumer on the proxy side wants one topic, as a proxy would
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(backend)
    sub.setsockopt(zmq.SUBSCRIBE, b"NSE|RELIANCE|1")
    standbys = [
        StandbyFeed(_factory(frontend, ctx, seed), "simulator", [backend], takeover_after=0.5, ctx=ctx)
        for seed in (1, 2)
    ]
    servers = [FeedMetricsServer("127.0.0.1", 0, "simulator", s.current, lambda s=s: s.takeovers) for s in standbys]
    try:
        for server, standby in zip(servers, standbys, strict=True):
            await server.start()
            await standby.start()
        # both start passive, and nobody holds the account: one takes over, and only one stays
        await wait_for(lambda: any(s.feed is not None for s in standbys), within=5)
        settled_since = time.monotonic()
        deadline = time.monotonic() + 10
        while time.monotonic() - settled_since < 2.0:  # exactly one holder for 2 s in a row
            if sum(s.feed is not None for s in standbys) != 1:
                settled_since = time.monotonic()
            assert time.monotonic() < deadline, "the two standbys did not settle on one holder"
            await asyncio.sleep(0.05)
        (holder,) = [s for s in standbys if s.feed is not None]
        (passive,) = [s for s in standbys if s.feed is None]
        assert holder.feed is not None
        await wait_for(lambda: holder.feed is not None and bool(holder.feed.upstream), within=5)
        assert {inst.symbol for inst in holder.feed.upstream} == {"RELIANCE"}
        # ticks reach the proxy side from the holder
        assert await asyncio.wait_for(asyncio.to_thread(sub.poll, 5000), 6) == zmq.POLLIN
        topic, _, data = sub.recv_multipart()
        assert topic == b"NSE|RELIANCE|1" and b'"ltp"' in data

        holder_metrics = await scrape(servers[standbys.index(holder)].port)
        passive_metrics = await scrape(servers[standbys.index(passive)].port)
        label = "{broker=simulator}"
        assert holder_metrics[f"openalgo_proxy_feed_active{label}"] == 1
        assert holder_metrics[f"openalgo_proxy_feed_upstream_subscriptions{label}"] == 1
        assert holder_metrics[f"openalgo_proxy_feed_topics{label}"] == 1
        assert holder_metrics[f"openalgo_proxy_feed_ticks_received_total{label}"] > 0
        assert holder_metrics[f"openalgo_proxy_feed_messages_published_total{label}"] > 0
        assert 0 <= holder_metrics[f"openalgo_proxy_feed_last_tick_age_seconds{label}"] < 2
        assert holder_metrics["openalgo_proxy_feed_broker_state{broker=simulator,state=connected}"] == 1
        assert passive_metrics[f"openalgo_proxy_feed_active{label}"] == 0
        assert passive_metrics[f"openalgo_proxy_feed_upstream_connections{label}"] == 0
        assert passive_metrics[f"openalgo_proxy_feed_broker_connected{label}"] == 0

        # force a conflict: the passive one takes over too; being the younger holder, it steps down
        # within about one status interval and the original holder keeps the account throughout
        first_holder, before = holder.feed, passive.takeovers
        await passive.take_over()
        assert passive.feed is not None
        await wait_for(lambda: passive.feed is None, within=3)
        assert holder.feed is first_holder
        assert passive.takeovers == before + 1
    finally:
        for standby in standbys:
            await standby.stop()
        for server in servers:
            await server.stop()
        sub.close(linger=0)
        ctx.term()
