"""One mStock Type B connection: SmartStream grammar, query-string login, batched frames."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from openalgo_proxy.brokers.angel.codec import AngelPacket
from openalgo_proxy.brokers.angel.connection import ErrorSink, PacketSink, SmartStreamConnection
from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.mstock import codec
from openalgo_proxy.brokers.upstream import Handshake, Settings


class MStockConnection(SmartStreamConnection[Callable[[], tuple[str, str]]]):
    def __init__(
        self,
        index: int,
        url: str,
        credentials: Callable[[], tuple[str, str]],  # (api key, access token) now
        refresh: Callable[[], Awaitable[None]],
        on_packet: PacketSink,
        on_error: ErrorSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(f"mstock[{index}]", url, credentials, on_packet, on_error, settings, backoff)
        self._refresh = refresh

    async def handshake(self) -> Handshake:
        api_key, token = self.credentials()
        return Handshake(f"{self.url}?{urlencode({'ACCESS_TOKEN': token, 'API_KEY': api_key})}")

    async def refresh_credentials(self) -> None:
        await self._refresh()

    def packets(self, frame: bytes) -> list[AngelPacket]:
        return list(codec.decode_frame(frame))
