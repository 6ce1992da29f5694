"""Why a connection attempt failed, in words a user can act on, and the TLS context for a private CA."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from websockets.exceptions import InvalidMessage, InvalidStatus


def describe(exc: BaseException) -> str:
    """One line: ``connection refused``, ``TLS certificate not trusted: ...``, ``HTTP 403 ...``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc} (a ws:// proxy spoken to with wss://?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the proxy running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, InvalidStatus):
        return f"handshake refused with HTTP {exc.response.status_code}"
    if isinstance(exc, InvalidMessage):
        return "no valid HTTP response (a wss:// proxy spoken to with ws://?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def tls_context(ca_file: str | Path | None) -> ssl.SSLContext | None:
    """A verifying TLS context that also trusts `ca_file` (a private CA's PEM), or None for the
    system's trust store. Raises ValueError when the file cannot be read as certificates."""
    if ca_file is None:
        return None
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load CA certificates from {ca_file}: {exc}") from None
    return context
