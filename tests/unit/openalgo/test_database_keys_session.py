"""The database reader, the API key index and watcher, and the broker session, on a fixture SQLite install."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from openalgo_proxy.brokers.credentials import CredentialsUnavailable
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.openalgo.database import SqliteDatabase, open_database, sqlite_path
from openalgo_proxy.openalgo.dropin import Installation, browser_origins, detect_broker, proxy_settings_tree
from openalgo_proxy.openalgo.env import load_env
from openalgo_proxy.openalgo.keys import ApiKeyIndex, ApiKeyWatcher
from openalgo_proxy.openalgo.session import OpenAlgoSession
from tests.openalgo_support import FakeOpenAlgo
from tests.support import wait_for


@pytest.fixture(params=[False, True], ids=["fernet-salt", "legacy-salt"])
def install(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeOpenAlgo]:
    fake = FakeOpenAlgo(tmp_path, zmq_port=1, websocket_port=2, legacy_salt=request.param)
    yield fake
    fake.close()


def test_sqlite_url_rules(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///db/openalgo.db", tmp_path) == tmp_path / "db" / "openalgo.db"
    assert sqlite_path("sqlite:////var/lib/oa.db", tmp_path) == Path("/var/lib/oa.db")
    with pytest.raises(ConfigError, match="not supported"):
        open_database("mysql://x/y", tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        open_database("sqlite:///db/none.db", tmp_path)


def test_database_is_opened_read_only(install: FakeOpenAlgo) -> None:
    install.set_api_key("alice")
    db = SqliteDatabase(install.db_path)
    try:
        assert [r.user_id for r in db.api_keys()] == ["alice"]
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            db._conn.execute("DELETE FROM api_keys")
        assert [r.user_id for r in db.api_keys()] == ["alice"]
    finally:
        db.close()


async def test_key_index_lookup_regeneration_and_removal(install: FakeOpenAlgo) -> None:
    alice = install.set_api_key("alice")
    bob = install.set_api_key("bob")
    inst = Installation.open(install.root)
    index = ApiKeyIndex(inst.fernet, inst.env.pepper)
    watcher = ApiKeyWatcher(inst.db, index, interval=0.05)
    await watcher.load()
    owner = index.lookup(alice)
    assert owner is not None and owner.user_id == "alice"
    assert index.lookup(bob) is not None and index.lookup(bob).user_id == "bob"  # type: ignore[union-attr]
    assert index.lookup("ab" * 32) is None and index.lookup("") is None
    assert await watcher.poll_once() == set()  # nothing changed
    generation = index.generation
    alice2 = install.set_api_key("alice")
    assert await watcher.poll_once() == {"alice"}
    assert index.generation > generation
    assert not index.contains(owner.digest) and index.lookup(alice) is None
    assert index.lookup(alice2) is not None and index.lookup(bob) is not None
    install.delete_api_key("bob")
    assert await watcher.poll_once() == {"bob"}
    assert index.lookup(bob) is None
    inst.close()


async def test_wrong_pepper_refuses_every_key(install: FakeOpenAlgo) -> None:
    install.set_api_key("alice")
    inst = Installation.open(install.root)
    index = ApiKeyIndex(inst.fernet, inst.env.pepper + "-rotated")
    await ApiKeyWatcher(inst.db, index).load()
    assert len(index) == 0 and index.unreadable == {"alice"}
    inst.close()


async def test_session_reads_zerodha_and_angel_rows(install: FakeOpenAlgo) -> None:
    inst = Installation.open(install.root)
    install.login("alice", "zerodha", "kiteapp:tok-1")
    zerodha = OpenAlgoSession(inst.db, inst.fernet, "zerodha", "env-key")
    assert await zerodha.reread()
    creds = zerodha.current()
    assert (creds.api_key, creds.access_token, creds.generation) == ("kiteapp", "tok-1", 1)
    assert zerodha.user == "alice" and "tok-1" not in repr(creds)
    assert detect_broker(inst) == "zerodha"
    install.login("alice", "angel", "Bearer jwt-1", feed_token="feed-1", client_id="A123")
    angel = OpenAlgoSession(inst.db, inst.fernet, "angel", "smartapi-key")
    await angel.reread()
    a = angel.current()
    assert (a.api_key, a.client_code, a.access_token, a.feed_token) == ("smartapi-key", "A123", "jwt-1", "feed-1")
    install.login("carol", "fyers", "x")
    with pytest.raises(ConfigError, match="several brokers"):
        detect_broker(inst)
    with pytest.raises(ConfigError, match="chain mode"):
        detect_broker(inst, "carol")
    inst.close()


async def test_session_refresh_waits_for_a_new_login_and_revoke_stops(install: FakeOpenAlgo) -> None:
    inst = Installation.open(install.root)
    install.login("alice", "zerodha", "kiteapp:tok-1")
    session = OpenAlgoSession(inst.db, inst.fernet, "zerodha", "", poll_interval=60)
    seen: list[object] = []
    session.on_change(seen.append)
    await session.reread()
    session.start()
    waiter = asyncio.ensure_future(session.refresh(1))  # the broker refused session 1
    await asyncio.sleep(0.1)
    assert not waiter.done()  # the same dead token is not handed out again
    session.invalidate("bob")  # someone else's invalidation: no re-read
    await asyncio.sleep(0.05)
    assert not waiter.done()
    install.login("alice", "zerodha", "kiteapp:tok-2")
    session.invalidate("alice")
    fresh = await asyncio.wait_for(waiter, 5)
    assert fresh.access_token == "tok-2" and fresh.generation == 2
    install.logout("alice")
    session.invalidate("alice")
    await wait_for(lambda: seen[-1] is None, 5)
    with pytest.raises(CredentialsUnavailable, match="logged out"):
        session.current()
    await session.stop()
    inst.close()


def test_served_hosts_follow_the_listen_address_and_host_server(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"API_KEY_PEPPER={'p' * 40}\nHOST_SERVER=https://Trade.Example.com\nWEBSOCKET_HOST=127.0.0.1\n"
    )
    tree = proxy_settings_tree(load_env(tmp_path, environ={}))
    assert "trade.example.com" in tree["allowed_hosts"] and "localhost" in tree["allowed_hosts"]
    assert tree["allowed_origins"] == ["http://trade.example.com", "https://trade.example.com"]
    assert (tree["dialect"], tree["max_message_bytes"]) == ("openalgo", 1 << 20)
    (tmp_path / ".env").write_text(f"API_KEY_PEPPER={'p' * 40}\nWEBSOCKET_HOST=0.0.0.0\n")
    assert proxy_settings_tree(load_env(tmp_path, environ={}))["allowed_hosts"] == []  # Docker: any name


def test_browser_origins() -> None:
    assert browser_origins("https://Trade.example.com") == ["http://trade.example.com", "https://trade.example.com"]
    assert browser_origins("http://127.0.0.1:5000") == ["http://127.0.0.1:5000", "https://127.0.0.1:5000"]
    assert browser_origins("nonsense") == []
