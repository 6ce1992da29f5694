"""Admission: who may hold a connection, in one place in front of the hub.

Counts connections still in the HTTP upgrade (pending handshakes) and open WebSocket connections,
proves credentials (through the Authenticator), holds the per-identity connection caps and hands
each session its rate and error budget (a Guard). Pure bookkeeping: no sockets, no clock of its own.
"""

from __future__ import annotations

from collections import Counter

from openalgo_proxy.config import AuthSettings, LimitSettings
from openalgo_proxy.proxy.auth import Authenticator, Grant
from openalgo_proxy.proxy.limits import Guard, IdentityCounter


class Admission:
    def __init__(self, limits: LimitSettings, max_connections: int, authenticator: Authenticator) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.authenticator = authenticator
        self.identities = IdentityCounter()
        self.pending = 0  # connections before their WebSocket upgrade
        self.pending_by_address: Counter[str] = Counter()
        self.open_count = 0  # connections past the upgrade

    @classmethod
    def from_settings(cls, limits: LimitSettings, max_connections: int, auth: AuthSettings) -> Admission:
        return cls(limits, max_connections, Authenticator(auth))

    @property
    def auth_required(self) -> bool:
        return self.authenticator.required

    # -- handshakes --------------------------------------------------------------------------------
    def begin_handshake(self, address: str) -> bool:
        """A new TCP connection from `address` (an IP): False when too many connections, in all or from
        that address, are already in their upgrade (cut it at once)."""
        limits = self.limits
        if self.pending >= limits.max_pending_handshakes:
            return False
        if self.pending_by_address[address] >= limits.max_pending_handshakes_per_address:
            return False
        self.pending += 1
        self.pending_by_address[address] += 1
        return True

    def end_handshake(self, address: str) -> None:
        self.pending -= 1
        left = self.pending_by_address[address] - 1
        if left > 0:
            self.pending_by_address[address] = left
        else:
            del self.pending_by_address[address]

    # -- open connections ---------------------------------------------------------------------------
    def open(self) -> bool:
        """One more open connection; False when it is one too many (it still counts until closed)."""
        self.open_count += 1
        return self.open_count <= self.max_connections

    def closed(self) -> None:
        self.open_count -= 1

    # -- credentials and identities -----------------------------------------------------------------
    def anonymous(self) -> Grant:
        return self.authenticator.anonymous()

    def authorize(self, credential: str | None) -> Grant:
        """The grant these credentials prove; AuthFailed otherwise."""
        return self.authenticator.authenticate(credential)

    def still_valid(self, grant: Grant) -> bool:
        return self.authenticator.still_valid(grant)

    def claim(self, grant: Grant, held: str | None) -> str | None:
        """Count a connection (holding `held`'s slot, if any) against `grant`'s identity cap.

        None when it fits (the slot of `held` is given back), else the problem to tell the client.
        """
        if not self.auth_required or held == grant.identity:
            return None
        limit = grant.role.max_connections or self.limits.max_connections_per_identity
        if not self.identities.acquire(grant.identity, limit):
            return f"at most {limit} concurrent connections for this identity"
        if held is not None:
            self.identities.release(held)
        return None

    def release(self, identity: str) -> None:
        self.identities.release(identity)

    # -- budgets -------------------------------------------------------------------------------------
    def guard(self, now: float) -> Guard:
        return Guard(self.limits, now)
