"""Opening a listener: an address that cannot be bound is one clear line naming it and what to do,
raised as a ConfigError (exit code 2, which `run` treats as "do not restart"), never a traceback."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

from openalgo_proxy.errors import ConfigError

_PROBLEMS = {
    errno.EADDRINUSE: "address already in use",
    errno.EACCES: "permission denied",
    errno.EADDRNOTAVAIL: "address not available on this machine",
}


def bind_failure(exc: BaseException, what: str, address: str, flag: str) -> ConfigError | None:
    """The one-line error for a failed bind of `address` (`what` names the listener, `flag` the
    option that moves it), or None when `exc` is not a bind failure. OSError (asyncio, aiohttp)
    and ZMQError both carry the system errno."""
    code = getattr(exc, "errno", None)
    problem = _PROBLEMS.get(code) if isinstance(code, int) else None
    if problem is None:
        return None
    if code == errno.EADDRINUSE:
        todo = f"another process (another openalgo-proxy?) is using it: stop it, or choose another with {flag}"
    elif code == errno.EACCES:
        todo = f"ports below 1024 need privileges: choose another with {flag}"
    else:
        todo = f"use an address of this machine with {flag}"
    return ConfigError(f"cannot listen on {address} ({what}): {problem}; {todo}")


async def listening(start: Callable[[], Awaitable[None]], what: str, address: str, flag: str) -> None:
    """Await `start()`, turning a bind failure into the one-line ConfigError."""
    try:
        await start()
    except Exception as exc:
        failure = bind_failure(exc, what, address, flag)
        if failure is None:
            raise
        raise failure from exc
