"""One upstream SmartStream WebSocket, on the toolkit's `UpstreamConnection`.

Angel-specific: header authentication with the login session's tokens, the text `ping` heartbeat
(answered `pong`), requests grouped by (mode, exchange type) with a correlation id each, and
error replies (E1001/E1002) that take their pairs back out of the server's set.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import AngelCodecError, AngelPacket, ErrorReply, SubscriptionMode
from openalgo_proxy.brokers.angel.login import AngelSession
from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection

log = logging.getLogger(__name__)

WS_URL = "wss://smartapisocket.angelone.in/smart-stream"
MAX_TOKENS_PER_REQUEST = 1000
MAX_PENDING_REQUESTS = 256  # subscribe requests whose pairs an error reply can still name

PairKey = tuple[int, str]  # (exchange type, token)
PacketSink = Callable[[AngelPacket], None]
ErrorSink = Callable[[ErrorReply, list[PairKey]], None]
Batch = tuple[SubscriptionMode, dict[int, list[str]]]  # one request: mode, exchange type -> tokens

_ids = itertools.count(1)


def group_requests(pairs: Mapping[PairKey, SubscriptionMode]) -> list[Batch]:
    """Pairs -> one (mode, {exchange type: tokens}) batch per mode, split at MAX_TOKENS_PER_REQUEST."""
    out: list[Batch] = []
    for mode in sorted(set(pairs.values())):
        keys = sorted(key for key, wanted in pairs.items() if wanted == mode)
        for start in range(0, len(keys), MAX_TOKENS_PER_REQUEST):
            batch: dict[int, list[str]] = {}
            for etype, token in keys[start : start + MAX_TOKENS_PER_REQUEST]:
                batch.setdefault(etype, []).append(token)
            out.append((mode, batch))
    return out


class SmartStreamConnection(UpstreamConnection[PairKey, SubscriptionMode]):
    """The SmartStream request and reply grammar (Angel, mStock Type B); the handshake is the broker's."""

    decode_errors_raised = (AngelCodecError,)
    heartbeat = codec.HEARTBEAT

    def __init__(
        self,
        label: str,
        url: str,
        on_packet: PacketSink,
        on_error: ErrorSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(label, settings, backoff)
        self.url = url
        self._on_packet = on_packet
        self._on_error = on_error
        self._requests: OrderedDict[str, list[PairKey]] = OrderedDict()  # correlation id -> pairs

    def packets(self, frame: bytes) -> list[AngelPacket]:
        """The packets of one binary frame (Angel: exactly one)."""
        return [codec.decode_packet(frame)]

    def on_connected(self) -> None:
        self._requests.clear()

    def requests(
        self, sent: Mapping[PairKey, SubscriptionMode], wanted: Mapping[PairKey, SubscriptionMode]
    ) -> list[Frame]:
        remove = {key: mode for key, mode in sent.items() if wanted.get(key) != mode}
        add = {key: mode for key, mode in wanted.items() if sent.get(key) != mode}
        frames: list[Frame] = [
            codec.unsubscribe_request(mode, tokens, self._correlation_id()) for mode, tokens in group_requests(remove)
        ]
        for mode, tokens in group_requests(add):
            cid = self._correlation_id()
            self._requests[cid] = [(etype, token) for etype, values in tokens.items() for token in values]
            while len(self._requests) > MAX_PENDING_REQUESTS:
                self._requests.popitem(last=False)
            frames.append(codec.subscribe_request(mode, tokens, cid))
        return frames

    @staticmethod
    def _correlation_id() -> str:
        return f"oap{next(_ids) % 10_000_000:07d}"

    def is_heartbeat(self, message: Frame) -> bool:
        return isinstance(message, str) and message.strip() == codec.HEARTBEAT_REPLY

    def on_message(self, message: Frame) -> None:
        if isinstance(message, bytes):
            for packet in self.packets(message):
                self._on_packet(packet)
            return
        reply = codec.decode_text(message)
        if isinstance(reply, ErrorReply):
            keys = self._requests.pop(reply.correlation_id, [])
            for key in keys:
                self.sent.pop(key, None)
            log.warning("%s: broker error %s %s (%d pairs)", self.label, reply.code, reply.message, len(keys))
            self._on_error(reply, keys)


class AngelConnection(SmartStreamConnection):
    """One of the pool's Angel connections: header authentication with the login session's tokens."""

    def __init__(
        self,
        index: int,
        url: str,
        session: AngelSession,
        on_packet: PacketSink,
        on_error: ErrorSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(f"angel[{index}]", url, on_packet, on_error, settings, backoff)
        self._session = session
        self._generation = 0

    async def handshake(self) -> Handshake:
        tokens = await self._session.tokens()
        self._generation = tokens.generation
        creds = self._session.credentials
        headers = {"Authorization": tokens.jwt_token, "x-api-key": creds.api_key, "x-client-code": creds.client_code}
        return Handshake(self.url, headers | {"x-feed-token": tokens.feed_token})

    async def refresh_credentials(self) -> None:
        await self._session.invalidate(self._generation)
