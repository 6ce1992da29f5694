"""One upstream Live Market Feed v2 WebSocket, on the toolkit's `UpstreamConnection`.

Dhan-specific: credentials in the query string (`?version=2&token=..&clientId=..&authType=2`), no
client heartbeat (WebSocket protocol pings only), requests per request code in batches of 100
(unsubscribe = code + 1; a mode change unsubscribes the old code first), frames of several packets,
and the disconnect packet, whose reason decides the reaction:
- 805 too many connections, 806 Data APIs not subscribed: long back-off (`BrokerRateLimited`);
- 807 token expired, 808 invalid client id, 809 authentication failed: credentials refreshed (the
  token file is re-read) before the next connect (`BrokerAuthError`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.dhan import codec
from openalgo_proxy.brokers.dhan.codec import DhanCodecError, DisconnectPacket, RequestCode, Segment, WireInstrument
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.instruments import Key
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.errors import BrokerAuthError, BrokerError, BrokerRateLimited

log = logging.getLogger(__name__)

WS_URL = "wss://api-feed.dhan.co"
PacketSink = Callable[[codec.MarketPacket], None]

#: disconnect reasons after which the credentials are refreshed; the others back off long
AUTH_REASONS = frozenset({807, 808, 809})


def disconnect_error(packet: DisconnectPacket) -> BrokerError:
    """The exception that ends a connection Dhan closed with `packet`, classified for the retry layer."""
    text = f"Dhan closed the connection: {packet.reason} {packet.message}"
    if packet.reason in AUTH_REASONS:
        return BrokerAuthError(text)
    return BrokerRateLimited(text)


def feed_url(base: str, client_id: str, token: str) -> str:
    query = urlencode({"version": "2", "token": token, "clientId": client_id, "authType": "2"})
    return f"{base}?{query}"


def group_requests(
    sent: Mapping[Key, RequestCode], wanted: Mapping[Key, RequestCode], unsubscribe: bool
) -> list[tuple[int, list[WireInstrument]]]:
    """(subscribe code, instruments) per code, in code order, for the keys to add or to remove."""
    by_code: dict[int, list[WireInstrument]] = {}
    if unsubscribe:
        pairs = [(key, code) for key, code in sent.items() if wanted.get(key) != code]
    else:
        pairs = [(key, code) for key, code in wanted.items() if sent.get(key) != code]
    for (segment, security_id), code in sorted(pairs):
        by_code.setdefault(int(code), []).append(WireInstrument(Segment(segment), str(security_id)))
    return sorted(by_code.items())


class DhanConnection(UpstreamConnection[Key, RequestCode]):
    """One of the pool's market-feed connections (up to 5000 instruments)."""

    decode_errors_raised = (DhanCodecError,)

    def __init__(
        self,
        index: int,
        url: str,
        credentials: DhanCredentials,
        on_packet: PacketSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(f"dhan[{index}]", settings, backoff)
        self.index = index
        self.url = url
        self._credentials = credentials
        self._on_packet = on_packet
        self.disconnects: list[int] = []  # reasons Dhan gave, in order

    async def handshake(self) -> Handshake:
        return Handshake(feed_url(self.url, self._credentials.client_id, self._credentials.token()))

    async def refresh_credentials(self) -> None:
        if self._credentials.token_file is not None:
            log.info("%s: re-reading the access token from %s", self.label, self._credentials.token_file)

    def requests(self, sent: Mapping[Key, RequestCode], wanted: Mapping[Key, RequestCode]) -> list[Frame]:
        frames: list[Frame] = []
        for code, instruments in group_requests(sent, wanted, unsubscribe=True):
            frames += codec.unsubscribe_requests(code, instruments)
        for code, instruments in group_requests(sent, wanted, unsubscribe=False):
            frames += codec.subscribe_requests(code, instruments)
        return frames

    def on_message(self, message: Frame) -> None:
        if isinstance(message, str):
            raise DhanCodecError(f"unexpected text frame: {message[:80]!r}")
        sink = self._on_packet
        for packet in codec.decode_frame(message):
            if type(packet) is DisconnectPacket:
                self.disconnects.append(packet.reason)
                log.warning("%s: disconnect %d: %s", self.label, packet.reason, packet.message)
                raise disconnect_error(packet)
            sink(packet)


__all__ = ["WS_URL", "DhanConnection", "RequestCode", "disconnect_error", "feed_url", "group_requests"]
