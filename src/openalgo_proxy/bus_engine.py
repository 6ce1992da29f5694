"""What a bus engine offers its two sides; ZeroMQ (`bus.py`, the default) and NATS (`bus_nats.py`)
implement it.

Feed side: publish frames (ticks, snapshots, control), learn interest through the callback it is
opened with (`on_subscription(subscribe, topic)`: every new holder of a topic, and the last one
leaving). Proxy side: subscribe/unsubscribe topics or control prefixes; the engine's drain hands
each frame to the hub as ``[topic, seq, data(, "snapshot")]`` and calls the hub's batch end.
"""

from __future__ import annotations

from typing import Protocol


class FeedBus(Protocol):
    """A feed's publishing side of the bus."""

    @property
    def endpoint(self) -> str: ...

    def publish(self, topic: bytes, seq: int, data: bytes) -> None:
        """Never blocks; at most once."""

    def publish_snapshot(self, topic: bytes, seq: int, data: bytes) -> None:
        """A replayed last value (same seq), marked as a snapshot."""

    def close(self) -> None:
        """Stop publishing now."""


class ProxyBus(Protocol):
    """A proxy's receiving side of the bus."""

    def subscribe(self, topic: bytes) -> None:
        """A market-data topic, or a control prefix such as ``#status|``."""

    def unsubscribe(self, topic: bytes) -> None: ...
