"""The Upstox market-data WebSocket (Feed V3), on the toolkit's `UpstreamConnection`.

Upstox-specific: the handshake is `GET /v3/feed/market-data-feed` with `Authorization: Bearer ..`,
answered by a 302 to a single-use authorised URL (`...?requestId=..&code=..`) that the client
follows (websockets follows redirects, and drops the header if the redirect leaves the origin); a
refused token is HTTP 401 (credentials refreshed: the token file is re-read). Requests are JSON in
binary frames (`sub`, `change_mode`, `unsub`; see `codec.requests_for`); responses are protobuf
`FeedResponse` frames, merged per instrument by a `FeedMerger` whose state lives as long as the
connection. The server pings an idle connection (liveness, see `PingAwareConnection`); there is no
client heartbeat message. `market_info` messages update `segment_status`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox.codec import FeedMerger, UpstoxCodecError
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.model import Instrument, Tick

log = logging.getLogger(__name__)

WS_URL = "wss://api.upstox.com/v3/feed/market-data-feed"
FEED_PATH = "/v3/feed/market-data-feed"
InstrumentOf = Callable[[str], Instrument | None]
TickSink = Callable[[Tick], None]


class UpstoxConnection(UpstreamConnection[str, str]):
    """The account's one market-data connection (key: instrument key, value: Upstox mode)."""

    decode_errors_raised = (UpstoxCodecError,)

    def __init__(
        self,
        url: str,
        credentials: UpstoxCredentials,
        instrument_of: InstrumentOf,
        on_tick: TickSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__("upstox", settings, backoff)
        self.url = url
        self._credentials = credentials
        self._instrument_of = instrument_of
        self._on_tick = on_tick
        self.merger = FeedMerger()
        self.segment_status: dict[str, str] = {}
        self.snapshots = 0  # initial_feed messages received
        self.updates = 0  # live_feed messages received

    async def handshake(self) -> Handshake:
        return Handshake(self.url, self._credentials.authorization())

    async def refresh_credentials(self) -> None:
        if self._credentials.token_file is not None:
            log.info("%s: the access token will be re-read from %s", self.label, self._credentials.token_file)

    def on_connected(self) -> None:
        self.merger.clear()

    def requests(self, sent: Mapping[str, str], wanted: Mapping[str, str]) -> list[Frame]:
        # an instrument unsubscribed or moved to another mode starts its merged state afresh (the
        # server answers a sub or change_mode with a full snapshot)
        self.merger.forget([key for key, mode in sent.items() if wanted.get(key) != mode])
        return list(codec.requests_for(sent, wanted))

    def on_message(self, message: Frame) -> None:
        if isinstance(message, str):
            raise UpstoxCodecError(f"unexpected text frame: {message[:80]!r}")
        response = codec.decode(message)
        kind = response.type
        if kind == codec.MARKET_INFO:
            self.segment_status.update(codec.segment_status(response))
            log.info("%s: market status %s", self.label, self.segment_status)
            return
        if kind == codec.INITIAL_FEED:
            self.snapshots += 1
        else:
            self.updates += 1
        sink = self._on_tick
        for tick in self.merger.apply(response, self._instrument_of):
            sink(tick)


__all__ = ["FEED_PATH", "WS_URL", "UpstoxConnection"]
