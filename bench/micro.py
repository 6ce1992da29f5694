"""Micro-benchmarks behind the hot-spot notes: `python -m bench.micro`.

Cost per bus message of draining a SUB socket with pyzmq, by method: ``recv_multipart`` asks for
RCVMORE (a getsockopt) after every part; three plain ``recv`` calls do not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import zmq

MESSAGES = 200_000


def _fill(pub: zmq.Socket[bytes], data: bytes) -> None:
    for i in range(MESSAGES):
        pub.send_multipart((b"NSE|S00001|2", i.to_bytes(8, "big"), data))
    time.sleep(0.3)


def _drain(receive: Callable[[], object]) -> float:
    """Microseconds per message to receive MESSAGES messages."""
    done = 0
    started = time.perf_counter()
    deadline = started + 30
    while done < MESSAGES and time.perf_counter() < deadline:
        try:
            receive()
        except zmq.Again:
            time.sleep(0.001)
            continue
        done += 1
    return (time.perf_counter() - started) / max(1, done) * 1e6


def main() -> int:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(f"tcp://127.0.0.1:{port}")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.3)
    nb = zmq.NOBLOCK
    recv = sub.recv

    def three() -> object:
        return recv(nb), recv(nb), recv(nb)

    def three_checked() -> object:
        parts = recv(nb), recv(nb), recv(nb)
        if sub.getsockopt(zmq.RCVMORE):
            raise ValueError("a bus message has more than 3 frames")
        return parts

    more = sub.getsockopt
    rcvmore = zmq.RCVMORE

    def checked_each() -> object:  # the proxy's drain at 8243d4e: RCVMORE after every part
        parts = [recv(nb)]
        if more(rcvmore):
            parts.append(recv())
            if more(rcvmore):
                parts.append(recv())
                while more(rcvmore):
                    parts.append(recv())
        return parts

    methods: list[tuple[str, Callable[[], object]]] = [
        ("recv_multipart", lambda: sub.recv_multipart(nb)),
        ("3 x recv", three),
        ("3 x recv + one RCVMORE check", three_checked),
        ("recv + RCVMORE after each part", checked_each),
    ]
    data = b"x" * 350
    for name, method in methods:
        _fill(pub, data)
        sys.stdout.write(f"{name:30s} {_drain(method):6.2f} us/message\n")
    sub.close(linger=0)
    pub.close(linger=0)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
