"""Drop-in wiring: one OpenAlgo installation -> the proxy side and the feed side of our system.

Proxy side (`serve --openalgo`): OpenAlgo's API keys (index + watcher), its listen address, its
browser origin (`HOST_SERVER`), its stats file. Feed side (`feed --openalgo`): its stored broker
session, the bridge on its `ZMQ_PORT`, order updates republished on our bus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq
from cryptography.fernet import Fernet

from openalgo_proxy import bus_ipc, topics
from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.credentials import CredentialProvider
from openalgo_proxy.bus import run_seq_base
from openalgo_proxy.bus_engine import FeedBus
from openalgo_proxy.config import Settings
from openalgo_proxy.control import OrderUpdate, encode_order_update
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.openalgo.bridge import OpenAlgoBridge
from openalgo_proxy.openalgo.crypto import DecryptError, decrypt, fernet_for
from openalgo_proxy.openalgo.database import Database, open_database
from openalgo_proxy.openalgo.env import OpenAlgoEnv, load_env
from openalgo_proxy.openalgo.feed_adapter import AdapterFactory, SessionBoundAdapter
from openalgo_proxy.openalgo.keys import ApiKeyIndex, ApiKeyWatcher
from openalgo_proxy.openalgo.session import BROKER_NAMES, OpenAlgoSession
from openalgo_proxy.openalgo.stats import StatsWriter
from openalgo_proxy.proxy.origin import LOOPBACK_NAMES, WILDCARD_ADDRESSES, host_name

log = logging.getLogger(__name__)


@dataclass
class Installation:
    env: OpenAlgoEnv
    fernet: Fernet
    db: Database

    @classmethod
    def open(cls, root: str | Path, env_file: str | Path | None = None) -> Installation:
        env = load_env(root, env_file)
        db = open_database(env.database_url, env.root)
        log.info("openalgo: installation %s, database %s", env.root, db.describe())
        return cls(env, fernet_for(env.pepper, env.fernet_salt), db)

    def close(self) -> None:
        self.db.close()


def browser_origins(host_server: str) -> list[str]:
    """HOST_SERVER and its other scheme (a page behind a TLS-terminating nginx is https)."""
    parts = urlsplit(host_server.strip())
    if not parts.scheme or not parts.netloc:
        return []
    netloc = parts.netloc.lower()
    return [f"http://{netloc}", f"https://{netloc}"]


def served_hosts(env: OpenAlgoEnv) -> list[str]:
    """Host names to answer to (DNS-rebinding defence): loopback, the listen address and HOST_SERVER's
    name (nginx passes the site's name); empty (any name) when listening on a wildcard address."""
    if env.websocket_host.strip() in WILDCARD_ADDRESSES:
        return []
    site = urlsplit(env.host_server.strip()).hostname
    return sorted(LOOPBACK_NAMES | {host_name(env.websocket_host)} | ({site} if site else set()))


def proxy_settings_tree(env: OpenAlgoEnv) -> dict[str, Any]:
    """Where drop-in mode listens and which pages it serves: OpenAlgo's own values."""
    return {
        "host": env.websocket_host,
        "port": env.websocket_port,
        "allowed_origins": browser_origins(env.host_server),
        "allowed_hosts": served_hosts(env),
        "max_message_bytes": 1 << 20,  # the SDK re-subscribes everything in one frame after a reconnect
        "dialect": "openalgo",
    }


DROP_IN_LIMITS = {
    # OpenAlgo's chart app, Excel add-in and older SDKs send one frame per symbol: a 300-symbol
    # watchlist (subscribe, and later unsubscribe) must pass at once
    "command_burst": 1000,
    "commands_per_second": 200.0,
}


def detect_broker(installation: Installation, user: str | None = None) -> str:
    """The broker the (single) logged-in OpenAlgo user is on, when we stream it natively."""
    rows = [r for r in installation.db.auth_rows() if not r.revoked and r.broker and (user is None or r.name == user)]
    brokers = sorted({r.broker for r in rows})
    if not brokers:
        raise ConfigError("no OpenAlgo user is logged in to a broker yet: log in to OpenAlgo, or give --broker")
    if len(brokers) > 1:
        raise ConfigError(f"OpenAlgo users are logged in to several brokers ({', '.join(brokers)}): give --broker")
    broker = brokers[0]
    if broker not in BROKER_NAMES:
        raise ConfigError(
            f"OpenAlgo is logged in to {broker}, which this proxy does not stream natively: "
            "use chain mode (--broker openalgo --upstream ws://HOST:PORT, see docs/openalgo.md)"
        )
    return broker


def adapter_factory(broker: str, options: FeedOptions) -> AdapterFactory:
    """The native adapter for `broker`, taking OpenAlgo's session instead of logging in."""

    def make(provider: CredentialProvider) -> BrokerAdapter:
        if broker == "angel":
            from openalgo_proxy.brokers.angel.adapter import AngelAdapter

            return AngelAdapter(options, credential_provider=provider)
        from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter

        return KiteAdapter(options, credential_provider=provider)

    if broker not in BROKER_NAMES:
        raise ConfigError(f"drop-in mode streams {', '.join(BROKER_NAMES)} natively, not {broker!r}")
    return make


class OrderRelay:
    """Order updates from the bridge onto our bus as `#orders|BROKER|ACCOUNT`."""

    def __init__(self) -> None:
        self.publisher: FeedBus | None = None
        self._seq = run_seq_base(time.time())
        self.published = 0
        self.dropped = 0

    def __call__(self, broker: str, order: OrderUpdate) -> None:
        try:
            topic = topics.orders_topic(broker, order.user_id)
        except ValueError:
            self.dropped += 1
            return
        if self.publisher is None:
            self.dropped += 1
            return
        self._seq += 1
        self.publisher.publish(topic, self._seq, encode_order_update(order))
        self.published += 1


class FeedSide:
    """The session, the bridge and the session-bound adapter of a drop-in feed."""

    def __init__(
        self,
        installation: Installation,
        broker: str,
        options: FeedOptions,
        *,
        user: str | None = None,
        session_poll: float = 30.0,
    ) -> None:
        env = installation.env
        self.installation = installation
        self.session = OpenAlgoSession(
            installation.db, installation.fernet, broker, env.broker_api_key, user, poll_interval=session_poll
        )
        self.adapter = SessionBoundAdapter(self.session, adapter_factory(broker, options), broker)
        self.orders = OrderRelay()
        self.bridge = OpenAlgoBridge(env.zmq_endpoint, self._invalidate, self.orders)

    def _invalidate(self, cache_type: str, user: str) -> None:
        self.session.invalidate(user)

    async def start(self) -> None:
        """Before the feed starts: read the session once, follow it, bind OpenAlgo's ZMQ port."""
        await self.session.reread()
        self.session.start()
        self.bridge.start()

    def attach(self, publisher: FeedBus) -> None:
        self.orders.publisher = publisher

    async def stop(self) -> None:
        await self.bridge.stop()
        await self.session.stop()


def user_api_key(installation: Installation, user: str | None) -> tuple[str, str]:
    """(user, plaintext API key) of the OpenAlgo user whose key chain mode presents upstream."""
    rows = installation.db.api_keys()
    if user is not None:
        rows = [r for r in rows if r.user_id == user]
    if len(rows) != 1:
        who = f"user {user}" if user else "a single user"
        raise ConfigError(f"chain mode needs the API key of {who} in OpenAlgo's api_keys table: give --openalgo-user")
    try:
        key = decrypt(installation.fernet, rows[0].key_encrypted)
    except DecryptError:
        raise ConfigError(
            "the API key in OpenAlgo's database does not decrypt (API_KEY_PEPPER or FERNET_SALT)"
        ) from None
    return rows[0].user_id, key


class ChainSide:
    """Chain mode inside a drop-in: the upstream is OpenAlgo's own proxy moved to a private port.

    The directory is OpenAlgo's `symtoken` (exactly its symbol names), the upstream key is the user's
    own, and the bridge forwards cache invalidations to the upstream's ZMQ port, so it refreshes its
    broker tokens as it would with Flask."""

    def __init__(
        self, installation: Installation, options: FeedOptions, *, user: str | None = None, upstream_zmq: str | None
    ) -> None:
        from openalgo_proxy.brokers.openalgo.adapter import ChainAdapter

        self.installation = installation
        self.user, key = user_api_key(installation, user)
        symbols = installation.db.symbols() if options.instruments is None else None
        if symbols is not None and not symbols:
            raise ConfigError("OpenAlgo's symtoken table is empty: log in to OpenAlgo once, or give --instruments")
        self.adapter = ChainAdapter(options, api_key=key, symbols=symbols)
        self.orders = OrderRelay()
        self.upstream_zmq = upstream_zmq
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._forward: zmq.Socket[bytes] | None = None
        self.forwarded = 0
        self.bridge = OpenAlgoBridge(installation.env.zmq_endpoint, self._invalidate, self.orders)

    def _invalidate(self, cache_type: str, user: str) -> None:
        if self._forward is None:
            return
        topic = f"CACHE_INVALIDATE_{cache_type}_{user}"
        payload = {"action": "invalidate", "user_id": user, "cache_type": cache_type}
        self._forward.send_multipart([topic.encode(), json.dumps(payload).encode()])
        self.forwarded += 1

    async def start(self) -> None:
        if self.upstream_zmq:
            self._ctx = zmq.Context()
            self._forward = self._ctx.socket(zmq.PUB)
            self._forward.setsockopt(zmq.LINGER, 1000)
            self._forward.connect(self.upstream_zmq)
        self.bridge.start()

    def attach(self, publisher: FeedBus) -> None:
        self.orders.publisher = publisher

    async def stop(self) -> None:
        await self.bridge.stop()
        if self._forward is not None:
            self._forward.close(linger=0)
            self._forward = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None


class ProxySide:
    """OpenAlgo's keys, listen address and stats file around one ProxyServer."""

    def __init__(
        self,
        installation: Installation,
        settings: Settings,
        *,
        key_poll: float = 2.0,
        stats_interval: float = 10.0,
    ) -> None:
        from openalgo_proxy.openalgo.auth import OpenAlgoAuthenticator
        from openalgo_proxy.proxy.server import ProxyServer

        self.installation = installation
        self.index = ApiKeyIndex(installation.fernet, installation.env.pepper)
        self.watcher = ApiKeyWatcher(installation.db, self.index, key_poll)
        self.server = ProxyServer(
            settings.proxy,
            settings.auth.model_copy(update={"mode": "api_key"}),  # OpenAlgo's keys: always required
            limits=settings.limits,
            tls=settings.tls,
            authenticator=OpenAlgoAuthenticator(settings.auth, self.index),
        )
        self.stats = StatsWriter(installation.env.stats_file, self.snapshot, stats_interval)

    def snapshot(self) -> dict[str, Any]:
        server = self.server
        feeds = server.feeds()
        return {
            "total_connections": sum(1 for f in feeds.values() if f.get("state") == "connected"),
            "total_symbols": len({(t.exchange, t.symbol) for t in server.hub.topics.values()}),
            "clients_connected": server.open_count,
            "brokers": sorted(feeds),
        }

    async def start(self) -> None:
        await self.watcher.load()
        await self.server.start()
        self.watcher.start()
        self.stats.start()

    async def stop(self) -> None:
        await self.stats.stop()
        await self.watcher.stop()
        await self.server.stop()
        self.installation.close()


def private_bus(root: str | Path) -> str:
    """The bus of the drop-in for this installation: an ipc:// socket in this user's private bus
    directory (off OpenAlgo's ZMQ_PORT, unreachable by other users), one per installation."""
    name = "dropin-" + hashlib.sha256(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:12]
    return f"{bus_ipc.IPC}{bus_ipc.private_dir() / name}"


def refuse_bus_on_zmq_port(env: OpenAlgoEnv, endpoints: list[str]) -> None:
    """Flask's PUB connects to ZMQ_PORT: our XPUB there would swallow (and refuse) its frames."""
    for endpoint in endpoints:
        if not endpoint.startswith("tcp://"):
            continue
        port = endpoint.rsplit(":", 1)[-1]
        if port == str(env.zmq_port):
            raise ConfigError(
                f"our bus {endpoint} is on OpenAlgo's ZMQ_PORT {env.zmq_port}, where the bridge must listen: "
                "give --bus another endpoint (run picks a private one by itself)"
            )
