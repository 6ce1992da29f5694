"""The server TLS context for wss:// and https:// on the proxy's one port."""

from __future__ import annotations

import ssl

from openalgo_proxy.config import TlsSettings
from openalgo_proxy.errors import ConfigError


def server_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """None when TLS is not configured; a TLS 1.2+ server context otherwise."""
    if tls.cert_file is None or tls.key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    password = tls.key_password.get_secret_value() if tls.key_password is not None else None
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS certificate or key not found: {exc.filename}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {tls.cert_file} / key {tls.key_file}: {exc}") from exc
    return context


def probe_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """For our own readiness probe of a child proxy: trusts exactly the configured certificate chain
    (pinned, so a self-signed certificate works and the bind address need not match its names)."""
    if tls.cert_file is None:
        return None
    context = ssl.create_default_context(cafile=tls.cert_file)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False  # the certificate itself is pinned; verify_mode stays CERT_REQUIRED
    return context
