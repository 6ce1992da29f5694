"""Starting components as real processes: a busy port or a bad configuration is one clear line and a
non-zero exit, never a traceback or a restart loop."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process-like owner is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def cli(*args: str, within: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openalgo_proxy", *args], capture_output=True, text=True, timeout=within, check=False
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("openalgo-proxy:")]


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["serve", "--port", "{port}", "--bus", "tcp://127.0.0.1:{free}"], "--port"),
        (["feed", "--broker", "simulator", "--bus", "tcp://127.0.0.1:{port}"], "--bus"),
        (
            ["feed", "--broker", "simulator", "--bus", "tcp://127.0.0.1:{free}", "--metrics-port", "{port}"],
            "--metrics-port",
        ),
        (["simulate", "angel", "--port", "{port}"], "--port"),
        (["simulate", "zerodha", "--port", "{port}"], "--port"),
        (["simulate", "dhan", "--port", "{port}"], "--port"),
        (["simulate", "aliceblue", "--port", "{port}"], "--port"),
        (["bus", "--frontend", "tcp://127.0.0.1:{port}", "--backend", "tcp://127.0.0.1:{free}"], "--frontend"),
        (["bus", "--frontend", "tcp://127.0.0.1:{free}", "--backend", "tcp://127.0.0.1:{port}"], "--backend"),
    ],
    ids=[
        "serve",
        "feed-bus",
        "feed-metrics",
        "simulate-angel",
        "simulate-zerodha",
        "simulate-dhan",
        "simulate-aliceblue",
        "bus-frontend",
        "bus-backend",
    ],
)
def test_a_busy_port_is_one_line_naming_it_and_the_flag(busy_port: int, command: list[str], flag: str) -> None:
    argv = [part.format(port=busy_port, free=free_port()) for part in command]
    done = cli(*argv)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = error_lines(done.stderr)
    assert f":{busy_port}" in line and "already in use" in line and flag in line, line


def test_an_unknown_broker_is_refused_by_the_configuration() -> None:
    done = cli("config", "show", "--broker", "foo")
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert "unknown broker 'foo'" in line and "angel" in line and "zerodha" in line, line
    assert done.stdout == ""


def run_cli(*args: str, within: float = 45.0) -> subprocess.CompletedProcess[str]:
    """`openalgo-proxy run ARGS` that is expected to stop by itself."""
    return cli("run", "--broker", "simulator", *args, within=within)


def test_run_on_a_busy_proxy_port_stops_at_once_without_claiming_ready(busy_port: int) -> None:
    done = run_cli("--port", str(busy_port), "--bus", f"tcp://127.0.0.1:{free_port()}")
    assert done.returncode == 2, done.stderr
    assert "ready" not in done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = error_lines(done.stderr)
    assert f":{busy_port}" in line and "--port" in line, line
    assert done.stderr.count("started proxy") == 1, "a child that cannot start is not restarted"


def test_run_whose_bus_is_another_instances_never_serves_it_as_its_own() -> None:
    bus = f"tcp://127.0.0.1:{free_port()}"
    other = subprocess.Popen(
        [sys.executable, "-m", "openalgo_proxy", "feed", "--broker", "simulator", "--bus", bus],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stderr is not None
        while "publishing on" not in other.stderr.readline():  # the other instance's feed is bound
            assert other.poll() is None, "the other feed did not start"
        done = run_cli("--port", str(free_port()), "--bus", bus)
    finally:
        other.terminate()
        other.wait(15)
    assert done.returncode == 2, done.stderr
    assert "ready" not in done.stdout, "its proxy saw the other instance's feed: not this run's"
    (line,) = error_lines(done.stderr)
    assert bus in line and "--bus" in line, line


def test_run_stops_at_once_on_a_childs_configuration_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANGEL_")}
    done = subprocess.run(
        [sys.executable, "-m", "openalgo_proxy", "run", "--broker", "angel", "--port", str(free_port()),
         "--bus", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=45, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert "ANGEL_API_KEY" in line, line
    assert done.stderr.count("started feed") == 1, "a configuration error is not retried"
    # no probe chatter, no restart loop: each process (feed, proxy, candles, chain) says a few things
    # once each while it starts and stops (how many of them get to speak before the stop depends on load)
    logged = [line.split(" ", 3) for line in done.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    messages = [f"{fields[2]} {fields[3].split(' ', 1)[-1]}" for fields in logged if len(fields) == 4]
    assert len(messages) == len(set(messages)), done.stderr
    by_process = collections.Counter(fields[2] for fields in logged if len(fields) == 4)
    assert max(by_process.values()) <= 5, done.stderr


def test_run_on_port_zero_reports_the_port_it_serves_and_ports_come_from_flags() -> None:
    metrics = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "openalgo_proxy", "run", "--broker", "simulator", "--port", "0",
         "--bus", "tcp://127.0.0.1:0", "--metrics-port", str(metrics)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the ready line (or EOF if run died)
        found = re.search(r"ready: ws://localhost:(\d+)", line)
        assert found is not None, line
        port = int(found.group(1))
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            assert json.loads(reply.read())["ready"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=5) as reply:
            assert reply.status == 200  # the feed's metrics listener, placed by run's flag
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
