"""The shipped NATS users and permissions (deploy/nats/auth.conf) on a real nats-server: a feed and a
proxy work with their own credentials; a proxy's credentials cannot publish a tick or hold a lease;
no credentials, no connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import nats.errors
import pytest

from openalgo_proxy.bus_nats import BusEngineError, connect
from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.feed.lease import LeaderFeed
from openalgo_proxy.proxy.server import ProxyServer
from tests.integration.test_bus_contract import Bench
from tests.nats_support import nats_cluster
from tests.support import client, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


def settings(urls: list[str], user: str | None, password: str | None) -> BusSettings:
    values = {"engine": "nats", "urls": urls, "lease_ttl": 1.0, "proxy_ttl": 1.0}
    if user is not None:
        values |= {"user": user, "password": password}
    return BusSettings.model_validate(values)


async def test_feed_and_proxy_work_with_their_credentials_and_a_proxy_cannot_publish(tmp_path: Path) -> None:
    with nats_cluster(tmp_path, auth=True) as cluster:
        feed_bus = settings(cluster.urls, "feed", "feed-secret")
        proxy_bus = settings(cluster.urls, "proxy", "proxy-secret")
        bench = Bench("nats", tmp_path)
        leader = LeaderFeed(bench.make_feed, "simulator", feed_bus)
        await leader.start()
        server = ProxyServer(ProxySettings.model_validate({"port": 0}), bus=proxy_bus)
        await server.start()
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        forger = await nats.connect(cluster.urls, user="proxy", password="proxy-secret", error_cb=on_error)
        try:
            await wait_for(lambda: server.ready()[0], within=10)
            async with client(f"ws://127.0.0.1:{server.port}") as c:
                assert (await c.reply({"action": "subscribe", "symbols": [{"symbol": "SBIN", "exchange": "NSE"}],
                                       "mode": 1}))["status"] == "success"  # fmt: skip
                real = await c.market_data(within=5)
                # a tick forged with a proxy's credentials on the very subject the client reads
                forged_payload = b"\x00" * 16 + b"\x00" + b'{"ltp": 1}'
                await forger.publish("oa.md.NSE.SBIN.1", forged_payload)
                await forger.flush(timeout=2)
                await wait_for(lambda: any("permissions violation" in str(e).lower() for e in errors), within=5)
                # and it cannot take the account's lease either
                with pytest.raises(nats.errors.Error):
                    await forger.jetstream(timeout=1).publish("$KV.oa_leader.simulator", b'{"run": 0}')
                later = [await c.market_data(within=3) for _ in range(3)]
                assert all(m["data"]["ltp"] != 1 for m in later) and real["symbol"] == "SBIN"
        finally:
            await forger.close()
            await server.stop(within=1.0)
            await leader.stop()


async def test_wrong_or_missing_credentials_are_refused_in_one_line(tmp_path: Path) -> None:
    with nats_cluster(tmp_path, auth=True) as cluster:
        for user, password in ((None, None), ("proxy", "wrong")):
            with pytest.raises(BusEngineError, match="cannot connect to NATS") as caught:
                await asyncio.wait_for(connect(settings(cluster.urls, user, password), "test"), 15)
            assert "\n" not in str(caught.value) and "wrong" not in str(caught.value)
