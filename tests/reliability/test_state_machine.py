"""Property: random subscribe / unsubscribe / disconnect sequences across clients on two proxies
sharing one feed keep
  - upstream (the feed's wanted topics and what it asked the adapter for) == the union of live
    client holdings, and each proxy's bus subscriptions == the union of its own clients' holdings;
  - every client receives exactly the topics it holds, in the mode it holds (shape of `data`), and
    each held topic reaches it.
A Hypothesis rule-based state machine drives a real in-process system (real sockets, real ZeroMQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from openalgo_proxy import topics
from openalgo_proxy.config import ProxySettings
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import System, running_system

SYMBOLS = ("RELIANCE", "SBIN", "INFY", "TCS")
MODES = (1, 2, 3)
SLOTS = 4
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
CONVERGE = 2.0  # seconds; convergence takes a coalescing window (5 ms) and one tick at 20/s
Holding = tuple[str, int]  # (symbol, mode) on NSE


def _shape_ok(mode: int, data: dict[str, Any]) -> bool:
    return ("open" in data) == (mode >= 2) and ("depth" in data) == (mode == 3) and "ltp" in data


@dataclass
class ModelClient:
    """One live WebSocket client; a reader task checks every message against the client's view.

    The view changes when a reply arrives: replies and market data share one ordered stream, so
    after an unsubscribe reply no data of that topic may follow, and none may precede a subscribe reply.
    """

    ws: websockets.ClientConnection
    proxy: int
    view: set[Holding] = field(default_factory=set)
    pending: list[tuple[str, Holding]] = field(default_factory=list)
    seen: set[Holding] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "market_data":
                    held = (msg["symbol"], msg["mode"])
                    if msg["exchange"] != "NSE" or held not in self.view:
                        self.errors.append(f"data for {held} not held (view {sorted(self.view)})")
                    elif not _shape_ok(msg["mode"], msg["data"]):
                        self.errors.append(f"mode {msg['mode']} data has the wrong shape: {sorted(msg['data'])}")
                    self.seen.add(held)
                    continue
                if kind in ("subscription", "unsubscription") and self.pending:
                    action, holding = self.pending.pop(0)
                    if action == "subscribe":
                        self.view.add(holding)
                    else:
                        self.view.discard(holding)
                        self.seen.discard(holding)
                await self.replies.put(msg)


async def _until(condition: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not converged within {within} s: {what()}")
        await asyncio.sleep(0.005)


def test_subscriptions_stay_equal_to_the_union_of_live_clients() -> None:
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    system: System = loop.run_until_complete(stack.enter_async_context(running_system(ticks_per_second=20)))
    second = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": system.proxy.cfg.bus}), ctx=system.ctx)
    loop.run_until_complete(second.start())
    proxies = [system.proxy, second]

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clients: list[ModelClient | None] = [None] * SLOTS
            self.model: list[set[Holding]] = [set() for _ in range(SLOTS)]

        def run(self, coro: Any) -> Any:
            return loop.run_until_complete(asyncio.wait_for(coro, 10))

        async def _open(self, slot: int, proxy: int) -> ModelClient:
            ws = await websockets.connect(f"ws://127.0.0.1:{proxies[proxy].port}", close_timeout=1)
            c = ModelClient(ws, proxy)
            c.reader = asyncio.create_task(c.read())
            self.clients[slot] = c
            return c

        async def _client(self, slot: int, proxy: int) -> ModelClient:
            c = self.clients[slot]
            return c if c is not None else await self._open(slot, proxy)

        async def _request(self, c: ModelClient, action: str, holding: Holding) -> dict[str, Any]:
            c.pending.append((action, holding))
            symbol, mode = holding
            await c.ws.send(json.dumps({"action": action, "symbol": symbol, "exchange": "NSE", "mode": mode}))
            return await asyncio.wait_for(c.replies.get(), 5)

        @rule(
            slot=st.integers(0, SLOTS - 1),
            proxy=st.integers(0, 1),
            symbol=st.sampled_from(SYMBOLS),
            mode=st.sampled_from(MODES),
        )
        def subscribe(self, slot: int, proxy: int, symbol: str, mode: int) -> None:
            async def go() -> None:
                c = await self._client(slot, proxy)
                reply = await self._request(c, "subscribe", (symbol, mode))
                assert reply["status"] == "success", reply

            self.run(go())
            self.model[slot].add((symbol, mode))

        @rule(slot=st.integers(0, SLOTS - 1), symbol=st.sampled_from(SYMBOLS), mode=st.sampled_from(MODES))
        def unsubscribe(self, slot: int, symbol: str, mode: int) -> None:
            c = self.clients[slot]
            if c is None:
                return
            held = (symbol, mode) in self.model[slot]
            reply = self.run(self._request(c, "unsubscribe", (symbol, mode)))
            assert reply["status"] == ("success" if held else "error"), reply
            self.model[slot].discard((symbol, mode))

        @rule(slot=st.integers(0, SLOTS - 1), abrupt=st.booleans())
        def disconnect(self, slot: int, abrupt: bool) -> None:
            c = self.clients[slot]
            if c is None:
                return
            self.clients[slot] = None
            self.model[slot] = set()
            self.run(self._close(c, abrupt))

        async def _close(self, c: ModelClient, abrupt: bool) -> None:
            if abrupt:
                c.ws.transport.abort()
            else:
                await c.ws.close()
            if c.reader is not None:
                await c.reader
            assert not c.errors, c.errors

        @invariant()
        def upstream_is_the_union_of_live_holdings(self) -> None:
            union = {topics.bus_topic("NSE", s, m) for held in self.model for s, m in held}
            per_proxy = [
                {
                    topics.bus_topic("NSE", s, m)
                    for c, held in zip(self.clients, self.model, strict=True)
                    if c and c.proxy == p
                    for s, m in held
                }
                for p in range(2)
            ]
            wanted: dict[str, int] = {}
            for held in self.model:
                for s, m in held:
                    wanted[s] = max(wanted.get(s, 0), m)
            feed = system.feed

            def converged() -> bool:
                return (
                    set(feed.table) == union
                    and {i.symbol: int(m) for i, m in feed.upstream.items()} == wanted
                    and all(set(proxies[p].hub.topics) == per_proxy[p] for p in range(2))
                )

            self.run(
                _until(
                    converged,
                    CONVERGE,
                    lambda: f"feed {sorted(feed.table)} upstream {feed.upstream} want {sorted(union)} / {wanted}",
                )
            )

        @invariant()
        def each_client_gets_exactly_what_it_holds(self) -> None:
            live = [(c, held) for c, held in zip(self.clients, self.model, strict=True) if c is not None]
            for c, held in live:
                assert c.view == held, (c.view, held)
                assert not c.errors, c.errors
            self.run(
                _until(
                    lambda: all(held <= c.seen for c, held in live),
                    CONVERGE,
                    lambda: str([(sorted(h - c.seen)) for c, h in live]),
                )
            )

        def teardown(self) -> None:
            for slot, c in enumerate(self.clients):
                if c is not None:
                    self.clients[slot] = None
                    self.run(self._close(c, abrupt=False))
            self.run(_until(lambda: not system.feed.table and not system.feed.upstream, 5, lambda: "release"))

    try:
        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=25,
                stateful_step_count=20,
                deadline=None,
                database=None,
                # shrinking a failure can take minutes (each failing step waits out its deadline):
                # bounded by default, RELIABILITY_SHRINK=1 to get the minimal failing sequence
                phases=PHASES if os.environ.get("RELIABILITY_SHRINK") == "1" else PHASES[:-1],
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(second.stop(within=2.0))
        loop.run_until_complete(stack.aclose())
        loop.close()
