"""Python client of the openalgo-proxy WebSocket protocol.

Async::

    from openalgo_proxy.client import connect

    async with connect("ws://127.0.0.1:8765", api_key=KEY) as client:
        await client.subscribe(["NSE:RELIANCE", "NSE_INDEX:NIFTY"], mode="quote")
        async for tick in client:
            print(tick.name, tick.ltp)

Option chains (IV and Greeks computed by the server)::

    async with connect("ws://127.0.0.1:8765") as client:
        await client.subscribe_chain("NIFTY", expiry="nearest", strikes=10)
        async for chain in client.chains():
            print(chain.atm_strike, chain.pcr, chain.atm.ce.iv if chain.atm else None)

Threads and callbacks::

    from openalgo_proxy.client import ClientThread

    with ClientThread("ws://127.0.0.1:8765", api_key=KEY) as client:
        client.subscribe(["NSE:INFY"], mode="ltp", on_tick=lambda tick: print(tick.ltp))
        time.sleep(10)
"""

from openalgo_proxy.client.backoff import Backoff
from openalgo_proxy.client.chains import ChainLeg, ChainStrike, OptionChain
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
    "ChainLeg",
    "ChainStrike",
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
    "OptionChain",
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
