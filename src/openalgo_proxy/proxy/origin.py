"""Browser Origin allowlist for the WebSocket handshake (cross-site WebSocket hijacking defence) and
Host names (DNS-rebinding defence).

A request without Origin is a non-browser client and is allowed (it authenticates like any other).
A browser page served by the proxy itself (same origin) is allowed. Any other origin must be in
``[proxy] allowed_origins``; ``"*"`` there allows every origin.

A rebound name (a page on attacker.example whose DNS now points at 127.0.0.1) reaches the proxy
with ``Host: attacker.example`` and a matching Origin, so "same origin" is only trusted for Host
names the proxy answers to: ``[proxy] allowed_hosts``, by default the loopback names and the listen
address (any name when listening on a wildcard address, where authentication is required).
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


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "*"})


def accepted_hosts(listen_host: str, allowed_hosts: list[str]) -> frozenset[str] | None:
    """The Host names a request may carry (lower case, no port); None means any."""
    if "*" in allowed_hosts:
        return None
    if allowed_hosts:
        return frozenset(host_name(name) for name in allowed_hosts)
    if listen_host.strip() in WILDCARD_ADDRESSES:
        return None
    return LOOPBACK_NAMES | {host_name(listen_host)}


def host_name(host: str) -> str:
    """The name of a Host header value: no port, no IPv6 brackets, lower case, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def host_allowed(host: str | None, accepted: frozenset[str] | None) -> bool:
    if accepted is None:
        return True
    if not host:
        return False
    name = host_name(host)
    return name in accepted or (name.startswith("127.") and "127.0.0.1" in accepted and _ipv4(name))


def _ipv4(name: str) -> bool:
    parts = name.split(".")
    return len(parts) == 4 and all(part.isdigit() and int(part) < 256 for part in parts)
