"""Helpers for the operations tests: HTTP probes, Prometheus scrapes, a set of real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.support import start_cli, stop_process

T = TypeVar("T")
FAST_STATUS = {"OPENALGO_PROXY_FEED__STATUS_INTERVAL": "0.5", "OPENALGO_PROXY_FEED__COALESCE_WINDOW": "0.01"}


def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def get(port: int, path: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(http_get, port, path)


async def get_json(port: int, path: str) -> dict[str, Any]:
    status, body = await get(port, path)
    assert status == 200, (status, body[:200])
    result: dict[str, Any] = json.loads(body)
    return result


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample, keyed `name` or `name{a=x,b=y}` (labels sorted), via the Prometheus text parser."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def scrape(port: int) -> dict[str, float]:
    status, body = await get(port, "/metrics")
    assert status == 200, status
    return parse_metrics(body.decode())


async def poll(fetch: Callable[[], Awaitable[T]], accept: Callable[[T], bool], within: float = 10.0) -> T:
    """Fetch until `accept` holds; fail with the last value seen at the deadline."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = await fetch()
        except (OSError, AssertionError):
            value = None  # not up yet
        if value is not None and accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}"[:2000])
        await asyncio.sleep(0.1)


class Processes:
    """Real `openalgo-proxy` processes; every one is stopped (or killed) at close()."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stderr: dict[str, str] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = start_cli(*args, env={**FAST_STATUS, **(env or {})})
        self.procs[name] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)

    def stderr_of(self, name: str) -> str:
        """What a finished process wrote to stderr (kept after close())."""
        if name not in self.stderr:
            proc = self.procs[name]
            assert proc.poll() is not None, f"{name} still running"
            assert proc.stderr is not None
            self.stderr[name] = proc.stderr.read().decode(errors="replace")
        return self.stderr[name]

    def close(self) -> None:
        for name, proc in self.procs.items():
            stop_process(proc, within=10)
            self.stderr_of(name)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
