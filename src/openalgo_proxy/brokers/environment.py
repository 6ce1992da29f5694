"""Credentials from the environment, the one way every broker reads them (never from config files).

`secret(NAME)` reads a required variable. `token_source(NAME)` returns a callable that reads a daily
token from the file named by `NAME_FILE` (re-read on every call, so a login job can replace it) or
else from `NAME`; adapters call it again after the broker refuses the token.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from openalgo_proxy.errors import ConfigError


def secret(name: str, broker: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"set {name} for the {broker} feed")
    return value


def token_source(name: str, broker: str) -> Callable[[], str]:
    def read() -> str:
        path = os.environ.get(f"{name}_FILE")
        if path:
            try:
                token = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {name}_FILE: {exc.strerror}") from None
            if token:
                return token
            raise ConfigError(f"{name}_FILE is empty")
        token = os.environ.get(name, "").strip()
        if not token:
            raise ConfigError(f"set {name} or {name}_FILE for the {broker} feed")
        return token

    return read
