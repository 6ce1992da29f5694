"""The proxy process: listener, HTTP side (/healthz, /readyz, /metrics, web page), bus, timers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from importlib import resources
from typing import Any

import zmq
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from openalgo_proxy import topics
from openalgo_proxy.bus import Subscriber
from openalgo_proxy.config import AuthSettings, LimitSettings, ProxySettings, TlsSettings
from openalgo_proxy.errors import CloseCode, ErrorCode
from openalgo_proxy.proxy.auth import Authenticator, Grant
from openalgo_proxy.proxy.connection import FEATURES, Connection
from openalgo_proxy.proxy.hub import Hub, TopicState
from openalgo_proxy.proxy.limits import IdentityCounter
from openalgo_proxy.proxy.metrics import ProxyCollector, ProxyMetrics
from openalgo_proxy.proxy.tls import server_context
from openalgo_proxy.proxy.upstream_metrics import BrokerStatusCollector

log = logging.getLogger(__name__)

STATUS_STALE_AFTER = 10.0
SWEEP_INTERVAL = 0.5
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


def _load_web() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    try:
        root = resources.files("openalgo_proxy").joinpath("web")
        for entry in root.iterdir():
            name = entry.name
            suffix = name[name.rfind(".") :] if "." in name else ""
            if entry.is_file() and suffix in CONTENT_TYPES:
                files[name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    except (FileNotFoundError, NotADirectoryError):
        log.debug("no web market watch packaged")
    return files


class ProxyServer:
    def __init__(
        self,
        cfg: ProxySettings,
        auth: AuthSettings | None = None,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        limits: LimitSettings | None = None,
        tls: TlsSettings | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.cfg = cfg
        self.auth = auth or AuthSettings.model_validate({})
        self.limits = limits or LimitSettings.model_validate({})
        self.authenticator = authenticator or Authenticator(self.auth)  # drop-in mode brings OpenAlgo's keys
        self.auth_required = self.authenticator.required
        self.identities = IdentityCounter()
        self.pending_handshakes = 0  # connections before their WebSocket upgrade
        self.tls_context = server_context(tls or TlsSettings.model_validate({}))
        self.metrics = ProxyMetrics()
        self._ctx = ctx or zmq.Context.instance()
        self.subscriber: Subscriber | None = None
        self.hub = Hub(self.metrics, self._bus_subscribe, self._bus_unsubscribe, cfg.default_broker)
        self.hub.on_reject = self._on_reject
        self.connections: set[Connection] = set()
        self.all_closed = asyncio.Event()
        self.open_count = 0  # connections past the handshake, kept by Connection
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.port = cfg.port
        self.started = time.monotonic()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProxyCollector(self.metrics, self._gauges))
        self.registry.register(BrokerStatusCollector(self.feeds, STATUS_STALE_AFTER))
        ProcessCollector(namespace="openalgo_proxy", registry=self.registry)
        self._web = _load_web()

    def next_id(self) -> int:
        return next(self._ids)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.subscriber = Subscriber(self._ctx, self.cfg.bus, self.hub.on_bus_message, self.hub.flush)
        self.subscriber.attach(loop)
        for prefix in (topics.STATUS_PREFIX, topics.INSTRUMENTS_PREFIX, topics.REJECT_PREFIX):
            self.subscriber.subscribe(prefix)
        tls = self.tls_context
        self._server = await loop.create_server(
            lambda: Connection(self),
            self.cfg.host,
            self.cfg.port,
            backlog=4096,
            reuse_address=True,
            ssl=tls,
            ssl_handshake_timeout=self.cfg.handshake_timeout if tls is not None else None,
        )
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        self._sweeper = loop.create_task(self._sweep(), name="proxy-sweep")
        log.info(
            "proxy listening on %s://%s:%d (auth %s; bus %s)",
            "wss" if tls is not None else "ws",
            self.cfg.host,
            self.port,
            self.auth.mode,
            ", ".join(self.cfg.bus),
        )

    async def stop(self, within: float = 5.0) -> None:
        """Stop accepting, close every client with 1001, wait for them (bounded), release the bus."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close(CloseCode.GOING_AWAY, "server shutting down")
        if self.connections:
            self.all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_closed.wait(), within)
        for conn in list(self.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None
        log.info("proxy stopped")

    # -- bus ---------------------------------------------------------------------------------------
    def _bus_subscribe(self, topic: bytes) -> None:
        if self.subscriber is not None:
            self.subscriber.subscribe(topic)

    def _bus_unsubscribe(self, topic: bytes) -> None:
        if self.subscriber is not None:
            self.subscriber.unsubscribe(topic)

    def _on_reject(self, state: TopicState, code: str, message: str) -> None:
        try:
            err = ErrorCode(code)
        except ValueError:
            err = ErrorCode.BROKER_UNAVAILABLE
        for conn in list(state.subscribers):
            conn.drop_topic(state)
            conn.send_error(
                err,
                message or "the broker refused this subscription",
                symbol=state.symbol,
                exchange=state.exchange,
                mode=int(state.mode),
                topic=state.client_topic,
            )

    # -- admission and auth -----------------------------------------------------------------------
    def admit(self, conn: Connection) -> bool:
        """Called once per completed handshake (the connection already counts itself as open)."""
        return self.open_count <= self.cfg.max_connections

    def authorize(self, credential: str | None) -> Grant:
        """The grant these credentials prove; AuthFailed otherwise."""
        return self.authenticator.authenticate(credential)

    def on_authenticated(self, conn: Connection, grant: Grant) -> str | None:
        """Count the connection against its identity's cap; the problem when it is over the cap."""
        if not self.auth_required or conn.counted_identity == grant.identity:
            return None
        limit = grant.role.max_connections or self.limits.max_connections_per_identity
        if not self.identities.acquire(grant.identity, limit):
            return f"at most {limit} concurrent connections for this identity"
        if conn.counted_identity is not None:
            self.identities.release(conn.counted_identity)
        conn.counted_identity = grant.identity
        return None

    def on_closed(self, conn: Connection) -> None:
        """Admission bookkeeping when an open connection ends."""
        if conn.counted_identity is not None:
            self.identities.release(conn.counted_identity)
            conn.counted_identity = None

    def _revoke_removed_keys(self) -> None:
        for conn in list(self.connections):
            grant = conn.grant
            if grant is not None and not conn.closing and not self.authenticator.still_valid(grant):
                log.info("conn %d %s key of %s revoked: closing with 4401", conn.cid, conn.peer, grant.identity)
                conn.close(CloseCode.AUTH_TIMEOUT, "API key revoked")

    def on_lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self.all_closed.set()

    # -- status ------------------------------------------------------------------------------------
    def broker_name(self) -> str:
        brokers = self.hub.directory.brokers()
        return brokers[0] if len(brokers) == 1 else (self.cfg.default_broker or ",".join(brokers))

    def feeds(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out = {}
        for broker, status in self.hub.directory.status.items():
            seen = self.hub.directory.status_seen.get(broker, 0.0)
            out[broker] = {**status, "status_age": round(now - seen, 3)}
        return out

    def ready(self) -> tuple[bool, dict[str, Any]]:
        feeds = self.feeds()
        fresh = {
            name: f
            for name, f in feeds.items()
            if f["status_age"] < STATUS_STALE_AFTER and f.get("state") == "connected"
        }
        ok = bool(fresh) and bool(self.hub.directory.symbols)
        return ok, {"ready": ok, "feeds": feeds, "connections": len(self.connections), "topics": len(self.hub.topics)}

    def broker_info(self) -> dict[str, Any]:
        feeds = self.feeds()
        state = "connected" if any(f.get("state") == "connected" for f in feeds.values()) else "disconnected"
        return {
            "type": "broker_info",
            "status": "success",
            "broker": self.broker_name(),
            "brokers": self.hub.directory.brokers(),
            "adapter_status": state,
            "exchanges": sorted(self.hub.directory.symbols),
            "supported_features": FEATURES,
        }

    def _gauges(self) -> dict[str, float]:
        feeds = self.feeds()
        age = min((f.get("last_tick_age", -1.0) for f in feeds.values() if f.get("last_tick_age", -1) >= 0), default=-1)
        return {
            "connections_open": float(self.open_count),
            "subscriptions": float(sum(len(c.topics) for c in self.connections)),
            "topics": float(len(self.hub.topics)),
            "slow_clients": float(sum(1 for c in self.connections if c.paused)),
            "broker_connected": float(any(f.get("state") == "connected" for f in feeds.values())),
            "tick_age_seconds": float(age),
            "ready": float(self.ready()[0]),
        }

    # -- HTTP side ----------------------------------------------------------------------------------
    def http_response(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return _response(200, b"ok\n", "text/plain")
        if path == "/readyz":
            ok, detail = self.ready()
            return _response(200 if ok else 503, json.dumps(detail).encode(), "application/json")
        if path == "/metrics":
            return _response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path in ("/", "/index.html"):
            page = self._web.get("index.html")
            if page is None:
                return _response(200, b"openalgo-proxy: connect a WebSocket client to this address\n", "text/plain")
            return _response(200, page[0], page[1])
        if path.startswith("/web/"):
            found = self._web.get(path[5:])
            if found is not None:
                return _response(200, found[0], found[1])
        return _response(404, b"not found\n", "text/plain")

    # -- timers --------------------------------------------------------------------------------------
    async def _sweep(self) -> None:
        cfg = self.cfg
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            if self.authenticator.reload_keys():
                self._revoke_removed_keys()
            now = time.monotonic()
            wall = time.time()
            for conn in list(self.connections):
                if conn.closing:
                    continue
                if not conn.open:
                    if now - conn.created > cfg.handshake_timeout:
                        conn.abort()
                    continue
                if not conn.authenticated and now - conn.opened_at > self.auth.deadline:
                    conn.close(CloseCode.AUTH_TIMEOUT, "authentication required")
                elif conn.grant is not None and conn.grant.expires_at is not None and wall >= conn.grant.expires_at:
                    log.info("conn %d %s token of %s expired: closing with 4401", conn.cid, conn.peer, conn.identity)
                    conn.close(CloseCode.AUTH_TIMEOUT, "token expired")
                elif conn.paused and now - conn.paused_since > cfg.slow_client_grace:
                    self.metrics.slow_disconnects[CloseCode.TOO_SLOW] += 1
                    log.info("conn %d %s too slow: closing with 4008", conn.cid, conn.peer)
                    conn.close(CloseCode.TOO_SLOW, "too slow to keep up")
                elif conn.ping_waiting_since:
                    if now - conn.ping_waiting_since > cfg.ping_timeout:
                        conn.close(1011, "keepalive ping timeout")
                elif now - conn.last_ping >= cfg.ping_interval:
                    conn.send_ping(now)


def _response(status: int, body: bytes, content_type: str) -> Response:
    reasons = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status, reasons.get(status, "OK"), headers, body)
