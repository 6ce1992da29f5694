"""The chain benchmark's parts run and measure (no targets asserted: those are for `make bench`)."""

from __future__ import annotations

import math

from bench import chain


def test_compute_rate_measures_a_41_strike_chain() -> None:
    rate, p99_ms = chain.compute_rate(seconds=0.2)
    assert rate > 0 and p99_ms > 0


def test_latency_counts_every_tick_sent() -> None:
    p50, p99, samples = chain.latency_p99(0.005, ticks=30, gap=0.005)
    assert samples == 30
    assert math.isfinite(p50) and p99 >= p50 > 0
