"""`feed --openalgo` and `serve --openalgo`: the drop-in processes, and the settings drop-in implies.

The CLI parses flags and builds settings; these functions run the processes. Explicit flags always
beat what drop-in mode derives from OpenAlgo's `.env`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.bus_curve import Role
from openalgo_proxy.bus_security import secure_bus
from openalgo_proxy.config import Settings
from openalgo_proxy.openalgo.dropin import (
    DROP_IN_LIMITS,
    ChainSide,
    FeedSide,
    Installation,
    ProxySide,
    detect_broker,
    private_bus,
    proxy_settings_tree,
    refuse_bus_on_zmq_port,
)
from openalgo_proxy.openalgo.env import load_env
from openalgo_proxy.runtime import run_until_signal


def settings_tree(root: str | Path, flags: Mapping[str, Any], *, run_bus: bool) -> dict[str, Any]:
    """The settings drop-in mode implies (listen address, dialect, origins, hosts, message size,
    command budget; with `run_bus`, the installation's own bus), under the explicit `flags`."""
    tree: dict[str, Any] = {"proxy": proxy_settings_tree(load_env(root)), "limits": dict(DROP_IN_LIMITS)}
    if run_bus:
        bus = private_bus(root)
        tree["feed"] = {"bus": bus}
        tree["proxy"]["bus"] = [bus]
    for section, values in flags.items():
        tree[section] = {**tree.get(section, {}), **values}
    return tree


def run_feed(
    settings: Settings,
    root: str,
    options: FeedOptions,
    *,
    broker: str | None,
    user: str | None,
    upstream_zmq: str | None,
) -> int:
    from openalgo_proxy.feed import Feed

    cfg = settings.feed
    installation = Installation.open(root)
    refuse_bus_on_zmq_port(installation.env, [cfg.bus])
    guard = secure_bus(
        settings.bus,
        Role.CLIENT if cfg.bus_connect else Role.SERVER,
        bind=[] if cfg.bus_connect else [cfg.bus],
        connect=[cfg.bus] if cfg.bus_connect else [],
    )
    broker = broker or detect_broker(installation, user)
    side: FeedSide | ChainSide
    if broker == "openalgo":  # chain mode: OpenAlgo's own proxy, moved to a private port, is the upstream
        side = ChainSide(installation, options, user=user, upstream_zmq=upstream_zmq)
    else:
        side = FeedSide(installation, broker, options, user=user)
    feed = Feed(
        side.adapter,
        cfg.bus,
        bus_connect=cfg.bus_connect,
        status_interval=cfg.status_interval,
        coalesce_window=cfg.coalesce_window,
    )
    starting: list[asyncio.Task[None]] = []

    async def start_feed() -> None:
        await feed.start()  # waits for a broker login in OpenAlgo when there is none yet
        assert feed.publisher is not None
        side.attach(feed.publisher)

    async def start() -> None:
        await side.start()
        starting.append(asyncio.get_running_loop().create_task(start_feed(), name="feed-start"))

    async def stop() -> None:
        for task in starting:
            if not task.done():
                task.cancel()
        await feed.stop()
        await side.stop()
        installation.close()

    try:
        return run_until_signal(start, stop)
    finally:
        guard.close()


def run_serve(settings: Settings, root: str) -> int:
    installation = Installation.open(root)
    refuse_bus_on_zmq_port(installation.env, settings.proxy.bus)
    guard = secure_bus(settings.bus, Role.CLIENT, connect=settings.proxy.bus)
    try:
        side = ProxySide(installation, settings)
        return run_until_signal(side.start, side.stop)
    finally:
        guard.close()
