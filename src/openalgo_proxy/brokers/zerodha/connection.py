"""One upstream Kite ticker connection, on the toolkit's `UpstreamConnection`.

Kite-specific: query-string authentication (`<ws_url>?api_key=..&access_token=..`, header
`X-Kite-Version: 3`), the server's 1-byte binary heartbeats, subscribe + mode requests batched by
`diff_requests`, and JSON text frames (order updates, errors, notices).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

from openalgo_proxy.brokers.base import Backoff
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import ErrorMessage, KiteCodecError, KiteMode, KitePacket, OrderUpdate

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 500
KITE_HEADERS = {"X-Kite-Version": "3"}


class KiteAccount(Protocol):
    """What a connection needs from its account (the adapter)."""

    def endpoint(self) -> str:
        """The ticker URL with the current credentials in its query string."""

    async def refresh_credentials(self) -> None:
        """Re-read the credentials after the broker refused them."""

    def on_packets(self, packets: list[KitePacket], received_ms: int) -> None:
        """Decoded market packets and their receive time (epoch ms)."""

    def on_postback(self, update: OrderUpdate) -> None:
        """An order update text message."""


def _chunks(tokens: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(tokens), TOKENS_PER_MESSAGE):
        yield tokens[start : start + TOKENS_PER_MESSAGE]


def diff_requests(sent: Mapping[int, KiteMode], wanted: Mapping[int, KiteMode]) -> list[bytes]:
    """The batched requests that turn the `sent` subscription set into `wanted` (pure): unsubscribes,
    then subscribe + mode for new tokens, then mode for changed ones, per mode."""
    messages = [codec.encode_unsubscribe(chunk) for chunk in _chunks([t for t in sent if t not in wanted])]
    added: dict[KiteMode, list[int]] = {}
    changed: dict[KiteMode, list[int]] = {}
    for token, mode in wanted.items():
        if sent.get(token) != mode:
            (changed if token in sent else added).setdefault(mode, []).append(token)
    for mode, tokens in added.items():
        for chunk in _chunks(tokens):
            messages += [codec.encode_subscribe(chunk), codec.encode_mode(mode, chunk)]
    messages += [codec.encode_mode(mode, chunk) for mode, tokens in changed.items() for chunk in _chunks(tokens)]
    return messages


class KiteConnection(UpstreamConnection[int, KiteMode]):
    """One pooled Kite ticker connection."""

    decode_errors_raised = (KiteCodecError,)

    def __init__(self, label: str, account: KiteAccount, settings: Settings, backoff: Backoff | None = None) -> None:
        super().__init__(label, settings, backoff)
        self.account = account

    async def handshake(self) -> Handshake:
        return Handshake(self.account.endpoint(), KITE_HEADERS)

    async def refresh_credentials(self) -> None:
        await self.account.refresh_credentials()

    def requests(self, sent: Mapping[int, KiteMode], wanted: Mapping[int, KiteMode]) -> list[Frame]:
        return [message.decode() for message in diff_requests(sent, wanted)]

    def is_heartbeat(self, message: Frame) -> bool:
        return isinstance(message, bytes) and codec.is_heartbeat(message)

    def on_message(self, message: Frame) -> None:
        if isinstance(message, bytes):
            self.account.on_packets(codec.decode_frame(message), int(time.time() * 1000))
            return
        parsed = codec.parse_text(message)
        if isinstance(parsed, ErrorMessage):
            log.warning("%s: broker error: %s", self.label, parsed.message)
        elif isinstance(parsed, OrderUpdate):
            self.account.on_postback(parsed)
        else:
            log.info("%s: broker %s message: %s", self.label, parsed.type, parsed.data)
