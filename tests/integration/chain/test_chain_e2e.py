"""Option chains end to end on the simulated market: feed, chain service and proxy on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.chain.contracts import parse_option
from openalgo_proxy.chain.service import ChainService
from openalgo_proxy.config import AuthSettings, LimitSettings, ProxySettings, TlsSettings
from openalgo_proxy.feed.shell import Feed
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import Client, client, free_port, wait_for

pytestmark = pytest.mark.asyncio

RELIANCE_CHAIN = {"action": "subscribe_chain", "underlying": "RELIANCE", "exchange": "NFO", "strikes": 3}


@contextlib.asynccontextmanager
async def chain_system(
    interval: float = 0.05, dialect: str = "seed"
) -> AsyncIterator[tuple[Feed, ChainService, ProxyServer]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    feed_bus = f"tcp://127.0.0.1:{free_port()}"
    chain_bus = f"tcp://127.0.0.1:{free_port()}"
    feed = Feed(
        SimulatedAdapter(FeedOptions(ticks_per_second=20.0, seed=11)),
        feed_bus,
        status_interval=0.5,
        coalesce_window=0.005,
        ctx=ctx,
    )
    service = ChainService(chain_bus, [feed_bus], interval=interval, ctx=ctx)
    server = ProxyServer(
        ProxySettings.model_validate({"port": 0, "bus": [feed_bus, chain_bus], "dialect": dialect}),
        AuthSettings.model_validate({}),
        ctx=ctx,
        limits=LimitSettings.model_validate({}),
        tls=TlsSettings.model_validate({}),
    )
    await feed.start()
    await service.start()
    await server.start()
    try:
        await wait_for(lambda: server.ready()[0], within=20)
        await wait_for(lambda: bool(service.listed.options), within=10)
        yield feed, service, server
    finally:
        await server.stop(within=2.0)
        await service.stop()
        await feed.stop()
        ctx.term()


async def next_chain(c: Client, within: float = 10.0, snapshot: bool | None = None) -> dict[str, Any]:
    while True:
        msg = await c.recv(within)
        if msg.get("type") == "option_chain" and (snapshot is None or bool(msg.get("snapshot")) == snapshot):
            return msg


def leg_topics(feed: Feed) -> set[str]:
    return {name for name in feed.upstream_pairs() if name.startswith("NFO|RELIANCE")}


async def test_snapshot_then_updates_with_iv_from_the_simulated_smile() -> None:
    async with chain_system() as (_feed, _service, server), client(f"ws://127.0.0.1:{server.port}") as c:
        reply = await c.reply(RELIANCE_CHAIN)
        assert reply["type"] == "subscribe_chain" and reply["status"] == "success"
        assert reply["topic"] == "RELIANCE.NFO:NEAREST:3"
        first = await next_chain(c)
        data = first["data"]
        assert data["underlying"] == "RELIANCE" and data["model"] == "black_scholes"
        assert data["underlying_source"] == "spot" and data["underlying_price"] > 0
        assert len(data["strikes"]) == 7  # 3 each side of the ATM strike, and the ATM strike
        strikes = [row["strike"] for row in data["strikes"]]
        assert data["atm_strike"] == strikes[3]
        assert abs(data["atm_strike"] - data["forward"]) <= 5.0  # strikes are 10 apart
        for row in data["strikes"]:
            for side in ("ce", "pe"):
                leg = row[side]
                assert leg["ltp"] > 0 and 0 < leg["bid"] <= leg["ask"]
                assert leg["iv_status"] == "ok", leg
                assert 5.0 < leg["iv"] < 80.0  # percent; the simulator's smile is near 22 at the money
                assert parse_option(leg["symbol"]) is not None
        atm = data["strikes"][3]
        assert 0.3 < atm["ce"]["delta"] < 0.7 and -0.7 < atm["pe"]["delta"] < -0.3
        assert atm["ce"]["gamma"] > 0 and atm["ce"]["vega"] > 0 and atm["ce"]["theta"] < 0
        assert data["pcr"] == pytest.approx(data["total_put_oi"] / data["total_call_oi"], rel=1e-3)
        second = await next_chain(c)
        assert second["seq"] > first["seq"]


async def test_two_clients_share_one_set_of_legs_and_the_last_one_releases_them() -> None:
    async with chain_system() as (feed, service, server):
        url = f"ws://127.0.0.1:{server.port}"
        async with client(url) as a:
            assert (await a.reply(RELIANCE_CHAIN))["status"] == "success"
            await next_chain(a)
            legs = leg_topics(feed)
            assert len(legs) == 14
            async with client(url) as b:
                assert (await b.reply(RELIANCE_CHAIN))["status"] == "success"
                snap = await next_chain(b)  # the proxy's last chain, at once
                assert snap["data"]["underlying"] == "RELIANCE"
                assert leg_topics(feed) == legs  # the second client costs the feed nothing
                assert len(service.streams) == 1
            assert (await a.reply({**RELIANCE_CHAIN, "action": "unsubscribe_chain"}))["status"] == "success"
        await wait_for(lambda: not leg_topics(feed) and not service.held, within=10)
        assert "NSE|RELIANCE" not in feed.upstream_pairs()


async def test_the_window_follows_the_underlying_across_strikes() -> None:
    async with chain_system() as (feed, service, server), client(f"ws://127.0.0.1:{server.port}") as c:
        await c.reply(RELIANCE_CHAIN)
        first = (await next_chain(c))["data"]
        market = feed.adapter.market  # type: ignore[attr-defined]
        market.move("NSE", "RELIANCE", first["atm_strike"] + 101.0)
        deadline = time.monotonic() + 20
        while True:  # the ATM strike follows the forward, 100 or more above where it was
            data = (await next_chain(c))["data"]
            if data["atm_strike"] >= first["atm_strike"] + 100.0 and data["strikes"][3]["ce"]["iv_status"] == "ok":
                break
            assert time.monotonic() < deadline, data["atm_strike"]
        atm = data["atm_strike"]
        assert abs(atm - data["forward"]) <= 5.0
        assert [row["strike"] for row in data["strikes"]] == [atm + 10.0 * i for i in range(-3, 4)]
        # the feed carries exactly the legs of the window as it is now: the old ones are released
        (stream,) = service.streams.values()
        chain = stream.chain
        assert chain is not None
        await wait_for(lambda: leg_topics(feed) == {f"NFO|{s}" for s in chain.window_symbols()}, within=10)
        old = {row[side]["symbol"] for row in first["strikes"] for side in ("ce", "pe")}
        assert not {f"NFO|{symbol}" for symbol in old} & leg_topics(feed)  # 100 away: no strike in common


async def test_an_unknown_underlying_or_expiry_is_refused() -> None:
    async with chain_system() as (_feed, _service, server), client(f"ws://127.0.0.1:{server.port}") as c:
        await c.reply({**RELIANCE_CHAIN, "underlying": "NOSUCH"})
        err = await c.next_reply()
        assert err["type"] == "error" and err["code"] == "SYMBOL_NOT_FOUND" and "NOSUCH" in err["message"]
        await c.reply({**RELIANCE_CHAIN, "expiry": "01JAN20"})
        err = await c.next_reply()
        assert err["code"] == "SYMBOL_NOT_FOUND" and "01JAN20" in err["message"]
        bad = await c.reply({**RELIANCE_CHAIN, "strikes": 0})
        assert bad["type"] == "error" and bad["code"] == "INVALID_PARAMETERS"


async def test_the_python_client_reads_typed_chains() -> None:
    from openalgo_proxy.client import connect
    from openalgo_proxy.client.chains import OptionChain

    async with chain_system() as (_feed, _service, server), connect(f"ws://127.0.0.1:{server.port}") as c:
        topic = await c.subscribe_chain("RELIANCE", strikes=2)
        assert topic == "RELIANCE.NFO:NEAREST:2"
        updates = c.chains()
        chain = await asyncio.wait_for(anext(updates), 10)
        assert isinstance(chain, OptionChain) and chain.topic == topic and chain.seq > 0
        assert chain.underlying == "RELIANCE" and chain.model == "black_scholes" and len(chain.strikes) == 5
        atm = chain.atm
        assert atm is not None and atm.ce.has_iv and atm.pe.has_iv and atm.ce.delta > 0 > atm.pe.delta
        later = await asyncio.wait_for(anext(updates), 10)
        assert later.seq > chain.seq
        await c.unsubscribe_chain("RELIANCE", strikes=2)


async def test_the_openalgo_dialect_streams_the_same_chain() -> None:
    async with (
        chain_system(dialect="openalgo") as (_feed, _service, server),
        client(f"ws://127.0.0.1:{server.port}") as c,
    ):
        reply = await c.reply({"type": "subscribe_chain", "underlying": "RELIANCE", "strikes": 1})
        assert reply["type"] == "subscribe_chain" and reply["status"] == "success"
        data = (await next_chain(c))["data"]
        assert data["underlying"] == "RELIANCE" and len(data["strikes"]) == 3
        assert data["strikes"][1]["ce"]["iv_status"] == "ok"
