"""Feed high availability as real processes: a standby takes the account over after kill -9 of the
primary, clients keep receiving after a bounded gap with a fresh snapshot, and while the primary
lives the standby holds nothing upstream and publishes nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from openalgo_proxy.bus import is_new_run
from tests.ops_support import Processes, get, get_json, poll, scrape
from tests.support import Client, free_port

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]
TAKEOVER_AFTER = 3.0  # six status intervals of 0.5 s: a loaded machine must not make the primary look dead


async def test_standby_takes_over_after_primary_is_killed() -> None:
    frontend, backend = free_port(), free_port()
    primary_metrics, standby_metrics, port = free_port(), free_port(), free_port()
    feed_args = ("feed", "--broker", "simulator", "--ticks-per-second", "20", "--bus", f"tcp://127.0.0.1:{frontend}")
    procs = Processes()
    try:
        procs.start(
            "bus", "bus", "--frontend", f"tcp://127.0.0.1:{frontend}", "--backend", f"tcp://127.0.0.1:{backend}"
        )
        procs.start("primary", *feed_args, "--bus-connect", "--metrics-port", str(primary_metrics))
        await poll(lambda: get(primary_metrics, "/healthz"), lambda r: r[0] == 200, within=30)
        procs.start(
            "standby", *feed_args, "--bus-connect", "--metrics-port", str(standby_metrics),
            "--standby", "--watch", f"tcp://127.0.0.1:{backend}", "--takeover-after", str(TAKEOVER_AFTER),
        )  # fmt: skip
        procs.start("proxy", "serve", "--port", str(port), "--bus", f"tcp://127.0.0.1:{backend}")
        await poll(lambda: get(port, "/readyz"), lambda r: r[0] == 200, within=30)
        await poll(lambda: get(standby_metrics, "/healthz"), lambda r: r[0] == 200, within=30)

        async with websockets.connect(f"ws://127.0.0.1:{port}", open_timeout=5) as ws:
            c = Client(ws)
            reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
            assert reply["status"] == "success"
            last = await c.market_data(within=5)

            # while the primary publishes status, the standby stays passive for longer than its patience
            watch_until = time.monotonic() + TAKEOVER_AFTER * 1.5
            while time.monotonic() < watch_until:
                last = await c.market_data(within=5)
                standby = await scrape(standby_metrics)
                assert standby["openalgo_proxy_feed_active{broker=simulator}"] == 0
                assert standby["openalgo_proxy_feed_upstream_connections{broker=simulator}"] == 0
                assert standby["openalgo_proxy_feed_upstream_subscriptions{broker=simulator}"] == 0
            status = await get_json(standby_metrics, "/status")
            assert status["role"] == "passive" and status["upstream"] == {}
            assert "openalgo_proxy_process_resident_memory_bytes" in standby

            # kill -9 the primary: the standby takes over; ticks resume from a new feed run
            procs.kill9("primary")
            killed = time.monotonic()
            while True:
                msg = await c.market_data(within=15)
                if is_new_run(last["seq"], msg["seq"]):
                    break
                assert msg["seq"] == last["seq"] + 1, "no reordering or replay from the dead feed"
                last = msg
            gap = time.monotonic() - killed
            assert gap < TAKEOVER_AFTER * 1.25 + 5.0, f"ticks resumed only after {gap:.1f} s"
            assert msg["symbol"] == "RELIANCE" and msg["mode"] == 2 and msg["data"]["ltp"] > 0
            assert "open" in msg["data"] and "depth" not in msg["data"], "the fresh snapshot has the Quote shape"
            # and they keep coming, contiguous in the new run
            following = [(await c.market_data(within=5))["seq"] for _ in range(5)]
            assert following == list(range(msg["seq"] + 1, msg["seq"] + 6))

            status = await get_json(standby_metrics, "/status")
            assert status["role"] == "active" and status["state"] == "connected"
            assert status["topics_wanted"] == ["NSE|RELIANCE|2"], "learned the wanted set from the forwarder"
            assert status["upstream"] == {"NSE|RELIANCE": 2}
            metrics = await scrape(standby_metrics)
            assert metrics["openalgo_proxy_feed_takeovers_total{broker=simulator}"] == 1
            assert metrics["openalgo_proxy_feed_active{broker=simulator}"] == 1
            await poll(lambda: get(port, "/readyz"), lambda r: r[0] == 200, within=10)

            # the primary comes back: the standby sees its status and steps down (one holder again)
            procs.start("primary2", *feed_args, "--bus-connect", "--metrics-port", str(primary_metrics))
            await poll(lambda: get_json(standby_metrics, "/status"), lambda s: s["role"] == "passive", within=15)
            standby = await scrape(standby_metrics)
            assert standby["openalgo_proxy_feed_upstream_connections{broker=simulator}"] == 0
            # the returning primary announces itself before its first upstream sync: wait for the sync
            await poll(
                lambda: get_json(primary_metrics, "/status"),
                lambda s: s["upstream"] == {"NSE|RELIANCE": 2},
                within=10,
            )
            newest = msg["seq"]
            while not is_new_run(newest, (msg := await c.market_data(within=10))["seq"]):
                pass  # ticks of the standby's run still in flight; then the primary's new run
    finally:
        await asyncio.to_thread(procs.close)
    standby_log = procs.stderr_of("standby")
    assert "taking over the broker account" in standby_log
    assert "Traceback" not in standby_log
    assert "stepping down" in standby_log
