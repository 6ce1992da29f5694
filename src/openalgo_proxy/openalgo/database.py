"""OpenAlgo's database, opened read-only: the `api_keys` and `auth` rows, nothing else.

`DATABASE_URL` as OpenAlgo reads it: `sqlite:///relative/path` (relative to the OpenAlgo root, its
working directory), `sqlite:////absolute/path`, or a PostgreSQL URL (`postgresql://`,
`postgresql+psycopg2://`, `postgres://`). SQLite opens with `mode=ro` and `query_only`; PostgreSQL
sessions are `default_transaction_read_only`. Calls block: run them off the event loop.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from openalgo_proxy.errors import ConfigError

log = logging.getLogger(__name__)

API_KEYS_SQL = "SELECT user_id, api_key_hash, api_key_encrypted FROM api_keys"
AUTH_SQL = "SELECT name, auth, feed_token, broker, user_id, is_revoked FROM auth"
SYMBOLS_SQL = "SELECT exchange, symbol FROM symtoken"


class DatabaseError(Exception):
    """The database could not be read this time (busy, restarting, gone); the caller retries later."""


@dataclass(frozen=True)
class ApiKeyRow:
    user_id: str
    key_hash: str = field(repr=False)
    key_encrypted: str = field(repr=False)


@dataclass(frozen=True)
class AuthRow:
    name: str  # the OpenAlgo username
    auth: str = field(repr=False)  # Fernet ciphertext of the broker auth token
    feed_token: str = field(repr=False)  # Fernet ciphertext, "" when the broker has none
    broker: str = ""
    client_id: str = ""  # auth.user_id: the broker-side client code
    revoked: bool = False


class Database(Protocol):
    def api_keys(self) -> list[ApiKeyRow]: ...

    def auth_rows(self) -> list[AuthRow]: ...

    def symbols(self) -> dict[str, set[str]]:
        """OpenAlgo's master contract (`symtoken`): exchange -> its OpenAlgo symbol names."""
        ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """Where the data is, safe to log (no password)."""
        ...


def _api_key_rows(rows: list[Any]) -> list[ApiKeyRow]:
    return [ApiKeyRow(str(r[0]), str(r[1] or ""), str(r[2] or "")) for r in rows]


def _symbols(rows: list[Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for exchange, symbol in rows:
        if exchange and symbol:
            found.setdefault(str(exchange), set()).add(str(symbol))
    return found


def _auth_rows(rows: list[Any]) -> list[AuthRow]:
    return [
        AuthRow(str(r[0]), str(r[1] or ""), str(r[2] or ""), str(r[3] or ""), str(r[4] or ""), bool(r[5])) for r in rows
    ]


class SqliteDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise ConfigError(f"OpenAlgo database {path} does not exist")
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=False, timeout=5.0
            )
            self._conn.execute("PRAGMA query_only = ON")
            self._conn.execute(API_KEYS_SQL + " LIMIT 0")
            self._conn.execute(AUTH_SQL + " LIMIT 0")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read OpenAlgo database {path}: {exc}") from exc

    def describe(self) -> str:
        return f"sqlite {self.path} (read-only)"

    def _query(self, sql: str) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise DatabaseError(f"{self.path}: {exc}") from exc

    def api_keys(self) -> list[ApiKeyRow]:
        return _api_key_rows(self._query(API_KEYS_SQL))

    def auth_rows(self) -> list[AuthRow]:
        return _auth_rows(self._query(AUTH_SQL))

    def symbols(self) -> dict[str, set[str]]:
        return _symbols(self._query(SYMBOLS_SQL))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_DRIVER = re.compile(r"^(postgres|postgresql)(\+[a-z0-9_]+)?://", re.IGNORECASE)


class PostgresDatabase:
    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = _DRIVER.sub("postgresql://", url)
        self._lock = threading.Lock()
        self._conn: Any = None
        try:
            with self._lock:
                self._connect()
                self._run(API_KEYS_SQL + " LIMIT 0")
                self._run(AUTH_SQL + " LIMIT 0")
        except DatabaseError as exc:
            raise ConfigError(f"cannot read OpenAlgo database {self.describe()}: {exc}") from exc

    def describe(self) -> str:
        info = self._psycopg.conninfo.conninfo_to_dict(self.url)
        return (
            f"postgresql {info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')} (read-only)"
        )

    def _connect(self) -> None:
        try:
            self._conn = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=5, options="-c default_transaction_read_only=on"
            )
        except self._psycopg.Error as exc:
            raise DatabaseError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    def _run(self, sql: str) -> list[Any]:
        if self._conn is None or self._conn.closed:
            self._connect()
        try:
            rows: list[Any] = self._conn.execute(sql).fetchall()
            return rows
        except self._psycopg.OperationalError as exc:
            self._conn.close()
            self._conn = None
            raise DatabaseError(str(exc).splitlines()[0]) from exc
        except self._psycopg.Error as exc:
            raise DatabaseError(str(exc).splitlines()[0]) from exc

    def _query(self, sql: str) -> list[Any]:
        with self._lock:
            return self._run(sql)

    def api_keys(self) -> list[ApiKeyRow]:
        return _api_key_rows(self._query(API_KEYS_SQL))

    def auth_rows(self) -> list[AuthRow]:
        return _auth_rows(self._query(AUTH_SQL))

    def symbols(self) -> dict[str, set[str]]:
        return _symbols(self._query(SYMBOLS_SQL))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def sqlite_path(url: str, root: Path) -> Path:
    """`sqlite:///rel` -> root/rel; `sqlite:////abs` -> /abs (SQLAlchemy URL rules)."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        raise ConfigError(f"DATABASE_URL {url!r}: expected sqlite:///path")
    path = Path(rest[1:].split("?", 1)[0])
    return path if path.is_absolute() else root / path


def open_database(url: str, root: Path) -> Database:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.startswith("sqlite"):
        return SqliteDatabase(sqlite_path(url, root))
    if _DRIVER.match(url):
        return PostgresDatabase(url)
    raise ConfigError(f"DATABASE_URL scheme {scheme or '(none)'!r} is not supported: use sqlite or postgresql")
