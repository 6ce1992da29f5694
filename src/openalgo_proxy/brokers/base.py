"""The broker adapter contract and the one reconnect policy.

A feed (openalgo_proxy.feed) owns the bus and asks an adapter for a set of (instrument, mode)
pairs; the adapter owns the upstream connections, keeps them equal to that set across reconnects,
and hands every decoded tick to the feed's sink. Adapters never import proxy code.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from openalgo_proxy.brokers.environment import BrokerSettings, Section
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.errors import BrokerAuthError, BrokerRateLimited, ErrorCode
from openalgo_proxy.model import DEPTH_LEVELS, Instrument, Mode, Tick

log = logging.getLogger(__name__)

TickSink = Callable[[Tick], None]
#: an account's order event: the typed `control.OrderUpdate`, or a mapping with exactly its keys
OrderEvent = OrderUpdate | Mapping[str, object]
#: where an adapter hands its account's order events (published on `#orders|BROKER|ACCOUNT`)
OrderSink = Callable[[OrderEvent], None]


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A wanted (instrument, mode) the adapter could not place upstream."""

    instrument: Instrument
    mode: Mode
    code: ErrorCode
    message: str
    depth: int = DEPTH_LEVELS  # a deeper book refused: only that depth's stream is affected


RejectSink = Callable[[Rejection], None]


@dataclass(slots=True)
class AdapterStatus:
    """What a feed publishes about its upstream on `#status|BROKER`."""

    state: ConnectionState = ConnectionState.DISCONNECTED
    connections: int = 0
    subscriptions: int = 0
    reconnects: int = 0
    decode_errors: int = 0
    extra: dict[str, object] = field(default_factory=dict)


class BrokerAdapter(abc.ABC):
    """One broker account. Lifecycle: start() -> set_wanted()* -> stop()."""

    #: broker name as clients see it in `market_data.broker` ("angel", "zerodha", "simulator")
    name: str = ""

    @abc.abstractmethod
    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        """Load instruments and credentials; return when `lookup` works. Connect lazily, except that
        an account may keep one connection open to prove its credentials: `status()` of a started,
        healthy account with nothing wanted must not read as a failure (the proxy's /readyz needs
        a feed in state CONNECTED)."""

    def set_order_sink(self, on_order: OrderSink) -> None:  # noqa: B027 - optional: feeds without orders
        """Where the adapter hands its account's order events (brokers that stream them override this)."""

    def depth_levels(self, instrument: Instrument) -> tuple[int, ...]:
        """The book depths (levels per side) this account can stream for `instrument`; 5 always.
        A feed answers a deeper-book topic outside these with INVALID_DEPTH."""
        return (DEPTH_LEVELS,)

    async def set_wanted_depth(self, wanted: Mapping[Instrument, int]) -> None:  # noqa: B027 - optional
        """Make the deeper books streamed equal `wanted` (instrument -> levels per side, > 5), after
        `set_wanted` (which already holds these instruments in Depth mode). Their ticks carry
        `depth` = those levels; a book that cannot be placed is reported through `on_reject` with
        that depth. Brokers without deeper books never receive a non-empty `wanted`."""

    @abc.abstractmethod
    def exchanges(self) -> tuple[str, ...]:
        """Client exchanges this account serves (NSE, NSE_INDEX, NFO, ...); honours `FeedOptions.exchanges`."""

    @abc.abstractmethod
    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        """The instrument a client names, or None (answered SYMBOL_NOT_FOUND)."""

    @abc.abstractmethod
    def directory(self) -> Mapping[str, Iterable[str]]:
        """Every symbol this account can stream, by exchange (published on the bus); only exchanges
        in `exchanges()`, or two feeds on one bus both claim an exchange in the proxy's directory."""

    @abc.abstractmethod
    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        """Make the upstream subscription set equal `wanted` (instrument -> richest mode).

        Called by the feed with the whole desired state after each coalescing window.
        Pairs that cannot be placed (caps) are reported through `on_reject`.
        """

    @abc.abstractmethod
    def status(self) -> AdapterStatus:
        """Current upstream health."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close every upstream connection and cancel every task."""


class RetryAction(enum.Enum):
    RETRY = "retry"
    REFRESH_CREDENTIALS = "refresh_credentials"
    BACK_OFF_LONG = "back_off_long"


def classify(exc: BaseException) -> RetryAction:
    """Map a connection failure to what the one retry layer does next."""
    if isinstance(exc, BrokerAuthError):
        return RetryAction.REFRESH_CREDENTIALS
    if isinstance(exc, BrokerRateLimited):
        return RetryAction.BACK_OFF_LONG
    return RetryAction.RETRY


class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt)).

    `reset()` after a connection that lived long enough to count as a success.
    """

    def __init__(
        self, base: float = 1.0, cap: float = 60.0, long_delay: float = 60.0, rng: random.Random | None = None
    ) -> None:
        self.base = base
        self.cap = cap
        self.long_delay = long_delay
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        return min(self.cap, self.base * (2.0 ** min(self.attempt, 32)))

    def next_delay(self, action: RetryAction = RetryAction.RETRY) -> float:
        if action is RetryAction.BACK_OFF_LONG:
            delay = self.long_delay + self._rng.uniform(0.0, self.long_delay)
        else:
            delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


async def run_with_reconnect(
    session: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff,
    refresh_credentials: Callable[[], Awaitable[None]],
    should_run: Callable[[], bool],
    on_state: Callable[[ConnectionState], None],
    stable_after: float = 10.0,
    label: str = "broker",
) -> None:
    """The one retry layer: run `session` until `should_run()` is false.

    `session` connects, serves, and returns or raises when the connection ends. A session that
    lasted `stable_after` seconds resets the backoff. Auth failures refresh credentials first.
    """
    while should_run():
        on_state(ConnectionState.CONNECTING)
        started = time.monotonic()
        action = RetryAction.RETRY
        try:
            await session()
            log.info("%s: connection closed", label)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and logged (cancellation ends the loop)
            action = classify(exc)
            log.warning("%s: connection failed (%s): %s", label, action.value, exc)
        if time.monotonic() - started >= stable_after:
            backoff.reset()
        if not should_run():
            break
        if action is RetryAction.REFRESH_CREDENTIALS:
            try:
                await refresh_credentials()
            except Exception as exc:  # noqa: BLE001 - logged; the backoff still applies
                log.warning("%s: credential refresh failed: %s", label, exc)
        delay = backoff.next_delay(action)
        on_state(ConnectionState.BACKING_OFF)
        log.info("%s: reconnecting in %.2f s (attempt %d)", label, delay, backoff.attempt)
        await asyncio.sleep(delay)
    on_state(ConnectionState.CLOSED)


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """Feed options from config and flags, with the broker's own section; credentials come from the environment.

    `ws_url`, `api_url`, `instruments` override the broker's production endpoints (simulator, tests);
    None means the broker's default.
    """

    ws_url: str | None = None
    api_url: str | None = None
    instruments: str | None = None  # URL or file path of the instrument master
    cache_dir: str | None = None  # where the day's instrument master is cached
    stall_timeout: float = 15.0  # seconds without any inbound message before a forced reconnect
    ticks_per_second: float = 2.0  # simulated market only: ticks per instrument per second
    max_connections: int = 0  # 0 = the broker's cap
    max_per_connection: int = 0  # subscriptions per connection; 0 = the broker's cap
    backoff_base: float = 1.0  # reconnect backoff: first ceiling, seconds
    backoff_cap: float = 60.0  # reconnect backoff: largest ceiling, and the long backoff after a 429
    seed: int | None = None  # simulated market only
    exchanges: tuple[str, ...] = ()  # client exchanges this feed serves; () = all its account has
    store_dir: str | None = None  # replay only: the tick store (default: [record] dir's default)
    replay_from: str | None = None  # replay only: first IST date (YYYY-MM-DD) or ISO date-time; None = today
    replay_to: str | None = None  # replay only: last IST date (inclusive) or ISO date-time (exclusive)
    replay_speed: str = "1"  # replay only: a factor on the recorded timing, or "max"
    settings: BrokerSettings | None = None  # the broker's validated `[feed.NAME]` section

    def section(self, cls: type[Section]) -> Section:
        """The broker's `[feed.NAME]` section; without one, its defaults and the options the environment sets."""
        return self.settings if isinstance(self.settings, cls) else cls.load()
