"""The ZeroMQ bus: XPUB in feeds, SUB in proxies, an XSUB/XPUB forwarder between many of each.

Frames are ``[topic, seq, data]``: seq is an 8-byte big-endian counter per topic per feed run and
data the UTF-8 JSON of the client-facing `data` object. A replayed last value (a snapshot, not a
new tick) carries a fourth frame, `SNAPSHOT`. Subscriptions travel upstream through
ZeroMQ itself. The sockets here are plain (non-asyncio) pyzmq sockets driven by the event loop's
reader callbacks: draining without awaiting each message is several times cheaper.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable

import zmq

log = logging.getLogger(__name__)

SEQ = struct.Struct(">Q")
RUN_SHIFT = 11  # a feed run's topics start at (unix ms << 11): rising across restarts, < 2**53 until 2109


def run_seq_base(unix_seconds: float) -> int:
    """First seq minus one of every topic in a feed run that started at `unix_seconds`."""
    return int(unix_seconds * 1000) << RUN_SHIFT


def is_new_run(last: int, seq: int) -> bool:
    """A jump this large is a restarted feed, not lost ticks."""
    return seq - last >= 1 << RUN_SHIFT


SNAPSHOT = b"snapshot"  # the optional fourth frame of a replayed last value


def pack_seq(seq: int) -> bytes:
    """The seq frame of a bus message."""
    return SEQ.pack(seq)


DATA_HWM = 200_000  # messages queued per peer before ZeroMQ drops (at-most-once, latest wins)


class _ReaderMixin:
    """Edge-triggered ZMQ_FD handling: drain until EAGAIN, in bounded slices, plus a safety poll."""

    sock: zmq.Socket[bytes]
    _loop: asyncio.AbstractEventLoop | None = None
    _handle: asyncio.TimerHandle | None = None
    _scheduled: bool = False

    def _fd(self) -> int:
        fd: int = self.sock.getsockopt(zmq.FD)  # type: ignore[assignment]
        return fd

    def _on_readable(self) -> None:
        raise NotImplementedError

    def attach(self, loop: asyncio.AbstractEventLoop, poll_interval: float = 0.1) -> None:
        self._loop = loop
        self._poll_interval = poll_interval
        loop.add_reader(self._fd(), self._on_readable)
        self._handle = loop.call_later(poll_interval, self._safety_poll)
        self.kick()

    def kick(self) -> None:
        """Schedule a drain soon: needed after sends and (un)subscribes, which can eat FD edges."""
        if self._loop is not None and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._kicked)

    def _kicked(self) -> None:
        self._scheduled = False
        if self._loop is not None:  # not after close
            self._on_readable()

    def _safety_poll(self) -> None:
        if self._loop is None:
            return
        self._on_readable()
        self._handle = self._loop.call_later(self._poll_interval, self._safety_poll)

    def detach(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._fd())
            except zmq.ZMQError:
                log.debug("bus socket already closed while detaching")
            if self._handle is not None:
                self._handle.cancel()
            self._loop = None


class Publisher(_ReaderMixin):
    """A feed's XPUB socket. Learns every subscribe (verbose) and the last unsubscribe of a topic."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        connect: bool = False,
        on_subscription: Callable[[bool, bytes], None] | None = None,
    ) -> None:
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.setsockopt(zmq.RCVHWM, 0)  # subscriptions are never dropped
        self.sock.setsockopt(zmq.SNDHWM, DATA_HWM)
        try:
            if connect:
                self.sock.connect(endpoint)
            else:
                self.sock.bind(endpoint)
        except zmq.ZMQError:
            self.sock.close(linger=0)
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
        self._on_subscription = on_subscription

    def publish(self, topic: bytes, seq: int, data: bytes) -> None:
        try:
            self.sock.send_multipart((topic, SEQ.pack(seq), data), zmq.NOBLOCK)
        except zmq.Again:
            pass  # at the high-water mark ZeroMQ drops; the proxy counts the seq gap
        self.kick()

    def publish_snapshot(self, topic: bytes, seq: int, data: bytes) -> None:
        """Replay a topic's last frame (same seq), marked as a snapshot."""
        try:
            self.sock.send_multipart((topic, SEQ.pack(seq), data, SNAPSHOT), zmq.NOBLOCK)
        except zmq.Again:
            pass
        self.kick()

    def _on_readable(self) -> None:
        sock = self.sock
        callback = self._on_subscription
        for _ in range(10_000):
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg and callback is not None:
                callback(msg[0] == 1, msg[1:])
        self.kick()

    def close(self) -> None:
        self.detach()
        self.sock.close(linger=0)


_RCVMORE = int(zmq.RCVMORE)
_NOBLOCK = int(zmq.NOBLOCK)


class Subscriber(_ReaderMixin):
    """A proxy's SUB socket, connected to one or more feeds or forwarders.

    Drains with plain recv calls (a multipart message arrives whole, so once its first frame is
    read the rest are there); `recv_multipart` costs twice as much per message. Messages of any
    other shape than three frames (or four, a snapshot) are passed on as they are, for the receiver
    to count as malformed.
    """

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoints: Iterable[str],
        on_message: Callable[[list[bytes]], None],
        on_batch_end: Callable[[], None],
        *,
        batch: int = 4096,
    ) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)  # subscriptions are never dropped
        self.sock.setsockopt(zmq.RCVHWM, DATA_HWM)
        self.endpoints = list(endpoints)
        for endpoint in self.endpoints:
            self.sock.connect(endpoint)
        self._on_message = on_message
        self._on_batch_end = on_batch_end
        self._batch = batch

    def subscribe(self, topic: bytes) -> None:
        self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        self.kick()

    def unsubscribe(self, topic: bytes) -> None:
        self.sock.setsockopt(zmq.UNSUBSCRIBE, topic)
        self.kick()

    def _on_readable(self) -> None:
        sock = self.sock
        recv = sock.recv
        more = sock.getsockopt
        handle = self._on_message
        for _ in range(self._batch):
            try:
                first = recv(_NOBLOCK)
            except zmq.Again:
                self._on_batch_end()
                return
            parts = [first]
            if more(_RCVMORE):
                parts.append(recv())
                if more(_RCVMORE):
                    parts.append(recv())
                    while more(_RCVMORE):
                        parts.append(recv())
            handle(parts)
        self._on_batch_end()
        self.kick()  # more may be waiting; give other callbacks a turn first

    def close(self) -> None:
        self.detach()
        self.sock.close(linger=0)


def bind_forwarder(
    frontend: str, backend: str, ctx: zmq.Context[zmq.Socket[bytes]] | None = None
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """The forwarder's XSUB (feeds connect) and XPUB (proxies connect), bound; ZMQError if either
    address cannot be bound (nothing is left open then)."""
    ctx = ctx or zmq.Context.instance()
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    for sock in (xsub, xpub):
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0 if sock is xsub else DATA_HWM)
        sock.setsockopt(zmq.RCVHWM, 0 if sock is xpub else DATA_HWM)
    xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
    try:
        xsub.bind(frontend)
        xpub.bind(backend)
    except zmq.ZMQError:
        xsub.close(linger=0)
        xpub.close(linger=0)
        raise
    return xsub, xpub


def forward(xsub: zmq.Socket[bytes], xpub: zmq.Socket[bytes]) -> None:
    """Blocking XSUB <-> XPUB device, subscriptions passed verbatim, until the context terminates."""
    log.info(
        "bus forwarder: feeds -> %s, proxies -> %s",
        xsub.getsockopt_string(zmq.LAST_ENDPOINT),
        xpub.getsockopt_string(zmq.LAST_ENDPOINT),
    )
    try:
        zmq.proxy(xsub, xpub)
    except zmq.ContextTerminated:
        log.info("bus forwarder stopped")
    finally:
        xsub.close(linger=0)
        xpub.close(linger=0)


def run_forwarder(frontend: str, backend: str, ctx: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
    """Bind and run the forwarder (blocking)."""
    forward(*bind_forwarder(frontend, backend, ctx))
