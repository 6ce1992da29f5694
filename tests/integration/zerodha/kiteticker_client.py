"""Runs Zerodha's official KiteTicker against a local server and prints what it saw as JSON.

Usage: python kiteticker_client.py PORT API_KEY ACCESS_TOKEN PLAN_JSON
PLAN_JSON: {"quote": [tokens], "full": [tokens], "ltp": [tokens], "frames": N, "order_update": bool}
Its Twisted reactor runs once per process, hence one process per connection.
Output: one JSON object: frames (hex payload + the SDK's own parsed ticks), heartbeats, errors,
order updates, close code, whether it connected.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from kiteconnect import KiteTicker
from twisted.internet import reactor


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def main() -> None:
    port, api_key, access_token, plan_text = sys.argv[1:5]
    plan = json.loads(plan_text)
    out: dict[str, Any] = {"connected": False, "frames": [], "heartbeats": 0, "errors": [], "orders": [], "close": None}
    want_modes = {t: m for m in ("ltp", "quote", "full") for t in plan.get(m, [])}
    seen: dict[int, int] = {}
    pending: list[bytes] = []
    kws = KiteTicker(api_key, access_token, root=f"ws://127.0.0.1:{port}", reconnect=False)

    def done() -> bool:
        enough = all(seen.get(t, 0) >= 2 for t in want_modes) and len(out["frames"]) >= plan.get("frames", 3)
        return enough and (not plan.get("order_update") or bool(out["orders"]))

    def finish() -> None:
        if reactor.running:
            reactor.stop()

    def on_connect(ws: KiteTicker, response: Any) -> None:
        out["connected"] = True
        everything = list(want_modes)
        ws.subscribe(everything)
        for mode in ("ltp", "full"):
            if plan.get(mode):
                ws.set_mode(mode, plan[mode])

    def on_message(ws: KiteTicker, payload: bytes, is_binary: bool) -> None:
        if is_binary and len(payload) == 1:
            out["heartbeats"] += 1
        elif is_binary and len(payload) > 4:
            pending.append(payload)

    def on_ticks(ws: KiteTicker, ticks: list[dict[str, Any]]) -> None:
        payload = pending.pop(0)
        # keep only frames after every mode request took effect
        if all(want_modes.get(t["instrument_token"]) == t["mode"] for t in ticks):
            out["frames"].append({"hex": payload.hex(), "ticks": jsonable(ticks)})
            for t in ticks:
                seen[t["instrument_token"]] = seen.get(t["instrument_token"], 0) + 1
        if done():
            ws.close()

    def on_order_update(ws: KiteTicker, data: Any) -> None:
        out["orders"].append(data)

    def on_error(ws: KiteTicker, code: Any, reason: Any) -> None:
        out["errors"].append([code, str(reason)])

    def on_close(ws: KiteTicker, code: Any, reason: Any) -> None:
        out["close"] = code
        finish()

    kws.on_connect = on_connect
    kws.on_message = on_message
    kws.on_ticks = on_ticks
    kws.on_order_update = on_order_update
    kws.on_error = on_error
    kws.on_close = on_close
    reactor.callLater(15, finish)  # never hang a test run
    kws.connect()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
