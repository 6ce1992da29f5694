"""Browser Origin allowlist for the WebSocket handshake (cross-site WebSocket hijacking defence).

A request without Origin is a non-browser client and is allowed (it authenticates like any other).
A browser page served by the proxy itself (same origin) is allowed. Any other origin must be in
``[proxy] allowed_origins``; ``"*"`` there allows every origin.
"""

from __future__ import annotations


def origin_allowed(origin: str | None, host: str | None, allowed: list[str], tls: bool) -> bool:
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in (entry.rstrip("/").lower() for entry in allowed):
        return True
    if host:
        scheme = "https" if tls else "http"
        return origin == f"{scheme}://{host.strip().lower()}"
    return False
