"""The connection pool of one broker account: caps, sharding, slots opened and closed on demand.

Brokers cap an account at N connections x M subscriptions per connection (Angel 3 x 1000, Kite
3 x 3000, Dhan 5 x 5000), some also at a total per account. The pool places each wanted key on a
slot: a key stays on the slot it was placed on, a new key fills the first slot with room, a slot's
connection is opened on its first key and closed on its last (slots below `keep_open` stay open,
for brokers whose idle connection proves the credentials). A key that fits nowhere is rejected once
(the caller answers LIMIT_EXCEEDED) and stays rejected until it is no longer wanted, or, with
`retry_rejected`, until room frees up. The pool also folds its connections into one status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic, TypeVar

from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.brokers.upstream import UpstreamConnection

K = TypeVar("K", bound=Hashable)  # a wire key (the pooled adapter's too)
V = TypeVar("V")  # an upstream subscription mode


#: what the pool holds: an upstream connection (unit tests give it fakes with the same attributes)
Slot = UpstreamConnection[Any, Any]
#: a connection's counters the pool sums over its open and already closed connections
COUNTERS = ("reconnects", "stalls", "heartbeats", "decode_errors")


@dataclass(eq=False)
class ConnectionPool(Generic[K, V]):
    """Assigns keys to at most `max_connections` slots of `per_connection` keys each."""

    open_slot: Callable[[int], Slot]
    _: KW_ONLY
    max_connections: int
    per_connection: int
    per_account: int = 0  # 0: max_connections x per_connection
    keep_open: int = 0
    retry_rejected: bool = False
    assigned: dict[K, int] = field(default_factory=dict)  # key -> slot index
    wanted: dict[K, V] = field(default_factory=dict)
    rejected: set[K] = field(default_factory=set)
    stopped: bool = False

    def __post_init__(self) -> None:
        self.per_account = self.per_account or self.max_connections * self.per_connection
        self.keep_open = min(self.keep_open, self.max_connections)
        self.slots: list[Slot | None] = [None] * self.max_connections
        self._closed_counts: Counter[str] = Counter()  # counters of connections already closed

    def limit_message(self) -> str:
        return f"the broker allows {self.max_connections} connections x {self.per_connection} subscriptions"

    async def assign(self, wanted: Mapping[K, V]) -> list[K]:
        """Make the pool's upstream sets equal `wanted`; returns the keys newly rejected for the cap."""
        if self.stopped:
            return []
        self.wanted = dict(wanted)
        self.assigned = {key: slot for key, slot in self.assigned.items() if key in self.wanted}
        self.rejected &= self.wanted.keys()
        load = Counter(self.assigned.values())
        newly: list[K] = []
        for key in self.wanted:
            if key in self.assigned or (key in self.rejected and not self.retry_rejected):
                continue
            slot = next((i for i in range(self.max_connections) if load[i] < self.per_connection), None)
            if slot is None or len(self.assigned) >= self.per_account:
                if key not in self.rejected:
                    self.rejected.add(key)
                    newly.append(key)
                continue
            self.rejected.discard(key)
            self.assigned[key] = slot
            load[slot] += 1
        await self._apply()
        return newly

    def drop(self, keys: list[K]) -> list[K]:
        """The broker refused `keys` (an error reply): mark them rejected and take them out of their
        connections' sets (an emptied slot closes at the next `assign`); returns those that were placed."""
        dropped = [key for key in keys if self.assigned.pop(key, None) is not None and key in self.wanted]
        self.rejected.update(dropped)
        for conn, shard in zip(self.slots, self._shards(), strict=True):
            if conn is not None:
                conn.set_wanted(shard)
        return dropped

    async def open_kept(self) -> None:
        """Open the slots that stay open with nothing wanted."""
        await self._apply()

    def _shards(self) -> list[dict[K, V]]:
        shards: list[dict[K, V]] = [{} for _ in range(self.max_connections)]
        for key, slot in self.assigned.items():
            shards[slot][key] = self.wanted[key]
        return shards

    async def _apply(self) -> None:
        for index, shard in enumerate(self._shards()):
            conn = self.slots[index]
            if shard or index < self.keep_open:
                if conn is None:
                    conn = self.slots[index] = self.open_slot(index)
                    conn.start()
                conn.set_wanted(shard)
            elif conn is not None:
                await self._close(index)

    async def _close(self, index: int) -> None:
        conn, self.slots[index] = self.slots[index], None
        if conn is not None:
            self._closed_counts.update({name: getattr(conn, name) for name in COUNTERS})
            await conn.stop()

    async def stop(self) -> None:
        self.stopped = True
        for index in range(self.max_connections):
            await self._close(index)

    # -- status ------------------------------------------------------------------------------------

    def connections(self) -> list[Slot]:
        return [c for c in self.slots if c is not None]

    def state(self, started: bool) -> ConnectionState:
        """One state for the account: CONNECTED only when every open connection is."""
        conns = self.connections()
        if self.stopped:
            return ConnectionState.CLOSED
        if not conns:
            # started and idle: connections open on the first subscription, so nothing is unhealthy
            return ConnectionState.CONNECTED if started else ConnectionState.DISCONNECTED
        states = {c.state for c in conns}
        if states == {ConnectionState.CONNECTED}:
            return ConnectionState.CONNECTED
        waiting = (ConnectionState.BACKING_OFF, ConnectionState.CONNECTING)
        return next((state for state in waiting if state in states), ConnectionState.DISCONNECTED)

    def total(self, counter: str) -> int:
        """A counter summed over open and already closed connections."""
        live: int = sum(getattr(c, counter) for c in self.connections())
        return self._closed_counts[counter] + live

    def connected(self) -> int:
        return sum(1 for c in self.connections() if c.state is ConnectionState.CONNECTED)

    def last_message(self) -> float:
        return max((c.last_message for c in self.connections()), default=0.0)
