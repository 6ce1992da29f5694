"""One upstream Noren WebSocket, on the toolkit's `UpstreamConnection`.

Noren-specific: the login is the first frame (dialect `a`, `c` or AliceBlue's, see members.py) and
nothing may be sent before its acknowledgement (`ak`/`ck`/`cf`); a refused login is a
`BrokerAuthError`, so the retry layer re-reads the token before the next connect. Subscriptions are
`t` (touchline) or `d` (depth) requests of at most `keys_per_message` keys; the client heartbeat is
the text frame `{"t":"h"}` (answered `hk`). Touchline and depth messages are merged into the last
full state per instrument (`codec.MergeState`, reset at every connect: a resubscribe is answered by
fresh full acknowledgements). The connection that carries order updates sends `{"t":"o"}` after the
login (TradeSmart pushes them without it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from websockets.asyncio.client import ClientConnection

from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.noren import codec
from openalgo_proxy.brokers.noren.codec import InstrumentState, Key, MergeState, NorenCodecError
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.members import Member, account_id, login_accepted, login_frame
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.errors import BrokerAuthError, BrokerError

log = logging.getLogger(__name__)

StateSink = Callable[[Key, InstrumentState, int], None]  # key, merged state, receive time (epoch ms)
OrderMessageSink = Callable[[dict[str, object]], None]
LOGIN_TIMEOUT = 10.0


class NorenConnection(UpstreamConnection[Key, str]):
    """One pooled Noren connection; upstream modes are "t" (touchline) and "d" (depth)."""

    decode_errors_raised = (NorenCodecError,)
    heartbeat = codec.HEARTBEAT_FRAME

    def __init__(
        self,
        label: str,
        member: Member,
        url: str,
        credentials: NorenCredentials,
        on_state: StateSink,
        on_order: OrderMessageSink | None,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
        keys_per_message: int = codec.KEYS_PER_MESSAGE,
    ) -> None:
        super().__init__(label, settings, backoff)
        self.member = member
        self.url = url
        self.credentials = credentials
        self.keys_per_message = keys_per_message
        self._on_state = on_state
        self._on_order = on_order  # None: this connection does not carry order updates
        self.merge = MergeState()
        self.login_refusals = 0
        self.orders_received = 0
        self.acks: dict[str, int] = {}

    async def handshake(self) -> Handshake:
        return Handshake(self.url)

    async def authenticate(self, ws: ClientConnection) -> None:
        await ws.send(login_frame(self.member, self.credentials.user_id, self.credentials.token()))
        within = min(LOGIN_TIMEOUT, self.stall_timeout)  # a silent server is a stall, logged in or not
        try:
            async with asyncio.timeout(within):
                reply = await ws.recv()
        except TimeoutError:
            raise BrokerError(f"no login acknowledgement within {within:g} s") from None
        try:
            ack = codec.decode(reply)
        except NorenCodecError as exc:
            raise BrokerError(f"login answered with {exc}") from None
        if ack["t"] not in codec.AUTH_ACKS or not login_accepted(ack):
            self.login_refusals += 1
            raise BrokerAuthError(
                f"{self.member.name} refused the login: {ack.get('t')} {ack.get('s', ack.get('k', ''))}"
            )
        if self._on_order is not None and self.member.orders_need_request:
            await ws.send(codec.order_subscribe_frame(account_id(self.member, self.credentials.user_id)))

    async def refresh_credentials(self) -> None:
        if self.credentials.token_file is not None:
            log.info("%s: the token will be re-read from %s", self.label, self.credentials.token_file)
        else:
            log.warning("%s: login refused and the token comes from the environment: it cannot change", self.label)

    def on_connected(self) -> None:
        self.merge.clear()

    def requests(self, sent: Mapping[Key, str], wanted: Mapping[Key, str]) -> list[Frame]:
        for key in sent:
            if key not in wanted:
                self.merge.forget(key)
        return list(codec.diff_requests(sent, wanted, self.keys_per_message))

    def is_heartbeat(self, message: Frame) -> bool:
        return message == '{"t":"hk"}' or (isinstance(message, str) and message.startswith('{"t":"hk"'))

    def on_message(self, message: Frame) -> None:
        if isinstance(message, bytes):
            raise NorenCodecError("unexpected binary frame")
        kind = message[6:8] if message.startswith('{"t":"') else ""
        if kind == codec.ORDER_UPDATE or kind not in ("tk", "tf", "dk", "df"):
            self._other(message)
            return
        merged = self.merge.apply(codec.decode(message))
        if merged is not None:
            key, state = merged
            if key in self.sent:
                self._on_state(key, state, int(time.time() * 1000))

    def _other(self, message: str) -> None:
        body = codec.decode_any(message)
        kind = str(body["t"])
        if kind == codec.ORDER_UPDATE:
            self.orders_received += 1
            if self._on_order is not None:
                self._on_order(body)
            return
        if kind == codec.HEARTBEAT_ACK:
            self.heartbeats += 1
            return
        if kind in ("tk", "tf", "dk", "df"):  # written with spaces or another key order
            merged = self.merge.apply(codec.decode(message))
            if merged is not None and merged[0] in self.sent:
                self._on_state(merged[0], merged[1], int(time.time() * 1000))
            return
        self.acks[kind] = self.acks.get(kind, 0) + 1
        log.debug("%s: %s message", self.label, kind)
