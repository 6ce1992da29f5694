"""One typed configuration: TOML file < OPENALGO_PROXY_* environment < command-line flags.

Unknown keys are errors. Nested keys use ``__`` in the environment:
``OPENALGO_PROXY_PROXY__PORT=9000`` sets ``[proxy] port = 9000``.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from openalgo_proxy.brokers.environment import BrokerSettings
from openalgo_proxy.brokers.registry import LOCAL_SUFFIX, settings_classes
from openalgo_proxy.brokers.registry import names as broker_names
from openalgo_proxy.bus_ipc import default_endpoint
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.history.paths import default_store_dir

ENV_PREFIX = "OPENALGO_PROXY_"
CONFIG_ENV = "OPENALGO_PROXY_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProxySettings(_Section):
    host: str = Field("127.0.0.1", description="address the WebSocket/HTTP listener binds")
    port: int = Field(8765, ge=0, le=65535, description="WebSocket and HTTP port (0 = any free port)")
    bus: list[str] = Field(
        default_factory=lambda: [default_endpoint()],
        description="bus endpoints the proxy connects its SUB socket to (feeds or forwarders); "
        "default ipc:// in this user's private directory",
    )
    ping_interval: float = Field(30.0, gt=0, description="seconds between protocol pings to each client")
    ping_timeout: float = Field(10.0, gt=0, description="close a client that does not answer a ping within this")
    handshake_timeout: float = Field(10.0, gt=0, description="seconds to complete the HTTP upgrade")
    first_byte_timeout: float = Field(
        3.0, gt=0, description="seconds from TCP connect (or TLS handshake) to the first byte of the request"
    )
    max_request_head_bytes: int = Field(
        16384, ge=1024, le=1048576, description="largest HTTP request head (request line + headers; 431 above)"
    )
    close_timeout: float = Field(5.0, gt=0, description="seconds a close frame stays readable before the socket is cut")
    max_message_bytes: int = Field(65536, ge=256, description="largest inbound client message (close 1009 above)")
    send_buffer_bytes: int = Field(
        262144, ge=4096, description="per-client outbound budget; above it ticks conflate per topic"
    )
    socket_send_buffer: int = Field(65536, ge=4096, description="SO_SNDBUF of client sockets (kernel share of budget)")
    slow_client_grace: float = Field(5.0, gt=0, description="seconds over budget before close 4008")
    max_subscriptions_per_connection: int = Field(3000, ge=1, description="subscriptions per connection")
    max_connections: int = Field(20000, ge=1, description="connections in total; more are refused with 1013")
    default_broker: str = Field("", description="broker name reported before any feed announced itself")
    dialect: Literal["seed", "openalgo"] = Field(
        "seed", description="client protocol: seed (README) | openalgo (OpenAlgo's proxy; default with --openalgo)"
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="extra browser Origins allowed ('*' = any); same-origin and no Origin are always allowed",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host header names accepted (DNS-rebinding defence; '*' = any). Empty: the loopback names and the "
            "listen address, or any name when listening on a wildcard address"
        ),
    )


class FeedSettings(_Section):
    broker: str = Field(
        "angel-simulator",
        description="a broker name from the registry: `openalgo-proxy feed --help` lists them (NAME, NAME-simulator)",
    )
    bus: str = Field(
        default_factory=default_endpoint,
        description="bus endpoint of the feed's XPUB socket (default ipc:// in this user's private directory)",
    )
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
    takeover_after: float = Field(
        5.0, gt=0, description="seconds without the active feed's status before takeover (>= 2.5 x status_interval)"
    )
    replay_from: str | None = Field(
        None, description="broker replay: first IST date (YYYY-MM-DD) or ISO date-time (default today)"
    )
    replay_to: str | None = Field(
        None, description="broker replay: last IST date, inclusive, or ISO date-time, exclusive (default: replay_from)"
    )
    replay_speed: str = Field("1", description="broker replay: factor on the recorded timing, or 'max'")

    @model_validator(mode="before")
    @classmethod
    def _broker_sections(cls, data: Any) -> Any:
        for key, value in data.items() if isinstance(data, dict) else ():
            if isinstance(value, dict) and key not in BROKER_SECTIONS:
                raise ValueError(
                    f"[feed.{key}]: no broker {key!r} has a section; brokers: {', '.join(BROKER_SECTIONS)}"
                )
        return data

    def section(self) -> BrokerSettings | None:
        """The chosen broker's `[feed.NAME]` section (its defaults and environment options when absent)."""
        name = self.broker.removesuffix(LOCAL_SUFFIX)
        given: BrokerSettings | None = getattr(self, name, None)
        return given or (BROKER_SECTIONS[name].load() if name in BROKER_SECTIONS else None)

    @field_validator("broker")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if value not in broker_names():
            raise ValueError(f"unknown broker {value!r}; choose from {', '.join(broker_names())}")
        return value

    @model_validator(mode="after")
    def _takeover_outlasts_status(self) -> FeedSettings:
        # a standby that gives up on fewer than ~2 missed statuses takes over from a live, merely busy primary
        if self.standby and self.takeover_after < 2.5 * self.status_interval:
            raise ValueError(
                f"takeover_after ({self.takeover_after} s) must be at least 2.5 x status_interval "
                f"({self.status_interval} s), or a busy primary looks dead"
            )
        return self


#: the brokers with a `[feed.NAME]` section, and the class in the broker's folder that validates it
BROKER_SECTIONS = settings_classes()

if TYPE_CHECKING:
    FeedSection = FeedSettings
else:  # FeedSettings with one optional field per broker section
    FeedSection = create_model(
        "FeedSection", __base__=FeedSettings, **{name: (cls | None, None) for name, cls in BROKER_SECTIONS.items()}
    )


JWT_ALGORITHMS = (
    *("HS256", "HS384", "HS512"),
    *("RS256", "RS384", "RS512"),
    *("ES256", "ES384", "ES512"),
    *("PS256", "PS384", "PS512"),
)
MIN_HMAC_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


class RoleSettings(_Section):
    exchanges: list[str] | None = Field(None, description="exchanges this role may subscribe to (unset = every one)")
    modes: list[Literal[1, 2, 3]] = Field(
        default_factory=lambda: [1, 2, 3],  # type: ignore[arg-type]
        description="modes this role may subscribe to (1 LTP, 2 Quote, 3 Depth)",
    )
    max_subscriptions: int | None = Field(
        None, ge=1, description="subscriptions per connection (unset = [proxy] max_subscriptions_per_connection)"
    )
    max_connections: int | None = Field(
        None, ge=1, description="concurrent connections per identity (unset = [limits] max_connections_per_identity)"
    )
    orders: list[str] = Field(
        default_factory=list,
        description="broker accounts whose order updates this role may receive ('*' = every account; empty = none)",
    )

    @field_validator("exchanges")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [name.strip().upper() for name in value]


class AuthSettings(_Section):
    mode: Literal["none", "api_key", "jwt"] = Field("none", description="none (loopback only) | api_key | jwt")
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="extra plain API keys accepted in api_key mode (role: default_role)"
    )
    keys_file: str | None = Field(
        None, description="hashed API key store (default $XDG_CONFIG_HOME/openalgo-proxy/keys.json)"
    )
    keys_secret: SecretStr | None = Field(
        None, description="HMAC secret for the key store (default: a keys.secret file beside keys_file)"
    )
    deadline: float = Field(10.0, gt=0, description="seconds to authenticate before close 4401")
    default_role: str = Field(
        "default", description="role of config api_keys, of JWTs without a role claim, and of auth mode none"
    )
    roles: dict[str, RoleSettings] = Field(
        default_factory=lambda: {"default": RoleSettings.model_validate({})}, description="roles by name"
    )
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256"], description="accepted JWT algorithms")
    jwt_secret: SecretStr | None = Field(None, description="HS* shared secret (at least 32 bytes)")
    jwt_previous_secret: SecretStr | None = Field(None, description="previous HS* secret, accepted during rotation")
    jwt_public_key_file: str | None = Field(None, description="PEM public key for RS*/ES*/PS* tokens")
    jwt_previous_public_key_file: str | None = Field(None, description="previous public key, accepted during rotation")
    jwt_audience: str | None = Field(None, description="required 'aud' claim (unset = not checked)")
    jwt_issuer: str | None = Field(None, description="required 'iss' claim (unset = not checked)")
    jwt_identity_claim: str = Field("sub", description="claim naming the identity (required in every token)")
    jwt_role_claim: str = Field("role", description="claim naming the role (missing = default_role)")
    jwt_leeway: float = Field(0.0, ge=0, le=300, description="seconds of clock skew allowed on exp/nbf/iat")
    jwt_max_lifetime: float = Field(
        2_592_000.0, gt=0, description="refuse tokens whose exp is further ahead than this many seconds (30 days)"
    )

    @field_validator("jwt_algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one algorithm")
        bad = [alg for alg in value if alg not in JWT_ALGORITHMS]
        if bad:
            raise ValueError(f"unsupported JWT algorithm(s) {bad}; choose from {list(JWT_ALGORITHMS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
        if self.default_role not in self.roles:
            raise ValueError(f"default_role {self.default_role!r} is not one of the roles {sorted(self.roles)}")
        if self.mode == "jwt":
            hmac_algs = [a for a in self.jwt_algorithms if a.startswith("HS")]
            if hmac_algs and self.jwt_secret is None:
                raise ValueError(f"jwt_algorithms {hmac_algs} need jwt_secret")
            if len(hmac_algs) != len(self.jwt_algorithms) and self.jwt_public_key_file is None:
                raise ValueError("public-key JWT algorithms need jwt_public_key_file")
            if hmac_algs and len(hmac_algs) != len(self.jwt_algorithms):
                raise ValueError("do not mix HS* and public-key algorithms in jwt_algorithms (key confusion)")
            minimum = max((MIN_HMAC_SECRET_BYTES[a] for a in hmac_algs), default=0)
            for secret in (self.jwt_secret, self.jwt_previous_secret):
                if secret is not None and len(secret.get_secret_value().encode()) < minimum:
                    raise ValueError(f"JWT secrets must be at least {minimum} bytes for {hmac_algs} (RFC 7518)")
        return self


class LimitSettings(_Section):
    max_connections_per_identity: int = Field(
        100, ge=1, description="concurrent connections per authenticated identity (close 4029 above)"
    )
    commands_per_second: float = Field(100.0, gt=0, description="sustained client commands per second per connection")
    command_burst: int = Field(200, ge=1, description="commands a connection may send at once before RATE_LIMITED")
    max_pending_handshakes: int = Field(
        1000, ge=1, description="connections still in the HTTP upgrade at once; more are cut at once"
    )
    max_pending_handshakes_per_address: int = Field(
        64, ge=1, description="connections from one IP address still in the HTTP upgrade; more are cut at once"
    )
    max_protocol_errors: int = Field(
        20, ge=1, description="protocol errors and rate-limited commands per minute before close 4029"
    )


class BusSettings(_Section):
    engine: Literal["zmq", "nats"] = Field(
        "zmq", description="zmq (one host, no server; default) | nats (a fleet across hosts on a NATS cluster)"
    )
    urls: list[str] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], description="NATS servers (engine nats); tls:// = TLS"
    )
    prefix: str = Field("oa", description="NATS subject prefix (several deployments can share one cluster)")
    user: str | None = Field(None, description="NATS user (engine nats)")
    password: SecretStr | None = Field(None, description="password of the NATS user")
    creds_file: str | None = Field(None, description="NATS credentials file (JWT + nkey seed; needs the nkeys package)")
    tls_ca_file: str | None = Field(
        None, description="CA bundle that verifies the NATS servers (TLS is always verified)"
    )
    tls_cert_file: str | None = Field(None, description="client certificate for NATS servers that require one")
    tls_key_file: str | None = Field(None, description="private key of tls_cert_file")
    lease_ttl: float = Field(2.0, ge=1.0, le=60.0, description="feed leadership lease TTL, seconds (NATS minimum 1)")
    proxy_ttl: float = Field(
        6.0, ge=1.0, le=60.0, description="a proxy silent this long is dead: its topics are released"
    )
    replicas: int = Field(1, ge=1, le=5, description="replicas of the NATS KV buckets (3 in a 3-server cluster)")
    curve: bool = Field(
        False,
        description="ZeroMQ CURVE on every bus socket (for tcp:// across hosts): binding sockets prove the server "
        "key, connecting ones a client key listed in keys_dir/clients",
    )
    keys_dir: str | None = Field(
        None, description="bus key folder (default $XDG_CONFIG_HOME/openalgo-proxy/bus-keys; `openalgo-proxy bus-keys`)"
    )
    client_key: str = Field(
        "client", description="this process's client key name in keys_dir/clients (proxies, feeds with bus_connect)"
    )


class TlsSettings(_Section):
    cert_file: str | None = Field(None, description="PEM certificate chain; with key_file enables wss:// and https://")
    key_file: str | None = Field(None, description="PEM private key of cert_file")
    key_password: SecretStr | None = Field(None, description="password of an encrypted key_file")

    @model_validator(mode="after")
    def _both(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file, or neither")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class ChainSettings(_Section):
    enabled: bool = Field(True, description="`run` starts the option chain service (idle until a client wants a chain)")
    bus: str = Field(
        default_factory=lambda: default_endpoint().rsplit("/", 1)[0] + "/chain",
        description="endpoint the chain service binds (proxies connect to it beside the feeds)",
    )
    feeds: list[str] = Field(
        default_factory=lambda: [default_endpoint()], description="bus endpoints the service takes legs from"
    )
    rate: float = Field(0.065, ge=-0.5, le=1.0, description="risk-free rate a year, continuously compounded")
    dividend_yields: dict[str, float] = Field(
        default_factory=dict,
        description="continuous dividend yield a year by underlying (Black-Scholes on spot; default 0)",
    )
    interval: float = Field(0.25, ge=0.01, le=10, description="seconds between updates of a chain (0.25 = 4 a second)")


class RecordSettings(_Section):
    enabled: bool = Field(False, description="`run` starts a recorder beside the feed and the proxy")
    dir: str = Field(
        default_factory=default_store_dir,
        description="tick store folder (Parquet; default $XDG_DATA_HOME/openalgo-proxy/ticks); replay reads it too",
    )
    symbols: list[str] = Field(default_factory=list, description="instruments to record, as EXCHANGE:SYMBOL")
    exchanges: list[str] = Field(default_factory=list, description="record every symbol the feeds list on these")
    subscribed: bool = Field(
        False, description="record whatever any client subscribes, in the modes asked (a passive tap on the bus)"
    )
    mode: Literal[1, 2, 3] = Field(2, description="mode of `symbols` and `exchanges` (1 LTP, 2 Quote, 3 Depth)")
    bus: list[str] = Field(
        default_factory=lambda: [default_endpoint()],
        description="bus endpoints to subscribe on (feeds or a forwarder's proxy side)",
    )
    flush_interval: float = Field(
        5.0, gt=0, le=300, description="seconds between file writes: a kill -9 loses at most this much"
    )
    batch_rows: int = Field(100_000, ge=100, description="write early once this many ticks wait")
    retention_days: int = Field(0, ge=0, description="delete recorded dates older than this many days (0 = keep all)")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve /metrics on this port (None or 0 = off)")
    metrics_host: str = Field("127.0.0.1", description="address of the recorder's metrics listener")

    @field_validator("symbols")
    @classmethod
    def _instruments(cls, value: list[str]) -> list[str]:
        for item in value:
            exchange, _, symbol = item.partition(":")
            if not exchange.strip() or not symbol.strip():
                raise ValueError(f"{item!r} is not EXCHANGE:SYMBOL")
        return [item.strip().upper() for item in value]

    @field_validator("exchanges")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [name.strip().upper() for name in value]


class CandleSettings(_Section):
    enabled: bool = Field(True, description="`run` starts the candle service (idle until a client wants candles)")
    bus: str = Field(
        default_factory=lambda: default_endpoint() + "-candles",
        description="endpoint the candle service binds (proxies connect to it beside the feeds); `run` without "
        "it: beside the feed's bus (BUS-candles for ipc://, a free port on the same host for tcp://)",
    )
    feeds: list[str] = Field(
        default_factory=lambda: [default_endpoint()], description="bus endpoints the service takes ticks from"
    )
    history: int = Field(100, ge=0, le=500, description="completed candles sent first to each new subscriber")
    conflate: float = Field(0.25, gt=0, le=10, description="seconds between updates of a forming candle")


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
    feed: FeedSection = Field(default_factory=FeedSection)  # type: ignore[arg-type]
    auth: AuthSettings = Field(default_factory=AuthSettings)  # type: ignore[arg-type]
    limits: LimitSettings = Field(default_factory=LimitSettings)  # type: ignore[arg-type]
    tls: TlsSettings = Field(default_factory=TlsSettings)  # type: ignore[arg-type]
    bus: BusSettings = Field(default_factory=BusSettings)  # type: ignore[arg-type]
    chain: ChainSettings = Field(default_factory=ChainSettings)  # type: ignore[arg-type]
    record: RecordSettings = Field(default_factory=RecordSettings)  # type: ignore[arg-type]
    candles: CandleSettings = Field(default_factory=CandleSettings)  # type: ignore[arg-type]
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
    except SettingsError as exc:  # an environment value that is not JSON where a list or table is expected
        raise ConfigError(f"invalid environment setting: {exc} (lists are JSON: '[\"NSE\"]')") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(lines)


def show(settings: Settings) -> str:
    """The effective configuration as JSON, secrets masked."""
    data = settings.model_dump(mode="json")
    section = settings.feed.section()
    data["feed"] = {key: value for key, value in data["feed"].items() if key not in BROKER_SECTIONS or value}
    if (
        section is not None
    ):  # the chosen broker's options as the feed will use them; of its credentials only whether set
        data["feed"][settings.feed.broker.removesuffix(LOCAL_SUFFIX)] = section.model_dump(mode="json")
        names = [c.env for c in section.credentials] + [f"{c.env}_FILE" for c in section.credentials if c.token_file]
        data["credentials"] = {name: "set" if os.environ.get(name, "").strip() else "unset" for name in names}
    auth = data.get("auth", {})
    if auth.get("api_keys"):
        auth["api_keys"] = ["**********" for _ in auth["api_keys"]]
    return json.dumps(data, indent=2)
