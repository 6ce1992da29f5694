"""The connection pool with fake connections: caps, sharding, LIMIT_EXCEEDED, slots on demand, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.brokers.pool import ConnectionPool


class FakeConnection:
    def __init__(self, index: int) -> None:
        self.index = index
        self.state = ConnectionState.DISCONNECTED
        self.wanted: dict[Any, Any] = {}
        self.connects = 1
        self.stalls = 0
        self.heartbeats = 3
        self.decode_errors = 1
        self.last_message = float(index)
        self.started = self.stopped = False

    @property
    def reconnects(self) -> int:
        return self.connects - 1

    def set_wanted(self, wanted: Mapping[Any, Any]) -> None:
        self.wanted = dict(wanted)

    def start(self) -> None:
        self.started = True
        self.state = ConnectionState.CONNECTING

    async def stop(self) -> None:
        self.stopped = True
        self.state = ConnectionState.CLOSED

    def info(self) -> dict[str, Any]:
        return {"subscriptions": len(self.wanted)}


def make(**kwargs: Any) -> tuple[ConnectionPool[int, str], list[FakeConnection]]:
    opened: list[FakeConnection] = []

    def open_slot(index: int) -> FakeConnection:
        opened.append(FakeConnection(index))
        return opened[-1]

    options: dict[str, Any] = {"max_connections": 3, "per_connection": 2}
    options.update(kwargs)
    return ConnectionPool(open_slot, **options), opened


async def test_fill_in_order_sticky_and_reject_past_the_cap() -> None:
    pool, opened = make()
    assert await pool.assign({k: "ltp" for k in range(7)}) == [6]
    assert [c.wanted for c in opened] == [{0: "ltp", 1: "ltp"}, {2: "ltp", 3: "ltp"}, {4: "ltp", 5: "ltp"}]
    assert all(c.started for c in opened)
    # the same state again reports nothing new; a rejected key stays rejected when room frees up
    assert await pool.assign({k: "ltp" for k in range(7)}) == []
    assert await pool.assign({k: "ltp" for k in range(1, 7)}) == []
    assert pool.assigned[2] == 1 and 6 in pool.rejected and 6 not in pool.assigned  # sticky placement
    # a mode change stays on its slot
    await pool.assign({k: ("full" if k == 2 else "ltp") for k in range(1, 7)})
    assert opened[1].wanted == {2: "full", 3: "ltp"}


async def test_retry_rejected_places_a_key_when_room_frees() -> None:
    pool, opened = make(max_connections=1, retry_rejected=True)
    assert await pool.assign({1: "a", 2: "a", 3: "a"}) == [3]
    assert await pool.assign({2: "a", 3: "a"}) == []
    assert opened[0].wanted == {2: "a", 3: "a"} and not pool.rejected


async def test_per_account_cap_below_the_slots() -> None:
    pool, _ = make(per_account=3)
    assert await pool.assign({k: "x" for k in range(5)}) == [3, 4]


async def test_slots_open_on_demand_and_close_when_empty_except_kept() -> None:
    pool, opened = make(keep_open=1)
    await pool.open_kept()
    assert len(opened) == 1 and opened[0].wanted == {}
    await pool.assign({k: "x" for k in range(5)})
    assert len(pool.connections()) == 3
    await pool.assign({0: "x"})
    assert len(pool.connections()) == 1 and opened[1].stopped and opened[2].stopped
    await pool.assign({})
    assert pool.connections() == [opened[0]] and not opened[0].stopped  # the kept slot stays open
    # counters of closed connections are kept in the totals
    assert pool.total("heartbeats") == 9 and pool.total("decode_errors") == 3


async def test_drop_refused_keys() -> None:
    pool, opened = make()
    await pool.assign({1: "a", 2: "a", 3: "a"})
    assert pool.drop([2, 3, 99]) == [2, 3]
    assert opened[0].wanted == {1: "a"} and opened[1].wanted == {} and pool.rejected == {2, 3}
    await pool.assign({1: "a", 2: "a", 3: "a"})  # still wanted: stays rejected; the emptied slot closes
    assert len(pool.connections()) == 1 and opened[1].stopped


async def test_aggregate_state() -> None:
    pool, opened = make()
    assert pool.state(started=False) is ConnectionState.DISCONNECTED
    assert pool.state(started=True) is ConnectionState.CONNECTED  # idle: connects on demand
    await pool.assign({k: "x" for k in range(4)})
    assert pool.state(started=True) is ConnectionState.CONNECTING
    opened[0].state = ConnectionState.CONNECTED
    opened[1].state = ConnectionState.BACKING_OFF
    assert pool.state(started=True) is ConnectionState.BACKING_OFF and pool.connected() == 1
    opened[1].state = ConnectionState.CONNECTED
    assert pool.state(started=True) is ConnectionState.CONNECTED and pool.last_message() == 1.0
    await pool.stop()
    assert pool.state(started=True) is ConnectionState.CLOSED and all(c.stopped for c in opened)
    assert await pool.assign({1: "x"}) == []
