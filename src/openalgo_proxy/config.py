"""One typed configuration: TOML file < OPENALGO_PROXY_* environment < command-line flags.

Unknown keys are errors. Nested keys use ``__`` in the environment:
``OPENALGO_PROXY_PROXY__PORT=9000`` sets ``[proxy] port = 9000``.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from openalgo_proxy.errors import ConfigError

ENV_PREFIX = "OPENALGO_PROXY_"
CONFIG_ENV = "OPENALGO_PROXY_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProxySettings(_Section):
    host: str = Field("127.0.0.1", description="address the WebSocket/HTTP listener binds")
    port: int = Field(8765, ge=0, le=65535, description="WebSocket and HTTP port (0 = any free port)")
    bus: list[str] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5555"],
        description="bus endpoints the proxy connects its SUB socket to (feeds or forwarders)",
    )
    ping_interval: float = Field(30.0, gt=0, description="seconds between protocol pings to each client")
    ping_timeout: float = Field(10.0, gt=0, description="close a client that does not answer a ping within this")
    handshake_timeout: float = Field(10.0, gt=0, description="seconds to complete the HTTP upgrade")
    close_timeout: float = Field(5.0, gt=0, description="seconds a close frame stays readable before the socket is cut")
    max_message_bytes: int = Field(65536, ge=256, description="largest inbound client message (close 1009 above)")
    send_buffer_bytes: int = Field(
        262144, ge=4096, description="per-client outbound budget; above it ticks conflate per topic"
    )
    socket_send_buffer: int = Field(65536, ge=4096, description="SO_SNDBUF of client sockets (kernel share of budget)")
    slow_client_grace: float = Field(5.0, gt=0, description="seconds over budget before close 4008")
    max_subscriptions_per_connection: int = Field(3000, ge=1)
    max_connections: int = Field(20000, ge=1, description="connections in total; more are refused with 1013")
    default_broker: str = Field("", description="broker name reported before any feed announced itself")


class FeedSettings(_Section):
    broker: str = Field(
        "angel-simulator",
        description="angel-simulator (Angel adapter vs a local Angel simulator) | simulator | angel | zerodha",
    )
    bus: str = Field("tcp://127.0.0.1:5555", description="bus endpoint of the feed's XPUB socket")
    bus_connect: bool = Field(False, description="connect to a forwarder instead of binding")
    ws_url: str | None = Field(None, description="broker streaming URL override (simulators, tests)")
    api_url: str | None = Field(None, description="broker REST base URL override")
    instruments: str | None = Field(None, description="instrument master URL or file override")
    cache_dir: str | None = Field(None, description="instrument master cache folder (default ~/.cache/openalgo-proxy)")
    exchanges: list[str] = Field(
        default_factory=list, description="client exchanges this feed serves (empty = all its account has)"
    )
    stall_timeout: float = Field(15.0, gt=0, description="seconds with nothing received before a forced reconnect")
    ticks_per_second: float = Field(2.0, gt=0, description="simulated market: ticks per instrument per second")
    status_interval: float = Field(2.0, gt=0, description="seconds between #status publications")
    coalesce_window: float = Field(0.02, ge=0, description="seconds to batch upstream (un)subscribes")
    seed: int | None = Field(None, description="simulated market random seed")
    metrics_host: str = Field("127.0.0.1", description="address of the feed's /metrics, /healthz, /status listener")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="feed metrics port (None or 0 = no metrics listener)"
    )
    standby: bool = Field(
        False, description="start passive and take the account over when the active feed's status goes stale"
    )
    standby_watch: list[str] = Field(
        default_factory=list,
        description="where a standby's SUB watches #status (the forwarder's proxy side, e.g. tcp://127.0.0.1:5556)",
    )
    takeover_after: float = Field(5.0, gt=0, description="seconds without the active feed's status before takeover")


class AuthSettings(_Section):
    mode: Literal["none", "api_key"] = Field("none", description="none (loopback only) | api_key")
    api_keys: list[SecretStr] = Field(default_factory=list, description="accepted API keys (api_key mode)")
    deadline: float = Field(10.0, gt=0, description="seconds to authenticate before close 4401")


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    proxy: ProxySettings = Field(default_factory=ProxySettings)  # type: ignore[arg-type]
    feed: FeedSettings = Field(default_factory=FeedSettings)  # type: ignore[arg-type]
    auth: AuthSettings = Field(default_factory=AuthSettings)  # type: ignore[arg-type]
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _unknown_env_keys() -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_ENV}
    bad = []
    for name in os.environ:
        if not name.startswith(ENV_PREFIX) or name in known or name == ENV_PREFIX + "API_KEY":
            continue
        section = name[len(ENV_PREFIX) :].split("__", 1)[0]
        if ENV_PREFIX + section not in known:
            bad.append(name)
    return bad


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the effective settings; ConfigError with a readable message on any problem."""
    file_values: dict[str, Any] = {}
    path = path or os.environ.get(CONFIG_ENV)
    if path:
        try:
            file_values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    bad_env = _unknown_env_keys()
    if bad_env:
        raise ConfigError(f"unknown environment setting(s): {', '.join(sorted(bad_env))}")
    # file < env: pydantic-settings gives init kwargs priority, so merge env over the file ourselves
    try:
        env_only = Settings().model_dump(exclude_unset=True)
        values = _deep_merge(_deep_merge(file_values, env_only), overrides or {})
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        lines.append(f"{where}: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def show(settings: Settings) -> str:
    """The effective configuration as JSON, secrets masked."""
    data = settings.model_dump(mode="json")
    auth = data.get("auth", {})
    if auth.get("api_keys"):
        auth["api_keys"] = ["**********" for _ in auth["api_keys"]]
    return json.dumps(data, indent=2)
