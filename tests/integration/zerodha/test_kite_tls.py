"""TLS to the broker is always verified: an untrusted certificate is refused, a trusted CA streams."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from openalgo_proxy.brokers.base import ConnectionState, FeedOptions
from openalgo_proxy.brokers.zerodha import instruments as ki
from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from openalgo_proxy.model import Mode

from .conftest import Collector, fast_backoff, wait_for

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_sim(ca: trustme.CA) -> AsyncIterator[KiteSimulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    simulator = KiteSimulator(ticks_per_second=20.0, heartbeat_interval=0.1, ssl_context=context)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def adapter_for(sim: KiteSimulator, master: Path) -> KiteAdapter:
    options = FeedOptions(ws_url=sim.url, instruments=str(master), stall_timeout=2.0)
    return KiteAdapter(options, api_key=sim.api_key, access_token="sim_access_token", backoff=fast_backoff)


async def test_untrusted_certificate_is_refused(tls_sim: KiteSimulator, tmp_path: Path) -> None:
    assert tls_sim.url.startswith("wss://")
    with pytest.raises(ki.BrokerError) as refused:  # the loader's one error type, caused by the certificate
        await ki.load(tls_sim.instruments_url)
    assert isinstance(refused.value.__cause__, aiohttp.ClientConnectorCertificateError)
    master = tmp_path / "instruments.csv"
    master.write_bytes(tls_sim.csv)
    adapter = adapter_for(tls_sim, master)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await wait_for(lambda: adapter.status().state is ConnectionState.BACKING_OFF, what="TLS failure")
        assert tls_sim.handshake_attempts == 0  # no request ever reached the server
    finally:
        await adapter.stop()


async def test_trusted_ca_streams(
    tls_sim: KiteSimulator, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the system trust store, as an operator would set it
    master = tmp_path / "instruments.csv"
    master.write_bytes(tls_sim.csv)
    adapter = adapter_for(tls_sim, master)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        rel = adapter.lookup("NSE", "RELIANCE")
        assert rel is not None
        await adapter.set_wanted({rel: Mode.DEPTH})
        await wait_for(lambda: got.symbols() == {"RELIANCE"}, what="ticks over wss")
        assert tls_sim.handshake_attempts == 1
    finally:
        await adapter.stop()
