"""The asyncio shell of one client connection: bytes <-> websockets' sans-I/O protocol <-> session.

The shell owns the transport and nothing else: it feeds bytes to websockets' ServerProtocol
(handshake, frame parsing, control frames), hands requests and complete messages to its Session,
writes the Session's outbox (market data prebuilt by the hub, one write per drain), carries out the
Session's close decisions (close frame, then a timer that cuts the socket) and tells the Session
when the transport pauses or resumes writing.

The outbound budget is asyncio's write-buffer high-water mark plus a capped SO_SNDBUF: above it the
outbox conflates (latest frame per topic); the session closes 4008 past the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from openalgo_proxy.config import ProxySettings
from openalgo_proxy.errors import CloseCode
from openalgo_proxy.logs import wire_logger
from openalgo_proxy.proxy.admission import Admission
from openalgo_proxy.proxy.dialect import SEED, Dialect
from openalgo_proxy.proxy.hub import Hub, TopicState
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox, discard
from openalgo_proxy.proxy.session import Close, Session, SessionLimits, SessionState, Timer

log = logging.getLogger(__name__)
# websockets logs every header and frame at DEBUG (Authorization headers, authenticate messages):
# its protocol gets a logger that drops DEBUG records, so secrets stay out of logs at any level.
WIRE_LOG = wire_logger("openalgo_proxy.proxy.wire")


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
    on_made: Callable[[Connection], None]
    on_lost: Callable[[Connection], None]
    dialect: Dialect = SEED


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
            gateway.dialect,
        )
        self._fragments: list[bytes] = []
        self._fragment_size = 0
        self._binary = False
        self._abort_handle: asyncio.TimerHandle | None = None

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
        if not self.session.connect():
            self.transport.abort()
            return
        cfg = self.gateway.cfg
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_send_buffer)
        self.transport.set_write_buffer_limits(high=cfg.send_buffer_bytes, low=cfg.send_buffer_bytes // 4)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.session.peer = f"{peer[0]}:{peer[1]}"
        self.outbox.write = self.transport.write
        self.gateway.on_made(self)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        self._send_protocol_data()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._send_protocol_data()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
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
            log.info("conn %d %s closed code=%s reason=%s", session.cid, session.peer, code, ws.close_reason or "")

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
            if chunk:
                transport.write(chunk)
            else:
                self._finish_close()
                return
        if self.ws.state is State.CLOSING and not self.session.closing:
            self.session.peer_closing()

    def _finish_close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._arm_abort()

    def _arm_abort(self) -> None:
        if self._abort_handle is None and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(self.gateway.cfg.close_timeout, self.abort)

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
            self.transport.abort()
            return
        self.outbox.flush()
        self.ws.send_close(decision.code, decision.reason)
        self._send_protocol_data()
        self._arm_abort()

    def tick(self, now: float, wall: float) -> None:
        """The server's sweep: ask the session what is due."""
        due = self.session.check(now, wall)
        if due is None:
            return
        if due is Timer.PING:
            self.ws.send_ping(b"%d" % self.session.cid)
            self._send_protocol_data()
        elif due is Timer.ABORT:
            self.abort()
        elif isinstance(due, Close):
            self._carry_out(due)

    def revalidate(self) -> None:
        self._carry_out(self.session.revalidate())

    # -- handshake ------------------------------------------------------------------------------
    def _on_request(self, request: Request) -> None:
        session = self.session
        refusal = self.gateway.route(request, session.peer)
        if refusal is not None:
            self.ws.send_response(refusal)
            return
        bearer = request.headers.get("Authorization", "")
        problem = session.handshake(bearer[7:].strip() if bearer[:7].lower() == "bearer " else None)
        if problem is not None:
            self.ws.send_response(self.ws.reject(401, problem + "\n"))
            return
        response = self.ws.accept(request)
        self.ws.send_response(response)
        if response.status_code != 101:
            return
        self._send_protocol_data()
        log.info("conn %d %s open path=%s", session.cid, session.peer, request.path.split("?", 1)[0])  # no query
        self._carry_out(session.open(time.monotonic()))

    # -- frames ----------------------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        session = self.session
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragments = []
                self._fragment_size = 0
                self._binary = opcode is Opcode.BINARY
            self._fragment_size += len(frame.data)
            if self._fragment_size > self.gateway.cfg.max_message_bytes:
                self.ws.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            if not frame.fin:
                self._fragments.append(bytes(frame.data))
                return
            data = b"".join((*self._fragments, frame.data)) if self._fragments else bytes(frame.data)
            self._fragments = []
            self._send_protocol_data()  # a pong websockets queued goes out ahead of our reply
            self._carry_out(session.receive_message(data, self._binary, time.monotonic()))
        elif opcode is Opcode.PONG:
            session.receive_pong()
        elif opcode is Opcode.PING:
            self._carry_out(session.receive_ping(time.monotonic()))
