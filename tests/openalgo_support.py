"""A fixture OpenAlgo installation: `.env`, database (SQLite or PostgreSQL) and Flask's ZeroMQ publisher.

It stands in for OpenAlgo's Flask side with the same schemes: a pepper, FERNET_SALT (or the legacy
static salt), Argon2id PHC strings of `key + pepper`, Fernet ciphertexts of keys and broker tokens,
and the `api_keys` and `auth` tables. Writes go through the test's own connection; the system under
test only ever reads.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from openalgo_proxy.openalgo.crypto import encrypt, fernet_for, hash_key

PEPPER = "pepper-" + "7f3a9c" * 8  # 55 characters, above OpenAlgo's 32-character minimum

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS api_keys (
        id SERIAL_PK,
        user_id VARCHAR(255) NOT NULL UNIQUE,
        api_key_hash TEXT NOT NULL,
        api_key_encrypted TEXT NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        order_mode VARCHAR(20) DEFAULT 'auto'
    )""",
    """CREATE TABLE IF NOT EXISTS auth (
        id SERIAL_PK,
        name VARCHAR(255) NOT NULL UNIQUE,
        auth TEXT NOT NULL,
        feed_token TEXT,
        broker VARCHAR(20) NOT NULL,
        user_id VARCHAR(255),
        is_revoked BOOLEAN DEFAULT FALSE,
        secret_api_key TEXT,
        aux_param1 TEXT
    )""",
)


class FakeOpenAlgo:
    def __init__(
        self,
        root: Path,
        *,
        zmq_port: int,
        websocket_port: int,
        legacy_salt: bool = False,
        database_url: str | None = None,
        broker_api_key: str = "sim_api_key",
        host_server: str = "http://127.0.0.1:5000",
    ) -> None:
        self.root = root
        self.pepper = PEPPER
        self.salt = "" if legacy_salt else secrets.token_hex(16)
        self.zmq_port = zmq_port
        self.websocket_port = websocket_port
        self.fernet = fernet_for(self.pepper, self.salt)
        (root / "db").mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or "sqlite:///db/openalgo.db"
        self.postgres = not self.database_url.startswith("sqlite")
        lines = [
            "# OpenAlgo .env written by the test fixture",
            f"BROKER_API_KEY = '{broker_api_key}'",
            f"API_KEY_PEPPER = '{self.pepper}'",
        ]
        if self.salt:
            lines.append(f"FERNET_SALT = '{self.salt}'")
        lines += [
            f"DATABASE_URL = '{self.database_url}'",
            "ZMQ_HOST = '127.0.0.1'",
            f"ZMQ_PORT = '{zmq_port}'",
            "WEBSOCKET_HOST='127.0.0.1'",
            f"WEBSOCKET_PORT='{websocket_port}'",
            f"WEBSOCKET_URL='ws://127.0.0.1:{websocket_port}'",
            f'HOST_SERVER = "{host_server}"',
        ]
        (root / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._conn: Any = self._connect()
        serial = "SERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        for statement in SCHEMA:
            self._execute(statement.replace("SERIAL_PK", serial))
        if not self.postgres:
            self._conn.execute("PRAGMA journal_mode=WAL")  # as OpenAlgo does
        self._pub: zmq.Socket[bytes] | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None

    @property
    def db_path(self) -> Path:
        return self.root / "db" / "openalgo.db"

    @property
    def stats_file(self) -> Path:
        return self.root / "log" / "ws_proxy_stats.json"

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", self.database_url), autocommit=True)
        conn = sqlite3.connect(self.db_path, isolation_level=None)
        return conn

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.postgres:
            sql = sql.replace("?", "%s")
        self._conn.execute(sql, params)

    # -- what OpenAlgo's Flask side does ---------------------------------------------------------
    def set_api_key(self, user: str, key: str | None = None) -> str:
        """`upsert_api_key`: a new 64-hex key unless given; returns the plaintext."""
        key = key or secrets.token_hex(32)
        self._execute(
            "INSERT INTO api_keys (user_id, api_key_hash, api_key_encrypted) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET api_key_hash = excluded.api_key_hash, "
            "api_key_encrypted = excluded.api_key_encrypted",
            (user, hash_key(key, self.pepper), encrypt(self.fernet, key)),
        )
        return key

    def delete_api_key(self, user: str) -> None:
        self._execute("DELETE FROM api_keys WHERE user_id = ?", (user,))

    def login(self, user: str, broker: str, token: str, feed_token: str = "", client_id: str = "") -> None:
        """`upsert_auth` after a broker login."""
        self._execute(
            "INSERT INTO auth (name, auth, feed_token, broker, user_id, is_revoked) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET auth = excluded.auth, feed_token = excluded.feed_token, "
            "broker = excluded.broker, user_id = excluded.user_id, is_revoked = excluded.is_revoked",
            (user, encrypt(self.fernet, token), encrypt(self.fernet, feed_token), broker, client_id, False),
        )

    def logout(self, user: str) -> None:
        """`upsert_auth(name, "", "", revoke=True)`."""
        self._execute("UPDATE auth SET auth = ?, broker = ?, is_revoked = ? WHERE name = ?", ("", "", True, user))

    def load_master_contract(self, rows: list[tuple[str, str]]) -> None:
        """`symtoken`, OpenAlgo's master contract of the logged-in broker: (exchange, symbol) rows."""
        self._execute(
            "CREATE TABLE IF NOT EXISTS symtoken (id INTEGER PRIMARY KEY, symbol VARCHAR, brsymbol VARCHAR, "
            "name VARCHAR, exchange VARCHAR, brexchange VARCHAR, token VARCHAR, lotsize INTEGER, tick_size FLOAT)"
        )
        for index, (exchange, symbol) in enumerate(rows, 1):
            self._execute(
                "INSERT INTO symtoken (id, symbol, brsymbol, exchange, token) VALUES (?, ?, ?, ?, ?)",
                (index, symbol, symbol, exchange, str(index)),
            )

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Flask's SharedZmqPublisher: a PUB that connects to ZMQ_PORT, two frames [topic, json]."""
        if self._pub is None:
            self._ctx = zmq.Context()
            self._pub = self._ctx.socket(zmq.PUB)
            self._pub.setsockopt(zmq.LINGER, 1000)
            # a fresh PUB drops what it sends before the handshake (Flask sleeps 0.25 s once): wait for it
            monitor = self._pub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self._pub.connect(f"tcp://127.0.0.1:{self.zmq_port}")
            if not monitor.poll(10_000):
                raise AssertionError(f"nothing bound OpenAlgo's ZMQ_PORT {self.zmq_port} within 10 s")
            monitor.recv_multipart()
            self._pub.disable_monitor()
            monitor.close(linger=0)
        self._pub.send_multipart([topic.encode(), json.dumps(payload).encode()])

    def invalidate(self, user: str, cache_type: str = "ALL") -> None:
        self.publish(
            f"CACHE_INVALIDATE_{cache_type}_{user}", {"action": "invalidate", "user_id": user, "cache_type": cache_type}
        )

    def close(self) -> None:
        if self._pub is not None:
            self._pub.close(linger=0)
        if self._ctx is not None:
            self._ctx.term()
        self._conn.close()


async def publish_until(
    fake: FakeOpenAlgo, send: Callable[[], None], done: Callable[[], bool], within: float = 10.0
) -> int:
    """Flask's publishes are at-most-once (a PUB drops what it sends before the SUB's subscription
    reaches it): send again every half second until `done()`; how many sends it took."""
    deadline = asyncio.get_running_loop().time() + within
    sends = 0
    while True:
        await asyncio.to_thread(send)
        sends += 1
        step_end = min(deadline, asyncio.get_running_loop().time() + 0.5)
        while asyncio.get_running_loop().time() < step_end:
            if done():
                return sends
            await asyncio.sleep(0.01)
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"not observed within {within} s after {sends} publish(es)")


def order_update(user: str, broker: str = "zerodha", **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "order_update",
        "user_id": user,
        "mode": "live",
        "broker": broker,
        "orderid": "240101000000123",
        "symbol": "RELIANCE",
        "exchange": "NSE",
        "action": "BUY",
        "quantity": 10,
        "price": 2500.5,
        "trigger_price": 0.0,
        "pricetype": "LIMIT",
        "product": "MIS",
        "order_status": "trigger pending",
        "filled_quantity": 0,
        "pending_quantity": 10,
        "average_price": 0.0,
        "rejection_reason": "",
    }
    event.update(overrides)
    return event
