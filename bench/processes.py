"""Child processes of a benchmark run: JSON-line events on stdout, commands on stdin, logs in files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil

from openalgo_proxy.tasks import cancel_and_wait


class ChildError(RuntimeError):
    pass


class Child:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ps = psutil.Process(proc.pid)
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Child:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                limit=1 << 26,  # histograms travel as one JSON line
            )
        return cls(name, proc, log_path)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self.events.put({"event": "exit"})
                return
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not ours: a stray line from a library
            if isinstance(event, dict):
                await self.events.put(event)

    async def expect(self, name: str, within: float) -> dict[str, Any]:
        """The next event called `name`; ChildError if the process exits or time runs out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ChildError(f"{self.name}: no {name!r} within {within:.0f} s (log: {self.log_path})")
            try:
                event = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                continue
            if event.get("event") == name:
                return event
            if event.get("event") == "exit":
                code = self.proc.returncode
                raise ChildError(f"{self.name} exited (code {code}); log: {self.log_path}\n{self.tail()}")

    def tell(self, line: str) -> None:
        if self.proc.stdin is not None and self.proc.returncode is None:
            self.proc.stdin.write(line.encode() + b"\n")

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pin(self, cpus: list[int] | None) -> None:
        """Restrict to `cpus` (None: every CPU but 0); ignored where affinity is unsupported."""
        available = list(range(os.cpu_count() or 1))
        chosen = cpus if cpus is not None else [c for c in available if c != 0] or available
        try:
            self.ps.cpu_affinity(chosen)
        except (psutil.Error, AttributeError, ValueError) as exc:
            sys.stderr.write(f"bench: cannot pin {self.name}: {exc}\n")

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def rss(self) -> int:
        try:
            return int(self.ps.memory_info().rss)
        except psutil.Error:
            return 0

    async def stop(self, within: float = 10.0) -> None:
        """`stop` on stdin and SIGTERM; SIGKILL to the process group if it lingers."""
        if self.proc.returncode is None:
            self.tell("stop")
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), within)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        await cancel_and_wait(self._reader)


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


async def http_ok(port: int, path: str, within: float = 1.0) -> bool:
    """True when GET `path` on the loopback port answers 200."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), within)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), within)
        return status.split(b" ")[1:2] == [b"200"]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def http_get(port: int, path: str, within: float = 5.0) -> bytes:
    """The body of GET `path` (HTTP/1.1, Connection: close); b"" on any failure."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), within)
    except (OSError, TimeoutError):
        return b""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), within)
    except (OSError, TimeoutError):
        return b""
    finally:
        writer.close()
    return raw.partition(b"\r\n\r\n")[2]


def prometheus_values(text: bytes, prefix: str) -> dict[str, float]:
    """Unlabelled samples whose name starts with `prefix`, summed over labels."""
    values: dict[str, float] = {}
    for line in text.decode(errors="replace").splitlines():
        if not line.startswith(prefix):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values


def prometheus_quantile(text: bytes, histogram: str, q: float) -> float:
    """Upper bucket bound holding the q-quantile of a Prometheus histogram (nan if empty)."""
    bounds: list[tuple[float, float]] = []
    prefix = histogram + '_bucket{le="'
    for line in text.decode(errors="replace").splitlines():
        if line.startswith(prefix):
            bound_text, _, rest = line[len(prefix) :].partition('"')
            try:
                bounds.append((float(bound_text), float(rest.rsplit(" ", 1)[-1])))
            except ValueError:
                continue
    bounds.sort()
    if not bounds or not bounds[-1][1]:
        return float("nan")
    total = bounds[-1][1]
    for bound, cumulative in bounds:
        if cumulative >= q * total:
            return bound
    return float("inf")


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True
