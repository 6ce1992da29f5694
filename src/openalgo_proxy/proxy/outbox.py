"""One client's outbound queue: what the hub fans out into and the shell writes from.

Fast path: the hub appends prebuilt frames to ``pending`` through the bound ``append`` (one list
method call per subscriber per tick) and calls ``flush`` once per bus drain: one write. While the
client is paused (over its outbound budget) the hub keeps only the latest frame per topic in
``conflated``; ``resume`` writes those in one go. Pure: the write function is given by the owner
(the asyncio shell, or a list in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from openalgo_proxy.proxy.frames import text_frame
from openalgo_proxy.proxy.metrics import ProxyMetrics

T = TypeVar("T")  # the hub's per-topic state (hub.TopicState); generic so this module needs no hub


def discard(data: bytes) -> None:
    """The write of a closed outbox."""


def _ignore_reject(state: object, code: str, message: str) -> None:
    """Default reject listener: nobody to tell."""


class Outbox(Generic[T]):
    __slots__ = (
        "append",
        "conflated",
        "metrics",
        "on_reject",
        "paused",
        "paused_since",
        "pending",
        "topics",
        "write",
    )

    def __init__(self, write: Callable[[bytes], None], metrics: ProxyMetrics) -> None:
        self.write = write
        self.metrics = metrics
        self.pending: list[bytes] = []
        self.append = self.pending.append  # the hub's hot path
        self.conflated: dict[T, bytes] = {}
        self.paused = False
        self.paused_since = 0.0
        # bus topic -> state of every topic this outbox is fed, kept by the hub
        self.topics: dict[bytes, T] = {}
        # told when a feed refuses one of this outbox's topics (after the hub dropped it)
        self.on_reject: Callable[[T, str, str], None] = _ignore_reject

    def flush(self) -> None:
        """Everything pending in one write."""
        pending = self.pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.metrics.bytes_out += len(data)
        self.write(data)

    def send(self, payload: bytes) -> None:
        """A reply or event (not market data): after anything pending, ahead of later ticks."""
        self.pending.append(text_frame(payload))
        self.flush()

    def send_frames(self, frames: list[bytes]) -> None:
        """Prebuilt frames (snapshots) after anything pending."""
        self.pending.extend(frames)
        self.flush()

    def pause(self, now: float) -> None:
        self.paused = True
        self.paused_since = now

    def resume(self) -> None:
        """Back under budget: the latest frame of every topic that conflated, in one write."""
        self.paused = False
        if self.conflated:
            data = b"".join(self.conflated.values())
            self.conflated.clear()
            self.metrics.bytes_out += len(data)
            self.write(data)

    def close(self) -> None:
        """Nothing more is written; what is queued is dropped."""
        self.write = discard
        self.pending.clear()
        self.conflated.clear()
