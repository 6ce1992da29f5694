"""One client's session, pure: client messages and time in, reply bytes and close decisions out.

The session never sees a socket or the server. It talks to the hub (subscriptions, what the feeds
serve) and to admission (credentials, identity caps, budgets) through the narrow interfaces below,
writes replies into its outbox, and answers every event that may end the connection with a
`Close` (or None). The asyncio shell (connection.py) carries a Close out: close frame, timers.

Lifecycle (`SessionState`): HANDSHAKING (TCP up, HTTP upgrade not done) -> OPEN (WebSocket open, not
authenticated) -> AUTHENTICATED -> CLOSING (close decided or started by the peer; topics dropped)
-> CLOSED (connection lost). Without authentication, OPEN is skipped. Conflation (the outbox is
paused, over its outbound budget) is a flag orthogonal to the state: `conflating`.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, Protocol

from openalgo_proxy import topics
from openalgo_proxy.config import AuthSettings, ProxySettings
from openalgo_proxy.errors import CloseCode, ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy import protocol as proto
from openalgo_proxy.proxy.auth import AuthFailed, Grant
from openalgo_proxy.proxy.dialect import SEED, BrokerFacts, Dialect, candle_subscription, history_reply
from openalgo_proxy.proxy.hub import TopicState
from openalgo_proxy.proxy.limits import Guard
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox
from openalgo_proxy.proxy.peerlog import PeerLog

log = logging.getLogger("openalgo_proxy.proxy.connection")


ALL_MODES = (Mode.LTP, Mode.QUOTE, Mode.DEPTH)
SUGGESTED_PER_REQUEST = 3  # unknown names per subscribe that get "did you mean" (each costs a search)
SEARCH_COST = 10  # commands' worth of the rate budget a search costs (it may scan the whole directory)
SUGGESTION_COST = 1  # and a did-you-mean (bounded lookups: well under a millisecond on a full master)


class SessionState(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    AUTHENTICATED = "authenticated"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code and reason (after anything already queued). `at_once`:
    stop reading now and end the TCP connection right after the close frame (abusive clients)."""

    code: int
    reason: str
    at_once: bool = False


# Work bounds: a subscribe or unsubscribe entry costs 1/ENTRIES_PER_TOKEN of a command, a reply
# 1/REPLY_BYTES_PER_TOKEN per byte; failed entries spend the error budget likewise. A message may
# carry at most max(the identity's subscription cap, MIN_ENTRY_CAP) entries
# (ENTRIES_BEFORE_AUTH before authentication).
ENTRIES_PER_TOKEN = 50
REPLY_BYTES_PER_TOKEN = 16384
MIN_ENTRY_CAP = 50
ENTRIES_BEFORE_AUTH = 50


class Action(enum.Enum):
    """What the session asks of the shell, besides closing."""

    PING = "ping"  # send a WebSocket ping now
    ABORT = "abort"  # cut the TCP connection now (handshake never finished; flooding while closing)
    DROP = "drop"  # ignore this frame (it was over the budget and has been answered)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The per-session settings, taken once from the configuration."""

    handshake_timeout: float
    first_byte_timeout: float
    auth_deadline: float
    ping_interval: float
    ping_timeout: float
    slow_client_grace: float
    max_subscriptions: int

    @classmethod
    def from_settings(cls, cfg: ProxySettings, auth: AuthSettings) -> SessionLimits:
        return cls(
            handshake_timeout=cfg.handshake_timeout,
            first_byte_timeout=min(cfg.first_byte_timeout, cfg.handshake_timeout),
            auth_deadline=auth.deadline,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            slow_client_grace=cfg.slow_client_grace,
            max_subscriptions=cfg.max_subscriptions_per_connection,
        )


class Market(Protocol):
    """What a session needs from the hub: subscriptions into its outbox and what the feeds serve."""

    def subscribe(
        self,
        outbox: Outbox[TopicState],
        symbol: str,
        exchange: str,
        mode: Mode,
        depth: int = topics.STANDARD_DEPTH,
        numeric_time: bool = False,
    ) -> TopicState: ...

    def subscribe_chain(self, outbox: Outbox[TopicState], key: topics.ChainKey) -> TopicState: ...

    def subscribe_orders(self, outbox: Outbox[TopicState], accounts: tuple[str, ...]) -> None: ...

    def unsubscribe_orders(self, outbox: Outbox[TopicState]) -> bool: ...

    def unsubscribe(self, outbox: Outbox[TopicState], state: TopicState) -> None: ...

    def subscribe_candles(
        self, outbox: Outbox[TopicState], symbol: str, exchange: str, interval: str
    ) -> tuple[TopicState, list[bytes]]: ...

    def unsubscribe_all(self, outbox: Outbox[TopicState], orders: bool = True) -> list[TopicState]: ...

    def set_paused(self, outbox: Outbox[TopicState], paused: bool, now: float = 0.0) -> None: ...

    def check(self, exchange: str, symbol: str) -> tuple[ErrorCode, str] | None: ...

    def brokers(self) -> list[str]: ...

    def exchanges(self) -> list[str]: ...

    def broker_name(self) -> str: ...

    def upstream_connected(self) -> bool: ...

    def search(
        self, query: str, exchange: str | None, limit: int, allowed: Container[str] | None = None
    ) -> list[dict[str, Any]]: ...

    def suggest(self, exchange: str, symbol: str) -> list[str]: ...


#: the answer of an archive query: (rows, more rows after these) or an error message
HistoryAnswer = tuple[list[dict[str, Any]], bool] | str


class Archive(Protocol):
    """Where `history` requests are answered (off the event loop; `done` is called on it)."""

    def fetch(self, query: proto.History, done: Callable[[HistoryAnswer], None]) -> None: ...


class Gate(Protocol):
    """What a session needs from admission."""

    @property
    def auth_required(self) -> bool: ...

    def begin_handshake(self, address: str) -> bool: ...

    def end_handshake(self, address: str) -> None: ...

    def open(self) -> bool: ...

    def closed(self) -> None: ...

    def anonymous(self) -> Grant: ...

    def authorize(self, credential: str | None) -> Grant: ...

    def still_valid(self, grant: Grant) -> bool: ...

    def claim(self, grant: Grant, held: str | None) -> str | None: ...

    def release(self, identity: str) -> None: ...

    def guard(self, now: float) -> Guard: ...


def describe(state: TopicState) -> dict[str, Any]:
    if state.interval:
        return {
            "symbol": state.symbol,
            "exchange": state.exchange,
            "interval": state.interval,
            "topic": state.client_topic,
            "candles": True,
        }
    out = {"symbol": state.symbol, "exchange": state.exchange, "mode": int(state.mode), "topic": state.client_topic}
    if state.depth != topics.STANDARD_DEPTH:
        out["depth"] = state.depth
    return out


class Session:
    def __init__(
        self,
        cid: int,
        outbox: Outbox[TopicState],
        market: Market,
        gate: Gate,
        metrics: ProxyMetrics,
        limits: SessionLimits,
        now: float,
        dialect: Dialect = SEED,
        wall_clock: Callable[[], float] = time.time,
        peer_log: PeerLog | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.cid = cid
        self.archive = archive
        self.history_pending = False  # one history request in flight per connection
        self.peer = "?"  # "address:port", for logs
        self.address = "?"  # the peer's IP address, for per-address limits
        self.outbox = outbox
        self.market = market
        self.gate = gate
        self.metrics = metrics
        self.limits = limits
        self.dialect = dialect
        self.wall_clock = wall_clock
        self.peer_log = peer_log or PeerLog(log)  # connection life lines, rate-limited per peer address
        self.state = SessionState.HANDSHAKING
        self.guard = gate.guard(now)
        self.grant: Grant | None = None
        self.identity = "anonymous"
        self.held_identity: str | None = None  # identity whose connection cap this session holds
        self.close_code: int | None = None  # the code this side decided to close with
        self.created = now
        self.first_byte_at = 0.0
        self.opened_at = 0.0
        self.last_ping = 0.0
        self.ping_waiting_since = 0.0
        self._pending_slot = False  # holds one of admission's pending-handshake slots
        self._handshake_grant: Grant | None = None
        outbox.on_reject = self._on_reject

    # -- state ----------------------------------------------------------------------------------------
    @property
    def opened(self) -> bool:
        """Past the WebSocket upgrade (possibly closing, or closed since)."""
        return self.opened_at > 0.0

    @property
    def closing(self) -> bool:
        return self.state is SessionState.CLOSING or self.state is SessionState.CLOSED

    @property
    def authenticated(self) -> bool:
        return self.grant is not None

    @property
    def conflating(self) -> bool:
        return self.outbox.paused

    # -- lifecycle -------------------------------------------------------------------------------------
    def connect(self, address: str = "?", now: float | None = None) -> bool:
        """TCP connection made (after TLS, if any; `now` restarts the handshake deadlines there):
        False when admission has no pending-handshake slot (abort at once)."""
        self.address = address
        if now is not None:
            self.created = now
        if not self.gate.begin_handshake(address):
            self.state = SessionState.CLOSED
            return False
        self._pending_slot = True
        return True

    def _end_pending(self) -> None:
        if self._pending_slot:
            self._pending_slot = False
            self.gate.end_handshake(self.address)

    def received_bytes(self, now: float) -> None:
        """Request bytes arrived (the first ones stop the first-byte deadline)."""
        if not self.first_byte_at:
            self.first_byte_at = now

    def handshake(self, bearer: str | None) -> str | None:
        """`Authorization: Bearer` at the upgrade: None to go on, else the reason to refuse (401)."""
        if bearer is None or not self.gate.auth_required:
            return None
        try:
            self._handshake_grant = self.gate.authorize(bearer)
        except AuthFailed as exc:
            self.peer_log.info(self.address, "conn %d %s refused at handshake: %s", self.cid, self.peer, exc.reason)
            return f"authentication failed: {exc.reason}"
        return None

    def open(self, now: float) -> Close | None:
        """The 101 response is on its way: the WebSocket is open."""
        self._end_pending()
        self.state = SessionState.OPEN
        self.opened_at = self.last_ping = now
        self.metrics.connections_total += 1
        if not self.gate.open():
            return self.close(CloseCode.TRY_AGAIN_LATER, "server full")
        if not self.gate.auth_required:
            self.grant = self.gate.anonymous()
            self.state = SessionState.AUTHENTICATED
        elif self._handshake_grant is not None:
            grant, self._handshake_grant = self._handshake_grant, None
            return self._grant(grant, None, now, quiet=True)
        return None

    def close(self, code: int, reason: str) -> Close | None:
        """Decide to close: topics are dropped now; None when closing is already under way."""
        if self.closing:
            return None
        self.state = SessionState.CLOSING
        self.close_code = code
        self.market.unsubscribe_all(self.outbox)
        return Close(code, reason)

    def peer_closing(self) -> None:
        """The client started the closing handshake; our close frame is on its way."""
        if not self.closing:
            self.state = SessionState.CLOSING
            self.market.unsubscribe_all(self.outbox)

    def lost(self, code: int) -> None:
        """The connection is gone (`code` as settled by the closing handshake, 1006 without one)."""
        self._end_pending()
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self.market.unsubscribe_all(self.outbox)
        self.outbox.close()
        if self.opened:
            self.gate.closed()
            if self.held_identity is not None:
                self.gate.release(self.held_identity)
                self.held_identity = None
            self.metrics.disconnects[int(code)] += 1

    # -- flow control ------------------------------------------------------------------------------------
    def pause(self, now: float) -> None:
        self.market.set_paused(self.outbox, True, now)

    def resume(self) -> None:
        self.market.set_paused(self.outbox, False)

    # -- deadlines ---------------------------------------------------------------------------------------
    def check(self, now: float, wall: float) -> Close | Action | None:
        """Asked by the server's sweep: what, if anything, is due now."""
        state = self.state
        limits = self.limits
        if state is SessionState.HANDSHAKING:
            waited = now - self.created
            if waited > limits.handshake_timeout or (not self.first_byte_at and waited > limits.first_byte_timeout):
                return Action.ABORT
            return None
        if state is SessionState.CLOSING or state is SessionState.CLOSED:
            return None
        grant = self.grant
        if state is SessionState.OPEN and now - self.opened_at > limits.auth_deadline:
            return self.close(CloseCode.AUTH_TIMEOUT, "authentication required")
        if grant is not None and grant.expires_at is not None and wall >= grant.expires_at:
            self.peer_log.info(
                self.address, "conn %d %s token of %s expired: closing with 4401", self.cid, self.peer, self.identity
            )
            return self.close(CloseCode.AUTH_TIMEOUT, "token expired")
        outbox = self.outbox
        if outbox.paused and now - outbox.paused_since > limits.slow_client_grace:
            self.metrics.slow_disconnects[CloseCode.TOO_SLOW] += 1
            self.peer_log.info(self.address, "conn %d %s too slow: closing with 4008", self.cid, self.peer)
            return self.close(CloseCode.TOO_SLOW, "too slow to keep up")
        if self.ping_waiting_since:
            if now - self.ping_waiting_since > limits.ping_timeout:
                return self.close(CloseCode.KEEPALIVE_TIMEOUT, "keepalive ping timeout")
            return None
        if now - self.last_ping >= limits.ping_interval:
            self.last_ping = self.ping_waiting_since = now
            return Action.PING
        return None

    def revalidate(self) -> Close | None:
        """After the key store changed: close when this session's key was revoked."""
        grant = self.grant
        if grant is None or self.closing or self.gate.still_valid(grant):
            return None
        self.peer_log.info(
            self.address, "conn %d %s key of %s revoked: closing with 4401", self.cid, self.peer, grant.identity
        )
        return self.close(CloseCode.AUTH_TIMEOUT, "API key revoked")

    # -- frames ------------------------------------------------------------------------------------------
    def receive_frame(self, now: float) -> Close | Action | None:
        """Every frame costs one command token (data, continuation, ping, pong alike).

        None: go on with the frame. Action.DROP: ignore it (answered RATE_LIMITED while the error
        budget lasts). A Close past the budget. Action.ABORT when a closing connection keeps flooding.
        """
        guard = self.guard
        if guard.allow_command(now):
            return None
        if self.closing:
            return Action.ABORT
        decision = self._violation(ErrorCode.RATE_LIMITED, "too many frames or commands; slow down", now)
        return decision if decision is not None else Action.DROP

    def receive_pong(self) -> None:
        self.ping_waiting_since = 0.0

    def receive_message(self, data: bytes, binary: bool, now: float) -> Close | None:
        """One complete client message (its frames already charged by receive_frame)."""
        self.metrics.messages_in += 1
        if self.closing:
            return None
        if binary:
            return self._violation(ErrorCode.INVALID_JSON, "binary frames are not accepted; send JSON text", now)
        try:
            data.decode()
        except UnicodeDecodeError:
            self.peer_log.info(self.address, "conn %d %s sent invalid UTF-8: closing with 1007", self.cid, self.peer)
            return self.close(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
        try:
            request = self.dialect.parse(data, self._entry_cap())
        except proto.BadRequest as exc:
            return self._violation(exc.code, exc.message, now, exc.request_id)
        return self._dispatch(request.command, request.request_id, now)

    def _entry_cap(self) -> int:
        """Entries one subscribe/unsubscribe may carry: bounded by what this identity may hold."""
        if self.grant is None:
            return ENTRIES_BEFORE_AUTH
        return max(self._subscription_limit(), MIN_ENTRY_CAP)

    def _subscription_limit(self) -> int:
        limit = self.limits.max_subscriptions
        grant = self.grant
        if grant is not None and grant.role.max_subscriptions is not None:
            limit = min(limit, grant.role.max_subscriptions)
        return limit

    def _charge_batch(self, entries: int, failed: int, reply: bytes, now: float) -> Close | None:
        """A batch's cost beyond its frame: entries and reply bytes from the command bucket, failed
        entries from the error budget (at least one unit per message with failures)."""
        guard = self.guard
        guard.charge(now, entries / ENTRIES_PER_TOKEN + len(reply) / REPLY_BYTES_PER_TOKEN)
        if failed and not guard.violation(now, 1 + failed // ENTRIES_PER_TOKEN):
            return self._close_abusive()
        return None

    # -- replies -----------------------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        if self.state is SessionState.OPEN or self.state is SessionState.AUTHENTICATED:
            self.outbox.send(payload)

    def send_error(self, code: ErrorCode, message: str, request_id: Any = None, **extra: Any) -> None:
        self.metrics.errors[code.value] += 1
        self.send(self.dialect.error(code, message, request_id, **extra))

    def _violation(self, code: ErrorCode, message: str, now: float, request_id: Any = None) -> Close | None:
        """Answer a protocol error, failed authentication or rate-limited command; 4029 past the budget."""
        self.send_error(code, message, request_id)
        if not self.guard.violation(now):
            return self._close_abusive()
        return None

    def _close_abusive(self) -> Close | None:
        if self.closing:
            return None
        self.peer_log.info(
            self.address, "conn %d %s too many requests or protocol errors: closing with 4029", self.cid, self.peer
        )
        decision = self.close(CloseCode.TOO_MANY_REQUESTS, "too many requests or protocol errors")
        return Close(decision.code, decision.reason, at_once=True) if decision is not None else None

    def _on_reject(self, state: TopicState, code: str, message: str) -> None:
        """A feed refused one of our topics; the hub has already dropped it."""
        try:
            err = ErrorCode(code)
        except ValueError:
            err = ErrorCode.BROKER_UNAVAILABLE
        extra: dict[str, Any] = {"depth": state.depth} if state.depth != topics.STANDARD_DEPTH else {}
        self.send_error(
            err,
            message or "the broker refused this subscription",
            symbol=state.symbol,
            exchange=state.exchange,
            mode=int(state.mode),
            topic=state.client_topic,
            **extra,
        )

    # -- commands ----------------------------------------------------------------------------------------
    def _dispatch(self, command: proto.Command, rid: Any, now: float) -> Close | None:
        dialect = self.dialect
        market = self.market
        if isinstance(command, proto.Authenticate):
            return self._authenticate(command, rid, now)
        if isinstance(command, proto.Ping):
            self.send(dialect.pong(command.ping_id, int(self.wall_clock() * 1000), rid))
        elif isinstance(command, proto.SupportedBrokers):
            self.send(dialect.supported_brokers(market.brokers(), rid))
        elif self.grant is None:
            return self._violation(ErrorCode.NOT_AUTHENTICATED, "authenticate first", now, rid)
        elif isinstance(command, proto.Subscribe):
            return self._subscribe(command, rid, now)
        elif isinstance(command, proto.Unsubscribe):
            return self._unsubscribe(command, rid, now)
        elif isinstance(command, proto.ChainSubscribe):
            return self._subscribe_chain(command.key, rid, now)
        elif isinstance(command, proto.ChainUnsubscribe):
            return self._unsubscribe_chain(command.key, rid, now)
        elif isinstance(command, proto.SubscribeCandles):
            return self._subscribe_candles(command, rid, now)
        elif isinstance(command, proto.UnsubscribeCandles):
            return self._unsubscribe_candles(command, rid, now)
        elif isinstance(command, proto.History):
            return self._history(command, rid, now)
        elif isinstance(command, proto.UnsubscribeAll):
            removed = [describe(state) for state in market.unsubscribe_all(self.outbox, orders=False)]
            self.send(dialect.unsubscribed_all(removed, rid))
        elif isinstance(command, proto.ListSubscriptions):
            self.send(dialect.subscriptions([describe(state) for state in self.outbox.topics.values()], rid))
        elif isinstance(command, proto.Search):
            self.guard.charge(now, SEARCH_COST - 1)  # a search scans the directory: it costs like several commands
            allowed = self.grant.role.exchanges
            found = market.search(command.query, command.exchange, command.limit, allowed)
            self.send(dialect.search_results(command.query, found, rid))
        elif isinstance(command, proto.BrokerInfo):
            facts = BrokerFacts(
                market.broker_name(), market.brokers(), market.upstream_connected(), market.exchanges(), self.identity
            )
            self.send(dialect.broker_info(facts, rid))
        elif isinstance(command, proto.SubscribeOrders):
            accounts = self.grant.order_accounts
            if not accounts:
                return self._violation(ErrorCode.FORBIDDEN, "this identity may not receive order updates", now, rid)
            market.subscribe_orders(self.outbox, accounts)
            self.send(dialect.orders(True, rid))
        elif isinstance(command, proto.UnsubscribeOrders):
            market.unsubscribe_orders(self.outbox)
            self.send(dialect.orders(False, rid))
        return None

    def _authenticate(self, command: proto.Authenticate, rid: Any, now: float) -> Close | None:
        try:
            grant = self.gate.authorize(command.token or command.api_key)
        except AuthFailed as exc:
            self.peer_log.info(self.address, "conn %d %s authentication failed: %s", self.cid, self.peer, exc.reason)
            return self._violation(ErrorCode.AUTHENTICATION_ERROR, f"authentication failed: {exc.reason}", now, rid)
        return self._grant(grant, rid, now)

    def _grant(self, grant: Grant, rid: Any, now: float, quiet: bool = False) -> Close | None:
        current = self.grant if self.gate.auth_required else None
        if current is not None and (current.identity, current.role_name) != (grant.identity, grant.role_name):
            return self._violation(
                ErrorCode.AUTHENTICATION_ERROR,
                "already authenticated as another identity; reconnect to switch",
                now,
                rid,
            )
        problem = self.gate.claim(grant, self.held_identity)
        if problem is not None:
            self.peer_log.info(
                self.address, "conn %d %s %s: %s; closing with 4029", self.cid, self.peer, grant.identity, problem
            )
            self.send_error(ErrorCode.LIMIT_EXCEEDED, problem, rid)
            return self.close(CloseCode.TOO_MANY_REQUESTS, "too many connections for this identity")
        if self.gate.auth_required:
            self.held_identity = grant.identity
        self.grant = grant
        self.identity = grant.identity
        if self.state is SessionState.OPEN:
            self.state = SessionState.AUTHENTICATED
        self.peer_log.info(
            self.address, "conn %d %s authenticated as %s role=%s", self.cid, self.peer, grant.identity, grant.role_name
        )
        if not quiet:
            self.send(self.dialect.authenticated(grant.identity, self.market.broker_name(), rid))
        return None

    def _subscribe(self, command: proto.Subscribe, rid: Any, now: float) -> Close | None:
        results: list[dict[str, Any]] = []
        snapshots: list[bytes] = []
        grant = self.grant
        limit = self._subscription_limit()
        failed = 0
        market = self.market
        outbox = self.outbox
        held = outbox.topics
        errors = self.metrics.errors
        numeric_time = self.dialect.numeric_timestamp
        suggested = 0
        for entry in command.entries:
            mode = entry.mode or proto.DEFAULT_MODE
            depth = entry.depth if mode is Mode.DEPTH else topics.STANDARD_DEPTH
            result: dict[str, Any] = {
                "symbol": entry.symbol,
                "exchange": entry.exchange,
                "mode": int(mode),
                "topic": topics.client_topic(entry.symbol, entry.exchange),
            }
            if depth != topics.STANDARD_DEPTH:
                result["depth"] = depth
            forbidden = grant.forbidden(entry.exchange, mode) if grant is not None else "not authenticated"
            problem = (ErrorCode.FORBIDDEN, forbidden) if forbidden else market.check(entry.exchange, entry.symbol)
            if problem is None and depth not in proto.SUPPORTED_DEPTH:
                problem = (ErrorCode.INVALID_DEPTH, f"no broker gives a {depth}-level book: use 5, 20, 30 or 200")
            bus_topic = topics.bus_topic(entry.exchange, entry.symbol, mode, depth) if problem is None else b""
            if problem is not None:
                code, message = problem
                errors[code.value] += 1
                if code is not ErrorCode.BROKER_UNAVAILABLE:  # not the client's fault: no violation
                    failed += 1
                if code is ErrorCode.SYMBOL_NOT_FOUND and suggested < SUGGESTED_PER_REQUEST:
                    suggested += 1
                    self.guard.charge(now, SUGGESTION_COST)
                    closest = market.suggest(entry.exchange, entry.symbol)
                    if closest:
                        message = f"{message}; did you mean {' or '.join(closest)}?"
                        result["suggestions"] = closest
                result.update(status="error", code=code.value, message=message)
            elif bus_topic in held:
                result.update(status="success", message="already subscribed")
            elif len(held) >= limit:
                errors[ErrorCode.LIMIT_EXCEEDED.value] += 1
                failed += 1
                result.update(
                    status="error",
                    code=ErrorCode.LIMIT_EXCEEDED.value,
                    message=f"at most {limit} subscriptions per connection",
                )
            else:
                state = market.subscribe(outbox, entry.symbol, entry.exchange, mode, depth, numeric_time)
                result["status"] = "success"
                if state.last_frame:
                    snapshots.append(state.snapshot_frame())
            results.append(result)
        ok = sum(1 for r in results if r["status"] == "success")
        self.peer_log.info(
            self.address,
            "conn %d %s subscribe requested=%d ok=%d failed=%d holding=%d",
            self.cid,
            self.peer,
            len(results),
            ok,
            len(results) - ok,
            len(held),
        )
        reply = self.dialect.subscribed(results, command.single, rid)
        self.send(reply)
        if snapshots and not self.closing:
            outbox.send_frames(snapshots)
        return self._charge_batch(len(results), failed, reply, now)

    @staticmethod
    def _chain_result(key: topics.ChainKey) -> dict[str, Any]:
        return {
            "topic": topics.chain_client_topic(*key),
            "underlying": key.underlying,
            "exchange": key.exchange,
            "expiry": key.expiry,
            "strikes": key.strikes,
        }

    def _subscribe_chain(self, key: topics.ChainKey, rid: Any, now: float) -> Close | None:
        """An option chain: one topic of the connection's budget; the last chain at once if known."""
        result = self._chain_result(key)
        grant = self.grant
        forbidden = grant.forbidden(key.exchange, Mode.DEPTH) if grant is not None else "not authenticated"
        held = self.outbox.topics
        bus_topic = topics.chain_topic(*key)
        snapshot = b""
        failed = 0
        if forbidden:
            failed = 1
            self.metrics.errors[ErrorCode.FORBIDDEN.value] += 1
            result.update(status="error", code=ErrorCode.FORBIDDEN.value, message=forbidden)
        elif bus_topic in held:
            result.update(status="success", message="already subscribed")
        elif len(held) >= self._subscription_limit():
            failed = 1
            self.metrics.errors[ErrorCode.LIMIT_EXCEEDED.value] += 1
            limit = self._subscription_limit()
            result.update(
                status="error",
                code=ErrorCode.LIMIT_EXCEEDED.value,
                message=f"at most {limit} subscriptions per connection",
            )
        else:
            state = self.market.subscribe_chain(self.outbox, key)
            result["status"] = "success"
            if state.last_frame:
                snapshot = state.snapshot_frame()
        reply = self.dialect.chain_reply("subscribe_chain", result, rid)
        self.send(reply)
        if snapshot and not self.closing:
            self.outbox.send_frames([snapshot])
        return self._charge_batch(1, failed, reply, now)

    def _unsubscribe_chain(self, key: topics.ChainKey, rid: Any, now: float) -> Close | None:
        result = self._chain_result(key)
        state = self.outbox.topics.get(topics.chain_topic(*key))
        if state is None:
            self.metrics.errors[ErrorCode.NOT_SUBSCRIBED.value] += 1
            result.update(status="error", code=ErrorCode.NOT_SUBSCRIBED.value, message="not subscribed")
        else:
            self.market.unsubscribe(self.outbox, state)
            result["status"] = "success"
        reply = self.dialect.chain_reply("unsubscribe_chain", result, rid)
        self.send(reply)
        return self._charge_batch(1, 0 if state is not None else 1, reply, now)

    def _unsubscribe(self, command: proto.Unsubscribe, rid: Any, now: float) -> Close | None:
        results: list[dict[str, Any]] = []
        failed = 0
        held = self.outbox.topics
        for entry in command.entries:
            if entry.mode is None:  # every mode, and every deeper book
                streams = [(mode, topics.STANDARD_DEPTH) for mode in ALL_MODES]
                streams += [(Mode.DEPTH, depth) for depth in topics.DEEPER_DEPTHS]
            elif entry.mode is Mode.DEPTH and entry.depth in topics.DEEPER_DEPTHS:
                streams = [(Mode.DEPTH, entry.depth)]
            else:
                streams = [(entry.mode, topics.STANDARD_DEPTH)]
            found = False
            for mode, depth in streams:
                state = held.get(topics.bus_topic(entry.exchange, entry.symbol, mode, depth))
                if state is None:
                    continue
                found = True
                self.market.unsubscribe(self.outbox, state)
                results.append({**describe(state), "status": "success"})
            if not found:
                failed += 1
                self.metrics.errors[ErrorCode.NOT_SUBSCRIBED.value] += 1
                results.append(
                    {
                        "symbol": entry.symbol,
                        "exchange": entry.exchange,
                        "mode": int(entry.mode) if entry.mode is not None else 0,
                        "topic": topics.client_topic(entry.symbol, entry.exchange),
                        "status": "error",
                        "code": ErrorCode.NOT_SUBSCRIBED.value,
                        "message": "not subscribed",
                    }
                )
        first = command.entries[0]
        single_topic = topics.client_topic(first.symbol, first.exchange) if command.single else None
        reply = self.dialect.unsubscribed(results, single_topic, rid)
        self.send(reply)
        return self._charge_batch(len(command.entries), failed, reply, now)

    def _subscribe_candles(self, command: proto.SubscribeCandles, rid: Any, now: float) -> Close | None:
        results: list[dict[str, Any]] = []
        backlog: list[bytes] = []
        failed = 0
        held = self.outbox.topics
        limit = self._subscription_limit()
        for entry in command.entries:
            result: dict[str, Any] = {
                "symbol": entry.symbol,
                "exchange": entry.exchange,
                "interval": entry.interval,
                "topic": topics.client_topic(entry.symbol, entry.exchange),
            }
            forbidden = self.grant.forbidden(entry.exchange, Mode.QUOTE) if self.grant is not None else "no grant"
            problem = (ErrorCode.FORBIDDEN, forbidden) if forbidden else self.market.check(entry.exchange, entry.symbol)
            bus_topic = topics.candle_topic(entry.exchange, entry.symbol, entry.interval)
            if problem is not None:
                code, message = problem
                self.metrics.errors[code.value] += 1
                failed += code is not ErrorCode.BROKER_UNAVAILABLE
                result.update(status="error", code=code.value, message=message)
            elif bus_topic in held:
                result.update(status="success", message="already subscribed")
            elif len(held) >= limit:
                failed += 1
                self.metrics.errors[ErrorCode.LIMIT_EXCEEDED.value] += 1
                result.update(
                    status="error", code=ErrorCode.LIMIT_EXCEEDED.value, message=f"at most {limit} subscriptions"
                )
            else:
                _, frames = self.market.subscribe_candles(self.outbox, entry.symbol, entry.exchange, entry.interval)
                backlog.extend(frames)
                result["status"] = "success"
            results.append(result)
        reply = candle_subscription(results, True, rid)
        self.send(reply)
        if backlog and not self.closing:
            self.outbox.send_frames(backlog)
        return self._charge_batch(len(results), failed, reply, now)

    def _unsubscribe_candles(self, command: proto.UnsubscribeCandles, rid: Any, now: float) -> Close | None:
        results: list[dict[str, Any]] = []
        failed = 0
        for entry in command.entries:
            state = self.outbox.topics.get(topics.candle_topic(entry.exchange, entry.symbol, entry.interval))
            if state is None:
                failed += 1
                self.metrics.errors[ErrorCode.NOT_SUBSCRIBED.value] += 1
                results.append(
                    {
                        "symbol": entry.symbol,
                        "exchange": entry.exchange,
                        "interval": entry.interval,
                        "topic": topics.client_topic(entry.symbol, entry.exchange),
                        "status": "error",
                        "code": ErrorCode.NOT_SUBSCRIBED.value,
                        "message": "not subscribed",
                    }
                )
                continue
            self.market.unsubscribe(self.outbox, state)
            results.append({**describe(state), "status": "success"})
        reply = candle_subscription(results, False, rid)
        self.send(reply)
        return self._charge_batch(len(results), failed, reply, now)

    def _history(self, command: proto.History, rid: Any, now: float) -> Close | None:
        forbidden = self.grant.forbidden(command.exchange, Mode.QUOTE) if self.grant is not None else "no grant"
        if forbidden:
            return self._violation(ErrorCode.FORBIDDEN, forbidden, now, rid)
        if self.archive is None:
            self.send_error(ErrorCode.INVALID_ACTION, "this proxy has no tick store to answer history from", rid)
            return None
        if self.history_pending:
            return self._violation(ErrorCode.RATE_LIMITED, "one history request at a time per connection", now, rid)
        self.history_pending = True

        def done(answer: HistoryAnswer) -> None:
            self.history_pending = False
            if self.closing:
                return
            if isinstance(answer, str):
                self.send_error(ErrorCode.INVALID_PARAMETERS, answer, rid)
            else:
                rows, more = answer
                self.send(history_reply(command, rows, more, rid))

        self.archive.fetch(command, done)
        return None
