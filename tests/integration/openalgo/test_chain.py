"""Chain mode: our feed as a client of an upstream OpenAlgo-protocol proxy (ours here), killed and restarted."""

from __future__ import annotations

import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.openalgo.adapter import ChainAdapter
from openalgo_proxy.config import AuthSettings, ProxySettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import client, free_port, running_system, wait_for

UPSTREAM_KEY = "chain-upstream-key-0123456789abcdef"


async def test_chain_feed_restores_subscriptions_after_the_upstream_restarts() -> None:
    upstream_auth = {"mode": "api_key", "api_keys": [UPSTREAM_KEY]}
    async with running_system(auth=upstream_auth, proxy={"dialect": "openalgo"}) as upstream:
        symbols = {e: list(s) for e, s in upstream.feed.adapter.directory().items()}
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        bus = f"tcp://127.0.0.1:{free_port()}"
        chain = ChainAdapter(FeedOptions(ws_url=upstream.url), api_key=UPSTREAM_KEY, symbols=symbols)
        feed = Feed(chain, bus, status_interval=0.5, coalesce_window=0.005, ctx=ctx)
        restarted: ProxyServer | None = None
        ours = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": [bus]}), AuthSettings(), ctx=ctx)
        await feed.start()
        await ours.start()
        try:
            await wait_for(lambda: ours.ready()[0], 20)
            async with client(f"ws://127.0.0.1:{ours.port}") as app:
                await app.reply({"action": "authenticate", "api_key": ""})
                reply = await app.reply(
                    {
                        "action": "subscribe",
                        "symbols": [{"symbol": "RELIANCE", "exchange": "NSE"}, {"symbol": "INFY", "exchange": "NSE"}],
                        "mode": 3,
                    }
                )
                assert reply["status"] == "success", reply
                await app.reply(
                    {"action": "subscribe", "symbols": [{"symbol": "RELIANCE", "exchange": "NSE"}], "mode": 1}
                )
                tick = await app.market_data(10, lambda m: m["mode"] == 3 and m["symbol"] == "INFY")
                book = tick["data"]["depth"]
                assert len(book["buy"]) == 5 and book["buy"][0]["price"] > 0
                assert all(v is not None for v in tick["data"].values())
                await app.market_data(10, lambda m: m["mode"] == 1 and m["symbol"] == "RELIANCE")
                # upstream holds each instrument once, in its richest mode
                wanted = {b"NSE|RELIANCE|3", b"NSE|INFY|3"}
                await wait_for(lambda: set(upstream.proxy.hub.topics) == wanted, 5)
                frames = chain.frames_sent

                # the upstream proxy dies and comes back on the same port
                port = upstream.proxy.port
                await upstream.proxy.stop(within=1.0)
                await wait_for(lambda: chain.state.value != "connected", 5)
                restarted = ProxyServer(
                    upstream.proxy.cfg.model_copy(update={"port": port}), upstream.proxy.auth, ctx=upstream.ctx
                )
                await restarted.start()
                await wait_for(lambda: set(restarted.hub.topics) == wanted, 20)
                assert chain.frames_sent == frames + 1  # one bulk subscribe for Depth, nothing twice
                holders = [  # an openalgo-dialect session holds the numeric-timestamp companion of a topic
                    len(state.subscribers) + (len(state.numeric.subscribers) if state.numeric is not None else 0)
                    for state in restarted.hub.topics.values()
                ]
                assert holders == [1, 1]
                app.market.clear()
                await app.market_data(10, lambda m: m["mode"] == 1 and m["symbol"] == "RELIANCE")
                await app.market_data(10, lambda m: m["mode"] == 3 and m["symbol"] == "INFY")

                # dropping a symbol unsubscribes it upstream, once
                await app.reply({"action": "unsubscribe", "symbols": [{"symbol": "INFY", "exchange": "NSE"}]})
                await wait_for(lambda: set(restarted.hub.topics) == {b"NSE|RELIANCE|3"}, 5)
        finally:
            if restarted is not None:
                await restarted.stop(within=1.0)
            await ours.stop(within=1.0)
            await feed.stop()
            ctx.term()
