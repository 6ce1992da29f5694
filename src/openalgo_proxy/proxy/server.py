"""The proxy process: listener, HTTP side (/healthz, /readyz, /metrics, web page), bus, timers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
from importlib import resources
from typing import Any

import msgspec
import zmq
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from openalgo_proxy import topics
from openalgo_proxy.bus import Subscriber
from openalgo_proxy.config import AuthSettings, BusSettings, LimitSettings, ProxySettings, TlsSettings
from openalgo_proxy.control import FeedState
from openalgo_proxy.errors import CloseCode
from openalgo_proxy.proxy.admission import Admission
from openalgo_proxy.proxy.archive import StoreArchive
from openalgo_proxy.proxy.auth import Authenticator
from openalgo_proxy.proxy.connection import Connection, Gateway
from openalgo_proxy.proxy.dialect import DIALECTS, Dialect
from openalgo_proxy.proxy.directory import STATUS_STALE_AFTER
from openalgo_proxy.proxy.hub import Hub
from openalgo_proxy.proxy.limits import IdentityCounter
from openalgo_proxy.proxy.metrics import ProxyCollector, ProxyMetrics
from openalgo_proxy.proxy.origin import accepted_hosts, host_allowed, origin_allowed
from openalgo_proxy.proxy.peerlog import PeerLog
from openalgo_proxy.proxy.session import SessionLimits
from openalgo_proxy.proxy.tls import server_context
from openalgo_proxy.proxy.upstream_metrics import BrokerStatusCollector
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 0.5
UPGRADE_PATHS = ("/", "/ws")  # WebSocket upgrades are accepted here only
SINGLE_HEADERS = ("Host", "Origin", "Authorization", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version")
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
        archive_dir: str | None = None,
        bus: BusSettings | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.cfg = cfg
        self.archive = StoreArchive(archive_dir) if archive_dir else None
        self.bus_settings = bus or BusSettings.model_validate({})
        self.auth = auth or AuthSettings.model_validate({})
        self.limits = limits or LimitSettings.model_validate({})
        if authenticator is not None:  # drop-in mode brings OpenAlgo's keys
            self.admission = Admission(self.limits, cfg.max_connections, authenticator)
        else:
            self.admission = Admission.from_settings(self.limits, cfg.max_connections, self.auth)
        self.tls_context = server_context(tls or TlsSettings.model_validate({}))
        self.metrics = ProxyMetrics()
        self._ctx = ctx or zmq.Context.instance()
        self.subscriber: Subscriber | None = None
        self.nats: Any = None  # the NATS engine's proxy side (bus_nats.NatsProxyBus) with engine "nats"
        self.hub = Hub(self.metrics, self._bus_subscribe, self._bus_unsubscribe, cfg.default_broker)
        self.hub.on_directory = self._prepare_search
        self._indexing: asyncio.Future[None] | None = None
        self.connections: set[Connection] = set()
        self.all_closed = asyncio.Event()
        self._ids = itertools.count(1)
        self.hosts = accepted_hosts(cfg.host, cfg.allowed_hosts)
        self.gateway = Gateway(
            cfg=cfg,
            hub=self.hub,
            admission=self.admission,
            metrics=self.metrics,
            limits=SessionLimits.from_settings(cfg, self.auth),
            route=self.route,
            next_id=self.next_id,
            dialect_for=self.dialect_for,
            peer_log=PeerLog(logging.getLogger("openalgo_proxy.proxy.connection")),
            on_made=self.connections.add,
            on_lost=self._on_lost,
            archive=self.archive,
        )
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

    # -- what tests and tools read ---------------------------------------------------------------
    @property
    def authenticator(self) -> Authenticator:
        return self.admission.authenticator

    @property
    def auth_required(self) -> bool:
        return self.admission.auth_required

    @property
    def identities(self) -> IdentityCounter:
        return self.admission.identities

    @property
    def pending_handshakes(self) -> int:
        return self.admission.pending

    @property
    def open_count(self) -> int:
        return self.admission.open_count

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.bus_settings.engine == "nats":
            from openalgo_proxy.bus_nats import NatsProxyBus

            self.nats = NatsProxyBus(self.bus_settings, self.hub.on_bus_message, self.hub.flush)
            await self.nats.start()
            bus_names = self.nats.endpoint
        else:
            self.subscriber = Subscriber(self._ctx, self.cfg.bus, self.hub.on_bus_message, self.hub.flush)
            self.subscriber.attach(loop)
            bus_names = ", ".join(self.cfg.bus)
        for prefix in (topics.STATUS_PREFIX, topics.INSTRUMENTS_PREFIX, topics.REJECT_PREFIX, topics.ORDERS_PREFIX):
            self._bus_subscribe(prefix)
        tls = self.tls_context
        self._server = await loop.create_server(
            lambda: Connection(self.gateway),
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
            bus_names,
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
        if self.archive is not None:
            self.archive.close()
        await cancel_and_wait(self._sweeper)
        if self._indexing is not None:
            await asyncio.wait({self._indexing})  # a worker thread cannot be cancelled; it ends soon
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None
        if self.nats is not None:
            nats_bus, self.nats = self.nats, None
            await nats_bus.close()
        log.info("proxy stopped")

    # -- bus ---------------------------------------------------------------------------------------
    def _bus_subscribe(self, topic: bytes) -> None:
        if self.subscriber is not None:
            self.subscriber.subscribe(topic)
        elif self.nats is not None:
            self.nats.subscribe(topic)

    def _bus_unsubscribe(self, topic: bytes) -> None:
        if self.subscriber is not None:
            self.subscriber.unsubscribe(topic)
        elif self.nats is not None:
            self.nats.unsubscribe(topic)

    def _prepare_search(self) -> None:
        """Build the search index of a new instrument list in a worker thread (a full broker master
        takes about a second); a newer list arriving meanwhile is indexed once this build ends."""
        if self._indexing is not None and not self._indexing.done():
            return
        loop = asyncio.get_running_loop()
        self._indexing = loop.run_in_executor(None, self.hub.directory.prepare_index)
        self._indexing.add_done_callback(self._indexed)

    def _indexed(self, done: asyncio.Future[None]) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            log.error("building the instrument search index failed", exc_info=done.exception())
        elif not self.hub.directory.index_ready:
            self._prepare_search()

    # -- connections -------------------------------------------------------------------------------
    def _on_lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self.all_closed.set()

    # -- status ------------------------------------------------------------------------------------
    def feeds(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out = {}
        for broker, status in self.hub.directory.status.items():
            seen = self.hub.directory.status_seen.get(broker, 0.0)
            out[broker] = {**msgspec.structs.asdict(status), "status_age": round(now - seen, 3)}
        return out

    def ready(self) -> tuple[bool, dict[str, Any]]:
        feeds = self.feeds()
        fresh = {
            name: f
            for name, f in feeds.items()
            if f["status_age"] < STATUS_STALE_AFTER and f.get("state") == FeedState.CONNECTED
        }
        ok = bool(fresh) and self.hub.directory.complete(list(fresh))  # feeds and their instrument lists
        detail = {
            "ready": ok,
            "pid": os.getpid(),  # lets `run` tell its own proxy from another process on the port
            "feeds": feeds,
            "connections": len(self.connections),
            "topics": len(self.hub.topics),
        }
        return ok, detail

    def _gauges(self) -> dict[str, float]:
        feeds = self.feeds()
        age = min((f.get("last_tick_age", -1.0) for f in feeds.values() if f.get("last_tick_age", -1) >= 0), default=-1)
        return {
            "connections_open": float(self.open_count),
            "subscriptions": float(sum(len(c.outbox.topics) for c in self.connections)),
            "topics": float(len(self.hub.topics)),
            "slow_clients": float(sum(1 for c in self.connections if c.outbox.paused)),
            "broker_connected": float(any(f.get("state") == FeedState.CONNECTED for f in feeds.values())),
            "tick_age_seconds": float(age),
            "ready": float(self.ready()[0]),
            "bus_fenced_frames": float(self.nats.fenced if self.nats is not None else 0),
        }

    # -- HTTP side ----------------------------------------------------------------------------------
    def dialect_for(self, request: Request) -> Dialect:
        """The protocol a WebSocket client speaks: `[proxy] dialect` on every upgrade path."""
        return DIALECTS[self.cfg.dialect]

    def route(self, request: Request, peer: str) -> Response | None:
        """None for a WebSocket upgrade this server accepts; otherwise the HTTP response."""
        headers = request.headers
        for name in SINGLE_HEADERS:
            if len(headers.get_all(name)) > 1:
                self._refused(peer, "%s header given twice", name)
                return _response(400, f"{name} header given twice\n".encode(), "text/plain")
        method = request.method
        if method not in ("GET", "HEAD"):
            return _response(405, b"method not allowed\n", "text/plain", [("Allow", "GET, HEAD")])
        host = headers.get("Host")
        origin = headers.get("Origin")
        if headers.get("Upgrade", "").lower() != "websocket":
            if not host_allowed(host, self.hosts):
                self._refused(peer, "Host not served here")
                return _response(403, b"host not served here\n", "text/plain")
            response = self.http_response(request)
            if method == "HEAD":
                return Response(response.status_code, response.reason_phrase, response.headers, b"")
            return response
        if method != "GET":
            return _response(405, b"method not allowed\n", "text/plain", [("Allow", "GET")])
        if request.path.split("?", 1)[0] not in UPGRADE_PATHS:
            return _response(404, b"no WebSocket here: connect to / or /ws\n", "text/plain")
        # a browser always sends Origin: its Host must be a name this proxy answers to (DNS rebinding)
        if origin is not None and not host_allowed(host, self.hosts):
            self._refused(peer, "Host not served here")
            return _response(403, b"host not served here\n", "text/plain")
        if not origin_allowed(origin, host, self.cfg.allowed_origins, self.tls_context is not None):
            self._refused(peer, "origin not allowed")
            return _response(403, b"origin not allowed\n", "text/plain")
        return None

    def _refused(self, peer: str, why: str, *args: object) -> None:
        """A refused request, logged at most so often per peer address."""
        self.gateway.peer_log.info(peer.rpartition(":")[0] or peer, "%s refused: " + why, peer, *args)

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
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            revalidate = self.authenticator.reload_keys()
            now = time.monotonic()
            wall = time.time()
            for conn in list(self.connections):
                if revalidate:
                    conn.revalidate()
                conn.tick(now, wall)


def _response(status: int, body: bytes, content_type: str, extra: list[tuple[str, str]] | None = None) -> Response:
    reasons = {
        200: "OK",
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        503: "Service Unavailable",
    }
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            ("Cache-Control", "no-store"),
            *(extra or []),
        ]
    )
    return Response(status, reasons.get(status, "OK"), headers, body)
