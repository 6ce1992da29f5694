"""Connection failures in words a user can act on, and the --ca trust file."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trustme
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from openalgo_proxy.client.failures import describe, tls_context


def test_each_failure_is_named() -> None:
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert describe(untrusted) == "TLS certificate verify failed: unable to get local issuer certificate"
    assert describe(ConnectionRefusedError(111, "Connection refused")).startswith("connection refused")
    assert describe(InvalidStatus(Response(403, "Forbidden", Headers()))) == "handshake refused with HTTP 403"
    assert "wss://" in describe(InvalidMessage("did not receive a valid HTTP response"))
    assert describe(TimeoutError()) == "timed out"
    assert describe(socket.gaierror(-2, "Name or service not known")) == "unknown host (Name or service not known)"


def test_tls_context_trusts_the_given_ca(tmp_path: Path) -> None:
    assert tls_context(None) is None  # the system's trust store
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    context = tls_context(pem)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(cert.get("subject") for cert in context.get_ca_certs())
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("not a certificate\n")
    for bad in (tmp_path / "missing.pem", not_pem):
        with pytest.raises(ValueError, match="cannot load CA certificates"):
            tls_context(bad)
