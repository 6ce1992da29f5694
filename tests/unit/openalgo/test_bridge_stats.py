"""The bridge on a real ZeroMQ SUB (Flask's PUB connecting to it) and the stats file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from openalgo_proxy import topics
from openalgo_proxy.control import OrderUpdate, encode_order_update
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.openalgo.bridge import OpenAlgoBridge, parse_invalidation, parse_order_update
from openalgo_proxy.openalgo.stats import StatsWriter
from tests.openalgo_support import FakeOpenAlgo, order_update, publish_until
from tests.support import free_port, wait_for


def test_topic_parsing() -> None:
    assert parse_invalidation("CACHE_INVALIDATE_ALL_alice_2") == ("ALL", "alice_2")
    assert parse_invalidation("CACHE_INVALIDATE_FEED_bob") == ("FEED", "bob")
    assert parse_invalidation("CACHE_INVALIDATE_OTHER_bob") is None
    assert parse_invalidation("CACHE_INVALIDATE_ALL_") is None
    raw = json.dumps(order_update("al_ice")).encode()
    broker, order = parse_order_update("ZERODHA_al_ice_orders", raw)  # type: ignore[misc]
    wire = json.loads(encode_order_update(order))
    assert broker == "zerodha" and wire == order_update("al_ice")
    assert list(wire) == list(order_update("x"))  # exactly the agreed keys, in order
    analyze = parse_order_update("ANALYZE_bob_orders", json.dumps(order_update("bob", mode="", broker="")).encode())
    assert analyze is not None and analyze[0] == "analyze" and analyze[1].mode == "analyze"
    odd = parse_order_update("X_u_orders", json.dumps({"type": "order_update", "user_id": "u", "price": None}).encode())
    assert odd is not None and (odd[1].price, odd[1].quantity, odd[1].symbol) == (0.0, 0, "")
    for topic, payload in (
        ("ZERODHA_alice_positions", raw),
        ("ZERODHA_alice_orders", b"not json"),
        ("ZERODHA_alice_orders", b'{"type":"other","user_id":"a"}'),
        ("ZERODHA_alice_orders", b'{"type":"order_update"}'),
        ("orders", raw),
    ):
        assert parse_order_update(topic, payload) is None, topic


async def test_bridge_receives_what_flask_publishes(tmp_path: Path) -> None:
    port = free_port()
    fake = FakeOpenAlgo(tmp_path, zmq_port=port, websocket_port=1)
    invalidations: list[tuple[str, str]] = []
    orders: list[tuple[str, OrderUpdate]] = []
    bridge = OpenAlgoBridge(
        f"tcp://127.0.0.1:{port}", lambda k, u: invalidations.append((k, u)), lambda b, o: orders.append((b, o))
    )
    bridge.start()
    try:
        with pytest.raises(ConfigError, match="still running"):
            OpenAlgoBridge(f"tcp://127.0.0.1:{port}", lambda k, u: None, lambda b, o: None).start()
        # connects like Flask, then sends (again, until the SUB's subscription has reached the PUB)
        await publish_until(fake, lambda: fake.invalidate("alice"), lambda: bool(invalidations))
        await asyncio.to_thread(fake.publish, "ZERODHA_alice_orders", order_update("alice"))
        await asyncio.to_thread(fake.publish, "ZERODHA_alice_margins", {"x": 1})
        await wait_for(lambda: bool(orders) and bridge.ignored == 1, 5)
        assert invalidations[0] == ("ALL", "alice")
        assert [(b, json.loads(encode_order_update(o))) for b, o in orders] == [("zerodha", order_update("alice"))]
        assert topics.parse_orders_topic(topics.orders_topic("zerodha", "alice")) == ("zerodha", "alice")
    finally:
        await bridge.stop()
        fake.close()


async def test_stats_file_is_written_atomically_with_openalgo_keys(tmp_path: Path) -> None:
    path = tmp_path / "log" / "ws_proxy_stats.json"
    snapshot = {"total_connections": 1, "total_symbols": 3, "clients_connected": 2, "brokers": ["zerodha"]}
    writer = StatsWriter(path, lambda: dict(snapshot), interval=0.05)
    writer.start()
    try:
        await wait_for(lambda: writer.writes >= 2, 5)
    finally:
        await writer.stop()
    body = json.loads(path.read_text())
    assert set(body) == {"timestamp", "total_connections", "total_symbols", "clients_connected", "brokers"}
    assert isinstance(body["timestamp"], float) and body["brokers"] == ["zerodha"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind
