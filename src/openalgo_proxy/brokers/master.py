"""The daily instrument master: read a file, or download a URL once per IST day and cache it on disk.

Every broker publishes its instrument list as one big file regenerated each trading day. `load_daily`
is the only loader: a file path is read as is; a URL is looked up in the cache directory under
`<prefix>-<source digest>-<IST day><suffix>`, downloaded (TLS verified) when today's copy is missing
or cannot be parsed, written atomically, and older days of the same source are pruned. Every failure
is an `InstrumentMasterError`. The broker supplies only `parse(bytes) -> index`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import aiohttp

from openalgo_proxy.errors import BrokerError

log = logging.getLogger(__name__)

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
T = TypeVar("T")


class InstrumentMasterError(BrokerError):
    """The instrument master could not be read, downloaded or parsed."""


def today_ist(now: dt.datetime | None = None) -> dt.date:
    """The trading day in India (masters roll over at IST midnight, not UTC)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(IST).date()


def default_cache_dir() -> str:
    """Where a production master is cached when no cache_dir is configured."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "openalgo-proxy")


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def cache_path(cache_dir: str, prefix: str, source: str, day: dt.date, suffix: str) -> Path:
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{prefix}-{digest}-{day.isoformat()}{suffix}"


async def fetch(url: str, headers: Mapping[str, str] | None = None, total_seconds: float = 180.0) -> bytes:
    """Download over HTTP(S); certificates are verified (aiohttp's default SSL context)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=total_seconds)) as session,
            session.get(url, headers=dict(headers or {})) as response,
        ):
            if response.status != 200:
                raise InstrumentMasterError(f"instrument master download failed: HTTP {response.status}")
            return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InstrumentMasterError(f"instrument master download failed: {exc}") from exc


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prune(keep: Path, prefix: str, source: str, suffix: str) -> None:
    """Delete the other days' copies of `source` beside `keep`."""
    head = cache_path(str(keep.parent), prefix, source, dt.date.min, suffix).name.rsplit("-", 3)[0]
    for old in keep.parent.glob(f"{head}-*{suffix}"):
        if old != keep and old.is_file():
            old.unlink(missing_ok=True)


def _parse(parse: Callable[[bytes], T], data: bytes, what: str) -> T:
    try:
        return parse(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise InstrumentMasterError(f"cannot parse instrument master {what}: {exc}") from exc


async def load_daily(
    source: str,
    parse: Callable[[bytes], T],
    *,
    prefix: str,
    suffix: str = "",
    cache_dir: str | None = None,
    headers: Mapping[str, str] | None = None,
    today: dt.date | None = None,
) -> T:
    """The master at `source` (URL or file path), parsed; a URL is cached in `cache_dir` for the IST day.

    A cached copy that cannot be read or parsed is ignored (logged) and downloaded again. A cache
    that cannot be written is logged; the downloaded master is still used.
    """
    if not is_url(source):
        try:
            data = await asyncio.to_thread(Path(source).read_bytes)
        except OSError as exc:
            raise InstrumentMasterError(f"cannot read instrument master {source}: {exc.strerror}") from exc
        return await asyncio.to_thread(_parse, parse, data, source)
    cached = cache_path(cache_dir, prefix, source, today or today_ist(), suffix) if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            result = await asyncio.to_thread(_parse, parse, await asyncio.to_thread(cached.read_bytes), str(cached))
            log.info("%s: instrument master from cache %s", prefix, cached)
            return result
        except (OSError, InstrumentMasterError) as exc:
            log.warning("%s: ignoring unreadable cache %s: %s", prefix, cached, exc)
    data = await fetch(source, headers)
    result = await asyncio.to_thread(_parse, parse, data, "download")
    if cached is not None:
        try:
            await asyncio.to_thread(write_atomic, cached, data)
            await asyncio.to_thread(prune, cached, prefix, source, suffix)
        except OSError as exc:
            log.warning("%s: cannot cache the instrument master in %s: %s", prefix, cached.parent, exc)
    log.info("%s: instrument master downloaded", prefix)
    return result
