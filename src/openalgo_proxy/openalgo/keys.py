"""OpenAlgo's API keys as an O(1) index, kept in step with its `api_keys` table.

Each row's Fernet ciphertext is decrypted once and the plaintext checked once against its Argon2
PHC string (so a wrong pepper is caught at load, not per connect). The index maps a keyed hash
(HMAC-SHA256 with a per-process random secret) of each key to its owner: authenticating a client
is one HMAC and one dict lookup on the event loop. Plaintext keys are not kept.

`ApiKeyWatcher` re-reads the table every few seconds (OpenAlgo sends no signal when a user
regenerates a key); a changed or removed row drops the old key from the index, and `generation`
moves so the proxy closes that key's sockets with 4401.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet

from openalgo_proxy.openalgo.crypto import DecryptError, decrypt, verify_key_hash
from openalgo_proxy.openalgo.database import ApiKeyRow, Database, DatabaseError
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class KeyOwner:
    user_id: str  # the OpenAlgo username
    digest: str  # keyed hash of the key: identifies it for revocation, useless outside this process


class ApiKeyIndex:
    def __init__(self, fernet: Fernet, pepper: str, *, verify_hashes: bool = True) -> None:
        self._fernet = fernet
        self._pepper = pepper
        self._verify = verify_hashes
        self._secret = secrets.token_bytes(32)
        self._by_digest: dict[str, KeyOwner] = {}
        self._rows: dict[str, str] = {}  # user_id -> api_key_hash the index was built from
        self.generation = 0
        self.unreadable: set[str] = set()  # users whose row could not be opened

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def lookup(self, key: str) -> KeyOwner | None:
        return self._by_digest.get(self.digest(key))

    def contains(self, digest: str) -> bool:
        return digest in self._by_digest

    def __len__(self) -> int:
        return len(self._by_digest)

    def changed(self, rows: list[ApiKeyRow]) -> bool:
        return {r.user_id: r.key_hash for r in rows} != self._rows

    def build(self, rows: list[ApiKeyRow]) -> tuple[dict[str, KeyOwner], dict[str, str], set[str]]:
        """Blocking (Argon2 for new hashes): run in a worker thread, then `install` on the loop."""
        known = {owner.user_id: digest for digest, owner in self._by_digest.items()}
        by_digest: dict[str, KeyOwner] = {}
        built: dict[str, str] = {}
        unreadable: set[str] = set()
        for row in rows:
            built[row.user_id] = row.key_hash
            if self._rows.get(row.user_id) == row.key_hash and row.user_id in known:
                digest = known[row.user_id]
                by_digest[digest] = KeyOwner(row.user_id, digest)
                continue
            try:
                key = decrypt(self._fernet, row.key_encrypted)
            except DecryptError:
                log.error(
                    "openalgo: the API key of user %s does not decrypt (pepper or FERNET_SALT differ)", row.user_id
                )
                unreadable.add(row.user_id)
                continue
            if not key:
                continue
            if self._verify and not verify_key_hash(row.key_hash, key, self._pepper):
                log.error("openalgo: the API key of user %s does not match its stored hash; refused", row.user_id)
                unreadable.add(row.user_id)
                continue
            digest = self.digest(key)
            by_digest[digest] = KeyOwner(row.user_id, digest)
        return by_digest, built, unreadable

    def install(self, built: tuple[dict[str, KeyOwner], dict[str, str], set[str]]) -> set[str]:
        """Swap in a built index; the users whose previous key is no longer accepted."""
        by_digest, rows, unreadable = built
        dropped = {owner.user_id for digest, owner in self._by_digest.items() if digest not in by_digest}
        self._by_digest, self._rows, self.unreadable = by_digest, rows, unreadable
        self.generation += 1
        return dropped


class ApiKeyWatcher:
    """Keeps an ApiKeyIndex equal to the table; DB reads and Argon2 run in worker threads."""

    def __init__(self, db: Database, index: ApiKeyIndex, interval: float = POLL_INTERVAL) -> None:
        self.db = db
        self.index = index
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    async def load(self) -> None:
        rows = await asyncio.to_thread(self.db.api_keys)
        self.index.install(await asyncio.to_thread(self.index.build, rows))
        log.info("openalgo: %d API key(s) indexed from %s", len(self.index), self.db.describe())

    async def poll_once(self) -> set[str]:
        rows = await asyncio.to_thread(self.db.api_keys)
        if not self.index.changed(rows):
            return set()
        dropped = self.index.install(await asyncio.to_thread(self.index.build, rows))
        for user in sorted(dropped):
            log.info("openalgo: the API key of user %s changed or was removed; its sockets close", user)
        return dropped

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openalgo-keys")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
                self.failures = 0
            except DatabaseError as exc:
                self.failures += 1
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    log.warning("openalgo: cannot read api_keys (%s); keeping the keys loaded before", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
