"""wss:// and https:// end to end with a test certificate authority (trustme): a client that trusts
the CA streams ticks; a client that does not, or that speaks plain ws://, gets nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
import websockets

from openalgo_proxy.client import connect
from openalgo_proxy.config import TlsSettings
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.proxy.tls import server_context
from tests.integration.security_support import bystander, still_served
from tests.support import System, client, free_port, running_system


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_system(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[System]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    async with running_system(tls={"cert_file": str(cert_file), "key_file": str(key_file)}) as system:
        yield system


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_wss_streams_ticks_to_a_client_that_trusts_the_ca(tls_system: System, ca: trustme.CA) -> None:
    assert tls_system.url.startswith("wss://")
    async with client(tls_system.url, ssl=_trusting(ca)) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        assert reply["status"] == "success"
        msg = await c.market_data()
        assert msg["symbol"] == "RELIANCE" and msg["data"]["ltp"] > 0


async def test_https_side_serves_health_over_tls(tls_system: System, ca: trustme.CA) -> None:
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", tls_system.proxy.port, ssl=_trusting(ca), server_hostname="127.0.0.1"
        )
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status = await reader.readline()
        writer.close()
    assert status.startswith(b"HTTP/1.1 200")


async def test_untrusted_and_plaintext_clients_fail_and_others_keep_streaming(
    tls_system: System, ca: trustme.CA
) -> None:
    async with bystander(tls_system.url, ssl=_trusting(ca)) as other:
        # the system's default trust store does not know the test CA
        with pytest.raises(ssl.SSLCertVerificationError):
            async with client(tls_system.url, ssl=ssl.create_default_context()):
                pass
        # another CA's client
        with pytest.raises(ssl.SSLCertVerificationError):
            async with client(tls_system.url, ssl=_trusting(trustme.CA())):
                pass
        # plain ws:// to the TLS port: no WebSocket
        with pytest.raises((websockets.InvalidHandshake, OSError, asyncio.TimeoutError)):
            async with client(tls_system.url.replace("wss://", "ws://")):
                pass
        await still_served(other)


def test_missing_or_mismatched_tls_files_refuse_to_start(ca: trustme.CA, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        server_context(TlsSettings(cert_file=str(tmp_path / "nope.pem"), key_file=str(tmp_path / "nope.key")))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(cert_file))
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key_file))  # another certificate's key
    with pytest.raises(ConfigError, match="cannot load"):
        server_context(TlsSettings(cert_file=str(cert_file), key_file=str(key_file)))


async def test_run_with_tls_reports_ready_and_serves_wss(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    port = free_port()
    env = {**os.environ, "OPENALGO_PROXY_TLS__CERT_FILE": str(cert_file), "OPENALGO_PROXY_TLS__KEY_FILE": str(key_file)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openalgo_proxy", "run", "--port", str(port),
        "--bus", f"tcp://127.0.0.1:{free_port()}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert f"ready: wss://localhost:{port}".encode() in line and b"https://" in line, line
        async with client(f"wss://127.0.0.1:{port}", ssl=_trusting(ca)) as c:
            await c.send({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
            assert (await c.market_data(within=5))["symbol"] == "SBIN"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0


async def test_client_library_over_wss_with_a_private_ca(tls_system: System, ca: trustme.CA) -> None:
    async with asyncio.timeout(10), connect(tls_system.url, ssl=_trusting(ca)) as feed:
        await feed.subscribe(["NSE:INFY"], "ltp")
        tick = await anext(feed)
        assert tick.symbol == "INFY" and tick.ltp > 0
