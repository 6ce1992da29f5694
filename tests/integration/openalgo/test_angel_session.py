"""Angel in drop-in mode: the stored JWT, feed token and client code, no login, waiting for OpenAlgo's next one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import Rejection
from openalgo_proxy.model import Mode, Tick
from openalgo_proxy.openalgo.dropin import FeedSide, Installation
from tests.openalgo_support import FakeOpenAlgo
from tests.support import free_port, wait_for


async def test_angel_streams_on_openalgos_session_and_waits_for_the_next_login(tmp_path: Path) -> None:
    sim = AngelSimulator(jwt_token="jwt-1", feed_token="feed-1", ticks_per_second=20, seed=5)
    await sim.start()
    fake = FakeOpenAlgo(tmp_path, zmq_port=free_port(), websocket_port=1, broker_api_key=sim.api_key)
    fake.login("alice", "angel", "jwt-1", feed_token="feed-1", client_id=sim.client_code)
    installation = Installation.open(tmp_path)
    side = FeedSide(installation, "angel", sim.feed_options(stall_timeout=3.0))
    ticks: list[Tick] = []
    rejections: list[Rejection] = []
    try:
        await side.start()
        await side.adapter.start(ticks.append, rejections.append)
        instrument = side.adapter.lookup("NSE", "RELIANCE")
        assert instrument is not None
        await side.adapter.set_wanted({instrument: Mode.QUOTE})
        await wait_for(lambda: len(ticks) >= 2, 10)
        (client,) = sim.clients.values()
        headers = client.request.headers
        assert (headers["Authorization"], headers["x-feed-token"]) == ("jwt-1", "feed-1")
        assert (headers["x-client-code"], headers["x-api-key"]) == (sim.client_code, sim.api_key)
        assert sim.logins == 0  # never logged in: the session is OpenAlgo's

        # the daily expiry: the stored token dies but stays in the DB, unrevoked
        sim.expire_tokens()
        sim.drop_connections()
        await wait_for(lambda: sim.handshake_rejections >= 1, 10)
        rejected = sim.handshake_attempts
        await asyncio.sleep(2.0)  # a window in which a retrying feed would hammer the broker
        assert sim.handshake_attempts == rejected and not sim.clients  # waiting, not retrying
        assert sim.logins == 0

        # OpenAlgo logs in again; its cache invalidation (here: the session re-read) brings the new tokens
        sim._jwts.add("jwt-2")
        sim._feed_tokens.add("feed-2")
        fake.login("alice", "angel", "jwt-2", feed_token="feed-2", client_id=sim.client_code)
        side.session.invalidate("alice")
        count = len(ticks)
        await wait_for(lambda: len(ticks) >= count + 2, 15)
        assert [c.request.headers["Authorization"] for c in sim.clients.values()] == ["jwt-2"]
        assert not rejections
    finally:
        await side.adapter.stop()
        await side.stop()
        installation.close()
        fake.close()
        await sim.stop()
