"""Exceptions of the client library: one hierarchy under ClientError (itself a ProxyError)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openalgo_proxy.errors import ProxyError

if TYPE_CHECKING:
    from openalgo_proxy.client.messages import SubscriptionResult


class ClientError(ProxyError):
    """Root of every error the client library raises."""


class ServerError(ClientError):
    """The proxy answered a request with an error message (DESIGN section 4).

    `code` is the server's error code (e.g. ``SYMBOL_NOT_FOUND``); `message` its human sentence.
    """

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class AuthenticationError(ServerError):
    """The proxy rejected the credentials, or closed the connection for lack of them (4401).

    Never retried: reconnecting with the same credentials would only be rejected again.
    """


class SubscriptionError(ServerError):
    """At least one entry of a (un)subscribe request failed; `results` holds every entry's outcome.

    Entries that succeeded are held (and resubscribed after a reconnect) all the same.
    """

    def __init__(self, code: str, message: str, results: list[SubscriptionResult], request_id: str | None = None):
        super().__init__(code, message, request_id)
        self.results = results

    @property
    def failed(self) -> list[SubscriptionResult]:
        return [result for result in self.results if not result.ok]


class ConnectFailed(ClientError):
    """The proxy could not be reached within the first-connect timeout."""


class ConnectionLost(ClientError):
    """The connection closed and the client will not reconnect (reconnect disabled or fatal close code)."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class RequestTimeout(ClientError):
    """No reply to a request within the request timeout."""


class ClientClosed(ClientError):
    """The client was closed by its owner; no more requests or ticks."""
