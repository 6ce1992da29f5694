"""Per-connection log lines, rate-limited per peer address: one client reconnecting in a loop (or
triggering errors) cannot flood the log, nor block a process whose log pipe nobody drains.

Each address has a bucket of `burst` lines refilled at `rate` lines per second; lines over it are
counted and the count is reported with the next line that gets through.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from openalgo_proxy.proxy.limits import TokenBucket


class PeerLog:
    def __init__(
        self, logger: logging.Logger, burst: float = 100.0, rate: float = 10.0, max_peers: int = 10000
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.rate = rate
        self.max_peers = max_peers
        self._buckets: dict[str, TokenBucket] = {}
        self._suppressed: dict[str, int] = {}

    def _admit(self, address: str) -> int | None:
        """None when this line is over the address's budget; else how many were suppressed before it."""
        now = time.monotonic()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_peers:
                self._buckets.clear()
                self._suppressed.clear()
            bucket = self._buckets[address] = TokenBucket(self.rate, self.burst, now)
        if not bucket.take(now):
            self._suppressed[address] = self._suppressed.get(address, 0) + 1
            return None
        return self._suppressed.pop(address, 0)

    def info(self, address: str, message: str, *args: Any) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        suppressed = self._admit(address)
        if suppressed is None:
            return
        if suppressed:
            self.logger.info(message + " (%d earlier lines from %s not logged)", *args, suppressed, address)
        else:
            self.logger.info(message, *args)

    def error(self, address: str, message: str, *args: Any) -> None:
        """An unexpected error, with its traceback (call from an except block)."""
        suppressed = self._admit(address)
        if suppressed is None:
            return
        self.logger.error(message + " (%d earlier lines from %s not logged)", *args, suppressed, address, exc_info=True)
