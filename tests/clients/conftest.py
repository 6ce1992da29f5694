"""Fixtures for the client applications: a real `openalgo-proxy run` process shared by the session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
RUN_FLAGS = ("--ticks-per-second", "8", "--bus")


@dataclass(frozen=True)
class LiveSystem:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_ready(http: str, proc: subprocess.Popen[bytes], log: Path, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"openalgo-proxy run exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{http}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"proxy not ready within {within} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def live_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    """`openalgo-proxy run` (feed on the simulated market + proxy) as a real process on free ports."""
    port, bus = free_port(), free_port()
    log = tmp_path_factory.mktemp("run") / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openalgo_proxy", "run", "--port", str(port), *RUN_FLAGS, f"tcp://127.0.0.1:{bus}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    system = LiveSystem(port, log)
    try:
        wait_ready(system.http, proc, log)
        yield system
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
