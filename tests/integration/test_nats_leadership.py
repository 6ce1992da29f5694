"""Feed leadership on the NATS KV lease, with real feed processes and a real nats-server.

kill -9 of the active feed: the standby's ticks reach a client within the lease TTL plus the
simulator's start. SIGTERM: the lease is handed over at once (well inside the TTL). SIGSTOP past
the TTL, then SIGCONT: the woken old leader's frames are fenced (counted), none reaches a client,
and it stops. A server too old for per-message TTL is refused in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from openalgo_proxy.bus import RUN_SHIFT
from openalgo_proxy.bus_nats import BusEngineError, connect
from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.proxy.server import ProxyServer
from tests.nats_support import nats_cluster
from tests.support import client, wait_for

# timing: failover within the lease TTL and a SIGTERM hand-over within milliseconds are judged here
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60), pytest.mark.slow, pytest.mark.timing]


def feed_process(urls: list[str], tmp: Path, name: str, ttl: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "OPENALGO_PROXY_FEED__BROKER": "simulator",
        "OPENALGO_PROXY_FEED__STATUS_INTERVAL": "0.3",
        "OPENALGO_PROXY_FEED__COALESCE_WINDOW": "0.005",
        "OPENALGO_PROXY_FEED__TICKS_PER_SECOND": "20",
        "OPENALGO_PROXY_BUS__ENGINE": "nats",
        "OPENALGO_PROXY_BUS__URLS": json.dumps(urls),
        "OPENALGO_PROXY_BUS__LEASE_TTL": str(ttl),
    }
    log = (tmp / f"feed-{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "openalgo_proxy", "feed"], env=env, stdout=log, stderr=log)


@contextlib.asynccontextmanager
async def fleet(tmp: Path, ttl: float) -> AsyncIterator[tuple[ProxyServer, list[subprocess.Popen[bytes]], list[str]]]:
    with nats_cluster(tmp) as cluster:
        procs: list[subprocess.Popen[bytes]] = []
        bus = BusSettings.model_validate({"engine": "nats", "urls": cluster.urls, "proxy_ttl": 2.0})
        server = ProxyServer(ProxySettings.model_validate({"port": 0}), bus=bus)
        await server.start()
        try:
            procs.append(feed_process(cluster.urls, tmp, "a", ttl))
            await wait_for(lambda: bool(server.nats.leases.runs) and server.ready()[0], within=20)
            procs.append(feed_process(cluster.urls, tmp, "b", ttl))
            yield server, procs, cluster.urls
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            await server.stop(within=1.0)


def run_of(server: ProxyServer) -> int:
    return int(server.nats.leases.by_broker.get("simulator", 0))


async def standby_ready(tmp: Path) -> None:
    """The second feed logged its campaign (it is connected and watching the lease)."""
    await wait_for(lambda: "campaigning" in (tmp / "feed-b.log").read_text(errors="replace"), within=20)


def leader_pid(tmp: Path, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    holding = [p for p, n in zip(procs, "ab", strict=False) if "holding" in (tmp / f"feed-{n}.log").read_text()]
    assert len(holding) == 1
    return holding[0]


SUBSCRIBE = {"action": "subscribe", "symbols": [{"symbol": "SBIN", "exchange": "NSE"}], "mode": 1}


async def test_kill9_of_the_active_feed_resumes_on_the_standby(tmp_path: Path) -> None:
    async with fleet(tmp_path, ttl=1.0) as (server, procs, _), client(f"ws://127.0.0.1:{server.port}") as c:
        assert (await c.reply(SUBSCRIBE))["status"] == "success"
        await c.market_data(within=5)
        await standby_ready(tmp_path)
        old_run = run_of(server)
        victim = leader_pid(tmp_path, procs)
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        tick = await c.market_data(within=6, where=lambda m: m["seq"] >> RUN_SHIFT > old_run >> RUN_SHIFT)
        gap = time.monotonic() - killed
        assert run_of(server) != old_run
        # TTL 1 s + the simulator's start; generous for a loaded 2-core machine (bench/ measures it)
        assert gap < 3.0, f"first tick of the standby {gap:.2f} s after kill -9"
        assert tick["symbol"] == "SBIN"


async def test_sigterm_hands_over_within_milliseconds(tmp_path: Path) -> None:
    # a long TTL: a hand-over well inside it can only be the release, not the expiry
    async with fleet(tmp_path, ttl=5.0) as (server, procs, _):
        await standby_ready(tmp_path)
        old_run = run_of(server)
        victim = leader_pid(tmp_path, procs)
        stopped = time.monotonic()
        os.kill(victim.pid, signal.SIGTERM)
        await wait_for(lambda: run_of(server) not in (0, old_run), within=4.0)
        assert time.monotonic() - stopped < 2.0  # process stop included; the lease itself moves in ms
        victim.wait(timeout=10)


async def test_paused_old_leader_never_reaches_a_client(tmp_path: Path) -> None:
    async with fleet(tmp_path, ttl=1.0) as (server, procs, _), client(f"ws://127.0.0.1:{server.port}") as c:
        assert (await c.reply(SUBSCRIBE))["status"] == "success"
        await c.market_data(within=5)
        await standby_ready(tmp_path)
        old_run = run_of(server)
        victim = leader_pid(tmp_path, procs)
        os.kill(victim.pid, signal.SIGSTOP)
        first_new = await c.market_data(within=6, where=lambda m: m["seq"] >> RUN_SHIFT > old_run >> RUN_SHIFT)
        new_base = first_new["seq"] >> RUN_SHIFT
        fenced_before = server.nats.fenced
        os.kill(victim.pid, signal.SIGCONT)
        # the woken leader publishes its buffered ticks, then loses its renewal and stops
        await wait_for(lambda: server.nats.fenced > fenced_before, within=5)
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                seen.append(await c.market_data(within=0.3))
        assert seen, "ticks of the new leader keep flowing"
        assert all(m["seq"] >> RUN_SHIFT == new_base for m in seen), "a frame of the old run reached the client"
        assert run_of(server) >> RUN_SHIFT == new_base
        await wait_for(
            lambda: (
                "another feed holds the account"
                in (tmp_path / "feed-a.log").read_text() + (tmp_path / "feed-b.log").read_text()
            ),
            within=5,
        )


@contextlib.contextmanager
def old_server(version: str) -> Iterator[int]:
    """A NATS protocol peer announcing an old version: INFO, then PONG to every PING."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port: int = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                info = {"server_id": "OLD", "version": version, "proto": 1, "headers": True, "max_payload": 1048576}
                conn.sendall(b"INFO " + json.dumps(info).encode() + b"\r\n")
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    buf = b""
                    while not stop.is_set():
                        data = conn.recv(4096)
                        if not data:
                            break
                        buf += data
                        while b"PING\r\n" in buf:
                            buf = buf.replace(b"PING\r\n", b"", 1)
                            conn.sendall(b"PONG\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


async def test_server_too_old_for_message_ttl_is_refused() -> None:
    with old_server("2.9.0") as port:
        settings = BusSettings.model_validate({"engine": "nats", "urls": [f"nats://127.0.0.1:{port}"]})
        with pytest.raises(BusEngineError, match=r"nats-server 2\.9\.0 .*too old.*2\.11"):
            await asyncio.wait_for(connect(settings, "test"), 10)
        env = {
            **os.environ,
            "OPENALGO_PROXY_BUS__ENGINE": "nats",
            "OPENALGO_PROXY_BUS__URLS": json.dumps(settings.urls),
            "OPENALGO_PROXY_PROXY__PORT": "0",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "openalgo_proxy",
            "serve",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 2
        lines = err.decode().strip().splitlines()
        assert lines[-1].startswith("openalgo-proxy: nats-server 2.9.0") and "too old" in lines[-1]
