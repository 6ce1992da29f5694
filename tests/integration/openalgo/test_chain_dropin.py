"""Chain mode inside a drop-in: symbols from OpenAlgo's symtoken, the user's own key upstream, cache
invalidations forwarded to the relocated proxy's ZMQ port."""

from __future__ import annotations

from pathlib import Path

import zmq

from openalgo_proxy.brokers.base import FeedOptions, Rejection
from openalgo_proxy.model import Mode, Tick
from openalgo_proxy.openalgo.dropin import ChainSide, Installation
from tests.openalgo_support import FakeOpenAlgo, publish_until
from tests.support import free_port, running_system, wait_for


async def test_chain_side_uses_symtoken_the_users_key_and_forwards_invalidations(tmp_path: Path) -> None:
    fake = FakeOpenAlgo(tmp_path, zmq_port=free_port(), websocket_port=1)
    key = fake.set_api_key("alice")
    fake.load_master_contract([("NSE", "RELIANCE"), ("NSE", "SBIN"), ("NSE_INDEX", "NIFTY")])
    upstream_zmq = free_port()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    relocated = ctx.socket(zmq.SUB)  # the relocated OpenAlgo proxy's SUB on its private ZMQ_PORT
    relocated.setsockopt(zmq.SUBSCRIBE, b"")
    relocated.bind(f"tcp://127.0.0.1:{upstream_zmq}")
    received: list[list[bytes]] = []
    installation = Installation.open(tmp_path)
    async with running_system(auth={"mode": "api_key", "api_keys": [key]}, proxy={"dialect": "openalgo"}) as upstream:
        side = ChainSide(installation, FeedOptions(ws_url=upstream.url), upstream_zmq=f"tcp://127.0.0.1:{upstream_zmq}")
        ticks: list[Tick] = []
        rejections: list[Rejection] = []
        try:
            await side.start()
            await side.adapter.start(ticks.append, rejections.append)
            assert side.user == "alice"
            assert dict(side.adapter.directory()) == {"NSE": ["RELIANCE", "SBIN"], "NSE_INDEX": ["NIFTY"]}
            assert side.adapter.lookup("NSE", "INFY") is None  # not in OpenAlgo's master contract
            instrument = side.adapter.lookup("NSE", "SBIN")
            assert instrument is not None
            await side.adapter.set_wanted({instrument: Mode.QUOTE})
            await wait_for(lambda: len(ticks) >= 2, 10)
            assert ticks[-1].symbol == "SBIN" and ticks[-1].exchange_time > 0 and not rejections

            def drained() -> bool:
                while relocated.poll(0):
                    received.append(relocated.recv_multipart())
                return bool(received)

            await publish_until(fake, lambda: fake.invalidate("alice"), drained)
            topic, payload = received[0]
            assert topic == b"CACHE_INVALIDATE_ALL_alice" and b'"user_id": "alice"' in payload
        finally:
            await side.adapter.stop()
            await side.stop()
    relocated.close(linger=0)
    ctx.term()
    installation.close()
    fake.close()
