"""One client connection: websockets' sans-I/O protocol for the handshake, parsing and control
frames, and our own writer for market data (frames prebuilt by the hub, one write per drain).

The outbound budget is asyncio's write-buffer high-water mark plus a capped SO_SNDBUF: above it
the connection is paused, its topics conflate to the latest frame, and a connection paused longer
than the grace period is closed with 4008.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from openalgo_proxy.errors import CloseCode, ErrorCode
from openalgo_proxy.logs import wire_logger
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy import protocol as proto
from openalgo_proxy.proxy.auth import AuthFailed, Grant
from openalgo_proxy.proxy.hub import TopicState, text_frame
from openalgo_proxy.proxy.limits import Guard
from openalgo_proxy.proxy.origin import origin_allowed

if TYPE_CHECKING:
    from openalgo_proxy.proxy.server import ProxyServer

log = logging.getLogger(__name__)
# websockets logs every header and frame at DEBUG (Authorization headers, authenticate messages):
# its protocol gets a logger that never goes below INFO, so secrets stay out of logs at any level.
WIRE_LOG = wire_logger("openalgo_proxy.proxy.wire")

FEATURES = {"ltp": True, "quote": True, "depth": True}
ALL_MODES = (Mode.LTP, Mode.QUOTE, Mode.DEPTH)


class Connection(asyncio.Protocol):
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.hub = server.hub
        cfg = server.cfg
        # no extensions: compression is never negotiated
        self.ws = ServerProtocol(max_size=cfg.max_message_bytes, logger=WIRE_LOG)
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.append = self.pending.append
        self.conflated: dict[TopicState, bytes] = {}
        self.paused = False
        self.paused_since = 0.0
        self.topics: dict[bytes, TopicState] = {}
        self.open = False
        self.closing = False
        self.close_code: int = CloseCode.ABNORMAL
        self.authenticated = not server.auth_required
        self.grant: Grant | None = None if server.auth_required else server.authenticator.anonymous()
        self.identity = "anonymous"
        self.counted_identity: str | None = None  # identity whose connection cap this connection holds
        self.peer = "?"
        self.created = time.monotonic()
        self.opened_at = 0.0
        self.last_ping = 0.0
        self.ping_waiting_since = 0.0
        self._fragments: list[bytes] = []
        self._fragment_size = 0
        self._binary = False
        self._abort_handle: asyncio.TimerHandle | None = None
        self.cid = server.next_id()
        self.guard = Guard(server.limits, self.created)
        self._pending = False  # holds one of the server's pending-handshake slots

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        server = self.server
        if server.pending_handshakes >= server.limits.max_pending_handshakes:
            self.transport.abort()
            return
        server.pending_handshakes += 1
        self._pending = True
        cfg = server.cfg
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_send_buffer)
        self.transport.set_write_buffer_limits(high=cfg.send_buffer_bytes, low=cfg.send_buffer_bytes // 4)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        self.server.connections.add(self)

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

    def _end_pending(self) -> None:
        if self._pending:
            self._pending = False
            self.server.pending_handshakes -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_pending()
        server = self.server
        server.on_lost(self)
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        self._drop_all_topics()
        self.conflated.clear()
        self.pending.clear()
        if self.ws.state is not State.CLOSED:
            self.ws.receive_eof()  # settles close_code from the closing handshake, if there was one
        if self.open:
            server.open_count -= 1
            code = self.ws.close_code if self.ws.close_code is not None else self.close_code
            if self.ws.close_rcvd is None and self.ws.close_sent is not None:
                code = self.ws.close_sent.code  # we closed (4008, 1011, ...) and the peer never answered
            server.metrics.disconnects[int(code)] += 1
            server.on_closed(self)
            log.info(
                "conn %d %s closed code=%s reason=%s",
                self.cid,
                self.peer,
                code,
                self.ws.close_reason or "",
            )
        self.open = False

    def pause_writing(self) -> None:
        self.paused = True
        self.paused_since = time.monotonic()
        self.hub.set_paused(self, True)

    def resume_writing(self) -> None:
        self.paused = False
        self.hub.set_paused(self, False)
        if self.conflated and self.transport is not None and not self.closing:
            data = b"".join(self.conflated.values())
            self.conflated.clear()
            self.server.metrics.bytes_out += len(data)
            self.transport.write(data)

    # -- writing ---------------------------------------------------------------------------------
    def flush(self) -> None:
        pending = self.pending
        if not pending or self.transport is None:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.server.metrics.bytes_out += len(data)
        self.transport.write(data)

    def send_message(self, payload: bytes) -> None:
        """A reply or event (not market data): after anything pending, ahead of later ticks."""
        if not self.open or self.closing or self.transport is None:
            return
        self._send_protocol_data()  # the handshake response or a pong may still be queued in the protocol
        self.append(text_frame(payload))
        self.flush()

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
        if self.ws.state is State.CLOSING and not self.closing:
            # the client started the closing handshake; our close frame is on its way
            self.closing = True
            self._drop_all_topics()

    def _finish_close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._arm_abort()

    def _arm_abort(self) -> None:
        if self._abort_handle is None and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(self.server.cfg.close_timeout, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the close frame follows anything already queued."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self.close_code = code
        self._drop_all_topics()
        if not self.open:
            self.transport.abort()
            return
        self.flush()
        self.ws.send_close(code, reason)
        self._send_protocol_data()
        self._arm_abort()

    def send_ping(self, now: float) -> None:
        if not self.open or self.closing:
            return
        self.last_ping = now
        self.ping_waiting_since = now
        self.ws.send_ping(b"%d" % self.cid)
        self._send_protocol_data()

    # -- handshake ------------------------------------------------------------------------------
    def _on_request(self, request: Request) -> None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            self.ws.send_response(self.server.http_response(request))
            return
        headers = request.headers
        server = self.server
        tls = server.tls_context is not None
        if not origin_allowed(headers.get("Origin"), headers.get("Host"), server.cfg.allowed_origins, tls):
            log.info("conn %d %s refused: origin not allowed", self.cid, self.peer)
            self.ws.send_response(self.ws.reject(403, "origin not allowed\n"))
            return
        bearer = headers.get("Authorization", "")
        grant: Grant | None = None
        if bearer[:7].lower() == "bearer " and self.server.auth_required:
            try:
                grant = self.server.authorize(bearer[7:].strip())
            except AuthFailed as exc:
                log.info("conn %d %s refused at handshake: %s", self.cid, self.peer, exc.reason)
                self.ws.send_response(self.ws.reject(401, f"authentication failed: {exc.reason}\n"))
                return
        response = self.ws.accept(request)
        if response.status_code != 101:
            self.ws.send_response(response)
            return
        self.ws.send_response(response)
        self._send_protocol_data()
        self._end_pending()
        self.open = True
        self.server.open_count += 1
        self.opened_at = time.monotonic()
        self.last_ping = self.opened_at
        self.server.metrics.connections_total += 1
        log.info("conn %d %s open path=%s", self.cid, self.peer, request.path.split("?", 1)[0])  # no query: secrets
        if not self.server.admit(self):
            self._send_protocol_data()
            self.close(CloseCode.TRY_AGAIN_LATER, "server full")
            return
        if grant is not None:
            self._grant(grant, None, quiet=True)

    # -- frames ----------------------------------------------------------------------------------
    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragments = []
                self._fragment_size = 0
                self._binary = opcode is Opcode.BINARY
            self._fragment_size += len(frame.data)
            if self._fragment_size > self.server.cfg.max_message_bytes:
                self.ws.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            if not frame.fin:
                self._fragments.append(bytes(frame.data))
                return
            data = b"".join((*self._fragments, frame.data)) if self._fragments else bytes(frame.data)
            self._fragments = []
            self.server.metrics.messages_in += 1
            if self.closing:
                return
            now = time.monotonic()
            if not self.guard.allow_command(now):
                self._violation(ErrorCode.RATE_LIMITED, "too many commands; slow down")
                return
            if self._binary:
                self._violation(ErrorCode.INVALID_JSON, "binary frames are not accepted; send JSON text")
                return
            self._on_text(data)
        elif opcode is Opcode.PONG:
            self.ping_waiting_since = 0.0
        elif opcode is Opcode.PING:
            now = time.monotonic()
            if not self.guard.allow_command(now) and not self.guard.violation(now):
                self._close_abusive()

    def _violation(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        """Answer a protocol error, failed authentication or rate-limited command; 4029 past the budget."""
        self.send_error(code, message, request_id)
        if not self.guard.violation(time.monotonic()):
            self._close_abusive()

    def _close_abusive(self) -> None:
        if not self.closing:
            log.info("conn %d %s too many requests or protocol errors: closing with 4029", self.cid, self.peer)
            self.close(CloseCode.TOO_MANY_REQUESTS, "too many requests or protocol errors")

    def send_error(self, code: ErrorCode, message: str, request_id: Any = None, **extra: Any) -> None:
        self.server.metrics.errors[code.value] += 1
        self.send_message(proto.error(code, message, request_id, **extra))

    def _on_text(self, data: bytes) -> None:
        try:
            request = proto.parse_request(data)
        except proto.BadRequest as exc:
            self._violation(exc.code, exc.message, exc.request_id)
            return
        command = request.command
        rid = request.request_id
        if isinstance(command, proto.Authenticate):
            self._authenticate(command, rid)
        elif isinstance(command, proto.Ping):
            body: dict[str, Any] = {
                "type": "pong",
                "status": "success",
                "server_timestamp": int(time.time() * 1000),
            }
            if command.ping_id is not None:
                body["_pingId"] = command.ping_id
            self.send_message(proto.reply(body, rid))
        elif isinstance(command, proto.SupportedBrokers):
            self.send_message(
                proto.reply(
                    {"type": "supported_brokers", "status": "success", "brokers": self.hub.directory.brokers()}, rid
                )
            )
        elif not self.authenticated:
            self._violation(ErrorCode.NOT_AUTHENTICATED, "authenticate first", rid)
        elif isinstance(command, proto.Subscribe):
            self._subscribe(command, rid)
        elif isinstance(command, proto.Unsubscribe):
            self._unsubscribe(command, rid)
        elif isinstance(command, proto.UnsubscribeAll):
            removed = [self._describe(state) for state in self.topics.values()]
            self._drop_all_topics()
            self.send_message(
                proto.reply(
                    {
                        "type": "unsubscription",
                        "status": "success",
                        "message": f"unsubscribed from {len(removed)} topic(s)",
                        "subscriptions": removed,
                    },
                    rid,
                )
            )
        elif isinstance(command, proto.ListSubscriptions):
            listed = [self._describe(state) for state in self.topics.values()]
            self.send_message(proto.reply({"type": "subscriptions", "status": "success", "subscriptions": listed}, rid))
        elif isinstance(command, proto.BrokerInfo):
            self.send_message(proto.reply(self.server.broker_info(), rid))

    # -- commands ----------------------------------------------------------------------------------
    def _authenticate(self, command: proto.Authenticate, rid: Any) -> None:
        try:
            grant = self.server.authorize(command.token or command.api_key)
        except AuthFailed as exc:
            log.info("conn %d %s authentication failed: %s", self.cid, self.peer, exc.reason)
            self._violation(ErrorCode.AUTHENTICATION_ERROR, f"authentication failed: {exc.reason}", rid)
            return
        self._grant(grant, rid)

    def _grant(self, grant: Grant, rid: Any, quiet: bool = False) -> None:
        current = self.grant if self.server.auth_required else None
        if current is not None and (current.identity, current.role_name) != (grant.identity, grant.role_name):
            self._violation(
                ErrorCode.AUTHENTICATION_ERROR, "already authenticated as another identity; reconnect to switch", rid
            )
            return
        problem = self.server.on_authenticated(self, grant)
        if problem is not None:
            log.info("conn %d %s %s: %s; closing with 4029", self.cid, self.peer, grant.identity, problem)
            self.send_error(ErrorCode.LIMIT_EXCEEDED, problem, rid)
            self.close(CloseCode.TOO_MANY_REQUESTS, "too many connections for this identity")
            return
        self.authenticated = True
        self.grant = grant
        identity = self.identity = grant.identity
        log.info("conn %d %s authenticated as %s role=%s", self.cid, self.peer, identity, grant.role_name)
        if quiet:
            return
        self.send_message(
            proto.reply(
                {
                    "type": "auth",
                    "status": "success",
                    "message": "Authentication successful",
                    "user_id": identity,
                    "broker": self.server.broker_name(),
                    "supported_features": FEATURES,
                },
                rid,
            )
        )

    @staticmethod
    def _describe(state: TopicState) -> dict[str, Any]:
        return {
            "symbol": state.symbol,
            "exchange": state.exchange,
            "mode": int(state.mode),
            "topic": state.client_topic,
        }

    def _subscribe(self, command: proto.Subscribe, rid: Any) -> None:
        results: list[dict[str, Any]] = []
        snapshots: list[bytes] = []
        grant = self.grant
        limit = self.server.cfg.max_subscriptions_per_connection
        if grant is not None and grant.role.max_subscriptions is not None:
            limit = min(limit, grant.role.max_subscriptions)
        directory = self.hub.directory
        for entry in command.entries:
            mode = entry.mode or proto.DEFAULT_MODE
            result: dict[str, Any] = {
                "symbol": entry.symbol,
                "exchange": entry.exchange,
                "mode": int(mode),
                "topic": f"{entry.symbol}.{entry.exchange}",
            }
            forbidden = grant.forbidden(entry.exchange, mode) if grant is not None else "not authenticated"
            problem = (ErrorCode.FORBIDDEN, forbidden) if forbidden else directory.check(entry.exchange, entry.symbol)
            bus_topic = f"{entry.exchange}|{entry.symbol}|{int(mode)}".encode()
            if problem is not None:
                code, message = problem
                self.server.metrics.errors[code.value] += 1
                result.update(status="error", code=code.value, message=message)
            elif bus_topic in self.topics:
                result.update(status="success", message="already subscribed")
            elif len(self.topics) >= limit:
                self.server.metrics.errors[ErrorCode.LIMIT_EXCEEDED.value] += 1
                result.update(
                    status="error",
                    code=ErrorCode.LIMIT_EXCEEDED.value,
                    message=f"at most {limit} subscriptions per connection",
                )
            else:
                state = self.hub.subscribe(self, entry.symbol, entry.exchange, mode)
                self.topics[bus_topic] = state
                result["status"] = "success"
                if state.last_frame:
                    snapshots.append(state.last_frame)
            results.append(result)
        status = proto.overall_status(results)
        ok = sum(1 for r in results if r["status"] == "success")
        body: dict[str, Any] = {
            "type": "subscription",
            "status": status,
            "message": f"subscribed to {ok} of {len(results)}",
            "subscriptions": results,
        }
        if command.single:
            body["topic"] = results[0]["topic"]
        log.info(
            "conn %d %s subscribe requested=%d ok=%d failed=%d holding=%d",
            self.cid,
            self.peer,
            len(results),
            ok,
            len(results) - ok,
            len(self.topics),
        )
        self.send_message(proto.reply(body, rid))
        if snapshots and not self.closing:
            self.pending.extend(snapshots)
            self.flush()

    def _unsubscribe(self, command: proto.Unsubscribe, rid: Any) -> None:
        results: list[dict[str, Any]] = []
        for entry in command.entries:
            modes = (entry.mode,) if entry.mode is not None else ALL_MODES
            found = False
            for mode in modes:
                state = self.topics.pop(f"{entry.exchange}|{entry.symbol}|{int(mode)}".encode(), None)
                if state is None:
                    continue
                found = True
                self.hub.unsubscribe(self, state)
                results.append({**self._describe(state), "status": "success"})
            if not found:
                self.server.metrics.errors[ErrorCode.NOT_SUBSCRIBED.value] += 1
                results.append(
                    {
                        "symbol": entry.symbol,
                        "exchange": entry.exchange,
                        "mode": int(entry.mode) if entry.mode is not None else 0,
                        "topic": f"{entry.symbol}.{entry.exchange}",
                        "status": "error",
                        "code": ErrorCode.NOT_SUBSCRIBED.value,
                        "message": "not subscribed",
                    }
                )
        body: dict[str, Any] = {
            "type": "unsubscription",
            "status": proto.overall_status(results),
            "subscriptions": results,
        }
        if command.single:
            body["topic"] = f"{command.entries[0].symbol}.{command.entries[0].exchange}"
        self.send_message(proto.reply(body, rid))

    def drop_topic(self, state: TopicState) -> None:
        if self.topics.pop(state.bus_topic, None) is not None:
            self.hub.unsubscribe(self, state)

    def _drop_all_topics(self) -> None:
        if self.topics:
            states = list(self.topics.values())
            self.topics.clear()
            for state in states:
                self.hub.unsubscribe(self, state)
