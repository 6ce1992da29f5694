"""Server-to-client WebSocket frame headers, built by hand for the hot path (no masking, no
fragmentation, no extensions)."""

from __future__ import annotations

import struct

_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")


def frame_header(n: int) -> bytes:
    """Header of an unmasked, final WebSocket text frame (server to client) with an n-byte payload."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return _H16.pack(0x81, 126, n)
    return _H64.pack(0x81, 127, n)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (server to client)."""
    return frame_header(len(payload)) + payload
