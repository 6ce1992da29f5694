"""The same reader on a real PostgreSQL server (a private cluster started by the tests)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from openalgo_proxy.openalgo.database import PostgresDatabase
from openalgo_proxy.openalgo.dropin import Installation
from openalgo_proxy.openalgo.keys import ApiKeyIndex, ApiKeyWatcher
from openalgo_proxy.openalgo.session import OpenAlgoSession
from tests.openalgo_support import FakeOpenAlgo
from tests.postgres_support import PASSWORD, create_database

pytestmark = pytest.mark.xdist_group("postgres")


@pytest.fixture
def install(tmp_path: Path, postgres_url: str) -> Iterator[FakeOpenAlgo]:
    url = create_database(postgres_url, "openalgo_" + secrets.token_hex(4))
    fake = FakeOpenAlgo(
        tmp_path, zmq_port=1, websocket_port=2, database_url=url.replace("postgresql://", "postgresql+psycopg2://")
    )
    yield fake
    fake.close()


async def test_keys_and_session_from_postgres(install: FakeOpenAlgo) -> None:
    alice = install.set_api_key("alice")
    install.login("alice", "angel", "jwt-1", feed_token="feed-1", client_id="A1")
    inst = Installation.open(install.root)
    assert isinstance(inst.db, PostgresDatabase)
    assert PASSWORD not in inst.db.describe() and "(read-only)" in inst.db.describe()
    index = ApiKeyIndex(inst.fernet, inst.env.pepper)
    watcher = ApiKeyWatcher(inst.db, index)
    await watcher.load()
    assert index.lookup(alice) is not None
    install.set_api_key("alice")
    assert await watcher.poll_once() == {"alice"} and index.lookup(alice) is None
    session = OpenAlgoSession(inst.db, inst.fernet, "angel", "smartapi")
    await session.reread()
    creds = session.current()
    assert (creds.access_token, creds.feed_token, creds.client_code) == ("jwt-1", "feed-1", "A1")
    inst.close()


def test_postgres_sessions_are_read_only(install: FakeOpenAlgo) -> None:
    install.set_api_key("alice")
    db = PostgresDatabase(install.database_url)
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db._conn.execute("DELETE FROM api_keys")
        assert [r.user_id for r in db.api_keys()] == ["alice"]
    finally:
        db.close()
