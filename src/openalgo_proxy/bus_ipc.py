"""The single-host bus: an ``ipc://`` endpoint in a directory only this user can enter.

A Unix socket is guarded by the permissions of its directory, so the bus lives in a private one:
``$XDG_RUNTIME_DIR/openalgo-proxy`` (a per-user tmpfs on systemd hosts) or ``/tmp/openalgo-proxy-UID``.
It is created mode 0700, and used only if it is a real directory (not a symlink) owned by this user
with no access for group or others; anything else is refused with one line saying why, so another
local user can neither read the bus nor take the endpoint and publish forged ticks on it.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

from openalgo_proxy.errors import ConfigError

IPC = "ipc://"
DIR_NAME = "openalgo-proxy"
SOCKET_NAME = "bus"


def private_dir() -> Path:
    """Where the default bus socket lives (not created here)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        return Path(runtime) / DIR_NAME
    return Path("/tmp") / f"{DIR_NAME}-{os.geteuid()}"


def default_endpoint() -> str:
    return f"{IPC}{private_dir() / SOCKET_NAME}"


def ipc_path(endpoint: str) -> Path | None:
    """The socket path of an ipc:// endpoint; None for other transports."""
    if not endpoint.startswith(IPC):
        return None
    rest = endpoint[len(IPC) :]
    if rest.startswith("@") or not rest:
        raise ConfigError(
            f"bus endpoint {endpoint} is an abstract or empty Unix socket, which any local user can open; "
            "give a path in a private directory"
        )
    if not rest.startswith("/"):
        raise ConfigError(f"bus endpoint {endpoint} must be an absolute path (ipc:///dir/name)")
    return Path(rest)


def ensure_private_dir(path: Path) -> None:
    """Create `path` mode 0700 if missing; ConfigError unless it is this user's private directory."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create bus directory {path}: {exc.strerror}") from exc
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"bus directory {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"bus directory {path} is not a directory (a symlink or a file); remove it")
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"bus directory {path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()}): "
            "another user may be reading or forging the bus; remove it"
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"bus directory {path} has mode {stat.S_IMODE(st.st_mode):o}: other users can reach the bus; chmod 700 it"
        )


def in_use(path: Path) -> bool:
    """True when something accepts connections on the Unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False  # nothing there, or a stale socket left by a process that died
            raise ConfigError(f"bus endpoint ipc://{path}: {exc.strerror}") from exc
        return True


def check_endpoint(endpoint: str, *, bind: bool) -> None:
    """Before binding or connecting an ipc:// bus endpoint: its directory is private to this user,
    and (when binding) no other feed is bound there (ZeroMQ would silently take the path over)."""
    path = ipc_path(endpoint)
    if path is None:
        return
    ensure_private_dir(path.parent)
    if bind and in_use(path):
        raise ConfigError(f"bus endpoint {endpoint} is in use: another feed or forwarder is bound there")
