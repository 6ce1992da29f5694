"""A 3-server NATS cluster on loopback (R3 buckets): the bus rides out a server crash.

- kill -9 of the server leading the lease bucket: ticks keep flowing, leadership does not change
  (a renewal that goes unanswered while the KV elects is not a conflict), the standby never takes over;
- kill -9 of the server a proxy is connected to: the proxy reconnects, asks for snapshots again, and
  no duplicate reaches a client (seq strictly rises).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.feed.lease import LeaderFeed
from openalgo_proxy.proxy.server import ProxyServer
from tests.integration.test_bus_contract import Bench
from tests.nats_support import NatsCluster, nats_cluster
from tests.support import client, wait_for

# timing: ticks may not stall past 1 s and the lease must survive a Raft election; CPU taken by other
# tests running beside them slows the election past the lease TTL (seen once in the parallel part)
pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timing, pytest.mark.timeout(90)]

SYMBOLS = ["SBIN", "INFY", "M&M", "RELIANCE"]


async def jetstream_ready(urls: list[str], within: float = 30.0) -> None:
    """The cluster elected its JetStream meta leader (bucket creation works)."""
    nc = await nats.connect(urls, connect_timeout=2)
    try:
        deadline = time.monotonic() + within
        while True:
            try:
                await nc.jetstream(timeout=1).account_info()
                return
            except (nats.errors.Error, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def stream_leader(urls: list[str], stream: str) -> str:
    nc = await nats.connect(urls, connect_timeout=2)
    try:
        info = await nc.jetstream(timeout=2).stream_info(stream)
        assert info.cluster is not None and info.cluster.leader
        return str(info.cluster.leader)
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def fleet(tmp: Path) -> AsyncIterator[tuple[NatsCluster, LeaderFeed, LeaderFeed, ProxyServer]]:
    with nats_cluster(tmp, size=3) as cluster:
        await jetstream_ready(cluster.urls)
        bus = BusSettings.model_validate(
            {"engine": "nats", "urls": cluster.urls, "lease_ttl": 2.0, "proxy_ttl": 6.0, "replicas": 3}
        )
        bench = Bench("nats", tmp)
        active = LeaderFeed(bench.make_feed, "simulator", bus)
        await active.start()
        await wait_for(lambda: active.feed is not None, within=15)
        standby = LeaderFeed(bench.make_feed, "simulator", bus)
        await standby.start()
        server = ProxyServer(ProxySettings.model_validate({"port": 0}), bus=bus)
        await server.start()
        try:
            await wait_for(lambda: server.ready()[0], within=15)
            yield cluster, active, standby, server
        finally:
            await server.stop(within=1.0)
            await standby.stop()
            await active.stop()


async def collect(c: Any, seconds: float) -> list[tuple[float, dict[str, Any]]]:
    got: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            got.append((time.monotonic(), await c.market_data(within=min(left, 0.5))))
    return got


def assert_no_duplicates(messages: list[dict[str, Any]]) -> None:
    last: dict[str, int] = {}
    for msg in messages:
        assert msg["seq"] > last.get(msg["symbol"], 0), f"duplicate or old frame reached the client: {msg}"
        last[msg["symbol"]] = msg["seq"]


async def subscribe_all(c: Any) -> None:
    request = {"action": "subscribe", "symbols": [{"symbol": s, "exchange": "NSE"} for s in SYMBOLS], "mode": 1}
    assert (await c.reply(request))["status"] == "success"
    await c.market_data(within=5)


async def test_kv_leader_crash_keeps_ticks_and_leadership(tmp_path: Path) -> None:
    async with fleet(tmp_path) as (cluster, active, standby, server), client(f"ws://127.0.0.1:{server.port}") as c:
        await subscribe_all(c)
        run = server.nats.leases.by_broker["simulator"]
        leader_name = await stream_leader(cluster.urls, "KV_oa_leader")
        victim = next(s for s in cluster.servers if s.name == leader_name)
        victim.kill()
        got = await collect(c, 9.0)  # a Raft election takes 4-9 s; KV writes wait for it
        times = [t for t, _ in got]
        assert times, "no ticks after the KV leader crashed"
        worst = max(b - a for a, b in itertools.pairwise(times))
        assert worst < 1.0, f"ticks stalled {worst:.2f} s"
        assert_no_duplicates([m for _, m in got])
        assert active.feed is not None and active.lost == 0 and active.takeovers == 1
        assert standby.feed is None and standby.takeovers == 0
        assert server.nats.leases.by_broker.get("simulator") == run


async def test_proxy_server_crash_reconnects_and_resnapshots_without_duplicates(tmp_path: Path) -> None:
    async with fleet(tmp_path) as (cluster, active, standby, server), client(f"ws://127.0.0.1:{server.port}") as c:
        await subscribe_all(c)
        before = await collect(c, 0.5)
        reader = server.nats.reader  # the proxy's data connection: its frames come through this server
        assert reader is not None and reader.url
        requests = server.nats.snapshot_requests
        victim = next(s for s in cluster.servers if s.url == reader.url)
        victim.kill()
        await wait_for(lambda: server.nats.reconnects >= 1, within=10)
        await wait_for(lambda: server.nats.snapshot_requests > requests, within=10)
        after = await collect(c, 2.0)
        assert after, "no ticks after the proxy reconnected"
        assert_no_duplicates([m for _, m in before + after])
        assert {m["symbol"] for _, m in after} == set(SYMBOLS)
        assert active.lost == 0 and standby.takeovers == 0
