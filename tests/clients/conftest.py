"""Fixtures for the client applications: a real `openalgo-proxy run` process shared by the session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support import System, free_port, running_system

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


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A private certificate authority (not in the system's trust store)."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def tls_system(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[System]:
    """Feed and a wss:// proxy in this event loop, its certificate signed by the private CA."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    tls = {"cert_file": str(cert_file), "key_file": str(key_file)}
    async with running_system(tls=tls, ticks_per_second=5) as system:
        yield system
