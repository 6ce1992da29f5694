"""Scenario definitions: the full-size figures of issue 3, each scalable from the command line."""

from __future__ import annotations

from dataclasses import dataclass, replace

SERVERS = ("baseline", "proxy", "ceiling", "proxy-nats")  # proxy-nats: the proxy on the NATS bus engine


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    subscriptions: int
    symbols: int
    rate: float  # ticks per second into the bus, all symbols together
    duration: float = 5.0  # measurement window, seconds
    warmup: float = 1.0
    mode: int = 2
    swarm_procs: int = 1
    checkers: int = 20
    concurrency: int = 100  # handshakes in flight per swarm process
    setup_timeout: float = 120.0
    pin: bool = False  # server alone on CPU 0; feed and swarm on the others
    target: str = ""  # the figure to reach, for the table's notes

    @property
    def idle(self) -> bool:
        return self.rate <= 0

    def scaled(self, **changes: object) -> Scenario:
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given)  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {
    "fanout": Scenario(
        "fanout",
        clients=1000,
        subscriptions=100,
        symbols=2000,
        rate=32_000,
        warmup=2.0,
        swarm_procs=2,
        checkers=50,
        target=">= 1.5 M msg/s, no loss, p99 <= 5 ms",
    ),
    "wide": Scenario(
        "wide", clients=1, subscriptions=5000, symbols=5000, rate=50_000, checkers=1, target="50 k msg/s, p99 <= 2 ms"
    ),
    "idle": Scenario(
        "idle",
        clients=10_000,
        subscriptions=10,
        symbols=2000,
        rate=0,
        duration=1.0,
        swarm_procs=2,
        checkers=0,
        concurrency=10,  # handshakes in flight per swarm process: a steady stream of new clients
        target="<= 32 KiB/conn, handshake p99 <= 50 ms",
    ),
    "smoke": Scenario(
        "smoke", clients=4, subscriptions=10, symbols=20, rate=400, duration=2.0, warmup=0.5, checkers=2, target="runs"
    ),
}


def subscribers_per_symbol(scenario: Scenario) -> list[int]:
    from bench.common import client_symbols

    counts = [0] * scenario.symbols
    for client in range(scenario.clients):
        for symbol in client_symbols(client, scenario.subscriptions, scenario.symbols):
            counts[symbol] += 1
    return counts
