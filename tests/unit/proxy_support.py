"""Sessions, hubs and outboxes without sockets: real parts, a list instead of a transport."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from openalgo_proxy import topics
from openalgo_proxy.bus import SEQ
from openalgo_proxy.config import AuthSettings, LimitSettings, ProxySettings
from openalgo_proxy.proxy.admission import Admission
from openalgo_proxy.proxy.hub import Hub, TopicState
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox
from openalgo_proxy.proxy.session import Close, Session, SessionLimits

KEY = "unit-test-key-0123456789"
INSTRUMENTS = {
    "broker": "simulator",
    "exchanges": ["NSE", "NSE_INDEX"],
    "symbols": {"NSE": ["INFY", "TCS", "RELIANCE"], "NSE_INDEX": ["NIFTY"]},
}


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked server-to-client frames -> (opcode, payload) each."""
    frames = []
    i = 0
    while i < len(data):
        opcode = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n = int.from_bytes(data[i : i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(data[i : i + 8], "big")
            i += 8
        frames.append((opcode, data[i : i + n]))
        i += n
    return frames


class Wire:
    """What an outbox wrote, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.writes.append(data)

    def messages(self) -> list[dict[str, Any]]:
        """Every JSON message written so far, in order; clears the record."""
        out = [json.loads(payload) for w in self.writes for _, payload in split_frames(w)]
        self.writes.clear()
        return out


@dataclass
class Bus:
    subscribed: list[bytes] = field(default_factory=list)
    unsubscribed: list[bytes] = field(default_factory=list)


def make_hub(metrics: ProxyMetrics | None = None, instruments: dict[str, Any] | None = INSTRUMENTS) -> tuple[Hub, Bus]:
    bus = Bus()
    hub = Hub(metrics or ProxyMetrics(), bus.subscribed.append, bus.unsubscribed.append, "simulator")
    if instruments is not None:
        hub.on_bus_message([topics.instruments_topic("simulator"), SEQ.pack(1), msgspec.json.encode(instruments)])
    return hub, bus


def tick(hub: Hub, topic: bytes, seq: int, ltp: float = 100.0) -> None:
    hub.on_bus_message([topic, SEQ.pack(seq), b'{"ltp":%s}' % str(ltp).encode()])


def outbox(metrics: ProxyMetrics | None = None) -> tuple[Outbox[TopicState], Wire]:
    wire = Wire()
    return Outbox(wire, metrics or ProxyMetrics()), wire


class Rig:
    """A hub, admission and any number of sessions on one fake clock."""

    def __init__(
        self,
        auth: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
        proxy: dict[str, Any] | None = None,
        tmp: Path | None = None,
        instruments: dict[str, Any] | None = INSTRUMENTS,
    ) -> None:
        auth_cfg = dict(auth or {})
        if auth_cfg.get("mode") == "api_key":
            auth_cfg.setdefault("api_keys", [KEY])
            auth_cfg.setdefault("keys_file", str((tmp or Path("/nonexistent")) / "keys.json"))
        self.auth = AuthSettings.model_validate(auth_cfg)
        self.cfg = ProxySettings.model_validate(proxy or {})
        self.metrics = ProxyMetrics()
        self.hub, self.bus = make_hub(self.metrics, instruments)
        self.admission = Admission.from_settings(
            LimitSettings.model_validate(limits or {}), self.cfg.max_connections, self.auth
        )
        self.limits = SessionLimits.from_settings(self.cfg, self.auth)
        self.now = 1000.0
        self.wall = 1_800_000_000.0
        self._ids = 0

    def session(self, connect: bool = True, open_: bool = True) -> tuple[Session, Wire]:
        wire = Wire()
        self._ids += 1
        box: Outbox[TopicState] = Outbox(wire, self.metrics)
        session = Session(
            self._ids,
            box,
            self.hub,
            self.admission,
            self.metrics,
            self.limits,
            self.now,
            wall_clock=lambda: self.wall,
        )
        if connect:
            assert session.connect("127.0.0.1")
        if open_:
            assert session.open(self.now) is None
        return session, wire

    def send(self, session: Session, message: dict[str, Any] | bytes, binary: bool = False) -> Close | None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        return session.receive_message(data, binary, self.now)
