"""A TCP man-in-the-middle with fault switches, for loopback tests of any broker or client.

    async with FaultProxy("127.0.0.1", target_port) as fp:
        connect to ("127.0.0.1", fp.port) instead of the target
        fp.faults.latency = 0.2            # added to every chunk, each direction
        fp.faults.bandwidth = 10_000       # bytes per second per direction (0 = unlimited)
        fp.faults.blackhole = True         # new and live connections forward nothing (accept, then silence)
        fp.faults.mute = Direction.DOWN    # half-open: one direction forwards nothing
        fp.faults.cut_after = 4096         # each connection is reset after this many bytes (both ways)
        fp.faults.reset = True             # new connections are reset on accept
        fp.reset_all()                     # reset every live connection now (TCP RST)
        fp.mute_live(Direction.DOWN)       # half-open only the connections open now

Switches are read per chunk, so they apply to live connections at once. Targets must be loopback:
this tool never forwards anywhere else. Nothing here knows a broker's protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHUNK = 65536
_LINGER_RESET = struct.pack("ii", 1, 0)


class Direction(enum.Enum):
    UP = "up"  # client -> target
    DOWN = "down"  # target -> client


@dataclass
class Faults:
    latency: float = 0.0
    bandwidth: float = 0.0
    blackhole: bool = False
    mute: Direction | None = None
    cut_after: int | None = None
    reset: bool = False

    def clear(self) -> None:
        self.latency = 0.0
        self.bandwidth = 0.0
        self.blackhole = False
        self.mute = None
        self.cut_after = None
        self.reset = False


def _require_loopback(host: str) -> None:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as exc:
        raise ValueError(f"fault proxy: cannot resolve {host!r}") from exc
    for address in addresses:
        if not ipaddress.ip_address(str(address).split("%", 1)[0]).is_loopback:
            raise ValueError(f"fault proxy forwards to loopback only, not {host!r} ({address})")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    forwarded: int = 0
    mute: Direction | None = None  # this link only (see FaultProxy.mute_live)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)


class FaultProxy:
    """Listens on 127.0.0.1 (a free port unless given) and forwards to target_host:target_port."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        _require_loopback(target_host)
        self.target = (target_host, target_port)
        self.port = port
        self.faults = Faults()
        self.accepted = 0
        self.accept_times: list[float] = []  # time.monotonic() of every accepted connection
        self.bytes_up = 0
        self.bytes_down = 0
        self.dropped_bytes = 0  # read and discarded by blackhole or mute
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def live(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for pump in link.tasks:
                pump.cancel()  # a pump may sleep (latency, bandwidth) rather than read
        self.reset_all()
        handlers = list(self._handlers)
        if handlers:  # reset links end their handlers; cancel only what is still stuck after that
            _, stuck = await asyncio.wait(handlers, timeout=2.0)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def mute_live(self, direction: Direction) -> int:
        """Half-open the connections open now (one direction forwards nothing); new ones are healthy."""
        for link in self._links:
            link.mute = direction
        return len(self._links)

    def reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.reset()
        return len(links)

    # -- forwarding ------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        self.accept_times.append(time.monotonic())
        link = _Link(writer)
        try:
            if self.faults.reset:
                _reset(writer)
                return
            self._links.add(link)
            if self.faults.blackhole:
                await self._drain_silently(reader, link)  # never even reaches the target
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
            except OSError as exc:
                log.debug("fault proxy: target %s:%d refused: %s", *self.target, exc)
                _reset(writer)
                return
            link.tasks = [
                asyncio.create_task(self._pump(reader, link.upstream, link, Direction.UP)),
                asyncio.create_task(self._pump(up_reader, writer, link, Direction.DOWN)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in link.tasks:
                pump.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)
            link.reset()
            self._handlers.discard(task)

    async def _drain_silently(self, reader: asyncio.StreamReader, link: _Link) -> None:
        while data := await reader.read(CHUNK):
            self.dropped_bytes += len(data)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, direction: Direction
    ) -> None:
        try:
            while True:
                faults = self.faults
                size = CHUNK if not faults.bandwidth else max(64, min(CHUNK, int(faults.bandwidth / 20)))
                data = await reader.read(size)
                if not data:
                    break
                if self._silenced(link, direction):
                    self.dropped_bytes += len(data)
                    continue
                if faults.cut_after is not None and link.forwarded + len(data) >= faults.cut_after:
                    data = data[: max(0, faults.cut_after - link.forwarded)]
                    writer.write(data)
                    self._count(direction, len(data), link)
                    with contextlib.suppress(OSError):
                        await writer.drain()
                    return  # the handler resets both sides
                if faults.latency:
                    await asyncio.sleep(faults.latency)
                writer.write(data)
                self._count(direction, len(data), link)
                await writer.drain()
                if faults.bandwidth:
                    await asyncio.sleep(len(data) / faults.bandwidth)
        except (ConnectionError, OSError) as exc:
            log.debug("fault proxy: %s link ended: %s", direction.value, exc)
        # A silenced direction hides its end too, as a dead path would: the far side learns nothing
        # until its own keepalive gives up or the switch is cleared (or the fault proxy stops).
        while self._silenced(link, direction):  # noqa: ASYNC110 - switches are plain attributes, polled
            await asyncio.sleep(0.05)

    def _silenced(self, link: _Link, direction: Direction) -> bool:
        faults = self.faults
        return faults.blackhole or faults.mute is direction or link.mute is direction

    def _count(self, direction: Direction, n: int, link: _Link) -> None:
        link.forwarded += n
        if direction is Direction.UP:
            self.bytes_up += n
        else:
            self.bytes_down += n
