from __future__ import annotations

import random

from openalgo_proxy.brokers.base import Backoff, RetryAction, classify
from openalgo_proxy.errors import BrokerAuthError, BrokerError, BrokerRateLimited


def test_full_jitter_doubles_to_cap_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delay = backoff.next_delay()
        assert 0.0 <= delay <= ceilings[-1]
    assert ceilings[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert max(ceilings) == 60
    backoff.reset()
    assert backoff.ceiling() == 1.0


def test_jitter_spreads_delays() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(2))
    backoff.attempt = 10
    delays = {round(backoff.next_delay(), 3) for _ in range(50)}
    assert len(delays) > 40 and min(delays) < 20 and max(delays) > 40


def test_classification() -> None:
    assert classify(BrokerAuthError("401")) is RetryAction.REFRESH_CREDENTIALS
    assert classify(BrokerRateLimited("429")) is RetryAction.BACK_OFF_LONG
    assert classify(BrokerError("x")) is RetryAction.RETRY
    assert classify(OSError("reset")) is RetryAction.RETRY


def test_rate_limited_backs_off_long() -> None:
    backoff = Backoff(base=1.0, cap=60.0, long_delay=60.0, rng=random.Random(3))
    assert backoff.next_delay(RetryAction.BACK_OFF_LONG) >= 60.0
