"""OpenAlgo's `.env`, read with dotenv semantics (quotes, `export`, spaces around `=`).

OpenAlgo loads its `.env` with override, so a value in the file beats the process environment;
a key missing from the file falls back to the environment (Docker passes some that way).
Secrets (pepper, salt) are kept out of every repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from openalgo_proxy.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///db/openalgo.db"
DEFAULT_STATS_FILE = "log/ws_proxy_stats.json"
MIN_PEPPER = 32


@dataclass(frozen=True)
class OpenAlgoEnv:
    """What drop-in mode needs from an OpenAlgo installation's environment."""

    root: Path
    pepper: str = field(repr=False)
    fernet_salt: str = field(repr=False)  # "" = the legacy static salt
    database_url: str = field(repr=False)  # a PostgreSQL URL may carry a password
    broker_api_key: str = field(repr=False)
    zmq_host: str
    zmq_port: int
    websocket_host: str
    websocket_port: int
    host_server: str
    stats_file: Path
    session_expiry_time: str

    @property
    def zmq_endpoint(self) -> str:
        return f"tcp://{self.zmq_host}:{self.zmq_port}"


def _env_file(root: Path) -> Path:
    for candidate in (root / ".env", Path("/tmp/.env")):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no OpenAlgo .env in {root} (nor /tmp/.env): is {root} an OpenAlgo installation?")


def _port(values: Mapping[str, str], name: str, default: int) -> int:
    text = values.get(name) or str(default)
    try:
        port = int(text.strip())
    except ValueError:
        raise ConfigError(f"OpenAlgo .env: {name}={text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"OpenAlgo .env: {name}={port} is not a port number")
    return port


def load_env(
    root: str | Path, env_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> OpenAlgoEnv:
    """The installation at `root` (its `.env`, or `env_file`); ConfigError says what is wrong."""
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise ConfigError(f"OpenAlgo folder {base} does not exist")
    path = Path(env_file) if env_file is not None else _env_file(base)
    try:
        raw = dotenv_values(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    process = os.environ if environ is None else environ
    values: dict[str, str] = {k: v for k, v in process.items()}
    values.update({k: v for k, v in raw.items() if v is not None})

    def get(name: str, default: str = "") -> str:
        return (values.get(name) or default).strip()

    pepper = get("API_KEY_PEPPER")
    if len(pepper) < MIN_PEPPER:
        raise ConfigError(f"OpenAlgo .env {path}: API_KEY_PEPPER is missing or shorter than {MIN_PEPPER} characters")
    stats = Path(get("WS_PROXY_STATS_FILE", DEFAULT_STATS_FILE))
    return OpenAlgoEnv(
        root=base,
        pepper=pepper,
        fernet_salt=get("FERNET_SALT"),
        database_url=get("DATABASE_URL", DEFAULT_DATABASE_URL),
        broker_api_key=get("BROKER_API_KEY"),
        zmq_host=get("ZMQ_HOST", "127.0.0.1"),
        zmq_port=_port(values, "ZMQ_PORT", 5555),
        websocket_host=get("WEBSOCKET_HOST", "127.0.0.1"),
        websocket_port=_port(values, "WEBSOCKET_PORT", 8765),
        host_server=get("HOST_SERVER", "http://127.0.0.1:5000"),
        stats_file=stats if stats.is_absolute() else base / stats,
        session_expiry_time=get("SESSION_EXPIRY_TIME", "03:00"),
    )
