"""`openalgo-proxy run`: the feed and the proxy (and a broker simulator when asked) as separate
processes, restarted if they die, stopped together. Children die with the supervisor (PDEATHSIG).

A child that exits with CANNOT_START (a configuration error or a listener that cannot bind; it has
said why in one line) is not restarted: restarting cannot help, so the whole unit stops.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
CANNOT_START = 2  # exit code of a component that cannot start (see cli.main)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: children still get SIGTERM from the supervisor on a clean stop


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, children: list[Child], stop_timeout: float = 10.0) -> None:
        self.children = children
        self.stop_timeout = stop_timeout
        self.stopping = asyncio.Event()
        self.failed: Child | None = None  # the child that exited with CANNOT_START
        self.failure = asyncio.Event()

    async def _spawn(self, child: Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "openalgo_proxy",
            *child.argv,
            env=child.env,
            preexec_fn=_die_with_parent,
        )
        child.started = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.process.pid)

    async def _keep(self, child: Child, spawned: asyncio.Event) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            await self._spawn(child)
            spawned.set()
            assert child.process is not None
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            if code == CANNOT_START:
                log.debug("%s cannot start (exit %d): not restarting", child.name, code)
                self.failed = child
                self.failure.set()
                return
            if time.monotonic() - child.started > 30:
                delay = 1.0
            child.restarts += 1
            log.error("%s exited with code %s; restarting in %.0f s", child.name, code, delay)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 30.0)

    async def start(self) -> None:
        for child in self.children:
            spawned = asyncio.Event()
            child.task = asyncio.get_running_loop().create_task(self._keep(child, spawned), name=f"keep-{child.name}")
            await spawned.wait()

    async def stop(self) -> None:
        self.stopping.set()
        running = [c.process for c in reversed(self.children) if c.process and c.process.returncode is None]
        for process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + self.stop_timeout
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("pid %d did not stop in time; killing it", process.pid)
                process.kill()
                await process.wait()
        for child in self.children:
            if child.task is not None:
                await child.task


async def probe_ready(host: str, port: int, ssl: SSLContext | None = None) -> dict[str, Any] | None:
    """GET /readyz once: its JSON detail when it answers 200, else None (not ready, not reachable,
    or not an openalgo-proxy)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ssl), timeout=1.0)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(1 << 16), timeout=1.0)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        return None
    try:
        detail = json.loads(body)
    except ValueError:
        return None
    return detail if isinstance(detail, dict) else None


async def wait_ready(
    host: str,
    port: int,
    within: float = 60.0,
    ssl: SSLContext | None = None,
    verify: Callable[[dict[str, Any]], bool] | None = None,
    interval: float = 0.25,
) -> bool:
    """Poll the proxy's /readyz (over TLS when given a context) until it answers 200 with a detail
    that `verify` accepts (this run's own proxy and feed, not another instance on the same ports),
    or `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        detail = await probe_ready(host, port, ssl)
        if detail is not None and (verify is None or verify(detail)):
            return True
        await asyncio.sleep(interval)
    return False


def is_own_unit(detail: dict[str, Any], proxy_pid: int | None, feed_pid: int | None) -> bool:
    """True when /readyz was answered by the proxy process `proxy_pid` and it sees a connected feed
    whose instance is the process `feed_pid` (a feed's instance id starts with its pid)."""
    if proxy_pid is None or feed_pid is None or detail.get("pid") != proxy_pid:
        return False
    feeds = detail.get("feeds")
    if not isinstance(feeds, dict):
        return False
    prefix = f"{feed_pid}-"
    return any(
        isinstance(feed, dict) and str(feed.get("instance", "")).startswith(prefix) and feed.get("state") == "connected"
        for feed in feeds.values()
    )
