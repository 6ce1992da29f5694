"""Upstox credentials from the environment: token or token file (re-read each time), Plus flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.errors import BrokerAuthError, ConfigError


def test_token_from_the_environment_and_never_in_the_repr() -> None:
    creds = UpstoxCredentials.from_env({"UPSTOX_ACCESS_TOKEN": " secret-token ", "UPSTOX_FULL_D30": "1"})
    assert creds.token() == "secret-token" and creds.full_d30
    assert creds.authorization()["Authorization"] == "Bearer secret-token"
    assert "secret-token" not in repr(creds)
    assert not UpstoxCredentials.from_env({"UPSTOX_ACCESS_TOKEN": "t"}).full_d30


def test_token_file_is_read_at_each_use(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("day-one\n")
    creds = UpstoxCredentials.from_env({"UPSTOX_ACCESS_TOKEN_FILE": str(path)})
    assert creds.token() == "day-one"
    path.write_text("day-two\n")
    assert creds.token() == "day-two"
    path.write_text("\n")
    with pytest.raises(BrokerAuthError, match="empty"):
        creds.token()
    path.unlink()
    with pytest.raises(BrokerAuthError, match="cannot read"):
        creds.token()


def test_missing_or_unreadable_credentials_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="UPSTOX_ACCESS_TOKEN"):
        UpstoxCredentials.from_env({})
    with pytest.raises(ConfigError, match="not a readable file"):
        UpstoxCredentials.from_env({"UPSTOX_ACCESS_TOKEN_FILE": str(tmp_path / "missing")})
