"""Credentials handed to an adapter by someone else (OpenAlgo's stored broker session), instead of a login.

An adapter given a `CredentialProvider` never logs in: it connects with `current()` and, when the
broker refuses them (401/403), awaits `refresh(generation)`, which re-reads the source and returns
only once it holds a different session (it may wait for hours: a dead token is not retried).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from openalgo_proxy.errors import BrokerAuthError


@dataclass(frozen=True)
class BrokerCredentials:
    api_key: str = field(repr=False)  # the broker app key (Angel SmartAPI key, Kite api_key)
    client_code: str  # broker-side client id (Angel client code); "" where unused
    access_token: str = field(repr=False)  # Angel JWT (no "Bearer "), Kite access token
    feed_token: str = field(default="", repr=False)  # Angel feed token; "" where unused
    generation: int = 0  # increases with every new session read from the source


class CredentialsUnavailable(BrokerAuthError):
    """No usable session at the source (logged out, revoked, never logged in)."""


class CredentialProvider(Protocol):
    def current(self) -> BrokerCredentials:
        """The session to connect with now; CredentialsUnavailable when there is none."""
        ...

    async def refresh(self, rejected_generation: int) -> BrokerCredentials:
        """Re-read the source after the broker refused `rejected_generation`; returns a newer session,
        waiting as long as it takes for one."""
        ...
