"""The OpenAlgo bridge: a SUB bound on OpenAlgo's `ZMQ_HOST:ZMQ_PORT`, where Flask's PUB connects.

Flask publishes two-frame messages `[topic, json]`:
- `CACHE_INVALIDATE_{AUTH|FEED|ALL}_{username}`: the user's broker session changed (or was revoked);
- `{BROKER}_{username}_orders` / `ANALYZE_{username}_orders`: an `order_update` object.
Anything else (`*_positions`, `*_margins`, ...) is ignored. The user of an order update is taken
from the payload (usernames may contain `_`). Order updates go on to our bus through `on_order`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

INVALIDATE_PREFIX = "CACHE_INVALIDATE_"
CACHE_TYPES = ("AUTH", "FEED", "ALL")
ORDERS_SUFFIX = "_orders"
MAX_MESSAGE = 1 << 16

ORDER_KEYS = (
    "type",
    "user_id",
    "mode",
    "broker",
    "orderid",
    "symbol",
    "exchange",
    "action",
    "quantity",
    "price",
    "trigger_price",
    "pricetype",
    "product",
    "order_status",
    "filled_quantity",
    "pending_quantity",
    "average_price",
    "rejection_reason",
)


def parse_invalidation(topic: str) -> tuple[str, str] | None:
    """`CACHE_INVALIDATE_ALL_alice` -> ("ALL", "alice"); None for other topics."""
    if not topic.startswith(INVALIDATE_PREFIX):
        return None
    rest = topic[len(INVALIDATE_PREFIX) :]
    kind, _, user = rest.partition("_")
    if kind not in CACHE_TYPES or not user:
        return None
    return kind, user


def parse_order_update(topic: str, payload: bytes) -> tuple[str, OrderUpdate] | None:
    """(broker, order update) for an `*_orders` message; None when it is not one or is malformed.
    Missing or mistyped fields get neutral values (0, 0.0, ""), so clients always see every key."""
    if not topic.endswith(ORDERS_SUFFIX) or "_" not in topic[: -len(ORDERS_SUFFIX)]:
        return None
    source = topic.split("_", 1)[0].lower()
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") != "order_update":
        return None
    user = event.get("user_id")
    if not isinstance(user, str) or not user:
        return None
    order: dict[str, Any] = {key: event.get(key) for key in ORDER_KEYS}
    for key in ("quantity", "filled_quantity", "pending_quantity"):
        if not isinstance(order[key], int) or isinstance(order[key], bool):
            order[key] = 0
    for key in ("price", "trigger_price", "average_price"):
        value = order[key]
        order[key] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
    for key in ("mode", "broker", "orderid", "symbol", "exchange", "action", "pricetype", "product", "order_status"):
        order[key] = str(order[key]) if order[key] is not None else ""
    order["rejection_reason"] = str(order["rejection_reason"] or "")
    if order["mode"] not in ("live", "analyze"):
        order["mode"] = "analyze" if source == "analyze" else "live"
    broker = str(order["broker"]).lower() or source
    del order["type"]
    return broker, OrderUpdate(**order)


class OpenAlgoBridge:
    def __init__(
        self,
        endpoint: str,
        on_invalidate: Callable[[str, str], None],
        on_order: Callable[[str, OrderUpdate], None],
    ) -> None:
        self.endpoint = endpoint
        self._on_invalidate = on_invalidate
        self._on_order = on_order
        self._ctx = zmq.asyncio.Context()
        self._sock: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.received = 0
        self.invalidations = 0
        self.orders = 0
        self.ignored = 0

    def start(self) -> None:
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise ConfigError(
                f"cannot bind OpenAlgo's ZMQ_PORT at {self.endpoint} ({exc.strerror}): "
                "is OpenAlgo's own websocket proxy still running?"
            ) from exc
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openalgo-bridge")
        log.info("openalgo bridge: SUB bound on %s (cache invalidations, order updates)", self.endpoint)

    async def _run(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            self.received += 1
            self.handle(frames)

    def handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self.ignored += 1
            return
        try:
            topic = frames[0].decode("utf-8")
        except UnicodeDecodeError:
            self.ignored += 1
            return
        invalidation = parse_invalidation(topic)
        if invalidation is not None:
            self.invalidations += 1
            log.info("openalgo bridge: cache invalidation %s for %s", invalidation[0], invalidation[1])
            self._on_invalidate(invalidation[0], invalidation[1])
            return
        order = parse_order_update(topic, frames[1])
        if order is not None:
            self.orders += 1
            self._on_order(*order)
            return
        self.ignored += 1

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        self._ctx.term()
