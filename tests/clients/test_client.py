"""The client library against a real proxy and feed (in-process, real sockets and ZeroMQ)."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

import pytest

from openalgo_proxy.client import (
    AuthenticationError,
    Backoff,
    ClientThread,
    ConnectFailed,
    DepthTick,
    LtpTick,
    Mode,
    QuoteTick,
    ServerError,
    State,
    Stream,
    SubscriptionError,
    Tick,
    connect,
)
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import System, client, free_port, running_system, wait_for

FAST = Backoff(initial=0.05, maximum=0.3)


async def collect(feed_iter: object, count: int, within: float = 10.0) -> list[Tick]:
    ticks: list[Tick] = []
    async with asyncio.timeout(within):
        async for tick in feed_iter:  # type: ignore[attr-defined]
            ticks.append(tick)
            if len(ticks) >= count:
                break
    return ticks


async def test_subscribe_receives_typed_ticks(system: System) -> None:
    async with connect(system.url, backoff=FAST) as feed:
        assert feed.state == State.LIVE
        results = await feed.subscribe(["NSE:RELIANCE", "NSE_INDEX:NIFTY"], mode="quote")
        assert [(r.symbol, r.ok) for r in results] == [("RELIANCE", True), ("NIFTY", True)]
        ticks = await collect(feed, 12)
        assert {t.name for t in ticks} == {"NSE:RELIANCE", "NSE_INDEX:NIFTY"}
        assert all(type(t) is QuoteTick and t.mode == Mode.QUOTE and t.ltp > 0 for t in ticks)
        seqs: dict[str, list[int]] = defaultdict(list)
        for t in ticks:
            seqs[t.name].append(t.seq)
        assert all(s == sorted(set(s)) for s in seqs.values())
        held = {Stream("NSE", "RELIANCE", Mode.QUOTE), Stream("NSE_INDEX", "NIFTY", Mode.QUOTE)}
        assert set(await feed.list_subscriptions()) == held == set(feed.held)
        assert await feed.ping() > 0


async def test_each_mode_is_its_own_stream_and_type(system: System) -> None:
    async with connect(system.url, backoff=FAST) as feed:
        await feed.subscribe(["NSE:INFY"], mode="ltp")
        await feed.subscribe([("NSE", "INFY")], mode=3)
        ticks = await collect(feed, 8)
        kinds = {type(t) for t in ticks}
        assert kinds == {LtpTick, DepthTick}
        depth = next(t for t in ticks if isinstance(t, DepthTick))
        assert len(depth.depth.buy) == 5 and depth.depth.buy[0].price < depth.depth.sell[0].price
        await feed.unsubscribe(["NSE:INFY"])  # every mode
        assert feed.held == [] and await feed.list_subscriptions() == []


async def test_errors_are_surfaced_with_server_codes(system: System) -> None:
    async with connect(system.url, backoff=FAST) as feed:
        with pytest.raises(SubscriptionError) as partial:
            await feed.subscribe(["NSE:RELIANCE", "NSE:NOSUCHSYMBOL"], mode="ltp")
        assert partial.value.code == "SYMBOL_NOT_FOUND"
        assert [r.symbol for r in partial.value.failed] == ["NOSUCHSYMBOL"]
        assert feed.held == [Stream("NSE", "RELIANCE", Mode.LTP)]  # the good entry is held
        with pytest.raises(SubscriptionError) as missing:
            await feed.unsubscribe(["NSE:TCS"], mode="quote")
        assert missing.value.code == "NOT_SUBSCRIBED"
        with pytest.raises(ServerError) as invalid:
            await feed.request("launch_rockets")
        assert invalid.value.code == "INVALID_ACTION" and invalid.value.message
        with pytest.raises(ValueError):
            await feed.subscribe(["RELIANCE"])  # not EXCHANGE:SYMBOL: refused before sending
        assert feed.state == State.LIVE  # errors never cost the connection


async def test_api_key_authentication() -> None:
    async with running_system(auth={"mode": "api_key", "api_keys": ["s3cret"]}) as system:
        with pytest.raises(AuthenticationError) as rejected:
            async with connect(system.url, api_key="wrong", backoff=FAST):
                pass
        assert rejected.value.code == "AUTHENTICATION_ERROR"
        async with connect(system.url, backoff=FAST) as anonymous:
            with pytest.raises(AuthenticationError) as needed:
                await anonymous.subscribe(["NSE:RELIANCE"])
            assert needed.value.code == "NOT_AUTHENTICATED"
        async with connect(system.url, api_key="s3cret", backoff=FAST) as feed:
            assert feed.auth_reply["status"] == "success"
            await feed.subscribe(["NSE:RELIANCE"], mode="ltp")
            assert (await collect(feed, 1))[0].name == "NSE:RELIANCE"


async def test_unreachable_proxy_fails_after_first_connect_timeout() -> None:
    port = free_port()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed):
        async with connect(f"ws://127.0.0.1:{port}", first_connect_timeout=0.5, backoff=FAST):
            pass
    assert loop.time() - started < 5


async def test_snapshot_after_reconnect_is_not_delivered_twice() -> None:
    """Two proxy replicas on one bus; the client's proxy restarts while the other keeps the topic
    alive, so the feed answers the new proxy's subscribe with the last tick again (same seq)."""
    port = free_port()
    async with running_system(proxy={"port": port}, ticks_per_second=0.02) as system:
        replica = ProxyServer(system.proxy.cfg.model_copy(update={"port": 0}), system.proxy.auth, ctx=system.ctx)
        await replica.start()
        try:
            await wait_for(lambda: replica.ready()[0], within=10)
            async with client(f"ws://127.0.0.1:{replica.port}") as holder:
                held = await holder.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
                assert held["status"] == "success"
                await holder.market_data(within=10)
                async with connect(system.url, backoff=FAST) as feed:
                    await feed.subscribe(["NSE:SBIN"], mode="ltp")
                    first = (await collect(feed, 1))[0]
                    await system.proxy.stop(within=2.0)
                    restarted = ProxyServer(system.proxy.cfg, system.proxy.auth, ctx=system.ctx)
                    await restarted.start()
                    try:
                        await wait_for(lambda: feed.duplicates_dropped == 1, within=10)
                        assert feed.reconnects == 1 and first.seq > 0
                        assert feed._ticks == type(feed._ticks)()  # nothing else was queued
                    finally:
                        await restarted.stop(within=2.0)
        finally:
            await replica.stop(within=2.0)


async def test_reconnects_after_proxy_restart_resubscribed_without_duplicates() -> None:
    port = free_port()
    states: list[State] = []
    async with (
        running_system(proxy={"port": port}, ticks_per_second=10) as system,
        connect(system.url, backoff=FAST, on_state=states.append) as feed,
    ):
        await feed.subscribe(["NSE:RELIANCE", "NSE:INFY"], mode="quote")
        before = await collect(feed, 6)
        await system.proxy.stop(within=2.0)  # clients are closed with 1001
        await wait_for(lambda: feed.state != State.LIVE, within=5)
        replacement = ProxyServer(system.proxy.cfg, system.proxy.auth, ctx=system.ctx)
        await replacement.start()
        try:
            await wait_for(lambda: feed.state == State.LIVE, within=10)
            assert feed.reconnects == 1 and State.RECONNECTING in states
            after = await collect(feed, 20)
            assert {t.name for t in after} == {"NSE:RELIANCE", "NSE:INFY"}
            listed = await feed.list_subscriptions()
            assert sorted(listed) == sorted(feed.held) and len(listed) == 2  # resubscribed once each
            assert len(replacement.connections) == 1
            # one stream per subscription: within each connection every seq arrives once, in order
            # (the feed may restart a topic's seq when the last proxy left it)
            for segment in (before, after):
                seqs: dict[str, list[int]] = defaultdict(list)
                for t in segment:
                    seqs[t.name].append(t.seq)
                assert all(s == sorted(set(s)) for s in seqs.values()), seqs
        finally:
            await replacement.stop(within=2.0)


async def test_feed_thread_delivers_to_callbacks_and_stops(system: System) -> None:
    received: list[Tick] = []
    all_ticks: list[Tick] = []
    lock = threading.Lock()

    def on_reliance(tick: Tick) -> None:
        with lock:
            received.append(tick)

    def broken(tick: Tick) -> None:
        raise RuntimeError("a bug in user code")

    feed = ClientThread(system.url, on_tick=all_ticks.append, backoff=FAST)
    await asyncio.to_thread(feed.start)
    try:
        await asyncio.to_thread(feed.subscribe, ["NSE:RELIANCE"], "ltp", on_tick=on_reliance)
        await asyncio.to_thread(feed.subscribe, ["NSE:TCS"], "ltp", on_tick=broken)
        await wait_for(lambda: len(received) >= 3 and any(t.symbol == "TCS" for t in all_ticks), within=10)
        assert all(t.symbol == "RELIANCE" for t in received)  # routed by stream
        assert feed.state == State.LIVE and feed.error is None  # a raising callback did not stop the feed
        listed = await asyncio.to_thread(feed.list_subscriptions)
        assert len(listed) == 2
        await asyncio.to_thread(feed.unsubscribe, ["NSE:RELIANCE"])
    finally:
        await asyncio.to_thread(feed.stop)
    assert feed.state == State.CLOSED
    assert not any(t.name == "openalgo-client" for t in threading.enumerate())


async def test_subscriptions_made_while_a_proxy_warms_up_are_retried(system: System) -> None:
    """A proxy that just started may answer BROKER_UNAVAILABLE until it hears from the feed."""
    fresh = ProxyServer(system.proxy.cfg.model_copy(update={"port": 0}), system.proxy.auth, ctx=system.ctx)
    await fresh.start()
    try:
        async with connect(f"ws://127.0.0.1:{fresh.port}", backoff=FAST) as feed:
            results = await feed.subscribe(["NSE:ITC"], mode="ltp")
            assert [r.code for r in results] in ([""], ["BROKER_UNAVAILABLE"])
            assert feed.held == [Stream("NSE", "ITC", Mode.LTP)]
            assert (await collect(feed, 1))[0].name == "NSE:ITC"
            assert await feed.list_subscriptions() == feed.held
    finally:
        await fresh.stop(within=2.0)


def test_feed_thread_start_raises_the_connect_failure() -> None:
    feed = ClientThread(f"ws://127.0.0.1:{free_port()}", first_connect_timeout=0.3, backoff=FAST)
    with pytest.raises(ConnectFailed):
        feed.start(timeout=10)
    assert not any(t.name == "openalgo-client" and t.is_alive() for t in threading.enumerate())


async def test_a_slow_consumer_loses_the_oldest_ticks_not_the_connection(system: System) -> None:
    async with connect(system.url, backoff=FAST, max_buffered_ticks=3) as feed:
        await feed.subscribe(["NSE:RELIANCE", "NSE:INFY", "NSE:TCS"], mode="ltp")
        await wait_for(lambda: feed.ticks_dropped >= 3, within=10)  # nobody is reading
        kept = await collect(feed, 3)
        assert feed.state == State.LIVE and len(kept) == 3
        assert feed.ticks_received == feed.ticks_dropped + feed.duplicates_dropped + 3 + len(feed._ticks)


def test_earlier_client_names_are_aliases() -> None:
    import openalgo_proxy.client as client_library

    assert client_library.Feed is client_library.Client is client_library.connect
    assert client_library.FeedThread is client_library.ClientThread
    assert client_library.FeedClosed is client_library.ClientClosed
