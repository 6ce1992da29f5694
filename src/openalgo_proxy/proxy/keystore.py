"""The API key store: a local JSON file holding only keyed hashes (HMAC-SHA256) of API keys.

API keys are random and high-entropy, so a slow password hash per row buys nothing; a keyed hash
with a server secret makes the file useless without the secret and gives an O(1) dict lookup:
``digest -> (name, role, created)``. The secret comes from config (``[auth] keys_secret``) or from a
``keys.secret`` file beside the store, created (mode 0600) on the first ``keys add``.

The proxy reloads the file when its stat signature changes, so ``keys revoke`` reaches running proxies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from openalgo_proxy.errors import ConfigError

log = logging.getLogger(__name__)

KEY_PREFIX = "oap_"
FORMAT_VERSION = 1
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeyRecord:
    name: str
    role: str
    created: str
    digest: str

    @property
    def fingerprint(self) -> str:
        """Safe to log and show: a prefix of the keyed hash, useless without the secret."""
        return self.digest[:12]


def default_keys_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "openalgo-proxy" / "keys.json"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _write_private(path: Path, data: bytes) -> None:
    """Atomically replace path with data, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class KeyStore:
    """Hashed API keys in a JSON file. Mutations rewrite the file atomically."""

    def __init__(self, path: Path, secret: bytes | None = None) -> None:
        self.path = path
        self.secret_path = path.with_name("keys.secret")
        self._secret = secret
        self._records: dict[str, KeyRecord] = {}
        self._signature: tuple[int, int, int] | None = None

    # -- secret ----------------------------------------------------------------------------------
    def _load_secret(self, create: bool) -> bytes | None:
        if self._secret is not None:
            return self._secret
        try:
            text = self.secret_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            if not create:
                return None
            secret = secrets.token_bytes(SECRET_BYTES)
            _write_private(self.secret_path, secret.hex().encode() + b"\n")
            log.info("created key store secret %s", self.secret_path)
            self._secret = secret
            return secret
        except OSError as exc:
            raise ConfigError(f"cannot read key store secret {self.secret_path}: {exc.strerror}") from exc
        mode = self.secret_path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("key store secret %s is readable by other users; chmod 600 it", self.secret_path)
        try:
            secret = bytes.fromhex(text)
        except ValueError as exc:
            raise ConfigError(f"key store secret {self.secret_path} is not hex") from exc
        if len(secret) < 16:
            raise ConfigError(f"key store secret {self.secret_path} is too short")
        self._secret = secret
        return secret

    def digest(self, key: str) -> str | None:
        secret = self._load_secret(create=False)
        if secret is None:
            return None
        return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()

    # -- file --------------------------------------------------------------------------------------
    def _stat_signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> None:
        signature = self._stat_signature()
        self._signature = signature
        if signature is None:
            self._records = {}
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("version") != FORMAT_VERSION:
                raise ConfigError(f"key store {self.path} has an unknown format version")
            self._records = {
                digest: KeyRecord(entry["name"], entry["role"], entry["created"], digest)
                for digest, entry in raw["keys"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot read key store {self.path}: {exc}") from exc

    def reload_if_changed(self) -> bool:
        """Reload when the file changed on disk; True when it did. A broken file keeps the old keys."""
        signature = self._stat_signature()
        if signature == self._signature:
            return False
        previous = self._records
        try:
            self.load()
        except ConfigError as exc:
            log.error("%s; keeping the %d keys loaded before", exc, len(previous))
            self._records = previous
            self._signature = signature
            return False
        log.info("key store %s reloaded: %d key(s)", self.path, len(self._records))
        return True

    def _save(self) -> None:
        body = {
            "version": FORMAT_VERSION,
            "keys": {
                r.digest: {"name": r.name, "role": r.role, "created": r.created}
                for r in sorted(self._records.values(), key=lambda r: r.name)
            },
        }
        _write_private(self.path, (json.dumps(body, indent=2) + "\n").encode())
        self._signature = self._stat_signature()

    # -- queries and mutations ---------------------------------------------------------------------
    def lookup(self, key: str) -> KeyRecord | None:
        digest = self.digest(key)
        return None if digest is None else self._records.get(digest)

    def secret_missing(self) -> bool:
        """Keys on file but no secret to check them with: every key would be refused."""
        return bool(self._records) and self._load_secret(create=False) is None

    def contains(self, digest: str) -> bool:
        return digest in self._records

    def records(self) -> list[KeyRecord]:
        return sorted(self._records.values(), key=lambda r: r.name)

    def add(self, name: str, role: str) -> tuple[str, KeyRecord]:
        """A new random key (returned once, never stored) and its record."""
        self.load()
        if any(r.name == name for r in self._records.values()):
            raise ConfigError(f"a key named {name!r} exists; revoke it first or pick another name")
        secret = self._load_secret(create=not self._records)
        if secret is None:
            raise ConfigError(
                f"key store {self.path} has keys but its secret is missing ({self.secret_path} or [auth] keys_secret); "
                "restore it, or move the store away to start over"
            )
        key = new_key()
        digest = hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = KeyRecord(name, role, created, digest)
        self._records[digest] = record
        self._save()
        return key, record

    def revoke(self, name: str) -> KeyRecord:
        self.load()
        found = [r for r in self._records.values() if r.name == name]
        if not found:
            raise ConfigError(f"no key named {name!r}")
        for record in found:
            del self._records[record.digest]
        self._save()
        return found[0]
