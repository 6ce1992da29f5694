"""One upstream 20- or 200-level depth WebSocket of Dhan, on the toolkit's `UpstreamConnection`.

20-depth (`/twentydepth`): request code 23 with up to 50 instruments per message and per connection,
24 to unsubscribe. 200-depth (`/twohundreddepth`): one instrument per request (no list) and per
connection. NSE_EQ and NSE_FNO only. Credentials in the query string (`?token=..&clientId=..&
authType=2`). Bid and ask arrive as separate packets (several per frame); a disconnect packet ends
the connection with the same reactions as the market feed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.dhan import codec
from openalgo_proxy.brokers.dhan.codec import DepthPacket, DhanCodecError, DisconnectPacket, Segment, WireInstrument
from openalgo_proxy.brokers.dhan.connection import disconnect_error
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.instruments import Key
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection

log = logging.getLogger(__name__)

DEPTH_20_URL = "wss://depth-api-feed.dhan.co/twentydepth"
DEPTH_200_URL = "wss://full-depth-api.dhan.co/twohundreddepth"
DEPTH_20_PATH = "/twentydepth"
DEPTH_200_PATH = "/twohundreddepth"
#: instruments per connection
DEPTH_20_CAP = codec.MAX_DEPTH_20_INSTRUMENTS
DEPTH_200_CAP = 1
DepthSink = Callable[[DepthPacket], None]


def depth_url(base: str, client_id: str, token: str) -> str:
    return f"{base}?{urlencode({'token': token, 'clientId': client_id, 'authType': '2'})}"


class DhanDepthConnection(UpstreamConnection[Key, int]):
    """One 20- or 200-level depth connection (the value of each key is its level count)."""

    decode_errors_raised = (DhanCodecError,)

    def __init__(
        self,
        index: int,
        levels: int,
        url: str,
        credentials: DhanCredentials,
        on_depth: DepthSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(f"dhan-depth{levels}[{index}]", settings, backoff)
        self.levels = levels
        self.url = url
        self._credentials = credentials
        self._on_depth = on_depth
        self.disconnects: list[int] = []

    async def handshake(self) -> Handshake:
        return Handshake(depth_url(self.url, self._credentials.client_id, self._credentials.token()))

    def requests(self, sent: Mapping[Key, int], wanted: Mapping[Key, int]) -> list[Frame]:
        remove = [WireInstrument(Segment(k[0]), str(k[1])) for k in sorted(sent) if k not in wanted]
        add = [WireInstrument(Segment(k[0]), str(k[1])) for k in sorted(wanted) if k not in sent]
        if self.levels == codec.DEPTH_200_LEVELS:
            frames: list[Frame] = [codec.depth_200_request(i, subscribe=False) for i in remove]
            return frames + [codec.depth_200_request(i) for i in add]
        return [
            *codec.unsubscribe_requests(codec.RequestCode.DEPTH, remove),
            *codec.subscribe_requests(codec.RequestCode.DEPTH, add),
        ]

    def on_message(self, message: Frame) -> None:
        if isinstance(message, str):
            raise DhanCodecError(f"unexpected text frame: {message[:80]!r}")
        for packet in codec.decode_depth_frame(message, self.levels):
            if isinstance(packet, DisconnectPacket):
                self.disconnects.append(packet.reason)
                log.warning("%s: disconnect %d: %s", self.label, packet.reason, packet.message)
                raise disconnect_error(packet)
            self._on_depth(packet)
