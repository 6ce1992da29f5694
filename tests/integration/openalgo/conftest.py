"""A drop-in system: a fixture OpenAlgo install, a Kite simulator, `openalgo-proxy run --openalgo` as a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from tests.openalgo_support import FakeOpenAlgo
from tests.support import eventually, free_port


@dataclass
class DropIn:
    fake: FakeOpenAlgo
    simulator: KiteSimulator
    process: subprocess.Popen[bytes]
    log_path: Path
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.fake.websocket_port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tokens_seen(self) -> list[str]:
        """access_token of every connection the simulator holds now."""
        return [c.request.query.get("access_token", "") for c in self.simulator.connections]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.asynccontextmanager
async def drop_in(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[DropIn]:
    simulator = KiteSimulator(api_key="kiteapp", access_token="tok-1", ticks_per_second=20, seed=3)
    await simulator.start()
    fake = FakeOpenAlgo(
        tmp_path / "openalgo", zmq_port=free_port(), websocket_port=free_port(), database_url=database_url
    )
    keys = {"alice": fake.set_api_key("alice"), "bob": fake.set_api_key("bob")}
    fake.login("alice", "zerodha", "kiteapp:tok-1", client_id="AB1234")
    log_path = tmp_path / "dropin.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable,
                *("-m", "openalgo_proxy", "run", "--openalgo", str(fake.root)),
                *("--ws-url", simulator.url, "--instruments", simulator.instruments_url),
                *("--log-level", "DEBUG"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("OPENALGO_PROXY_")},
            start_new_session=True,
        )
    system = DropIn(fake, simulator, process, log_path, keys)
    try:

        async def ready() -> bool:
            assert process.poll() is None, f"run exited early:\n{system.log()[-3000:]}"
            return await asyncio.to_thread(_ready, fake.websocket_port)

        await eventually(ready, within=40)
        yield system
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        fake.close()
        await simulator.stop()
