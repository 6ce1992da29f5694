"""A misbehaving client, run as its own process: sends commands as fast as it can, reconnecting
whenever the proxy closes it, for a given number of seconds; prints what happened as JSON.

Usage: python flooder.py URL SECONDS
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

PING = json.dumps({"action": "ping"})


def _drain(ws: ClientConnection, codes: Counter[str]) -> None:
    try:
        while True:
            msg = json.loads(ws.recv())
            codes[msg.get("code") or msg.get("type", "?")] += 1
    except ConnectionClosed:
        return


def main() -> int:
    url, seconds = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + seconds
    closes: Counter[int] = Counter()
    replies: Counter[str] = Counter()
    sent = 0
    started = False
    while time.monotonic() < deadline:
        try:
            ws = connect(url, open_timeout=5, close_timeout=1, compression=None)
        except (OSError, InvalidHandshake) as exc:
            replies[f"connect failed: {type(exc).__name__}"] += 1
            continue
        if not started:
            sys.stdout.write("flooding\n")
            sys.stdout.flush()
            started = True
        reader = threading.Thread(target=_drain, args=(ws, replies))
        reader.start()
        try:
            while time.monotonic() < deadline:
                ws.send(PING)
                sent += 1
        except ConnectionClosed as exc:
            closes[exc.rcvd.code if exc.rcvd is not None else 1006] += 1
        finally:
            ws.close()
            reader.join(5)
    sys.stdout.write(json.dumps({"sent": sent, "closes": dict(closes), "replies": dict(replies)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
