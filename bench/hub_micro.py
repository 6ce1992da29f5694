"""The hub's fan-out cost per tick, in-process (no sockets, no feed): `python -m bench.hub_micro`.

1000 outboxes x 100 subscriptions over 2000 topics (50 subscribers a topic, the `fanout` shape), Quote
data of ~340 bytes, a flush every 100 ticks (a bus drain), writes to a function that does nothing.
Prints CPU microseconds per tick and the hub's share of a fan-out rate (messages per hub CPU-second):
what the proxy's redesign and any hot-path change must keep, measured without the machine's noise
of the full `fanout` run. Repeat it interleaved with the code under comparison (PYTHONPATH).
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import msgspec

from openalgo_proxy import topics
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.hub import Hub, TopicState
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox

OUTBOXES = 1000
SUBSCRIPTIONS = 100
SYMBOLS = 2000
DRAIN = 100
DATA = (
    b'{"symbol":"S","exchange":"NSE","ltp":2500.0,"ltt":1733460000000,"timestamp":1733460000123,'
    b'"open":2490.5,"high":2510.0,"low":2480.0,"close":2495.0,"change":5.0,"change_percent":0.2,'
    b'"volume":123456789,"avg_trade_price":2497.3,"last_trade_quantity":10,"total_buy_quantity":100000,'
    b'"total_sell_quantity":120000,"oi":0,"bts":1733460000123456}'
)


def _ignore(data: bytes) -> None:
    """The transport's write, for the measurement."""


def run(ticks: int) -> tuple[float, float]:
    """(CPU microseconds per tick, messages per hub CPU-second)."""
    metrics = ProxyMetrics()
    hub = Hub(metrics, lambda topic: None, lambda topic: None, "bench")
    names = [f"S{i}" for i in range(SYMBOLS)]
    directory = {"broker": "bench", "exchanges": ["NSE"], "symbols": {"NSE": names}}
    hub.on_bus_message([topics.instruments_topic("bench"), (1).to_bytes(8, "big"), msgspec.json.encode(directory)])
    rng = random.Random(1)
    for _ in range(OUTBOXES):
        box: Outbox[TopicState] = Outbox(_ignore, metrics)
        for name in rng.sample(names, SUBSCRIPTIONS):
            hub.subscribe(box, name, "NSE", Mode.QUOTE)
    bus_topics = [topics.bus_topic("NSE", name, Mode.QUOTE) for name in names]
    seqs = [0] * SYMBOLS
    on_message = hub.on_bus_message
    started = time.process_time()
    for i in range(ticks):
        j = i % SYMBOLS
        seqs[j] += 1
        on_message([bus_topics[j], seqs[j].to_bytes(8, "big"), DATA])
        if i % DRAIN == DRAIN - 1:
            hub.flush()
    hub.flush()
    took = time.process_time() - started
    return took / ticks * 1e6, metrics.messages_out / took


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    runs = [run(ticks) for _ in range(5)]
    per_tick = statistics.median(r[0] for r in runs)
    rate = statistics.median(r[1] for r in runs)
    sys.stdout.write(f"hub fan-out: {per_tick:.2f} us per tick (median of 5), {rate / 1e6:.2f} M msg per hub CPU-s\n")


if __name__ == "__main__":
    main()
