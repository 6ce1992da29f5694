"""Error codes, close codes and the exception hierarchy: named once, used everywhere."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
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


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006  # never sent: the connection ended without a closing handshake
    INVALID_DATA = 1007
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    AUTH_TIMEOUT = 4401
    TOO_SLOW = 4008
    TOO_MANY_REQUESTS = 4029


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
