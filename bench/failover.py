"""`python -m bench.failover`: feed failover on the NATS bus, measured end to end.

A nats-server (the venv's), a proxy in this process with one client subscribed, two simulator feed
processes of one account. Per run: kill -9 (or SIGTERM with `--graceful`) of the feed holding the
lease, then the time until the client receives the first tick of the new run. Prints one line per
run and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

from bench.common import free_port
from openalgo_proxy.bus import RUN_SHIFT
from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.proxy.server import ProxyServer


def feed(url: str, ttl: float, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "OPENALGO_PROXY_FEED__BROKER": "simulator",
        "OPENALGO_PROXY_FEED__TICKS_PER_SECOND": "50",
        "OPENALGO_PROXY_FEED__COALESCE_WINDOW": "0.005",
        "OPENALGO_PROXY_BUS__ENGINE": "nats",
        "OPENALGO_PROXY_BUS__URLS": json.dumps([url]),
        "OPENALGO_PROXY_BUS__LEASE_TTL": str(ttl),
    }
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "openalgo_proxy", "feed"], env=env, stdout=out, stderr=out)


async def until(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def nats_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = Path(sys.executable).parent / "nats-server"
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"nats://127.0.0.1:{port}"


async def measure(url: str, runs: int, ttl: float, graceful: bool, tmp: Path) -> list[float]:
    feeds: list[subprocess.Popen[bytes]] = []
    gaps: list[float] = []
    proxy: ProxyServer | None = None
    try:
        await asyncio.sleep(0.5)
        bus = BusSettings.model_validate({"engine": "nats", "urls": [url]})
        proxy = ProxyServer(ProxySettings.model_validate({"port": 0}), bus=bus)
        await proxy.start()
        nats_bus = proxy.nats
        feeds = [feed(url, ttl, tmp / "feed-0.log")]
        await until(lambda: proxy is not None and proxy.ready()[0], 20)
        feeds.append(feed(url, ttl, tmp / "feed-1.log"))
        await until(lambda: _campaigning(tmp / "feed-1.log"), 30)
        async with websockets.connect(f"ws://127.0.0.1:{proxy.port}") as ws:
            request = {"action": "subscribe", "symbols": [{"symbol": "SBIN", "exchange": "NSE"}], "mode": 1}
            await ws.send(json.dumps(request))
            for attempt in range(runs):
                run = nats_bus.leases.by_broker["simulator"]
                holder = next(p for p in feeds if p.poll() is None and _holds(p, tmp, feeds))
                killed = time.monotonic()
                os.kill(holder.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("type") == "market_data" and msg["seq"] >> RUN_SHIFT > run >> RUN_SHIFT:
                        break
                gap = time.monotonic() - killed
                gaps.append(gap)
                sys.stdout.write(f"run {attempt + 1}: first tick of the new feed {gap * 1000:.0f} ms after the stop\n")
                holder.wait(timeout=20)
                index = feeds.index(holder)
                log = tmp / f"feed-{index}.log"
                log.write_bytes(b"")
                feeds[index] = feed(url, ttl, log)  # the next standby
                await until(lambda log=log: _campaigning(log), 30)
    finally:
        if proxy is not None:
            await proxy.stop(within=1.0)
        for proc in feeds:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    return gaps


def _campaigning(log: Path) -> bool:
    """The feed is connected and watching the lease (it logs this once it campaigns)."""
    return "campaigning" in log.read_text(errors="replace")


def _holds(proc: subprocess.Popen[bytes], tmp: Path, feeds: list[subprocess.Popen[bytes]]) -> bool:
    """The feed whose log's last lease line says it holds the account (a restarted feed appends
    "campaigning" to the same log)."""
    text = (tmp / f"feed-{feeds.index(proc)}.log").read_text(errors="replace")
    lines = [line for line in text.splitlines() if "holding the account" in line or "campaigning" in line]
    return bool(lines) and "holding the account" in lines[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttl", type=float, default=1.0, help="lease TTL, seconds")
    parser.add_argument("--graceful", action="store_true", help="SIGTERM instead of kill -9")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = nats_server(Path(tmp))
        try:
            gaps = asyncio.run(measure(url, args.runs, args.ttl, args.graceful, Path(tmp)))
        finally:
            server.terminate()
            server.wait(timeout=10)
    with contextlib.suppress(statistics.StatisticsError):
        sys.stdout.write(
            f"{'SIGTERM' if args.graceful else 'kill -9'}, lease TTL {args.ttl} s: median "
            f"{statistics.median(gaps) * 1000:.0f} ms, min {min(gaps) * 1000:.0f}, max {max(gaps) * 1000:.0f}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
