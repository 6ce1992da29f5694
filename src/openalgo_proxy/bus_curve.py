"""ZeroMQ CURVE on the bus, for tcp:// across hosts.

Roles: every socket that binds (a feed's XPUB, a forwarder's XSUB and XPUB) is a CURVE *server*
holding the bus server key; every socket that connects (a proxy's SUB, a feed connecting to a
forwarder, a standby's watcher) is a CURVE *client* holding a client key and the server's public
key. A client talks only to a peer that proves the server key, so a proxy accepts data only from
authenticated feeds; a server admits (through ZAP) only the client keys listed in the key folder,
so nobody else can read the bus or publish on a forwarder.

The key folder (``[bus] keys_dir``, mode 0700) holds ``server.key`` (public) and
``server.key_secret``, and ``clients/NAME.key`` (public) with ``clients/NAME.key_secret`` (secret
files mode 0600, in ZeroMQ's certificate format). ``openalgo-proxy bus-keys`` creates them. A host
needs only its own part: a feed or forwarder host ``server.key_secret`` and ``clients/*.key``; a
proxy host ``server.key`` and its own ``clients/NAME.key_secret``.

The settings are applied as the defaults of the process's ZeroMQ context, so every bus socket the
component creates carries them (the ZAP handler's own socket is made before they are set).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zmq
from zmq.auth.certs import load_certificate
from zmq.auth.thread import ThreadAuthenticator

from openalgo_proxy.config import BusSettings
from openalgo_proxy.errors import ConfigError

log = logging.getLogger(__name__)

SERVER = "server"
CLIENTS = "clients"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Role(enum.Enum):
    SERVER = "server"  # binds: feeds (unless connecting to a forwarder), forwarders
    CLIENT = "client"  # connects: proxies, feeds with bus_connect, standby watchers


def default_keys_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "openalgo-proxy" / "bus-keys"


def keys_dir(settings: BusSettings) -> Path:
    return Path(settings.keys_dir).expanduser() if settings.keys_dir else default_keys_dir()


def _certificate(public: bytes, secret: bytes | None) -> bytes:
    lines = [
        f"#   openalgo-proxy bus key, created {datetime.now(UTC).isoformat(timespec='seconds')}",
        "#   " + ("SECRET: never copy this file to a host that does not need it" if secret else "public"),
        "metadata",
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return ("\n".join(lines) + "\n").encode()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode`; FileExistsError if it exists (keys are never overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@dataclass(frozen=True, slots=True)
class KeyPair:
    public: bytes  # Z85, 40 characters
    secret: bytes | None


class BusKeys:
    """The bus key folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.clients = directory / CLIENTS

    def _private_dirs(self) -> None:
        for folder in (self.directory, self.clients):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)

    def _create(self, folder: Path, name: str) -> KeyPair:
        if not _NAME.match(name):
            raise ConfigError("bus key names are 1-64 letters, digits, '.', '_' or '-'")
        self._private_dirs()
        public, secret = zmq.curve_keypair()
        try:
            _write_new(folder / f"{name}.key_secret", _certificate(public, secret), 0o600)
        except FileExistsError:
            raise ConfigError(f"bus key {folder / name} exists; keys are never overwritten") from None
        (folder / f"{name}.key").unlink(missing_ok=True)
        _write_new(folder / f"{name}.key", _certificate(public, None), 0o644)
        return KeyPair(public, secret)

    def create_server(self) -> KeyPair:
        return self._create(self.directory, SERVER)

    def add_client(self, name: str) -> KeyPair:
        return self._create(self.clients, name)

    def _load(self, path: Path, *, secret: bool) -> KeyPair:
        if not path.is_file():
            raise ConfigError(f"bus key {path} does not exist; create it with `openalgo-proxy bus-keys`")
        try:
            public, secret_key = load_certificate(path)
        except OSError as exc:
            raise ConfigError(f"cannot read bus key {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"bus key {path} is not a ZeroMQ certificate") from exc
        if secret:
            if secret_key is None:
                raise ConfigError(f"bus key {path} has no secret key")
            mode = os.stat(path).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"bus secret key {path} is readable by other users; chmod 600 it")
        return KeyPair(public, secret_key if secret else None)

    def server_public(self) -> bytes:
        path = self.directory / f"{SERVER}.key"
        if not path.exists():
            path = self.directory / f"{SERVER}.key_secret"
        return self._load(path, secret=False).public

    def server(self) -> KeyPair:
        return self._load(self.directory / f"{SERVER}.key_secret", secret=True)

    def client(self, name: str) -> KeyPair:
        return self._load(self.clients / f"{name}.key_secret", secret=True)

    def client_names(self) -> list[str]:
        if not self.clients.is_dir():
            return []
        return sorted(p.name[: -len(".key")] for p in self.clients.glob("*.key"))


class BusGuard:
    """CURVE applied to a context; `close()` stops its ZAP handler (servers)."""

    def __init__(self, authenticator: ThreadAuthenticator | None) -> None:
        self._authenticator = authenticator

    def close(self) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None


def secure_context(ctx: zmq.Context[zmq.Socket[bytes]], settings: BusSettings, role: Role) -> BusGuard:
    """Make every socket `ctx` creates from now on a CURVE server or client (nothing when
    `[bus] curve` is off). ConfigError, in one line, when a key is missing or unsafe."""
    if not settings.curve:
        return BusGuard(None)
    keys = BusKeys(keys_dir(settings))
    if role is Role.SERVER:
        server = keys.server()
        allowed = keys.client_names()
        if not allowed:
            raise ConfigError(
                f"no bus client keys in {keys.clients}: no proxy could connect; "
                "add one with `openalgo-proxy bus-keys add NAME`"
            )
        authenticator = ThreadAuthenticator(ctx, log=logging.getLogger("openalgo_proxy.bus.zap"))
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(keys.clients))
        ctx.setsockopt(zmq.CURVE_SERVER, 1)
        ctx.setsockopt(zmq.CURVE_SECRETKEY, server.secret or b"")
        log.info("bus: CURVE server, %d client key(s) admitted from %s", len(allowed), keys.clients)
        return BusGuard(authenticator)
    client = keys.client(settings.client_key)
    ctx.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public())
    ctx.setsockopt(zmq.CURVE_PUBLICKEY, client.public)
    ctx.setsockopt(zmq.CURVE_SECRETKEY, client.secret or b"")
    log.info("bus: CURVE client with key %r", settings.client_key)
    return BusGuard(None)
