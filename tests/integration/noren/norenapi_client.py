"""Run a vendor Noren SDK (`NorenRestApiPy.NorenApi`) against a local server; print what it saw as JSON.

Usage: python norenapi_client.py PORT PATH UID TOKEN DIALECT (a: NorenRestApiOAuth, c: NorenRestApiPy;
the caller puts the right package first on PYTHONPATH). The SDK logs in, subscribes touchline for
NSE|2885 and NSE|26000, depth for NSE|11536 and order updates, waits for full acks, updates and one
order update, unsubscribes, calls close_websocket() (else it reconnects forever) and prints one JSON
line: every dict its callbacks received, in order, and any errors.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from NorenRestApiPy.NorenApi import FeedType, NorenApi  # type: ignore[import-not-found]


def main() -> None:
    port, path, uid, token, dialect = sys.argv[1:6]
    api = NorenApi(host="http://127.0.0.1:9/", websocket=f"ws://127.0.0.1:{port}{path}")
    if dialect == "a":
        api.set_credentials(token, uid, uid)
    else:
        api.set_session(uid, "unused", token)
    opened = threading.Event()
    lock = threading.Lock()
    received: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    errors: list[Any] = []

    def on_data(message: dict[str, Any]) -> None:
        with lock:
            received.append(message)

    def on_order(message: dict[str, Any]) -> None:
        with lock:
            orders.append(message)

    def on_error(error: Any) -> None:
        with lock:
            errors.append(error if isinstance(error, dict) else str(error))

    api.start_websocket(
        subscribe_callback=on_data,
        order_update_callback=on_order,
        socket_open_callback=opened.set,
        socket_error_callback=on_error,
    )
    deadline = time.monotonic() + 8
    while not opened.is_set() and not errors and time.monotonic() < deadline:
        time.sleep(0.02)
    result: dict[str, Any] = {"opened": opened.is_set()}
    if result["opened"]:
        api.subscribe(["NSE|2885", "NSE|26000"])
        api.subscribe("NSE|11536", FeedType.SNAPQUOTE)
        api.subscribe_orders()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with lock:
                kinds = {m["t"] for m in received}
                done = {"tk", "tf", "dk", "df"} <= kinds and bool(orders)
            if done:
                break
            time.sleep(0.02)
        time.sleep(float(os.environ.get("NOREN_SDK_LINGER", "0")))  # long enough for a protocol ping
        api.unsubscribe("NSE|2885")
        api.unsubscribe("NSE|11536", FeedType.SNAPQUOTE)
        time.sleep(0.3)
        api.close_websocket()
    else:
        time.sleep(0.5)
    with lock:
        result.update(received=received, orders=orders, errors=errors)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # a refused SDK reconnects forever in its thread; close_websocket() cannot stop it


if __name__ == "__main__":
    main()
