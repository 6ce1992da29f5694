"""Fuzzing every parser that reads bytes from outside: the Angel codec (binary packets, text
frames, requests the simulator reads), the proxy's client-protocol parser and the client
library's message decoder. Random and mutated inputs: only the documented error type may escape,
and whatever decodes must survive the rest of the pipeline (tick -> client payload). End to end,
malformed input is counted and the connection stays up.

Random-bytes fuzzing of decode_packet alone is in tests/unit/angel/test_angel_codec.py; here the
inputs are mutations of the recorded fixtures, which reach far deeper than random bytes.
"""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import msgspec
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import AngelCodecError, decode_packet, to_tick
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.client.messages import ProtocolViolation
from openalgo_proxy.client.messages import decode as client_decode
from openalgo_proxy.errors import RequestError
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import encode_data
from openalgo_proxy.proxy.protocol import parse_request
from tests.reliability.scenarios import angel_under_test, system_behind_faults
from tests.support import System, client, running_system, wait_for

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "angel").glob("*.bin"))
SEEDS = [p.read_bytes() for p in FIXTURES]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with byte flips, overwrites with boundary values, truncation or extension."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "byte", "int64", "truncate", "extend"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFF]))
        elif kind == "int64":
            value = draw(st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**53, 10**15, -(10**12)]))
            data[at : at + 8] = value.to_bytes(8, "little", signed=True)
        elif kind == "truncate":
            del data[at:]
        else:
            data.extend(draw(st.binary(max_size=64)))
    return bytes(data)


def _through_the_pipeline(data: bytes) -> bool:
    """Decode, convert and encode for every mode the packet can feed; False if the codec refused it."""
    try:
        packet = decode_packet(data)
    except AngelCodecError:
        return False
    tick = to_tick(packet, "X", "NSE")
    for mode in Mode:
        if mode <= tick.mode:
            payload = msgspec.json.decode(encode_data(tick, mode))
            assert payload["symbol"] == "X" and isinstance(payload["ltp"], float | int)
    return True


@FUZZ
@given(mutated(SEEDS))
def test_mutated_angel_packets_decode_or_raise_codec_error_and_always_encode(data: bytes) -> None:
    _through_the_pipeline(data)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            json.dumps,
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda c: (
                    st.lists(c, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(["errorCode", "errorMessage", "correlationID", "x"]), c, max_size=4
                    )
                ),
                max_leaves=10,
            ),
        ),
    )
)
def test_angel_text_frames_raise_only_codec_errors(text: str) -> None:
    try:
        codec.decode_text(text)
    except AngelCodecError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=20,
)


@st.composite
def angel_requests(draw: st.DrawFn) -> str:
    """Near-valid SmartStream requests with any field replaced by an arbitrary JSON value."""
    body: dict[str, Any] = {
        "correlationID": draw(st.text(max_size=12)),
        "action": draw(st.sampled_from([0, 1, 2, "1", None])),
        "params": {
            "mode": draw(st.sampled_from([1, 2, 3, 4, 5, "3", None])),
            "tokenList": [
                {
                    "exchangeType": draw(st.sampled_from([1, 2, 13, 6, "1"])),
                    "tokens": draw(st.lists(st.text(max_size=30), max_size=3)),
                }
            ],
        },
    }
    if draw(st.booleans()):
        path = draw(st.sampled_from([("action",), ("params",), ("params", "mode"), ("params", "tokenList")]))
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = draw(json_values)
    return json.dumps(body)


@FUZZ
@given(st.one_of(angel_requests(), st.text(max_size=100)))
def test_angel_requests_raise_only_codec_errors(text: str) -> None:
    try:
        codec.decode_request(text)
    except AngelCodecError:
        pass


@st.composite
def client_requests(draw: st.DrawFn) -> bytes:
    """Protocol requests: valid actions with arbitrary field values, random JSON, random bytes."""
    action = draw(
        st.sampled_from(
            [
                "subscribe",
                "unsubscribe",
                "unsubscribe_all",
                "authenticate",
                "auth",
                "ping",
                "list_subscriptions",
                "get_broker_info",
                "x",
                "",
            ]
        )
    )
    body: dict[str, Any] = {"action": action}
    for key in draw(
        st.lists(
            st.sampled_from(
                ["symbol", "exchange", "mode", "symbols", "depth", "request_id", "api_key", "token", "apikey"]
            ),
            max_size=5,
        )
    ):
        body[key] = draw(
            st.one_of(
                json_values,
                st.lists(st.fixed_dictionaries({"symbol": json_values, "exchange": json_values}), max_size=3),
                st.sampled_from(["LTP", "quote", "DEPTH", 1, 2, 3, 0, 4, -1, 1.5, "NSE", "RELIANCE"]),
            )
        )
    kind = draw(st.sampled_from(["body", "json", "bytes"]))
    if kind == "body":
        return json.dumps(body).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=200))


@FUZZ
@given(client_requests())
def test_client_protocol_parser_raises_only_request_errors(raw: bytes) -> None:
    try:
        parse_request(raw)
    except RequestError:
        pass


VALID_REQUESTS = [
    b'{"action":"subscribe","symbol":"RELIANCE","exchange":"NSE","mode":1}',
    b'{"action":"subscribe","symbols":["NSE:INFY",{"symbol":"TCS","exchange":"NSE"}],"mode":"quote"}',
    b'{"action":"authenticate","api_key":"oap_x","request_id":7}',
    b'{"action":"ping","_pingId":1}',
    b'{"action":"unsubscribe","symbols":[{"symbol":"A","exchange":"NSE","mode":3}]}',
]
INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]


@st.composite
def raw_request_bytes(draw: st.DrawFn) -> bytes:
    """What a text frame can carry before anything checked it: random bytes, valid requests with
    bytes flipped or inserted (invalid UTF-8 included), invalid UTF-8 inside strings, deep nesting."""
    kind = draw(st.sampled_from(["binary", "mutated", "utf8", "deep"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    if kind == "utf8":
        bad = draw(st.sampled_from(INVALID_UTF8))
        field = draw(st.sampled_from(["action", "symbol", "exchange", "api_key", "request_id", "_pingId"]))
        return b'{"action":"subscribe","' + field.encode() + b'":"a' + bad + b'b","exchange":"NSE"}'
    if kind == "deep":
        depth = draw(st.integers(1, 5000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return b'{"action":"ping","x":' + opener * depth + b"1" + closer * depth + b"}"
    data = bytearray(draw(st.sampled_from(VALID_REQUESTS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = draw(st.sampled_from(INVALID_UTF8))
    return bytes(data)


@FUZZ
@given(raw_request_bytes())
@example(b'"\xff"')
@example(b'{"action":"\xff"}')
@example(b"[" * 1000 + b"]" * 1000)
@example(b'{"action":"ping","_pingId":' + b"[" * 1000 + b"]" * 1000 + b"}")
def test_request_parser_on_raw_bytes_raises_only_request_errors(raw: bytes) -> None:
    """parse_request is handed a text frame's raw bytes: it must never raise anything else."""
    try:
        parse_request(raw)
    except RequestError:
        pass


server_messages = st.one_of(
    st.builds(
        lambda t, mode, data, seq: json.dumps(
            {
                "type": t,
                "mode": mode,
                "data": data,
                "seq": seq,
                "symbol": "A",
                "exchange": "NSE",
                "topic": "A.NSE",
                "broker": "x",
            }
        ),
        st.sampled_from(["market_data", "subscription", "error", "pong", ""]),
        json_values,
        json_values,
        json_values,
    ),
    st.builds(json.dumps, json_values),
    st.text(max_size=100),
)


@FUZZ
@given(server_messages)
def test_client_message_decoder_raises_only_protocol_violations(raw: str) -> None:
    try:
        client_decode(raw)
    except ProtocolViolation:
        pass


# -- end to end: malformed input is counted, nothing breaks ------------------------------------


def _non_finite_quantity(value: float) -> bytes:
    """A recorded Quote packet whose total buy quantity (a double at offset 75) is `value`."""
    data = bytearray((FIXTURES[0].parent / "quote_etype1.bin").read_bytes())
    data[75:83] = struct.pack("<d", value)
    return bytes(data)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_quantities_are_codec_errors(value: float) -> None:
    """Found by the mutation fuzzer: NaN made to_tick raise ValueError inside the read loop."""
    with pytest.raises(AngelCodecError):
        decode_packet(_non_finite_quantity(value))


async def test_malformed_broker_packets_are_counted_and_the_connection_stays() -> None:
    rng = random.Random(7)
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) for _ in range(40)]
    garbage += [_non_finite_quantity(math.nan), _non_finite_quantity(math.inf)]
    refused = sum(1 for data in garbage if not _safe_decodes(data))
    async with (
        angel_under_test({"ticks_per_second": 20}) as broker,
        system_behind_faults(broker) as fs,
        client(fs.system.url) as c,
    ):
        sim = broker.simulator
        assert isinstance(sim, AngelSimulator)
        await c.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": 3})
        await c.market_data(within=5)
        for data in garbage:
            await sim.send_malformed(data)
        await wait_for(lambda: fs.adapter.status().decode_errors == refused, within=5)
        c.market.clear()
        msg = await c.market_data(within=5, where=lambda m: m["topic"] == "TCS.NSE")
        assert len(msg["data"]["depth"]["buy"]) == 5
        assert fs.fp.accepted == 1 and fs.adapter.status().reconnects == 0


def _safe_decodes(data: bytes) -> bool:
    try:
        decode_packet(data)
    except AngelCodecError:
        return False
    return True


def _random_frames(seed: int, count: int) -> list[str | bytes]:
    rng = random.Random(seed)
    frames: list[str | bytes] = []
    for _ in range(count):
        choice = rng.randrange(4)
        if choice == 0:
            frames.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 100))))
        elif choice == 1:
            frames.append("".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(0, 80))))
        elif choice == 2:
            action = rng.choice(["subscribe", "unsubscribe", "zz"])
            frames.append(
                json.dumps(
                    {"action": action, "symbol": rng.choice([1, None, "", "X"]), "mode": rng.choice([0, 9, "x"])}
                )
            )
        else:
            frames.append(json.dumps([rng.random()]))
    return frames


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_client_frames_get_errors_and_the_connection_stays_usable(seed: int) -> None:
    """Below the protocol-error limit, every malformed frame is answered and counted."""
    async with running_system(limits={"max_protocol_errors": 1000}) as system, client(system.url) as c:
        errors_before = sum(system.proxy.metrics.errors.values())
        for frame in _random_frames(seed, 60):
            reply = await c.reply(frame)  # type: ignore[arg-type]
            assert reply["type"] == "error" or reply.get("status") == "error", reply
        assert sum(system.proxy.metrics.errors.values()) >= errors_before + 60
        reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
        assert reply["status"] == "success"
        await c.market_data(within=5)


async def test_a_garbage_stream_is_closed_4029_and_others_are_unaffected(system: System) -> None:
    """Past the protocol-error limit (default 20 a minute) the sender is closed with 4029."""
    async with client(system.url) as healthy, client(system.url) as noisy:
        await healthy.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            for frame in _random_frames(3, 200):
                await noisy.reply(frame)  # type: ignore[arg-type]
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029
        healthy.market.clear()
        await healthy.market_data(within=5)
        assert (await healthy.reply({"action": "ping"}))["type"] == "pong"
