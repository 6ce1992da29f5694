"""Scale-out as real processes: forwarder + feed + two proxies on one machine (DESIGN sections 3, 9).

Proves: clients on both proxies get the same ticks; the feed's upstream set is the union of what
the proxies want; kill -9 of one proxy leaves the other's clients untouched and releases its
topics upstream; SIGTERM closes clients with 1001 and the process exits in bounded time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from tests.ops_support import Processes, get, get_json, poll, scrape
from tests.support import Client, free_port

pytestmark = pytest.mark.timeout(90)


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
