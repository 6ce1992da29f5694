"""One measured run: synthetic feed + server under test + client swarm, each its own process."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Histogram, free_port
from bench.processes import (
    Child,
    ChildError,
    http_get,
    http_ok,
    port_open,
    prometheus_quantile,
    prometheus_values,
    python_argv,
)
from bench.profile import py_spy, record_argv
from bench.profile import summarize as summarize_profile
from bench.scenarios import Scenario, subscribers_per_symbol

READY_TIMEOUT = 30.0
SWARM_SATURATED = 90.0  # % of one core


@dataclass
class RunResult:
    scenario: str
    server: str
    ok: bool = True
    error: str = ""
    delivered: float = 0.0  # messages per second received by the swarm
    bytes_per_second: float = 0.0
    due: float = 0.0  # messages per second the feed's ticks call for
    feed_rate: float = 0.0
    checked: int = 0
    gaps: int = 0
    latency: Histogram = field(default_factory=Histogram)
    handshake: Histogram = field(default_factory=Histogram)
    server_cpu: float = 0.0  # % of one core
    server_rss: int = 0
    rss_before: int = 0
    swarm_cpu: list[float] = field(default_factory=list)
    feed_cpu: float = 0.0
    clients_ready: int = 0
    connect_rate: float = 0.0  # clients connected and subscribed per second during setup
    clients_failed: int = 0
    closed: int = 0
    sub_errors: int = 0
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    own_p50: float = float("nan")  # the proxy's tick_to_send histogram (bucket bounds, ms, whole run)
    own_p99: float = float("nan")
    setup_cpu_us: float = 0.0  # server CPU per client during connect + subscribe, microseconds
    proxy_metrics: dict[str, float] = field(default_factory=dict)  # /metrics after the run (whole run)

    @property
    def loss(self) -> float:
        total = self.checked + self.gaps
        return self.gaps / total if total else 0.0

    @property
    def kib_per_conn(self) -> float:
        if not self.clients_ready:
            return float("nan")
        return (self.server_rss - self.rss_before) / self.clients_ready / 1024


def server_argv(kind: str, port: int, bus: str) -> list[str]:
    if kind == "proxy-nats":
        return python_argv("openalgo_proxy", "serve", "--port", str(port), "--log-level", "WARNING")
    if kind == "proxy":
        return python_argv("openalgo_proxy", "serve", "--port", str(port), "--bus", bus, "--log-level", "WARNING")
    return python_argv(f"bench.{kind}_server", "--port", str(port), "--bus", bus)


def proxy_env(scenario: Scenario) -> dict[str, str]:
    """Settings for the bench: no keepalive pings during a run (the counting clients do not parse
    frames), room for the wide scenario's subscriptions, and for the swarm's handshakes in flight:
    every swarm client comes from 127.0.0.1, which the per-address slowloris cap would otherwise cut."""
    return {
        "OPENALGO_PROXY_PROXY__PING_INTERVAL": "3600",
        "OPENALGO_PROXY_PROXY__MAX_SUBSCRIPTIONS_PER_CONNECTION": str(max(3000, scenario.subscriptions)),
        "OPENALGO_PROXY_PROXY__MAX_CONNECTIONS": str(max(20000, scenario.clients + 100)),
        "OPENALGO_PROXY_LIMITS__MAX_PENDING_HANDSHAKES_PER_ADDRESS": str(max(1000, scenario.concurrency * 4)),
    }


def nats_env(url: str) -> dict[str, str]:
    return {"OPENALGO_PROXY_BUS__ENGINE": "nats", "OPENALGO_PROXY_BUS__URLS": f'["{url}"]'}


def nats_server_argv(port: int, store: Path) -> list[str]:
    """The venv's pinned nats-server (make nats-server), JetStream on, loopback only."""
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.exists():
        raise ChildError("proxy-nats needs nats-server in the venv: make nats-server")
    return [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]


async def wait_port(port: int, child: Child) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while not await port_open(port):
        if child.proc.returncode is not None or loop.time() > deadline:
            raise ChildError(f"{child.name} did not listen on {port}; log: {child.log_path}\n{child.tail()}")
        await asyncio.sleep(0.05)


async def wait_server(kind: str, server: Child, port: int) -> None:
    if not kind.startswith("proxy"):
        await server.expect("ready", READY_TIMEOUT)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while loop.time() < deadline:
        if server.proc.returncode is not None:
            raise ChildError(f"{kind} exited early; log: {server.log_path}\n{server.tail()}")
        ready = await http_ok(port, "/readyz") if kind == "proxy" else await port_open(port)
        if ready:
            return
        await asyncio.sleep(0.1)
    raise ChildError(f"{kind} not ready within {READY_TIMEOUT:.0f} s; log: {server.log_path}\n{server.tail()}")


def swarm_argv(scenario: Scenario, port: int, first: int, count: int) -> list[str]:
    return python_argv(
        "bench.swarm",
        "--port",
        str(port),
        "--first-client",
        str(first),
        "--clients",
        str(count),
        "--total-clients",
        str(scenario.clients),
        "--subscriptions",
        str(scenario.subscriptions),
        "--symbols",
        str(scenario.symbols),
        "--mode",
        str(scenario.mode),
        "--checkers",
        str(scenario.checkers),
        "--concurrency",
        str(scenario.concurrency),
        "--setup-timeout",
        str(scenario.setup_timeout),
    )


async def run_once(scenario: Scenario, kind: str, log_dir: Path, profile: bool = False) -> RunResult:
    result = RunResult(scenario.name, kind)
    children: list[Child] = []
    run_dir = log_dir / f"{scenario.name}-{kind}-{time.strftime('%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        await _measure(scenario, kind, run_dir, children, result, profile)
    except ChildError as exc:
        result.ok = False
        result.error = str(exc)
    finally:
        for child in reversed(children):
            await child.stop()
    return result


async def _measure(
    scenario: Scenario, kind: str, run_dir: Path, children: list[Child], result: RunResult, profile: bool
) -> None:
    bus_port, port = free_port(), free_port()
    bus = f"tcp://127.0.0.1:{bus_port}"
    budget = scenario.setup_timeout + scenario.warmup + scenario.duration + 120
    env = proxy_env(scenario)
    feed_source = ["bench.synthetic", "--bus", bus]
    if kind == "proxy-nats":
        nats_port = free_port()
        nats_server = await Child.start("nats-server", nats_server_argv(nats_port, run_dir / "js"), run_dir)
        children.append(nats_server)
        await wait_port(nats_port, nats_server)
        url = f"nats://127.0.0.1:{nats_port}"
        feed_source = ["bench.synthetic_nats", "--nats", url]
        env |= nats_env(url)
    feed = await Child.start(
        "feed",
        python_argv(
            *feed_source,
            "--symbols",
            str(scenario.symbols),
            "--rate",
            str(scenario.rate),
            "--mode",
            str(scenario.mode),
            "--max-seconds",
            str(budget),
            "--hold",
        ),
        run_dir,
    )
    children.append(feed)
    await feed.expect("ready", READY_TIMEOUT)
    server = await Child.start(kind, server_argv(kind, port, bus), run_dir, env)
    children.append(server)
    if scenario.pin:  # the server alone on CPU 0, everything else on the other CPUs
        server.pin([0])
        feed.pin(None)
    await wait_server(kind, server, port)
    await asyncio.sleep(0.5)
    result.rss_before = server.rss()

    setup_cpu0 = server.cpu_seconds()
    # idle: profile the connection setup (what idle measures); else the measurement window
    setup_spy = await _start_profile(None, server, run_dir) if profile and scenario.idle else None
    procs = max(1, min(scenario.swarm_procs, scenario.clients))
    swarms: list[Child] = []
    first = 0
    for k in range(procs):
        count = scenario.clients // procs + (1 if k < scenario.clients % procs else 0)
        swarm = await Child.start(f"swarm{k}", swarm_argv(scenario, port, first, count), run_dir)
        first += count
        if scenario.pin:
            swarm.pin(None)
        swarms.append(swarm)
        children.append(swarm)
    setup = 0.0
    for swarm in swarms:
        ready = await swarm.expect("ready", scenario.setup_timeout + 10)
        setup = max(setup, float(ready["setup_seconds"]))
        result.clients_ready += int(ready["clients"])
        result.clients_failed += int(ready["failed"])
        result.sub_errors += int(ready["sub_errors"])
        result.handshake.merge(Histogram.from_json(ready["handshake"]))

    if setup_spy is not None:
        setup_spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(setup_spy.wait(), 60)
        result.profile = summarize_profile(run_dir / f"{kind}.folded")
    feed.tell("go")  # clients subscribe in a quiet system; ticks flow from here on
    if result.clients_ready:
        result.setup_cpu_us = (server.cpu_seconds() - setup_cpu0) / result.clients_ready * 1e6
    if setup > 0:
        result.connect_rate = result.clients_ready / setup
    await asyncio.sleep(scenario.warmup)
    t0 = time.time() + 0.3
    t1 = t0 + scenario.duration
    for child in (feed, *swarms):
        child.tell(f"window {t0:.6f} {t1:.6f}")
    await asyncio.sleep(max(0.0, t0 - time.time()))
    spy = await _start_profile(scenario.duration, server, run_dir) if profile and not scenario.idle else None
    cpu0 = {child.name: child.cpu_seconds() for child in children}
    wall0 = time.monotonic()
    peak_rss = server.rss()
    while time.time() < t1:
        await asyncio.sleep(min(0.5, max(0.0, t1 - time.time())))
        peak_rss = max(peak_rss, server.rss())
    wall = time.monotonic() - wall0
    cpu = {child.name: (child.cpu_seconds() - cpu0[child.name]) / wall * 100 for child in children}
    result.server_rss = peak_rss
    result.server_cpu = cpu[kind]
    result.feed_cpu = cpu["feed"]
    result.swarm_cpu = [cpu[s.name] for s in swarms]

    if spy is not None:
        await asyncio.wait_for(spy.wait(), 60)
        result.profile = summarize_profile(run_dir / f"{kind}.folded")
    feed_window = await feed.expect("window", scenario.duration + 30)
    if kind.startswith("proxy"):
        scraped = await http_get(port, "/metrics")
        result.proxy_metrics = prometheus_values(scraped, "openalgo_proxy_")
        if not scenario.idle:
            name = "openalgo_proxy_tick_to_send_seconds"
            result.own_p50, result.own_p99 = (prometheus_quantile(scraped, name, q) * 1000 for q in (0.5, 0.99))
    messages = nbytes = 0
    seconds = []
    for swarm in swarms:
        window = await swarm.expect("window", scenario.duration + 30)
        messages += int(window["messages"])
        nbytes += int(window["bytes"])
        seconds.append(float(window["seconds"]))
        result.checked += int(window["checked"])
        result.gaps += int(window["gaps"])
        result.closed += int(window["closed"])
        result.latency.merge(Histogram.from_json(window["latency"]))
    span = max(seconds) if seconds else scenario.duration
    result.delivered = messages / span if span else 0.0
    result.bytes_per_second = nbytes / span if span else 0.0
    ticks = int(feed_window["ticks"])
    result.feed_rate = ticks / float(feed_window["seconds"]) if feed_window["seconds"] else 0.0
    fanout = sum(subscribers_per_symbol(scenario)) / scenario.symbols
    result.due = result.feed_rate * fanout
    _notes(scenario, result, int(feed_window.get("dropped", 0)))


async def _start_profile(seconds: float | None, server: Child, run_dir: Path) -> asyncio.subprocess.Process:
    exe = py_spy()
    if exe is None:
        raise ChildError("--profile needs py-spy: .venv/bin/pip install py-spy")
    out = run_dir / f"{server.name}.folded"
    with (run_dir / "py-spy.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            *record_argv(exe, server.proc.pid, seconds, out), stdout=log, stderr=log
        )


def _notes(scenario: Scenario, result: RunResult, feed_dropped: int) -> None:
    notes = result.notes
    if result.clients_failed:
        notes.append(f"{result.clients_failed} clients failed to connect/subscribe")
    if result.sub_errors:
        notes.append(f"{result.sub_errors} subscription errors")
    if result.closed:
        notes.append(f"{result.closed} clients closed by server")
    if scenario.rate and result.feed_rate < 0.98 * scenario.rate:
        notes.append(f"feed lagging ({result.feed_rate:,.0f}/s of {scenario.rate:,.0f}/s)")
    if feed_dropped:
        notes.append(f"feed dropped {feed_dropped} at HWM")
    metrics = result.proxy_metrics
    for name, label in (
        ("openalgo_proxy_conflated_ticks_total", "proxy conflated {:,.0f} ticks (slow-client path)"),
        ("openalgo_proxy_bus_gaps_total", "proxy saw {:,.0f} bus seq gaps"),
        ("openalgo_proxy_slow_disconnects_total", "proxy closed {:,.0f} slow clients"),
    ):
        if metrics.get(name):
            notes.append(label.format(metrics[name]))
    busy = [cpu for cpu in result.swarm_cpu if cpu >= SWARM_SATURATED]
    if busy:
        notes.append(f"swarm saturated ({max(busy):.0f}% CPU): figures are a lower bound")
