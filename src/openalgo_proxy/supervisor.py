"""`openalgo-proxy run`: the feed and the proxy (and a broker simulator when asked) as separate
processes, restarted if they die, stopped together. Children die with the supervisor (PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from ssl import SSLContext

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


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


async def wait_ready(host: str, port: int, within: float = 60.0, ssl: SSLContext | None = None) -> bool:
    """Poll the proxy's /readyz (over TLS when given a context) until it answers 200 or `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ssl), timeout=1.0)
            writer.write(f"GET /readyz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), timeout=1.0)
            writer.close()
            if b" 200 " in status:
                return True
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.1)
    return False
