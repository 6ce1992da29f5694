"""Broker sections (`[feed.NAME]`, validated by each broker's settings class) and the one credential reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.environment import Credential, read_credentials, read_token, token_source
from openalgo_proxy.brokers.registry import creator, settings_classes
from openalgo_proxy.config import load_settings, show
from openalgo_proxy.errors import BrokerAuthError, ConfigError

#: a complete set of credentials for every broker with a section
ENV = {
    "ANGEL_API_KEY": "k",
    "ANGEL_CLIENT_CODE": "A1",
    "ANGEL_JWT_TOKEN": "j",
    "ANGEL_FEED_TOKEN": "f",
    "KITE_API_KEY": "k",
    "KITE_ACCESS_TOKEN": "t",
    "MSTOCK_API_KEY": "k",
    "MSTOCK_ACCESS_TOKEN": "t",
    "DHAN_CLIENT_ID": "1",
    "DHAN_ACCESS_TOKEN": "t",
    "UPSTOX_ACCESS_TOKEN": "t",
    **{f"{member.upper()}_USER_ID": "U" for member in ("shoonya", "flattrade", "zebu", "tradesmart", "definedge")},
    **{f"{member.upper()}_ACCESS_TOKEN": "t" for member in ("shoonya", "flattrade", "zebu", "tradesmart", "definedge")},
    "ALICEBLUE_USER_ID": "U",
    "ALICEBLUE_ACCESS_TOKEN": "t",
}


def load(tmp_path: Path, text: str) -> object:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    return load_settings(cfg)


def test_a_section_is_validated_by_the_brokers_own_class(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[feed]\nbroker = "shoonya"\n[feed.shoonya]\nkeys_per_message = 20\nexchanges = ["nse", "nfo"]\n')
    settings = load_settings(cfg)
    section = settings.feed.section()
    assert type(section).__name__ == "ShoonyaSettings"
    assert section is settings.feed.shoonya and section.keys_per_message == 20  # type: ignore[union-attr]
    assert section.exchanges == ("NSE", "NFO")
    shown = json.loads(show(settings))["feed"]
    assert shown["shoonya"]["keys_per_message"] == 20 and "zerodha" not in shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[feed.zerodha]\nexchange = []\n", "feed.zerodha.exchange: Extra inputs are not permitted"),
        ("[feed.dhan]\nclient_id = 7\n", "feed.dhan.client_id: Input should be a valid string"),
        ("[feed.nosuch]\nexchanges = []\n", r"\[feed.nosuch\]: no broker 'nosuch' has a section"),
        (
            '[feed.zerodha]\napi_key = "abc"\n',
            "feed.zerodha: api_key is a secret: set the environment variable KITE_API_KEY",
        ),
        ('[feed.upstox]\naccess_token = "x"\n', "the environment variable UPSTOX_ACCESS_TOKEN"),
        ('[feed.angel]\nangel_totp_secret = "x"\n', "the environment variable ANGEL_TOTP_SECRET"),
    ],
)
def test_bad_sections_fail_at_load_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, text)
    assert "\n" not in str(caught.value)


def test_sections_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENALGO_PROXY_FEED__DHAN__CLIENT_ID", "77")
    monkeypatch.setenv("OPENALGO_PROXY_FEED__ZERODHA__EXCHANGES", '["mcx"]')
    settings = load_settings()
    assert settings.feed.dhan is not None and settings.feed.dhan.client_id == "77"
    assert settings.feed.zerodha is not None and settings.feed.zerodha.exchanges == ("MCX",)
    monkeypatch.setenv("OPENALGO_PROXY_FEED__DHAN__TOKEN", "x")
    with pytest.raises(ConfigError, match=r"feed\.dhan\.token"):
        load_settings()


def test_documented_option_variables_still_set_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOONYA_MAX_SUBSCRIPTIONS", "300")
    monkeypatch.setenv("KITE_EXCHANGES", "nse, bse")
    monkeypatch.setenv("UPSTOX_FULL_D30", "1")
    classes = settings_classes()
    assert classes["shoonya"].load().max_subscriptions == 300  # type: ignore[attr-defined]
    assert classes["zerodha"].load().exchanges == ("NSE", "BSE")
    assert classes["upstox"].load().full_d30  # type: ignore[attr-defined]
    monkeypatch.setenv("SHOONYA_KEYS_PER_MESSAGE", "many")
    with pytest.raises(ConfigError, match="SHOONYA_KEYS_PER_MESSAGE"):
        classes["shoonya"].load()


def test_the_reader_names_every_missing_credential() -> None:
    wanted = [Credential("X_KEY"), Credential("X_TOKEN", token_file=True), Credential("X_PIN", required=False)]
    with pytest.raises(
        ConfigError, match=r"^the x feed needs X_KEY and X_TOKEN \(or X_TOKEN_FILE\) in the environment$"
    ):
        read_credentials(wanted, "x", {})
    assert read_credentials(wanted, "x", {"X_KEY": " k ", "X_TOKEN": "t"}) == {"X_KEY": "k", "X_TOKEN": "t"}


def test_a_token_file_is_read_again_at_every_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("day-1\n")
    monkeypatch.setenv("X_TOKEN_FILE", str(path))
    monkeypatch.setenv("X_TOKEN", "ignored while the file is named")
    token = token_source("X_TOKEN", "x")
    assert token() == "day-1"
    path.write_text("day-2\nsecond line ignored\n")
    assert token() == "day-2"
    path.write_text("")
    with pytest.raises(BrokerAuthError, match=r"X_TOKEN_FILE .* is empty"):
        token()
    with pytest.raises(BrokerAuthError, match="cannot read X_TOKEN_FILE"):
        read_token("X_TOKEN", "", str(tmp_path / "gone"))
    monkeypatch.setenv("X_TOKEN_FILE", str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match="not a readable file"):
        token()


@pytest.mark.parametrize("broker", sorted(settings_classes()))
def test_every_brokers_credentials_come_from_the_environment(broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    section = settings_classes()[broker].load({})
    required = [c.env for c in section.credentials if c.required]
    with pytest.raises(ConfigError, match=f"the {broker} feed needs") as caught:
        section.read_credentials(broker, {})
    assert required and all(name in str(caught.value) for name in required)
    found = section.read_credentials(broker, ENV)
    assert set(required) <= set(found) and set(found.values()) <= set(ENV.values())
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    adapter = creator(broker)(FeedOptions(settings=section))
    assert adapter.name == broker


def test_create_takes_the_section_options() -> None:
    classes = settings_classes()
    shoonya = creator("shoonya")(FeedOptions(settings=classes["shoonya"].load({"SHOONYA_KEYS_PER_MESSAGE": "7"})))
    assert shoonya.keys_per_message == 7  # type: ignore[attr-defined]
    kite = creator("zerodha")(FeedOptions(settings=classes["zerodha"].model_validate({"exchanges": "mcx"})))
    assert kite._exchange_filter == ("MCX",)  # type: ignore[attr-defined]
    given = creator("zerodha")(FeedOptions(exchanges=("NSE",), settings=classes["zerodha"].model_validate({})))
    assert given._exchange_filter == ("NSE",)  # type: ignore[attr-defined]


def test_config_show_tells_which_credentials_are_set_never_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITE_API_KEY", "kite-secret-value")
    monkeypatch.delenv("KITE_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("KITE_ACCESS_TOKEN_FILE", raising=False)
    text = show(load_settings(overrides={"feed": {"broker": "zerodha-simulator"}}))
    assert "kite-secret-value" not in text
    assert json.loads(text)["credentials"] == {
        "KITE_API_KEY": "set",
        "KITE_ACCESS_TOKEN": "unset",
        "KITE_ACCESS_TOKEN_FILE": "unset",
    }
