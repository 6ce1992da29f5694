"""The NATS bus over TLS (a real nats-server requiring it; certificates from a test CA): feed and
proxy verify the server against `[bus] tls_ca_file` (the proxy's data connection upgrades after
INFO as the protocol says), ticks flow; without that CA the server is refused in one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme

from openalgo_proxy.bus_nats import BusEngineError, connect
from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.feed.lease import LeaderFeed
from openalgo_proxy.proxy.server import ProxyServer
from tests.integration.test_bus_contract import Bench
from tests.nats_support import nats_cluster
from tests.support import client, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60), pytest.mark.slow]


async def test_ticks_flow_over_verified_tls_and_an_unknown_ca_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with nats_cluster(tmp_path, tls=(cert_file, key_file)) as cluster:
        urls = [url.replace("nats://", "tls://") for url in cluster.urls]
        bus = BusSettings.model_validate(
            {"engine": "nats", "urls": urls, "tls_ca_file": str(ca_file), "lease_ttl": 1.0, "proxy_ttl": 1.0}
        )
        leader = LeaderFeed(Bench("nats", tmp_path).make_feed, "simulator", bus)
        await leader.start()
        server = ProxyServer(ProxySettings.model_validate({"port": 0}), bus=bus)
        await server.start()
        try:
            await wait_for(lambda: server.ready()[0], within=10)
            async with client(f"ws://127.0.0.1:{server.port}") as c:
                request = {"action": "subscribe", "symbols": [{"symbol": "SBIN", "exchange": "NSE"}], "mode": 1}
                assert (await c.reply(request))["status"] == "success"
                assert (await c.market_data(within=5))["symbol"] == "SBIN"
        finally:
            await server.stop(within=1.0)
            await leader.stop()
        untrusted = BusSettings.model_validate({"engine": "nats", "urls": urls})
        with pytest.raises(BusEngineError, match="cannot connect to NATS") as caught:
            await asyncio.wait_for(connect(untrusted, "test"), 20)
        assert "\n" not in str(caught.value)
