"""Abuse control that costs a few arithmetic operations per command: token buckets on monotonic time
(no tasks, no timers) and per-identity connection counts."""

from __future__ import annotations

from collections import Counter

from openalgo_proxy.config import LimitSettings

VIOLATION_WINDOW = 60.0  # seconds over which max_protocol_errors refills


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if there are that many; otherwise take none and answer False."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= cost:
            self.tokens = tokens - cost
            return True
        self.tokens = tokens
        return False

    def drain(self, now: float, cost: float) -> bool:
        """Charge `cost` tokens even past empty (work already done); False when it went below zero."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        self.tokens = tokens - cost
        return self.tokens >= 0.0


class Guard:
    """Per connection: a command rate bucket and a budget of violations (protocol errors, failed
    authentications, rate-limited commands) that refills over a minute; an empty budget means 4029."""

    __slots__ = ("commands", "violations")

    def __init__(self, limits: LimitSettings, now: float) -> None:
        self.commands = TokenBucket(limits.commands_per_second, limits.command_burst, now)
        budget = limits.max_protocol_errors
        self.violations = TokenBucket(budget / VIOLATION_WINDOW, budget, now)

    def allow_command(self, now: float, cost: float = 1.0) -> bool:
        return self.commands.take(now, cost)

    def charge(self, now: float, cost: float) -> None:
        """Work already done for the client (entries served, reply bytes): later commands wait for it."""
        self.commands.drain(now, cost)

    def violation(self, now: float, count: int = 1) -> bool:
        """Record violations; False when the budget is spent and the connection must close."""
        if count == 1:
            return self.violations.take(now)
        return self.violations.drain(now, count)


class IdentityCounter:
    """Concurrent authenticated connections per identity."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, identity: str) -> int:
        return self._counts[identity]

    def acquire(self, identity: str, limit: int) -> bool:
        if self._counts[identity] >= limit:
            return False
        self._counts[identity] += 1
        return True

    def release(self, identity: str) -> None:
        left = self._counts[identity] - 1
        if left > 0:
            self._counts[identity] = left
        else:
            del self._counts[identity]
