"""Where the tick store lives by default."""

from __future__ import annotations

import os
from pathlib import Path


def default_store_dir() -> str:
    """$XDG_DATA_HOME/openalgo-proxy/ticks (~/.local/share/openalgo-proxy/ticks)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "openalgo-proxy" / "ticks")
