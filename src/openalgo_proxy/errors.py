"""Error codes, close codes and the exception hierarchy: named once, used everywhere."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """`code` of an error reply; the connection stays open. `meaning` says when each is sent."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_ACTION = "INVALID_ACTION"
    INVALID_PARAMETERS = "INVALID_PARAMETERS"
    INVALID_MODE = "INVALID_MODE"
    INVALID_DEPTH = "INVALID_DEPTH"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    AUTHENTICATION_ERROR = "AUTHENTICATION_ERROR"
    FORBIDDEN = "FORBIDDEN"
    SYMBOL_NOT_FOUND = "SYMBOL_NOT_FOUND"
    NOT_SUBSCRIBED = "NOT_SUBSCRIBED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"

    @property
    def meaning(self) -> str:
        return _ERROR_MEANINGS[self]


_ERROR_MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "the message is not a JSON object",
    ErrorCode.INVALID_ACTION: "`action` is missing or not one the proxy knows",
    ErrorCode.INVALID_PARAMETERS: "a field is missing, of the wrong type or out of range",
    ErrorCode.INVALID_MODE: "`mode` is not 1/2/3 or ltp/quote/depth",
    ErrorCode.INVALID_DEPTH: "`depth` is a book depth the serving broker cannot give (5 always; 20, 30, 200 maybe)",
    ErrorCode.NOT_AUTHENTICATED: "the action needs an authenticated connection",
    ErrorCode.AUTHENTICATION_ERROR: "the credentials were refused",
    ErrorCode.FORBIDDEN: "the identity's role does not allow this exchange or mode",
    ErrorCode.SYMBOL_NOT_FOUND: "no feed on the bus serves this symbol on this exchange",
    ErrorCode.NOT_SUBSCRIBED: "unsubscribe of a topic the connection does not hold",
    ErrorCode.LIMIT_EXCEEDED: "a subscription cap (per connection, role or broker) would be passed",
    ErrorCode.RATE_LIMITED: "too many commands; the budget refills within a minute",
    ErrorCode.BROKER_UNAVAILABLE: "no feed has announced itself yet, or the serving feed is down",
}


class CloseCode(enum.IntEnum):
    """WebSocket close codes the proxy sends or records; `reason` is the default close reason."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    KEEPALIVE_TIMEOUT = 1011
    TRY_AGAIN_LATER = 1013
    AUTH_TIMEOUT = 4401
    TOO_SLOW = 4008
    TOO_MANY_REQUESTS = 4029

    @property
    def reason(self) -> str:
        return _CLOSE_REASONS[self]


_CLOSE_REASONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "closed",
    CloseCode.GOING_AWAY: "server shutting down",
    CloseCode.PROTOCOL_ERROR: "WebSocket protocol error",
    CloseCode.UNSUPPORTED_DATA: "binary frames are not accepted",
    # never sent in a frame: recorded when the TCP connection ended without a closing handshake
    CloseCode.ABNORMAL: "connection lost without a close frame",
    CloseCode.INVALID_DATA: "invalid frame payload data",
    CloseCode.POLICY_VIOLATION: "policy violation",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    # RFC 6455 "internal error"; the proxy sends it when a client stops answering keepalive pings
    CloseCode.KEEPALIVE_TIMEOUT: "keepalive ping timeout",
    CloseCode.TRY_AGAIN_LATER: "server full",
    CloseCode.AUTH_TIMEOUT: "authentication required",
    CloseCode.TOO_SLOW: "too slow to keep up",
    CloseCode.TOO_MANY_REQUESTS: "too many requests or protocol errors",
}


class ProxyError(Exception):
    """Root of every error this package raises on purpose."""


class RequestError(ProxyError):
    """A client request that is answered with an error message; the connection stays open."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(ProxyError):
    """Configuration that cannot be used; the process refuses to start."""


class BrokerError(ProxyError):
    """A broker connection failure, classified for the reconnect policy."""


class BrokerAuthError(BrokerError):
    """The broker rejected our credentials (401/403): refresh them before retrying."""


class BrokerRateLimited(BrokerError):
    """The broker asked us to slow down (429): back off long."""


class CodecError(ProxyError, ValueError):
    """Bytes that do not decode to the message they claim to be (every codec error derives from it)."""


class ControlMessageError(CodecError):
    """A bus control message (status, directory, reject, order update) that does not decode."""
