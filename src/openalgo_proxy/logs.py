"""Logging set-up: one line per event, text or JSON; never per tick."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


# `jwt` only with `=`: `jwt:SUB` is how identities are logged (a JWT itself is caught by _JWT)
_SECRET = re.compile(
    r"(?i)(\b(?:api[_-]?key|apikey|token|access[_-]?token|refresh[_-]?token|password|passwd|secret|totp|pin)"
    r"[\"']?\s*[=:]\s*[\"']?|\bjwt[\"']?\s*=\s*[\"']?)([^\s\"',;&}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
MASK = "***"


def redact(text: str) -> str:
    """Mask credentials that a message might carry: key=value pairs, bearer tokens, JWTs."""
    text = _SECRET.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _JWT.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """Applied on the handler: every record's final message is redacted before formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


class TextFormatter(logging.Formatter):
    """The plain format; tracebacks are redacted too (exception messages can quote requests)."""

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, component, logger, message[, exception]."""

    def __init__(self, component: str = "") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _encode(entry).decode()


def setup_logging(level: str = "INFO", fmt: str = "text", component: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(component))
    else:
        prefix = f"{component} " if component else ""
        handler.setFormatter(TextFormatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("websockets", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _at_least_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def wire_logger(name: str) -> logging.Logger:
    """A logger for a WebSocket library's protocol object. It passes only warnings and errors: the
    library logs raw headers at DEBUG (Authorization, tokens in query strings), and at INFO it repeats
    every open and close that our own connection log already states once ("connection closed",
    "HTTP response sent" for each health check or page asset)."""
    logger = logging.getLogger(name)
    if _at_least_warning not in logger.filters:
        logger.addFilter(_at_least_warning)
    return logger
