"""The feed-codec scenario: Angel SnapQuote packets decoded and normalized per second, one core.

Runs only when ``openalgo_proxy.brokers.angel.codec`` exists (it lands from another branch). The
module is expected to offer a packet builder for tests and a decode(+normalize) function; names
are looked up, not assumed, and the scenario reports what it could not find.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from typing import Any

MODULE = "openalgo_proxy.brokers.angel.codec"
BUILDERS = ("encode_snapquote", "build_snapquote", "pack_snapquote", "encode_packet", "build_packet", "encode")
DECODERS = ("decode_and_normalize", "decode_tick", "parse_tick", "decode_packet", "decode")


def available() -> bool:
    try:
        return importlib.util.find_spec(MODULE) is not None
    except ModuleNotFoundError:
        return False


def _first(module: Any, names: tuple[str, ...]) -> Callable[..., Any] | None:
    for name in names:
        func = getattr(module, name, None)
        if callable(func):
            return func  # type: ignore[no-any-return]
    return None


def run(seconds: float = 2.0) -> tuple[float, str]:
    """(packets per second, note); 0 with the reason when the codec cannot be driven."""
    if not available():
        return 0.0, f"unavailable: {MODULE} is not in this tree (merge main once it lands)"
    module = importlib.import_module(MODULE)
    sample = getattr(module, "SAMPLE_SNAPQUOTE", None)
    builder = _first(module, BUILDERS)
    decoder = _first(module, DECODERS)
    if decoder is None:
        return 0.0, f"unavailable: no decoder among {', '.join(DECODERS)} in {MODULE}"
    if sample is None and builder is None:
        return 0.0, f"unavailable: no SAMPLE_SNAPQUOTE or packet builder in {MODULE}"
    packet = sample if sample is not None else builder()  # type: ignore[misc]
    count = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(1000):
            decoder(packet)
        count += 1000
    elapsed = time.perf_counter() - started
    return count / elapsed, f"{decoder.__name__} on a {len(packet)}-byte packet"
