"""One client connection: websockets' sans-I/O protocol for the handshake, parsing and control
frames, and our own writer for market data (frames prebuilt by the hub, one write per drain).

The outbound budget is asyncio's write-buffer high-water mark plus a capped SO_SNDBUF: above it
the connection is paused, its topics conflate to the latest frame, and a connection paused longer
than the grace period is closed with 4008.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from openalgo_proxy.errors import CloseCode, ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy import protocol as proto
from openalgo_proxy.proxy.hub import TopicState, text_frame

if TYPE_CHECKING:
    from openalgo_proxy.proxy.server import ProxyServer

log = logging.getLogger(__name__)

FEATURES = {"ltp": True, "quote": True, "depth": True}
ALL_MODES = (Mode.LTP, Mode.QUOTE, Mode.DEPTH)


class Connection(asyncio.Protocol):
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.hub = server.hub
        cfg = server.cfg
        self.ws = ServerProtocol(max_size=cfg.max_message_bytes, origins=server.origins)
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.append = self.pending.append
        self.conflated: dict[TopicState, bytes] = {}
        self.paused = False
        self.paused_since = 0.0
        self.topics: dict[bytes, TopicState] = {}
        self.open = False
        self.closing = False
        self.close_code = 1006
        self.authenticated = not server.auth_required
        self.identity = "anonymous"
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

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        cfg = self.server.cfg
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

    def connection_lost(self, exc: Exception | None) -> None:
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
        response = self.ws.accept(request)
        if response.status_code != 101:
            self.ws.send_response(response)
            return
        self.ws.send_response(response)
        self._send_protocol_data()
        self.open = True
        self.opened_at = time.monotonic()
        self.last_ping = self.opened_at
        self.server.metrics.connections_total += 1
        log.info("conn %d %s open path=%s", self.cid, self.peer, request.path)
        if not self.server.admit(self):
            self._send_protocol_data()
            self.close(CloseCode.TRY_AGAIN_LATER, "server full")
            return
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and self.server.auth_required:
            self._authenticate(proto.Authenticate(api_key=bearer[7:].strip(), token=None), None, quiet=True)

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
            if self._binary:
                self.send_error(ErrorCode.INVALID_JSON, "binary frames are not accepted; send JSON text")
                return
            self._on_text(data)
        elif opcode is Opcode.PONG:
            self.ping_waiting_since = 0.0

    def send_error(self, code: ErrorCode, message: str, request_id: Any = None, **extra: Any) -> None:
        self.server.metrics.errors[code.value] += 1
        self.send_message(proto.error(code, message, request_id, **extra))

    def _on_text(self, data: bytes) -> None:
        try:
            request = proto.parse_request(data)
        except proto.BadRequest as exc:
            self.send_error(exc.code, exc.message, exc.request_id)
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
            self.send_error(ErrorCode.NOT_AUTHENTICATED, "authenticate first", rid)
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
    def _authenticate(self, command: proto.Authenticate, rid: Any, quiet: bool = False) -> None:
        identity = self.server.check_credentials(command.api_key, command.token)
        if identity is None:
            log.info("conn %d %s authentication failed", self.cid, self.peer)
            if not quiet:
                self.send_error(ErrorCode.AUTHENTICATION_ERROR, "invalid API key or token", rid)
            return
        self.authenticated = True
        self.identity = identity
        log.info("conn %d %s authenticated as %s", self.cid, self.peer, identity)
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
        limit = self.server.cfg.max_subscriptions_per_connection
        directory = self.hub.directory
        for entry in command.entries:
            mode = entry.mode or proto.DEFAULT_MODE
            result: dict[str, Any] = {
                "symbol": entry.symbol,
                "exchange": entry.exchange,
                "mode": int(mode),
                "topic": f"{entry.symbol}.{entry.exchange}",
            }
            problem = directory.check(entry.exchange, entry.symbol)
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


def keys_match(candidate: str, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate.encode(), key.encode())
    return found
