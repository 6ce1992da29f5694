"""Securing one component's bus sockets before it starts: ipc:// endpoints checked private,
CURVE applied when configured, a warning for plain TCP (readable and writable by any local user)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import zmq

from openalgo_proxy import bus_ipc
from openalgo_proxy.bus_curve import BusGuard, Role, secure_context
from openalgo_proxy.config import BusSettings

log = logging.getLogger(__name__)


def secure_bus(
    settings: BusSettings,
    role: Role,
    *,
    bind: Iterable[str] = (),
    connect: Iterable[str] = (),
    ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> BusGuard:
    """Check the endpoints this component binds and connects, then secure `ctx` (default: the
    process's shared context, which feeds and proxies use). ConfigError in one line on a problem."""
    bind, connect = list(bind), list(connect)
    for endpoint in bind:
        bus_ipc.check_endpoint(endpoint, bind=True)
    for endpoint in connect:
        bus_ipc.check_endpoint(endpoint, bind=False)
    plain = [e for e in (*bind, *connect) if e.startswith("tcp://")]
    if plain and not settings.curve:
        log.warning(
            "bus %s is plain TCP: any local user can read it and publish on it; on one host use the default "
            "ipc:// bus, across hosts set [bus] curve = true",
            ", ".join(plain),
        )
    return secure_context(ctx if ctx is not None else zmq.Context.instance(), settings, role)
