"""The benchmark's measuring parts, checked without processes or sockets."""

from __future__ import annotations

import json
import math
import os

from bench.common import Histogram, client_frame, client_symbols, subscribe_requests, unmask
from bench.processes import prometheus_quantile, prometheus_values
from bench.report import summarize
from bench.runner import RunResult
from bench.scenarios import SCENARIOS, subscribers_per_symbol

from bench import hub_micro


def test_histogram_percentiles_merge_and_roundtrip() -> None:
    a, b = Histogram(), Histogram()
    for value in range(1, 1001):  # 1..1000 us
        a.add(value)
    b.add(2_500_000)  # 2.5 s lands in a coarse bucket; the max stays exact
    a.merge(Histogram.from_json(json.loads(json.dumps(b.to_json()))))
    assert a.count == 1001
    assert 0.5 <= a.percentile_ms(0.5) <= 0.51  # upper edge of a 10 us bucket
    assert 0.99 <= a.percentile_ms(0.99) <= 1.0
    assert a.percentile_ms(1.0) == 2500.0
    assert math.isnan(Histogram().percentile_ms(0.5))


def test_client_frame_is_masked_and_unmasks() -> None:
    payload = b'{"action":"subscribe"}' * 10
    frame = client_frame(payload)
    assert frame[0] == 0x81 and frame[1] & 0x80
    assert frame[1] & 0x7F == 126 and int.from_bytes(frame[2:4], "big") == len(payload)
    mask = frame[4:8]
    assert unmask(frame[8:], mask) == payload
    data = os.urandom(1001)
    assert unmask(unmask(data, b"abcd"), b"abcd") == data


def test_subscriptions_spread_evenly_and_requests_are_chunked() -> None:
    fanout = SCENARIOS["fanout"]
    counts = subscribers_per_symbol(fanout)
    assert set(counts) == {fanout.clients * fanout.subscriptions // fanout.symbols}
    assert len(set(client_symbols(3, 100, 2000))) == 100
    requests = subscribe_requests(range(1200), mode=2)
    assert len(requests) == 3
    assert sum(len(json.loads(r)["symbols"]) for r in requests) == 1200
    assert all(len(r) < 65536 for r in requests)  # the proxy's default inbound cap


def test_prometheus_parsing() -> None:
    text = (
        b"# HELP x\n"
        b"openalgo_proxy_conflated_ticks_total 12.0\n"
        b'openalgo_proxy_slow_disconnects_total{code="4008"} 2.0\n'
        b'openalgo_proxy_tick_to_send_seconds_bucket{le="0.001"} 90.0\n'
        b'openalgo_proxy_tick_to_send_seconds_bucket{le="0.01"} 99.0\n'
        b'openalgo_proxy_tick_to_send_seconds_bucket{le="+Inf"} 100.0\n'
    )
    values = prometheus_values(text, "openalgo_proxy_")
    assert values["openalgo_proxy_conflated_ticks_total"] == 12.0
    assert values["openalgo_proxy_slow_disconnects_total"] == 2.0
    assert prometheus_quantile(text, "openalgo_proxy_tick_to_send_seconds", 0.5) == 0.001
    assert prometheus_quantile(text, "openalgo_proxy_tick_to_send_seconds", 0.99) == 0.01


def test_summary_takes_medians_and_ratios() -> None:
    runs = []
    for server, rates in (("baseline", (10.0, 30.0, 20.0)), ("proxy", (200.0, 100.0, 300.0)), ("ceiling", (400.0,))):
        for rate in rates:
            run = RunResult("fanout", server, delivered=rate, server_cpu=50.0)
            runs.append(run)
    rows = {row.server: row for row in summarize("fanout", False, runs)}
    assert rows["proxy"].delivered == 200.0 and rows["proxy"].runs == 3
    assert rows["proxy"].vs_baseline == 10.0
    assert rows["proxy"].of_ceiling == 50.0
    assert rows["proxy"].efficiency_of_ceiling == 50.0


def test_search_bench_measures_every_query_kind_on_a_master() -> None:
    from bench.search import QUERIES, master, measure

    rows = master(20_000)
    assert len(rows) == 20_000 and {row.exchange for row in rows} == {"NSE", "BSE", "NSE_INDEX", "NFO"}
    measured = measure(20_000, repeat=2)
    assert len(measured) == 1 + len(QUERIES) and all(median >= 0 for _, median, _ in measured)


def test_hub_micro_measures_a_full_fan_out() -> None:

    per_tick, rate = hub_micro.run(200)
    assert per_tick > 0 and rate > 0
