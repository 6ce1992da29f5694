"""Reconnect delays: exponential backoff with full jitter and a cap, reset on success."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n (0-based) is uniform in [0, min(maximum, initial * factor**n)]."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("Backoff needs 0 < initial <= maximum and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        # cap the exponent so huge attempt counts never overflow a float
        return min(self.maximum, self.initial * self.factor ** min(attempt, 64))


@dataclass(slots=True)
class BackoffState:
    """Retry counter of one connection; `next_delay` draws the next jittered delay."""

    policy: Backoff
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self, minimum: float = 0.0) -> float:
        delay = self.rng.uniform(0.0, self.policy.ceiling(self.attempt))
        self.attempt += 1
        return max(delay, minimum)

    def reset(self) -> None:
        self.attempt = 0
