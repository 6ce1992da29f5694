"""The asyncio shell of one client connection: bytes <-> websockets' sans-I/O protocol <-> session.

The shell owns the transport and nothing else: it feeds bytes to websockets' ServerProtocol
(handshake, frame parsing, control frames), hands requests and complete messages to its Session,
writes the Session's outbox (market data prebuilt by the hub, one write per drain), carries out the
Session's close decisions (close frame, then a timer that cuts the socket) and tells the Session
when the transport pauses or resumes writing.

The outbound budget is asyncio's write-buffer high-water mark plus a capped SO_SNDBUF: above it the
outbox conflates (latest frame per topic); the session closes 4008 past the grace period.

Inbound work is bounded so one connection cannot hold the event loop: the request head is buffered
here up to `proxy.max_request_head_bytes` (431 above) and handed to the parser whole, bytes after it
are ignored unless the upgrade succeeded (no pipelining); after the upgrade, bytes go to the parser
READ_SLICE at a time, and past TURN_BYTES or TURN_FRAMES in one loop turn the shell stops reading and
carries on in the next turn (other connections run in between). Every frame is charged to the
session's budget; once the session decides to close, nothing but the peer's close frame is served
(no pongs), and an abusive connection (4029) is not parsed again at all (drained for a second, then cut).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from openalgo_proxy.config import ProxySettings
from openalgo_proxy.errors import CloseCode
from openalgo_proxy.logs import wire_logger
from openalgo_proxy.proxy.admission import Admission
from openalgo_proxy.proxy.dialect import Dialect
from openalgo_proxy.proxy.hub import Hub, TopicState
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox, discard
from openalgo_proxy.proxy.peerlog import PeerLog
from openalgo_proxy.proxy.session import Action, Archive, Close, Session, SessionLimits, SessionState

log = logging.getLogger(__name__)
# websockets logs every header and frame at DEBUG (Authorization headers, authenticate messages):
# its protocol gets a logger that drops DEBUG records, so secrets stay out of logs at any level.
WIRE_LOG = wire_logger("openalgo_proxy.proxy.wire")

READ_SLICE = 4096  # bytes handed to the WebSocket parser at a time
TURN_BYTES = 65536  # bytes of one connection processed per event-loop turn
TURN_FRAMES = 256  # frames of one connection processed per event-loop turn
MAX_FRAGMENTS = 64  # frames in one fragmented message (1009 above)
HEAD_END = b"\r\n\r\n"
LINGER = 1.0  # seconds an abusive connection is drained (not parsed) after its close frame


@dataclass(frozen=True, slots=True)
class Gateway:
    """What every connection shares, handed over by the server (which the shell never sees)."""

    cfg: ProxySettings
    hub: Hub
    admission: Admission
    metrics: ProxyMetrics
    limits: SessionLimits
    # the HTTP side: a response for any request that is not an acceptable WebSocket upgrade, else None
    route: Callable[[Request, str], Response | None]
    next_id: Callable[[], int]
    # the protocol dialect a connection speaks, chosen from its upgrade request (path, headers)
    dialect_for: Callable[[Request], Dialect]
    peer_log: PeerLog  # connection life lines, rate-limited per peer address
    on_made: Callable[[Connection], None]
    on_lost: Callable[[Connection], None]
    archive: Archive | None = None  # answers `history` (None: no tick store)


class Connection(asyncio.Protocol):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        cfg = gateway.cfg
        # no extensions: compression is never negotiated
        self.ws = ServerProtocol(max_size=cfg.max_message_bytes, logger=WIRE_LOG)
        self.transport: asyncio.Transport | None = None
        self.outbox: Outbox[TopicState] = Outbox(discard, gateway.metrics)
        self.session = Session(
            gateway.next_id(),
            self.outbox,
            gateway.hub,
            gateway.admission,
            gateway.metrics,
            gateway.limits,
            time.monotonic(),
            peer_log=gateway.peer_log,
            archive=gateway.archive,
        )
        self._fragments: list[bytes] = []
        self._fragment_size = 0
        self._binary = False
        self._skip_message = False  # the message in progress had a frame over the budget
        self._abort_handle: asyncio.TimerHandle | None = None
        self._head: bytes | None = b""  # the request head so far; None once handed to the parser
        self._deferred = b""  # bytes left for the next loop turn
        self._turn_frames = 0
        self._stopped = False  # nothing more is read or parsed
        self._close_sent = False  # our close frame is out: no more pongs

    # -- what the server and tests read -------------------------------------------------------------
    @property
    def cid(self) -> int:
        return self.session.cid

    @property
    def open(self) -> bool:
        """The WebSocket upgrade is done and the connection is not lost."""
        return self.session.opened and self.transport is not None

    @property
    def closing(self) -> bool:
        return self.session.closing

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        if not self.session.connect(address, time.monotonic()):
            self._stopped = True
            self.transport.abort()
            return
        if isinstance(peer, tuple):
            self.session.peer = f"{peer[0]}:{peer[1]}"
        cfg = self.gateway.cfg
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_send_buffer)
        self.transport.set_write_buffer_limits(high=cfg.send_buffer_bytes, low=cfg.send_buffer_bytes // 4)
        self.outbox.write = self.transport.write
        self.gateway.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        if self._deferred:  # reading is paused; this arrived before the pause took effect
            self._deferred += data
            return
        self._turn_frames = 0
        try:
            if self._head is not None:
                self._receive_head(data)
            else:
                self._receive(data)
        except Exception:  # noqa: BLE001 - logged (rate-limited per peer); costs one connection, not the loop
            self.gateway.peer_log.error(
                self.session.address, "conn %d %s unexpected error", self.session.cid, self.session.peer
            )
            self._stop()
            self.abort()

    def _receive_head(self, data: bytes) -> None:
        session = self.session
        session.received_bytes(time.monotonic())
        assert self._head is not None
        start = max(0, len(self._head) - 3)
        head = self._head + data
        end = head.find(HEAD_END, start)
        cap = self.gateway.cfg.max_request_head_bytes
        if end < 0 or end + 4 > cap:
            if len(head) > cap:
                self.gateway.peer_log.info(
                    session.address, "conn %d %s refused: request head over %d bytes", session.cid, session.peer, cap
                )
                self._head = None
                self._stop()
                self.ws.send_response(_plain(431, "Request Header Fields Too Large", b"request head too large\n"))
                self._send_protocol_data()
            else:
                self._head = head
            return
        self._head = None
        end += 4
        self._feed(head[:end])
        rest = head[end:]
        if rest and self.ws.state is State.OPEN:
            self._receive(rest)
        # otherwise: a refused upgrade or a plain HTTP request; what follows it is not served

    def _receive(self, data: bytes) -> None:
        offset = 0
        size = len(data)
        while offset < size:
            if self._stopped or self.transport is None:
                return
            if offset >= TURN_BYTES or self._turn_frames >= TURN_FRAMES:
                self._deferred = data[offset:]  # the rest in the next loop turn, after the others
                if not self.transport.is_closing():
                    self.transport.pause_reading()
                asyncio.get_running_loop().call_soon(self._resume)
                return
            self._feed(data[offset : offset + READ_SLICE])
            offset += READ_SLICE

    def _resume(self) -> None:
        data, self._deferred = self._deferred, b""
        if self._stopped or self.transport is None:
            return
        self.transport.resume_reading()
        self.data_received(data)

    def _feed(self, chunk: bytes) -> None:
        ws = self.ws
        ws.receive_data(chunk)
        for event in ws.events_received():
            if self._stopped:
                break
            if isinstance(event, Frame):
                self._turn_frames += 1
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        self._send_protocol_data()

    def _stop(self) -> None:
        """Parse nothing more from this connection: what it still sends is read and dropped (so the
        kernel never answers it with a reset that could destroy our last frame or response)."""
        self._stopped = True
        if self._deferred:
            self._deferred = b""
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        if not self._stopped:
            self.ws.receive_eof()
            self._send_protocol_data()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stopped = True
        self._deferred = b""
        self.gateway.on_lost(self)
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        ws = self.ws
        if ws.state is not State.CLOSED:
            ws.receive_eof()  # settles close_code from the closing handshake, if there was one
        code = ws.close_code if ws.close_code is not None else (self.session.close_code or CloseCode.ABNORMAL)
        if ws.close_rcvd is None and ws.close_sent is not None:
            code = ws.close_sent.code  # we closed (4008, 1011, ...) and the peer never answered
        session = self.session
        was_open = session.opened and session.state is not SessionState.CLOSED
        session.lost(code)
        self.transport = None
        if was_open:
            self.gateway.peer_log.info(
                session.address,
                "conn %d %s closed code=%s reason=%s",
                session.cid,
                session.peer,
                code,
                ws.close_reason or "",
            )

    def pause_writing(self) -> None:
        self.session.pause(time.monotonic())

    def resume_writing(self) -> None:
        self.session.resume()

    # -- carrying out the session's decisions ----------------------------------------------------------
    def _send_protocol_data(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if not chunk:
                self._finish_close()
                return
            if not self._close_sent:
                transport.write(chunk)
            # after our close frame, websockets would still answer pings: those pongs are dropped
        if self.ws.state is State.CLOSING and not self.session.closing:
            self.session.peer_closing()

    def _finish_close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._arm_abort()

    def _arm_abort(self, delay: float | None = None) -> None:
        if self._abort_handle is None and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(delay or self.gateway.cfg.close_timeout, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self, code: int, reason: str) -> None:
        """Close from outside the session (server stop): the close frame follows anything queued."""
        self._carry_out(self.session.close(code, reason))

    def _carry_out(self, decision: Close | None) -> None:
        if decision is None or self.transport is None:
            return
        if not self.session.opened:
            self._stop()
            self.transport.abort()
            return
        self.outbox.flush()
        if self.ws.state is not State.OPEN:  # the peer closed or ended first: nothing to say to it
            self._stop()
            self.transport.close()
            self._arm_abort()
            return
        self.ws.send_close(decision.code, decision.reason)
        self._send_protocol_data()
        self._close_sent = True
        if decision.at_once:  # nothing more is parsed: the close frame, our FIN, a short linger, the end
            self._stop()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            else:
                self.transport.close()
            self._arm_abort(LINGER)
            return
        self._arm_abort()

    def tick(self, now: float, wall: float) -> None:
        """The server's sweep: ask the session what is due."""
        due = self.session.check(now, wall)
        if due is None:
            return
        if due is Action.PING:
            self.ws.send_ping(b"%d" % self.session.cid)
            self._send_protocol_data()
        elif due is Action.ABORT:
            self.abort()
        elif isinstance(due, Close):
            self._carry_out(due)

    def revalidate(self) -> None:
        self._carry_out(self.session.revalidate())

    # -- handshake ------------------------------------------------------------------------------
    def _on_request(self, request: Request) -> None:
        session = self.session
        refusal = self.gateway.route(request, session.peer)
        if refusal is not None:  # plain HTTP (health, metrics, page) or a refused upgrade: one access line
            path = request.path.split("?", 1)[0]  # no query: secrets
            log.debug("http %s %s %s %d", session.peer, request.method, path, refusal.status_code)
            self.ws.send_response(refusal)
            self._stop()  # the response ends the connection: nothing after it is read
            return
        session.dialect = self.gateway.dialect_for(request)
        bearer = request.headers.get("Authorization", "")
        problem = session.handshake(bearer[7:].strip() if bearer[:7].lower() == "bearer " else None)
        if problem is not None:
            self.ws.send_response(self.ws.reject(401, problem + "\n"))
            self._stop()
            return
        response = self.ws.accept(request)
        self.ws.send_response(response)
        if response.status_code != 101:
            self._stop()
            return
        self._send_protocol_data()
        self.gateway.peer_log.info(
            session.address, "conn %d %s open path=%s", session.cid, session.peer, request.path.split("?", 1)[0]
        )  # no query
        self._carry_out(session.open(time.monotonic()))

    # -- frames ----------------------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CLOSE:
            return  # websockets answers it and ends the connection
        session = self.session
        verdict = session.receive_frame(time.monotonic())
        if verdict is not None:
            if verdict is Action.ABORT:
                self._stop()
                self.abort()
            elif isinstance(verdict, Close):
                self._carry_out(verdict)
            elif opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                self._skip_message = not frame.fin  # dropped: the rest of this message goes too
                self._fragments = []
            return
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragments = []
                self._fragment_size = 0
                self._binary = opcode is Opcode.BINARY
                self._skip_message = False
            elif self._skip_message:
                self._skip_message = not frame.fin
                return
            self._fragment_size += len(frame.data)
            if self._fragment_size > self.gateway.cfg.max_message_bytes:
                self._carry_out(session.close(CloseCode.MESSAGE_TOO_BIG, "message too big"))
                return
            if not frame.fin:
                if len(self._fragments) >= MAX_FRAGMENTS:
                    self._carry_out(session.close(CloseCode.MESSAGE_TOO_BIG, "too many fragments"))
                    return
                self._fragments.append(bytes(frame.data))
                return
            data = b"".join((*self._fragments, frame.data)) if self._fragments else bytes(frame.data)
            self._fragments = []
            self._send_protocol_data()  # a pong websockets queued goes out ahead of our reply
            self._carry_out(session.receive_message(data, self._binary, time.monotonic()))
        elif opcode is Opcode.PONG:
            session.receive_pong()


def _plain(status: int, reason: str, body: bytes) -> Response:
    headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(status, reason, headers, body)
