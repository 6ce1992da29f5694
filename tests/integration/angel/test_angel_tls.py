"""TLS to the broker is always verified: an untrusted certificate fails the master, the login and the stream."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from pathlib import Path

import pytest
import trustme

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.instruments import InstrumentMasterError, load_master
from openalgo_proxy.brokers.angel.login import AngelCredentials, AngelSession
from openalgo_proxy.brokers.angel.simulator import AngelSimulator, master_records
from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.errors import BrokerError
from openalgo_proxy.model import Mode
from tests.broker_support import until


@pytest.fixture
def untrusted_server_context() -> ssl.SSLContext:
    ca = trustme.CA()  # a CA nobody trusts
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_untrusted_certificates_are_refused(
    untrusted_server_context: ssl.SSLContext, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with AngelSimulator(ssl_context=untrusted_server_context, jwt_token="jwt", feed_token="feed") as sim:
        assert sim.ws_url.startswith("wss://") and sim.instruments_url.startswith("https://")
        async with asyncio.timeout(10):
            with pytest.raises(InstrumentMasterError, match=r"(?i)certificate"):
                await load_master(sim.instruments_url)
            with pytest.raises(BrokerError, match=r"(?i)certificate"):
                await AngelSession(sim.credentials(), sim.api_url).tokens()
        assert sim.login_attempts == 0

        master = tmp_path / "master.json"
        master.write_text(json.dumps(master_records()))
        creds = AngelCredentials(sim.api_key, sim.client_code, jwt_token="jwt", feed_token="feed")
        adapter = AngelAdapter(sim.feed_options(instruments=str(master)), creds, backoff_base=0.02, backoff_cap=0.05)
        await adapter.start(lambda tick: None, lambda rejection: None)
        try:
            instrument = adapter.lookup("NSE", "RELIANCE")
            assert instrument is not None
            async with asyncio.timeout(10):
                await adapter.set_wanted({instrument: Mode.LTP})
                await until(lambda: adapter.connections()[0].backoff.attempt >= 3, what="failed TLS attempts")
            assert sim.handshake_attempts == 0  # never got past TLS
            assert adapter.status().state is not ConnectionState.CONNECTED
            assert "certificate verify failed" in caplog.text.lower()
        finally:
            await adapter.stop()
