"""Command line: `openalgo-proxy run | feed | serve | bus | simulate | config show | keys | bus-keys | search |
watch`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from openalgo_proxy import __version__
from openalgo_proxy.config import Settings, load_settings, show
from openalgo_proxy.errors import ConfigError
from openalgo_proxy.logs import setup_logging
from openalgo_proxy.startup import bind_failure, listening

if TYPE_CHECKING:
    from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions

log = logging.getLogger("openalgo_proxy")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: $OPENALGO_PROXY_CONFIG)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", choices=["text", "json"])


def _listener(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="proxy listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="proxy WebSocket/HTTP port (default 8765)")


def broker_help() -> str:
    from openalgo_proxy.brokers import registry

    return registry.help_text()


def _broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        help=broker_help(),
    )
    parser.add_argument(
        "--ws-url", "--upstream", dest="ws_url", help="broker streaming URL override; chain mode: the upstream proxy"
    )
    parser.add_argument("--api-url", help="broker REST base URL override")
    parser.add_argument("--instruments", help="instrument master URL or file override")
    parser.add_argument("--exchanges", help="comma-separated exchanges this feed serves (default: all)")
    parser.add_argument("--ticks-per-second", type=float, help="simulated market: ticks per instrument per second")
    parser.add_argument("--seed", type=int, help="simulated market: random seed")
    parser.add_argument("--from", dest="replay_from", help="--broker replay: first IST date (YYYY-MM-DD) or date-time")
    parser.add_argument("--to", dest="replay_to", help="--broker replay: last IST date (inclusive) or date-time")
    parser.add_argument("--speed", dest="replay_speed", help="--broker replay: factor on recorded timing, or 'max'")


def _openalgo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--openalgo", metavar="PATH", help="drop-in mode: serve the OpenAlgo installation at PATH (docs/openalgo.md)"
    )
    parser.add_argument("--openalgo-user", help="drop-in mode: the OpenAlgo user whose broker session the feed uses")
    parser.add_argument(
        "--upstream-zmq",
        metavar="ENDPOINT",
        help="drop-in chain mode: the relocated OpenAlgo proxy's ZMQ_PORT (tcp://127.0.0.1:5556), to forward "
        "cache invalidations to",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openalgo-proxy", description="Market-data streaming proxy")
    parser.add_argument("--version", action="version", version=f"openalgo-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="feed + proxy as one supervised unit (simulated market by default)")
    _common(run)
    _listener(run)
    _broker(run)
    run.add_argument(
        "--bus",
        help="bus endpoint between feed and proxy (default ipc:// in a private directory; tcp://H:0 = any port)",
    )
    run.add_argument("--metrics-port", type=int, help="serve the feed's /metrics, /healthz, /status on this port")
    run.add_argument("--metrics-host", help="address of the feed's metrics listener (default 127.0.0.1)")
    _openalgo(run)

    feed = sub.add_parser("feed", help="a broker feed publishing on the bus")
    _common(feed)
    _broker(feed)
    feed.add_argument("--bus", help="XPUB endpoint (default ipc:// in a private directory)")
    feed.add_argument("--bus-connect", action="store_true", help="connect to a forwarder instead of binding")
    feed.add_argument("--metrics-port", type=int, help="serve /metrics, /healthz, /status on this port (0 = off)")
    feed.add_argument("--metrics-host", help="address of the metrics listener (default 127.0.0.1)")
    feed.add_argument(
        "--standby", action="store_true", help="passive standby: take over when the active feed's status goes stale"
    )
    feed.add_argument(
        "--watch", action="append", help="standby: forwarder proxy-side endpoint to watch #status on (repeatable)"
    )
    feed.add_argument("--takeover-after", type=float, help="standby: seconds of status silence before takeover")
    _openalgo(feed)

    serve = sub.add_parser("serve", help="the WebSocket proxy")
    _common(serve)
    _listener(serve)
    serve.add_argument("--bus", action="append", help="bus endpoint to connect to (repeatable)")
    _openalgo(serve)

    bus = sub.add_parser("bus", help="XSUB/XPUB forwarder: N feeds x M proxies")
    _common(bus)
    bus.add_argument("--frontend", default="tcp://127.0.0.1:5555", help="where feeds connect (XSUB)")
    bus.add_argument("--backend", default="tcp://127.0.0.1:5556", help="where proxies connect (XPUB)")

    simulate = sub.add_parser("simulate", help="a local broker simulator speaking the broker's wire protocol")
    sim_sub = simulate.add_subparsers(dest="simulator", required=True)
    from openalgo_proxy.brokers.registry import simulator_help, simulator_module, simulator_names

    for name in simulator_names():
        sim = sim_sub.add_parser(name, help=simulator_help(name))
        _common(sim)
        try:
            simulator_module(name).add_arguments(sim)
        except ImportError:
            sim.set_defaults(unavailable=True)

    config = sub.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_show = config_sub.add_parser("show", help="print the effective configuration, secrets masked")
    _common(config_show)
    _listener(config_show)
    _broker(config_show)
    config_show.add_argument("--bus", help="bus endpoint")

    keys = sub.add_parser("keys", help="manage API keys (stored hashed in [auth] keys_file)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_add = keys_sub.add_parser("add", help="create a key; it is printed once and only its hash is stored")
    _common(keys_add)
    keys_add.add_argument("--name", required=True, help="unique name (letters, digits, . _ -)")
    keys_add.add_argument("--role", help="a role from [auth.roles] (default: [auth] default_role)")
    keys_list = keys_sub.add_parser("list", help="list key names, roles, creation times and fingerprints")
    _common(keys_list)
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key; running proxies close its connections")
    _common(keys_revoke)
    keys_revoke.add_argument("name", help="name of the key")

    bus_keys = sub.add_parser("bus-keys", help="manage the bus CURVE keys ([bus] keys_dir)")
    bus_keys_sub = bus_keys.add_subparsers(dest="bus_keys_command", required=True)
    bus_keys_init = bus_keys_sub.add_parser("init", help="create the bus server key (feeds and forwarders)")
    _common(bus_keys_init)
    bus_keys_add = bus_keys_sub.add_parser("add", help="create a client key (proxies, feeds connecting to a forwarder)")
    _common(bus_keys_add)
    bus_keys_add.add_argument("name", help="key name (letters, digits, . _ -); a client uses it as [bus] client_key")
    bus_keys_list = bus_keys_sub.add_parser("list", help="list the server key and the admitted client keys")
    _common(bus_keys_list)

    from openalgo_proxy.chain.cli import add_chain_arguments
    from openalgo_proxy.history.cli import add_candles_arguments, add_history_arguments, add_record_arguments

    record = sub.add_parser("record", help="record ticks from the bus into the Parquet tick store")
    _common(record)
    add_record_arguments(record)
    candles = sub.add_parser("candles", help="the candle service: live candles on the bus for every proxy")
    _common(candles)
    add_candles_arguments(candles)
    history = sub.add_parser("history", help="recorded candles or ticks of an instrument (table or CSV)")
    _common(history)
    add_history_arguments(history)

    from openalgo_proxy.client import search as search_module

    chain = sub.add_parser("chain", help="the option chain service: live chains with IV and Greeks for every proxy")
    _common(chain)
    _openalgo(chain)  # `run` passes its drop-in flags to every child
    add_chain_arguments(chain)
    search = sub.add_parser("search", help="find instruments to subscribe: symbol, name or a near spelling")
    search_module.add_arguments(search)

    try:
        watch_module = importlib.import_module("openalgo_proxy.client.watch")
    except ImportError:
        watch_module = None
    if watch_module is not None:
        watch = sub.add_parser("watch", help="live terminal market watch")
        watch_module.add_arguments(watch)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags that were given, as a settings tree (flags beat file and environment)."""
    proxy: dict[str, Any] = {}
    feed: dict[str, Any] = {}
    logs: dict[str, Any] = {}
    get = vars(args).get
    if get("host") is not None:
        proxy["host"] = args.host
    if get("port") is not None:
        proxy["port"] = args.port
    bus = get("bus")
    if bus is not None:
        if args.command == "serve":
            proxy["bus"] = bus
        else:
            feed["bus"] = bus
            proxy["bus"] = [bus]
    if get("bus_connect"):
        feed["bus_connect"] = True
    if get("exchanges"):
        feed["exchanges"] = [e.strip().upper() for e in args.exchanges.split(",") if e.strip()]
    if get("standby"):
        feed["standby"] = True
    if get("watch") is not None:
        feed["standby_watch"] = args.watch
    for flag in ("metrics_port", "metrics_host", "takeover_after"):
        if get(flag) is not None:
            feed[flag] = get(flag)
    for flag in ("broker", "ws_url", "api_url", "instruments", "ticks_per_second", "seed"):
        if get(flag) is not None:
            feed[flag] = get(flag)
    for flag in ("replay_from", "replay_to", "replay_speed"):
        if get(flag) is not None:
            feed[flag] = get(flag)
    record: dict[str, Any] = {}
    if args.command == "record":
        from openalgo_proxy.history.cli import record_overrides

        record = record_overrides(args)
        feed.pop("bus", None)
        feed.pop("exchanges", None)
        proxy.pop("bus", None)
    if get("log_level"):
        logs["level"] = args.log_level
    if get("log_format"):
        logs["format"] = args.log_format
    tree: dict[str, Any] = {}
    if proxy:
        tree["proxy"] = proxy
    if feed:
        tree["feed"] = feed
    if logs:
        tree["log"] = logs
    if record:
        tree["record"] = record
    return tree


def _drop_in_overrides(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """Drop-in mode derives settings from OpenAlgo's .env (openalgo/commands.py); flags still win."""
    root = vars(args).get("openalgo")
    if not root:
        return flags
    from openalgo_proxy.openalgo.commands import settings_tree

    return settings_tree(root, flags, run_bus=args.command == "run" and args.bus is None)


def _feed_options(settings: Settings) -> Any:
    from openalgo_proxy.brokers.base import FeedOptions

    f = settings.feed
    section = f.section()
    return FeedOptions(
        ws_url=f.ws_url,
        api_url=f.api_url,
        instruments=f.instruments,
        cache_dir=f.cache_dir,
        stall_timeout=f.stall_timeout,
        ticks_per_second=f.ticks_per_second,
        seed=f.seed,
        exchanges=tuple(f.exchanges) or (section.exchanges if section else ()),
        store_dir=settings.record.dir,
        replay_from=f.replay_from,
        replay_to=f.replay_to,
        replay_speed=f.replay_speed,
        settings=section,
    )


def cmd_feed(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.brokers.registry import creator
    from openalgo_proxy.feed import Feed
    from openalgo_proxy.feed.metrics import FeedMetricsServer
    from openalgo_proxy.feed.standby import StandbyFeed
    from openalgo_proxy.runtime import run_until_signal

    cfg = settings.feed
    if args.openalgo:
        from openalgo_proxy.openalgo.commands import run_feed

        options = _feed_options(settings)
        return run_feed(
            settings,
            args.openalgo,
            options,
            broker=args.broker,
            user=args.openalgo_user,
            upstream_zmq=args.upstream_zmq,
        )
    create = creator(cfg.broker)
    if settings.bus.engine == "nats":
        return _feed_on_nats(settings, create)
    guard = _secure_bus(
        settings,
        client=cfg.bus_connect,
        bind=[] if cfg.bus_connect else [cfg.bus],
        connect=[*([cfg.bus] if cfg.bus_connect else []), *cfg.standby_watch],
    )

    def make_feed() -> Feed:
        return Feed(
            create(_feed_options(settings)),
            cfg.bus,
            bus_connect=cfg.bus_connect,
            status_interval=cfg.status_interval,
            coalesce_window=cfg.coalesce_window,
            orders=True,
        )

    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    if cfg.standby:
        if not cfg.standby_watch:
            raise ConfigError("a standby feed needs --watch (the forwarder's proxy-side endpoint) to see the primary")
        if not cfg.bus_connect:
            raise ConfigError("a standby feed needs a forwarder: use --bus-connect")
        first = make_feed()  # built once to learn the broker's name; each takeover builds a fresh one
        standby = StandbyFeed(make_feed, first.broker, cfg.standby_watch, takeover_after=cfg.takeover_after)
        broker, current = first.broker, standby.current
        takeovers, role = (lambda: standby.takeovers), (lambda: standby.role)
        start, stop = standby.start, standby.stop
    else:
        feed = make_feed()
        broker, current, takeovers, role = feed.broker, lambda: feed, lambda: 0, lambda: "active"
        start, stop = feed.start, feed.stop
    if not cfg.metrics_port:
        try:
            return run_until_signal(start, stop)
        finally:
            guard.close()
    metrics = FeedMetricsServer(cfg.metrics_host, cfg.metrics_port, broker, current, takeovers, role)

    async def start_all() -> None:
        address = f"{cfg.metrics_host}:{cfg.metrics_port}"
        await listening(metrics.start, "the feed's metrics", address, "--metrics-port")
        await start()

    async def stop_all() -> None:
        await stop()
        await metrics.stop()

    try:
        return run_until_signal(start_all, stop_all)
    finally:
        guard.close()


def _feed_on_nats(settings: Settings, create: Callable[[FeedOptions], BrokerAdapter]) -> int:
    """A feed on the NATS bus: it campaigns for its broker account's lease and streams only while it
    holds it (every feed of an account is a standby of the others; no --standby needed)."""
    from openalgo_proxy.feed import Feed
    from openalgo_proxy.feed.lease import LeaderFeed
    from openalgo_proxy.feed.metrics import FeedMetricsServer
    from openalgo_proxy.runtime import run_until_signal

    cfg = settings.feed

    def make_feed() -> Feed:
        return Feed(
            create(_feed_options(settings)),
            "",
            status_interval=cfg.status_interval,
            coalesce_window=cfg.coalesce_window,
            orders=True,
        )

    leader = LeaderFeed(make_feed, make_feed().broker, settings.bus)
    if not cfg.metrics_port:
        return run_until_signal(leader.start, leader.stop)
    metrics = FeedMetricsServer(
        cfg.metrics_host, cfg.metrics_port, leader.broker, leader.current, lambda: leader.takeovers, lambda: leader.role
    )

    async def start_all() -> None:
        await metrics.start()
        await leader.start()

    async def stop_all() -> None:
        await leader.stop()
        await metrics.stop()

    return run_until_signal(start_all, stop_all)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.proxy.server import ProxyServer
    from openalgo_proxy.runtime import run_until_signal

    if args.openalgo:
        from openalgo_proxy.openalgo.commands import run_serve

        return run_serve(settings, args.openalgo)
    _refuse_open_auth_none(settings)
    if settings.bus.engine == "nats":
        server = ProxyServer(settings.proxy, settings.auth, limits=settings.limits, tls=settings.tls, bus=settings.bus)
        return run_until_signal(server.start, server.stop)
    guard = _secure_bus(settings, client=True, connect=settings.proxy.bus)
    try:
        server = ProxyServer(
            settings.proxy, settings.auth, limits=settings.limits, tls=settings.tls, archive_dir=settings.record.dir
        )
        address = f"{settings.proxy.host}:{settings.proxy.port}"

        async def start() -> None:
            await listening(server.start, "the proxy's WebSocket/HTTP port", address, "--port")

        return run_until_signal(start, server.stop)
    finally:
        guard.close()


def _secure_bus(settings: Settings, *, client: bool, bind: Sequence[str] = (), connect: Sequence[str] = ()) -> Any:
    """The bus checks and CURVE for this process's shared ZeroMQ context (bus_security)."""
    from openalgo_proxy.bus_curve import Role
    from openalgo_proxy.bus_security import secure_bus

    return secure_bus(settings.bus, Role.CLIENT if client else Role.SERVER, bind=bind, connect=connect)


def is_loopback(host: str) -> bool:
    """True only for addresses that cannot be reached from another machine ('' and 0.0.0.0 are every interface)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def _refuse_open_auth_none(settings: Settings) -> None:
    host = settings.proxy.host
    loopback = is_loopback(host)
    if settings.auth.mode == "none" and not loopback:
        raise ConfigError(
            f"auth mode 'none' is only allowed on loopback, but the proxy listens on {host or 'every interface'}; "
            'set [auth] mode = "api_key" or "jwt", or listen on 127.0.0.1'
        )
    if not loopback and not settings.tls.enabled:
        log.warning("the proxy listens on %s without TLS: credentials and data travel in clear; set [tls]", host)


_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from openalgo_proxy.proxy.keystore import KeyStore, default_keys_file

    auth = settings.auth
    path = Path(auth.keys_file).expanduser() if auth.keys_file else default_keys_file()
    secret = auth.keys_secret.get_secret_value().encode() if auth.keys_secret is not None else None
    store = KeyStore(path, secret)
    if args.keys_command == "add":
        role = args.role or auth.default_role
        if role not in auth.roles:
            raise ConfigError(f"role {role!r} is not configured; roles: {', '.join(sorted(auth.roles))}")
        if not _KEY_NAME.match(args.name):
            raise ConfigError("key names are 1-64 letters, digits, '.', '_' or '-'")
        key, record = store.add(args.name, role)
        sys.stderr.write(f"added key {record.name!r} role={record.role} fingerprint={record.fingerprint} to {path}\n")
        sys.stderr.write("the key is shown once; store it now:\n")
        sys.stdout.write(key + "\n")
    elif args.keys_command == "list":
        store.load()
        rows = store.records()
        if not rows:
            sys.stderr.write(f"no keys in {path}\n")
        for r in rows:
            sys.stdout.write(f"{r.name}\t{r.role}\t{r.created}\t{r.fingerprint}\n")
    else:
        record = store.revoke(args.name)
        sys.stderr.write(f"revoked key {record.name!r} (fingerprint {record.fingerprint}) in {path}\n")
    return 0


def free_tcp_port(host: str) -> int:
    """A port free on `host` right now (for `--port 0` in `run`, whose children must agree on it)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host or "127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _concrete_bus(endpoint: str) -> str:
    """`tcp://HOST:0` (any port) made concrete, since feed and proxy must agree on it."""
    match = re.fullmatch(r"tcp://(.+):(0|\*)", endpoint)
    if match is None:
        return endpoint
    host = match.group(1)
    return f"tcp://{host}:{free_tcp_port('127.0.0.1' if host == '*' else host.strip('[]'))}"


def _chain_bus(settings: Settings, feed_bus: str) -> str:
    """Where `run`'s chain service binds: [chain] bus when set, else beside the feed's bus (a free
    port on the same host for a TCP bus, a sibling socket for a non-default ipc:// bus), so two units
    on different buses never share it."""
    from openalgo_proxy.bus_ipc import default_endpoint

    if "bus" in settings.chain.model_fields_set:
        return settings.chain.bus
    match = re.fullmatch(r"tcp://(.+):(\d+)", feed_bus)
    if match is not None:
        host = match.group(1)
        return f"tcp://{host}:{free_tcp_port('127.0.0.1' if host == '*' else host.strip('[]'))}"
    if feed_bus == default_endpoint():
        return settings.chain.bus
    return feed_bus + "-chain"


def _beside(bus: str) -> str:
    """An endpoint for a second service next to the feed's `bus`: the same private folder for ipc://,
    a free port on the same host for tcp://."""
    match = re.fullmatch(r"tcp://(.+):(\d+)", bus)
    if match is not None:
        return _concrete_bus(f"tcp://{match.group(1)}:0")
    return bus + "-candles"


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.bus_ipc import check_endpoint
    from openalgo_proxy.runtime import run
    from openalgo_proxy.supervisor import CANNOT_START, Child, Supervisor, is_own_unit, wait_ready
    from openalgo_proxy.tasks import cancel_and_wait

    if not args.openalgo:
        _refuse_open_auth_none(settings)
    host = settings.proxy.host
    port = settings.proxy.port or free_tcp_port(host)
    bus = _concrete_bus(settings.feed.bus)
    check_endpoint(bus, bind=True)  # the children check again; this fails before spawning them
    common: list[str] = []
    if args.config:
        common += ["--config", args.config]
    common += ["--log-level", settings.log.level, "--log-format", settings.log.format]
    helper_common = list(common)  # candle service and recorder: bus participants only, no drop-in flags
    if args.openalgo:
        common += ["--openalgo", args.openalgo]
        if args.openalgo_user:
            common += ["--openalgo-user", args.openalgo_user]
    feed_argv = ["feed", *common, "--bus", bus]
    if args.upstream_zmq:
        feed_argv += ["--upstream-zmq", args.upstream_zmq]
    if not args.openalgo or args.broker:
        feed_argv += ["--broker", settings.feed.broker]
    if settings.feed.exchanges:
        feed_argv += ["--exchanges", ",".join(settings.feed.exchanges)]
    for flag in ("ws_url", "api_url", "instruments", "ticks_per_second", "seed", "metrics_host", "metrics_port"):
        value = getattr(settings.feed, flag)
        if value is not None:
            feed_argv += ["--" + flag.replace("_", "-"), str(value)]
    for flag, option in (("replay_from", "--from"), ("replay_to", "--to"), ("replay_speed", "--speed")):
        value = getattr(settings.feed, flag)
        if value is not None:
            feed_argv += [option, str(value)]
    serve_argv = ["serve", *common, "--host", host, "--port", str(port)]
    for endpoint in settings.proxy.bus:
        serve_argv += ["--bus", bus if endpoint == settings.feed.bus else endpoint]
    # the candle service beside this run's feed: its own endpoint unless one is configured, so two
    # runs on one host (different buses) never compete for one
    candles_bus = settings.candles.bus if "bus" in settings.candles.model_fields_set else _beside(bus)
    if settings.candles.enabled and candles_bus not in settings.proxy.bus:
        serve_argv += ["--bus", candles_bus]
    feed, proxy = Child("feed", feed_argv, dict(os.environ)), Child("proxy", serve_argv, dict(os.environ))
    helpers: list[Child] = []
    if settings.candles.enabled:
        candles_argv = ["candles", *helper_common, "--bind", candles_bus, "--feeds", bus]
        helpers.append(Child("candles", candles_argv, dict(os.environ)))
    if settings.record.enabled:
        if settings.feed.broker == "replay":
            log.info("[record] enabled but the broker is replay: not recording a replay")
        else:
            helpers.append(Child("recorder", ["record", *helper_common, "--bus", bus], dict(os.environ)))
    chain_bus = _chain_bus(settings, bus)
    if settings.chain.enabled:
        if chain_bus not in settings.proxy.bus:
            proxy.argv += ["--bus", chain_bus]
        helpers.append(Child("chain", ["chain", *helper_common, "--bind", chain_bus, "--feeds", bus], dict(os.environ)))

    def own(detail: dict[str, Any]) -> bool:
        pids = [c.process.pid if c.process is not None else None for c in (proxy, feed)]
        return is_own_unit(detail, pids[0], pids[1])

    async def main() -> int:
        import signal

        from openalgo_proxy.proxy.tls import probe_context

        loop = asyncio.get_running_loop()
        supervisor = Supervisor([feed, proxy, *helpers])
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await supervisor.start()
        probe_host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
        ready = asyncio.ensure_future(wait_ready(probe_host, port, ssl=probe_context(settings.tls), verify=own))
        stopped = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(supervisor.failure.wait())
        await asyncio.wait({ready, stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and ready.result() and not supervisor.failure.is_set():
            shown = "localhost" if host == "127.0.0.1" else host
            ws, http = ("wss", "https") if settings.tls.enabled else ("ws", "http")
            from openalgo_proxy.brokers.registry import describe

            source = describe(settings.feed.broker)
            if args.openalgo:
                source = f"drop-in for OpenAlgo at {args.openalgo}"
            sys.stdout.write(
                f"openalgo-proxy ready: {ws}://{shown}:{port}  ({source}; "
                f"market watch {http}://{shown}:{port}/ ; metrics {http}://{shown}:{port}/metrics). Ctrl-C stops.\n"
            )
            sys.stdout.flush()
        elif ready.done() and not stop.is_set() and not supervisor.failure.is_set():
            log.error("the proxy did not become ready; see the log above")
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(ready, stopped, failed)
        await supervisor.stop()
        return CANNOT_START if supervisor.failed is not None else 0

    return run(main())


def cmd_bus(settings: Settings, args: argparse.Namespace) -> int:
    import signal
    import threading

    import zmq

    from openalgo_proxy.bus import bind_forwarder, forward

    ctx = zmq.Context()
    guard = _secure_bus_forwarder(settings, args, ctx)
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sockets = bind_forwarder(args.frontend, args.backend, ctx)
    except zmq.ZMQError as exc:
        ctx.term()
        which, flag = (args.frontend, "--frontend") if args.frontend in str(exc) else (args.backend, "--backend")
        failure = bind_failure(exc, "the bus forwarder", which, flag)
        if failure is None:
            raise
        raise failure from exc
    thread = threading.Thread(target=forward, args=sockets, daemon=True)
    thread.start()
    done.wait()
    guard.close()
    ctx.term()
    thread.join(timeout=5)
    return 0


def _secure_bus_forwarder(settings: Settings, args: argparse.Namespace, ctx: Any) -> Any:
    from openalgo_proxy.bus_curve import Role
    from openalgo_proxy.bus_security import secure_bus

    return secure_bus(settings.bus, Role.SERVER, bind=[args.frontend, args.backend], ctx=ctx)


def cmd_bus_keys(settings: Settings, args: argparse.Namespace) -> int:
    from openalgo_proxy.bus_curve import BusKeys, keys_dir

    keys = BusKeys(keys_dir(settings.bus))
    if args.bus_keys_command == "init":
        pair = keys.create_server()
        sys.stderr.write(f"created the bus server key in {keys.directory} (server.key_secret stays on feed hosts)\n")
        sys.stdout.write(pair.public.decode() + "\n")
    elif args.bus_keys_command == "add":
        pair = keys.add_client(args.name)
        sys.stderr.write(f"created bus client key {args.name!r} in {keys.clients}\n")
        sys.stdout.write(pair.public.decode() + "\n")
    else:
        try:
            sys.stdout.write(f"server\t{keys.server_public().decode()}\n")
        except ConfigError:
            sys.stderr.write(f"no bus server key in {keys.directory}\n")
        for name in keys.client_names():
            sys.stdout.write(f"client\t{name}\n")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from openalgo_proxy.brokers.registry import simulator_module
    from openalgo_proxy.runtime import run

    if getattr(args, "unavailable", False):
        raise ConfigError(f"the {args.simulator} simulator is not available in this build")
    module = simulator_module(args.simulator)

    async def main() -> int:
        import signal

        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(module.serve(args))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await listening(lambda: task, f"the {args.simulator} simulator", f"{args.host}:{args.port}", "--port")
        except asyncio.CancelledError:
            log.info("simulator stopped")
        return 0

    return run(main())


def _chain_cli() -> Any:
    return importlib.import_module("openalgo_proxy.chain.cli")


def _history_cli() -> Any:
    return importlib.import_module("openalgo_proxy.history.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None), _drop_in_overrides(args, _overrides(args)))
        setup_logging(settings.log.level, settings.log.format, args.command)
        handlers: dict[str, Callable[[], int]] = {
            "run": lambda: cmd_run(settings, args),
            "feed": lambda: cmd_feed(settings, args),
            "serve": lambda: cmd_serve(settings, args),
            "bus": lambda: cmd_bus(settings, args),
            "bus-keys": lambda: cmd_bus_keys(settings, args),
            "simulate": lambda: cmd_simulate(args),
            "chain": lambda: _chain_cli().cmd_chain(settings, args),
            "record": lambda: _history_cli().cmd_record(settings, args),
            "history": lambda: _history_cli().cmd_history(settings, args),
            "candles": lambda: _history_cli().cmd_candles(settings, args),
        }
        if args.command == "config":
            sys.stdout.write(show(settings) + "\n")
            return 0
        if args.command == "keys":
            return cmd_keys(settings, args)
        if args.command == "search":
            from openalgo_proxy.client import search as search_module

            return search_module.run(args)
        if args.command == "watch":
            module = importlib.import_module("openalgo_proxy.client.watch")
            result: int = module.run(args)
            return result
        return handlers[args.command]()
    except ConfigError as exc:
        sys.stderr.write(f"openalgo-proxy: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
