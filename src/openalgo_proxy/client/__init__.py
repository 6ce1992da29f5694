"""Python client of the openalgo-proxy WebSocket protocol.

Async::

    from openalgo_proxy.client import connect

    async with connect("ws://127.0.0.1:8765", api_key=KEY) as client:
        await client.subscribe(["NSE:RELIANCE", "NSE_INDEX:NIFTY"], mode="quote")
        async for tick in client:
            print(tick.name, tick.ltp)

Threads and callbacks::

    from openalgo_proxy.client import ClientThread

    with ClientThread("ws://127.0.0.1:8765", api_key=KEY) as client:
        client.subscribe(["NSE:INFY"], mode="ltp", on_tick=lambda tick: print(tick.ltp))
        time.sleep(10)
"""

from openalgo_proxy.client.backoff import Backoff
from openalgo_proxy.client.client import DEFAULT_URL, Client, State, connect
from openalgo_proxy.client.errors import (
    AuthenticationError,
    ClientClosed,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    RequestTimeout,
    ServerError,
    SubscriptionError,
)
from openalgo_proxy.client.failures import tls_context
from openalgo_proxy.client.messages import DepthTick, LtpTick, QuoteTick, SubscriptionResult, Tick
from openalgo_proxy.client.symbols import Stream, parse_instrument
from openalgo_proxy.client.threaded import ClientThread
from openalgo_proxy.model import Mode

# earlier names, kept so existing code keeps working
Feed = Client
FeedThread = ClientThread
FeedClosed = ClientClosed

__all__ = [
    "DEFAULT_URL",
    "AuthenticationError",
    "Backoff",
    "Client",
    "ClientClosed",
    "ClientError",
    "ClientThread",
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
