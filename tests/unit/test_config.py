from __future__ import annotations

from pathlib import Path

import pytest

from openalgo_proxy.config import load_settings, show
from openalgo_proxy.errors import ConfigError


def test_defaults() -> None:
    s = load_settings()
    assert (s.proxy.host, s.proxy.port, s.auth.mode) == ("127.0.0.1", 8765, "none")
    assert s.feed.bus.startswith("ipc://") and s.proxy.bus == [s.feed.bus] and not s.bus.curve


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[proxy]\nport = 9000\nping_interval = 12.5\n[feed]\nbroker = "simulator"\n')
    assert load_settings(cfg).proxy.port == 9000
    monkeypatch.setenv("OPENALGO_PROXY_PROXY__PORT", "9100")
    s = load_settings(cfg)
    assert s.proxy.port == 9100 and s.proxy.ping_interval == 12.5
    assert load_settings(cfg, {"proxy": {"port": 9200}}).proxy.port == 9200


@pytest.mark.parametrize(
    "text",
    ["[proxy]\nprot = 1\n", "[nonsense]\nx = 1\n", '[proxy]\nport = "high"\n', "[proxy\n"],
)
def test_unknown_or_bad_keys_are_errors(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_unknown_environment_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENALGO_PROXY_PROXIE__PORT", "1")
    with pytest.raises(ConfigError, match="OPENALGO_PROXY_PROXIE__PORT"):
        load_settings()


def test_show_masks_secrets() -> None:
    s = load_settings(overrides={"auth": {"mode": "api_key", "api_keys": ["supersecret"]}})
    text = show(s)
    assert "supersecret" not in text and "*****" in text


def test_standby_takeover_must_outlast_several_status_intervals() -> None:
    with pytest.raises(ConfigError, match="takeover_after"):
        load_settings(overrides={"feed": {"standby": True, "status_interval": 2.0, "takeover_after": 2.0}})
    ok = load_settings(overrides={"feed": {"standby": True, "status_interval": 0.5, "takeover_after": 2.0}})
    assert ok.feed.takeover_after == 2.0
