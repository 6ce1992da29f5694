"""The secured bus from the command line, as real processes: `run` streams over the default
ipc:// bus in a private directory; a feed that cannot take its endpoint, a bus directory others
can enter, and CURVE without its keys each stop the process at once with one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openalgo_proxy import bus_ipc
from tests.support import client, free_port, start_cli, stop_process

pytestmark = pytest.mark.slow


@pytest.fixture
def runtime_env() -> Iterator[dict[str, str]]:
    path = Path(tempfile.mkdtemp(prefix="oap-runtime-", dir="/tmp"))
    yield {"XDG_RUNTIME_DIR": str(path)}
    shutil.rmtree(path, ignore_errors=True)


def _fails_in_one_line(args: list[str], env: dict[str, str], within: float = 20.0) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "openalgo_proxy", *args],
        env={**os.environ, **env},
        capture_output=True,
        timeout=within,
        check=False,
    )
    err = result.stderr.decode().strip()
    assert result.returncode != 0, err
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("openalgo-proxy: "), err
    return last


async def test_run_streams_over_the_default_ipc_bus(runtime_env: dict[str, str]) -> None:
    port = free_port()
    proc = start_cli("run", "--port", str(port), "--broker", "simulator", env=runtime_env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert b"ready: ws://" in line, line
        socket_path = Path(runtime_env["XDG_RUNTIME_DIR"]) / "openalgo-proxy" / "bus"
        assert socket_path.is_socket()
        assert (socket_path.parent.stat().st_mode & 0o777) == 0o700
        async with client(f"ws://127.0.0.1:{port}") as c:
            reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success"
            await c.market_data(within=5)
    finally:
        assert stop_process(proc, signal.SIGTERM) == 0


def test_a_second_feed_on_a_live_ipc_endpoint_exits_in_one_line(runtime_env: dict[str, str]) -> None:
    first = start_cli("feed", "--broker", "simulator", env=runtime_env)
    try:
        path = Path(runtime_env["XDG_RUNTIME_DIR"]) / "openalgo-proxy" / "bus"
        deadline = 20.0
        started = time.monotonic()
        while not (path.exists() and bus_ipc.in_use(path)):
            assert time.monotonic() - started < deadline, "the first feed never bound"
            time.sleep(0.05)
        line = _fails_in_one_line(["feed", "--broker", "simulator"], runtime_env)
        assert "is in use" in line and str(path) in line
        assert first.poll() is None, "the first feed must keep its endpoint"
    finally:
        stop_process(first)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["feed", "--broker", "simulator"]])
def test_a_bus_directory_others_can_enter_stops_the_process(runtime_env: dict[str, str], command: list[str]) -> None:
    shared = Path(runtime_env["XDG_RUNTIME_DIR"]) / "openalgo-proxy"
    shared.mkdir()
    shared.chmod(0o775)
    line = _fails_in_one_line(command, runtime_env)
    assert "chmod 700" in line


@pytest.mark.parametrize(
    "command",
    [["serve", "--port", "0", "--bus", "tcp://127.0.0.1:1"], ["bus", "--frontend", "tcp://127.0.0.1:0"]],
)
def test_curve_without_keys_stops_the_process(tmp_path: Path, command: list[str]) -> None:
    env = {"OPENALGO_PROXY_BUS__CURVE": "true", "OPENALGO_PROXY_BUS__KEYS_DIR": str(tmp_path / "none")}
    line = _fails_in_one_line(command, env)
    assert "openalgo-proxy bus-keys" in line
