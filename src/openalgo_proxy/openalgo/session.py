"""The broker session OpenAlgo stored (`auth` table), followed as it changes.

OpenAlgo keeps one row per user: the broker auth token and feed token (Fernet), the broker id,
the broker-side client code and a revoke flag. The app key is `BROKER_API_KEY` in `.env`; for
Zerodha the stored token is `api_key:access_token`. The row is re-read when the bridge relays a
`CACHE_INVALIDATE_*` for the user, when the broker refuses the token, and by polling.

After the daily expiry the row may hold a dead token that is not revoked: a refused token is
never retried; `refresh()` waits for the row to change (OpenAlgo's next login).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.fernet import Fernet

from openalgo_proxy.brokers.credentials import BrokerCredentials, CredentialsUnavailable
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.openalgo.crypto import DecryptError, decrypt
from openalgo_proxy.openalgo.database import AuthRow, Database, DatabaseError
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

POLL_INTERVAL = 30.0
BROKER_NAMES = {"angel": "angel", "zerodha": "zerodha"}  # our broker name -> OpenAlgo's broker id


@dataclass(frozen=True)
class StoredSession:
    """One decrypted `auth` row (secrets out of repr)."""

    user: str
    broker: str
    credentials: BrokerCredentials | None  # None: revoked, logged out or unreadable
    reason: str = ""  # why there are no credentials


def credentials_from_row(row: AuthRow, fernet: Fernet, broker_api_key: str, generation: int) -> BrokerCredentials:
    """The broker's credentials in an `auth` row; CredentialsUnavailable when it holds none."""
    if row.revoked or not row.broker:
        raise CredentialsUnavailable(f"OpenAlgo user {row.name} is logged out of the broker")
    try:
        token = decrypt(fernet, row.auth)
        feed_token = decrypt(fernet, row.feed_token)
    except DecryptError:
        raise CredentialsUnavailable(
            f"OpenAlgo's broker token for {row.name} does not decrypt (API_KEY_PEPPER or FERNET_SALT differ)"
        ) from None
    if not token:
        raise CredentialsUnavailable(f"OpenAlgo user {row.name} has no broker token")
    api_key = broker_api_key
    if row.broker == "zerodha" and ":" in token:
        api_key, token = token.split(":", 1)  # OpenAlgo stores "api_key:access_token"
    elif row.broker == "angel" and token[:7].lower() == "bearer ":
        token = token[7:].strip()
    return BrokerCredentials(api_key, row.client_id, token, feed_token, generation)


class OpenAlgoSession:
    """A CredentialProvider over OpenAlgo's `auth` table for one user and one broker."""

    def __init__(
        self,
        db: Database,
        fernet: Fernet,
        broker: str,
        broker_api_key: str,
        user: str | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        if broker not in BROKER_NAMES:
            raise ConfigError(f"drop-in mode streams {', '.join(BROKER_NAMES)} natively, not {broker!r}")
        self.db = db
        self._fernet = fernet
        self.broker = BROKER_NAMES[broker]
        self._broker_api_key = broker_api_key
        self.user = user
        self.poll_interval = poll_interval
        self._credentials: BrokerCredentials | None = None
        self._fingerprint: tuple[str, str, str, str] | None = None
        self.reason = "not read yet"
        self.generation = 0
        self.rejected_generation = 0
        self.reads = 0
        self._changed = asyncio.Condition()
        self._listeners: list[Callable[[BrokerCredentials | None], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._reread = asyncio.Event()

    # -- CredentialProvider ----------------------------------------------------------------------
    def latest(self) -> BrokerCredentials | None:
        """The session read last, or None when there is none."""
        return self._credentials

    def current(self) -> BrokerCredentials:
        if self._credentials is None:
            raise CredentialsUnavailable(self.reason)
        return self._credentials

    async def refresh(self, rejected_generation: int) -> BrokerCredentials:
        if rejected_generation and rejected_generation >= self.rejected_generation:
            if rejected_generation == self.generation and self.rejected_generation != rejected_generation:
                log.warning(
                    "openalgo: %s refused the session OpenAlgo stored for %s; waiting for a new login in OpenAlgo",
                    self.broker,
                    self.user,
                )
            self.rejected_generation = max(self.rejected_generation, rejected_generation)
        await self.reread()
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._credentials is not None and self._credentials.generation > rejected_generation
            )
        return self.current()

    # -- reading -----------------------------------------------------------------------------------
    def on_change(self, listener: Callable[[BrokerCredentials | None], None]) -> None:
        """Called (on the loop) with the new credentials, or None when the session went away."""
        self._listeners.append(listener)

    def _pick(self, rows: list[AuthRow]) -> AuthRow | None:
        if self.user is not None:
            return next((r for r in rows if r.name == self.user), None)
        mine = [r for r in rows if r.broker == self.broker]
        if len(mine) > 1:
            names = ", ".join(sorted(r.name for r in mine))
            raise ConfigError(
                f"several OpenAlgo users are logged in to {self.broker} ({names}): pick one with --openalgo-user"
            )
        if mine:
            return mine[0]
        return rows[0] if len(rows) == 1 else None

    async def reread(self) -> bool:
        """Read the row now; True when the session changed."""
        rows = await asyncio.to_thread(self.db.auth_rows)
        self.reads += 1
        row = self._pick(rows)
        if row is not None and self.user is None:
            self.user = row.name
            log.info("openalgo: following the broker session of OpenAlgo user %s", row.name)
        if row is None:
            fingerprint = ("", "", "", "missing")
        else:
            fingerprint = (row.auth, row.feed_token, row.broker, f"{row.client_id}|{row.revoked}")
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        credentials: BrokerCredentials | None = None
        if row is None:
            self.reason = f"no OpenAlgo user is logged in to {self.broker}"
        elif row.broker and row.broker != self.broker and not row.revoked:
            self.reason = f"OpenAlgo user {row.name} is logged in to {row.broker}, not {self.broker}"
        else:
            try:
                credentials = credentials_from_row(row, self._fernet, self._broker_api_key, self.generation + 1)
            except CredentialsUnavailable as exc:
                self.reason = str(exc)
        if credentials is None and self._credentials is None and self.generation:
            return False  # still no session
        if credentials is not None:
            self.generation = credentials.generation
            log.info("openalgo: %s session of %s read (session %d)", self.broker, self.user, self.generation)
            if not credentials.api_key:
                log.error("openalgo: BROKER_API_KEY is empty in OpenAlgo's .env; the %s feed needs it", self.broker)
        else:
            self.generation += 1
            log.warning("openalgo: %s; the feed stops until OpenAlgo logs in again", self.reason)
        self._credentials = credentials
        async with self._changed:
            self._changed.notify_all()
        for listener in list(self._listeners):
            listener(credentials)
        return True

    def invalidate(self, user: str) -> None:
        """A `CACHE_INVALIDATE_*` for `user` arrived from OpenAlgo: re-read at once."""
        if self.user is None or user == self.user:
            self._reread.set()

    async def wait_usable(self) -> BrokerCredentials:
        """Block until there is a session to connect with (at start, before the first login)."""
        if self._credentials is None:
            log.warning("openalgo: %s; waiting for a %s login in OpenAlgo", self.reason, self.broker)
        async with self._changed:
            await self._changed.wait_for(lambda: self._credentials is not None)
        return self.current()

    # -- polling -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openalgo-session")

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await asyncio.wait_for(self._reread.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._reread.clear()
            try:
                await self.reread()
                failures = 0
            except DatabaseError as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("openalgo: cannot read the auth table (%s); keeping the session read before", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
