"""Python client of the openalgo-proxy WebSocket protocol.

Async::

    from openalgo_proxy.client import connect

    async with connect("ws://127.0.0.1:8765", api_key=KEY) as feed:
        await feed.subscribe(["NSE:RELIANCE", "NSE_INDEX:NIFTY"], mode="quote")
        async for tick in feed:
            print(tick.name, tick.ltp)

Threads and callbacks::

    from openalgo_proxy.client import FeedThread

    with FeedThread("ws://127.0.0.1:8765", api_key=KEY) as feed:
        feed.subscribe(["NSE:INFY"], mode="ltp", on_tick=lambda tick: print(tick.ltp))
        time.sleep(10)
"""

from openalgo_proxy.client.backoff import Backoff
from openalgo_proxy.client.errors import (
    AuthenticationError,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    FeedClosed,
    RequestTimeout,
    ServerError,
    SubscriptionError,
)
from openalgo_proxy.client.failures import tls_context
from openalgo_proxy.client.feed import DEFAULT_URL, Feed, State, connect
from openalgo_proxy.client.messages import DepthTick, LtpTick, QuoteTick, SubscriptionResult, Tick
from openalgo_proxy.client.symbols import Stream, parse_instrument
from openalgo_proxy.client.threaded import FeedThread
from openalgo_proxy.model import Mode

__all__ = [
    "DEFAULT_URL",
    "AuthenticationError",
    "Backoff",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "DepthTick",
    "Feed",
    "FeedClosed",
    "FeedThread",
    "LtpTick",
    "Mode",
    "QuoteTick",
    "RequestTimeout",
    "ServerError",
    "State",
    "Stream",
    "SubscriptionError",
    "SubscriptionResult",
    "Tick",
    "connect",
    "parse_instrument",
    "tls_context",
]
