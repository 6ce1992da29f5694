"""Scale-out as real processes: forwarder + feed + two proxies (+ HAProxy) on one machine (DESIGN 3, 9).

Proves: clients on both proxies get the same ticks; the feed's upstream set is the union of what
the proxies want; kill -9 of one proxy leaves the other's clients untouched and releases its
topics upstream; SIGTERM closes clients with 1001 and the process exits in bounded time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.ops_support import Processes, get, get_json, poll, scrape
from tests.support import Client, free_port

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


async def _drain(c: Client, topic: str, count: int, within: float = 10.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        got.append(await c.market_data(within=within, where=lambda m: m["topic"] == topic))
    return got


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Processes, int, int, int]]:
    frontend, backend, feed_metrics = free_port(), free_port(), free_port()
    p1, p2 = free_port(), free_port()
    procs = Processes()
    try:
        procs.start(
            "bus", "bus", "--frontend", f"tcp://127.0.0.1:{frontend}", "--backend", f"tcp://127.0.0.1:{backend}"
        )
        procs.start(
            "feed", "feed", "--broker", "simulator", "--ticks-per-second", "20",
            "--bus", f"tcp://127.0.0.1:{frontend}", "--bus-connect", "--metrics-port", str(feed_metrics),
        )  # fmt: skip
        procs.start("p1", "serve", "--port", str(p1), "--bus", f"tcp://127.0.0.1:{backend}")
        procs.start("p2", "serve", "--port", str(p2), "--bus", f"tcp://127.0.0.1:{backend}", "--log-format", "json")
        for port in (p1, p2):
            await poll(lambda port=port: get(port, "/readyz"), lambda r: r[0] == 200, within=30)  # type: ignore[misc]
        yield procs, feed_metrics, p1, p2
    finally:
        await asyncio.to_thread(procs.close)


async def test_two_proxies_share_a_feed_survive_each_other_stop_with_1001(
    cluster: tuple[Processes, int, int, int],
) -> None:
    procs, feed_metrics, p1, p2 = cluster
    async with (
        websockets.connect(f"ws://127.0.0.1:{p1}", open_timeout=5) as ws_a,
        websockets.connect(f"ws://127.0.0.1:{p2}", open_timeout=5) as ws_b,
    ):
        a, b = Client(ws_a), Client(ws_b)
        for c, symbol, mode in ((a, "RELIANCE", 1), (a, "SBIN", 2), (b, "RELIANCE", 1), (b, "INFY", 3)):
            reply = await c.reply({"action": "subscribe", "symbol": symbol, "exchange": "NSE", "mode": mode})
            assert reply["status"] == "success", reply

        # the broker sees one subscription per instrument: the union of both proxies' wants
        union = {"NSE|RELIANCE|1", "NSE|SBIN|2", "NSE|INFY|3"}
        status = await poll(
            lambda: get_json(feed_metrics, "/status"), lambda s: set(s["topics_wanted"]) == union, within=10
        )
        status = await poll(lambda: get_json(feed_metrics, "/status"), lambda s: len(s["upstream"]) == 3, within=10)
        assert status["upstream"] == {"NSE|RELIANCE": 1, "NSE|SBIN": 2, "NSE|INFY": 3}
        metrics = await scrape(feed_metrics)
        assert metrics["openalgo_proxy_feed_upstream_subscriptions{broker=simulator}"] == 3
        assert metrics["openalgo_proxy_feed_broker_connected{broker=simulator}"] == 1

        # clients on both proxies receive the same ticks (same seq, same data)
        got_a = await _drain(a, "RELIANCE.NSE", 12)
        got_b = await _drain(b, "RELIANCE.NSE", 12)
        by_seq_a = {m["seq"]: m["data"] for m in got_a}
        common = [m for m in got_b if m["seq"] in by_seq_a]
        assert len(common) >= 5, "the two proxies did not relay the same ticks"
        assert all(by_seq_a[m["seq"]] == m["data"] for m in common)

        # kill -9 proxy 2: proxy 1's client notices nothing; INFY is released upstream
        a.market.clear()
        procs.kill9("p2")
        killed = time.monotonic()
        seqs = [m["seq"] for m in await _drain(a, "RELIANCE.NSE", 20, within=3.0)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "proxy 1's stream had a gap"
        assert time.monotonic() - killed < 5.0
        status = await poll(
            lambda: get_json(feed_metrics, "/status"),
            lambda s: set(s["topics_wanted"]) == {"NSE|RELIANCE|1", "NSE|SBIN|2"} and len(s["upstream"]) == 2,
            within=10,
        )
        assert status["upstream"] == {"NSE|RELIANCE": 1, "NSE|SBIN": 2}
        assert (await get(p1, "/readyz"))[0] == 200
        # proxy 2 logged JSON, one object per line, one line per connection event
        entries = [json.loads(line) for line in procs.stderr_of("p2").splitlines()]
        assert all(e["component"] == "serve" and e["level"] in ("info", "warning") for e in entries)
        events = [e["message"] for e in entries if e["message"].startswith("conn ")]
        assert len(events) == 3 and " open path=/" in events[0], events
        assert all(" subscribe requested=1 ok=1 failed=0" in e for e in events[1:]), events

        # SIGTERM proxy 1: its client is closed with 1001 and the process exits promptly
        proxy1 = procs.procs["p1"]
        stopping = time.monotonic()
        proxy1.terminate()
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws_a.recv(), 10)
        assert ws_a.close_code == 1001
        assert await asyncio.to_thread(proxy1.wait, 10) == 0
        assert time.monotonic() - stopping < 10
        stderr = procs.stderr_of("p1")
        assert "Traceback" not in stderr
        assert "closed code=1001" in stderr
        assert "subscribe requested=1 ok=1 failed=0" in stderr, "one summary line per subscribe request"
        assert "RELIANCE" not in stderr, "symbols never appear in connection log lines"


def _loopback_haproxy_config(tmp_path: Path, lb: int, p1: int, p2: int) -> Path:
    """deploy/haproxy.cfg with the compose service names replaced by this machine's loopback ports."""
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    text = text.replace("bind :8765", f"bind 127.0.0.1:{lb}")
    text = text.replace("proxy1:8765", f"127.0.0.1:{p1}").replace("proxy2:8765", f"127.0.0.1:{p2}")
    text = text.replace(" resolvers docker", "").split("resolvers docker")[0]
    text = text.replace("inter 2s", "inter 500ms").replace("maxconn 50000", "maxconn 1000")  # this machine's fd limit
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


async def test_load_balancer_spreads_clients_and_routes_around_a_dead_proxy(
    cluster: tuple[Processes, int, int, int], tmp_path: Path
) -> None:
    procs, _, p1, p2 = cluster
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed here (make ops-tools installs it)")
    lb = free_port()
    config = _loopback_haproxy_config(tmp_path, lb, p1, p2)
    balancer = await asyncio.create_subprocess_exec(
        haproxy, "-db", "-f", str(config), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        await poll(lambda: get(lb, "/readyz"), lambda r: r[0] == 200, within=15)
        assert (await get(lb, "/metrics"))[0] == 404, "metrics are not served to clients through the balancer"
        async with (
            websockets.connect(f"ws://127.0.0.1:{lb}", open_timeout=5) as ws_a,
            websockets.connect(f"ws://127.0.0.1:{lb}", open_timeout=5) as ws_b,
        ):
            a, b = Client(ws_a), Client(ws_b)
            for c in (a, b):
                reply = await c.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": 1})
                assert reply["status"] == "success"
                await c.market_data(within=5)
            # least connections: one client on each proxy
            for port in (p1, p2):
                assert (await scrape(port))["openalgo_proxy_connections_open"] == 1
            procs.kill9("p2")
            # exactly one of the two loses its connection; the other keeps streaming
            results = await asyncio.gather(_stream_or_close(a), _stream_or_close(b))
            assert sorted(results) == ["closed", "streaming"], results
        # a client reconnecting through the balancer lands on the live proxy at once
        started = time.monotonic()
        async with websockets.connect(f"ws://127.0.0.1:{lb}", open_timeout=5) as ws_c:
            c = Client(ws_c)
            reply = await c.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success"
            await c.market_data(within=5)
        assert time.monotonic() - started < 5
    finally:
        if balancer.returncode is not None:
            assert balancer.stderr is not None
            pytest.fail(f"haproxy exited: {(await balancer.stderr.read()).decode()[-2000:]}")
        balancer.terminate()
        try:
            await asyncio.wait_for(balancer.wait(), 5)
        except TimeoutError:
            balancer.kill()
            await asyncio.wait_for(balancer.wait(), 5)


async def _stream_or_close(c: Client) -> str:
    try:
        for _ in range(10):
            await c.market_data(within=3)
    except websockets.ConnectionClosed:
        return "closed"
    return "streaming"
