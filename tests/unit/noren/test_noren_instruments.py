"""Noren masters (fixture files in the real layouts), members' login frames, credentials, order mapping."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from openalgo_proxy.brokers.market import UNIVERSE
from openalgo_proxy.brokers.master import InstrumentMasterError
from openalgo_proxy.brokers.noren import instruments
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.members import MEMBERS, login_accepted, login_frame
from openalgo_proxy.brokers.noren.orders import order_update
from openalgo_proxy.errors import BrokerAuthError, ConfigError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "noren"


async def test_the_fixture_masters_name_instruments_like_the_other_brokers() -> None:
    index = await instruments.load_master(str(FIXTURES), None)
    expected = {
        ("NSE", "RELIANCE"): ("NSE", "2885"),
        ("NSE", "XYZ-BE"): ("NSE", "1234"),
        ("NSE_INDEX", "NIFTY"): ("NSE", "26000"),
        ("NSE_INDEX", "BANKNIFTY"): ("NSE", "26009"),
        ("NSE_INDEX", "FINNIFTY"): ("NSE", "26037"),
        ("NSE_INDEX", "MIDCPNIFTY"): ("NSE", "26074"),
        ("NSE_INDEX", "INDIAVIX"): ("NSE", "26017"),
        ("NFO", "NIFTY27JUL23FUT"): ("NFO", "42697"),
        ("NFO", "NIFTY27JUL2319500CE"): ("NFO", "43001"),
        ("NFO", "NIFTY27JUL2319500PE"): ("NFO", "43002"),
        ("NFO", "RELIANCE27JUL232412.5CE"): ("NFO", "43003"),
        ("CDS", "USDINR27JUL23FUT"): ("CDS", "1185"),
        ("CDS", "USDINR27JUL2383.25CE"): ("CDS", "2001"),
        ("MCX", "CRUDEOIL19JUL23FUT"): ("MCX", "450161"),
        ("BSE", "RELIANCE"): ("BSE", "500325"),
        ("BSE_INDEX", "SENSEX"): ("BSE", "1"),
    }
    for (exchange, symbol), key in expected.items():
        instrument = index.lookup(exchange, symbol)
        assert instrument is not None, (exchange, symbol)
        assert index.key_of(instrument) == key
    assert len(index) == len(expected) + 2  # NTPC and ACC
    usd = index.lookup("CDS", "USDINR27JUL23FUT")
    assert usd is not None and usd.tick_size == 0.0025 and usd.lot_size == 1
    nifty = index.lookup("NFO", "NIFTY27JUL23FUT")
    assert nifty is not None and nifty.lot_size == 50
    assert index.trading_symbols[("NSE", "RELIANCE-EQ")].symbol == "RELIANCE"
    kinds = {(i.exchange, i.symbol): i.instrument_type for i in map(lambda k: index.lookup(*k), expected) if i}
    assert kinds[("NSE", "RELIANCE")] == kinds[("BSE", "RELIANCE")] == "EQ"
    assert kinds[("NSE_INDEX", "NIFTY")] == kinds[("BSE_INDEX", "SENSEX")] == "INDEX"
    assert kinds[("NFO", "NIFTY27JUL23FUT")] == kinds[("MCX", "CRUDEOIL19JUL23FUT")] == "FUT"
    assert (kinds[("NFO", "NIFTY27JUL2319500CE")], kinds[("CDS", "USDINR27JUL2383.25CE")]) == ("CE", "CE")
    assert kinds[("NFO", "NIFTY27JUL2319500PE")] == "PE"
    nifty_index = index.lookup("NSE_INDEX", "NIFTY")
    assert nifty_index is not None and nifty_index.name == "Nifty 50"


async def test_zipped_masters_and_missing_ones(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "NSE_symbols.txt.zip", "w") as archive:
        archive.write(FIXTURES / "NSE_symbols.txt", "NSE_symbols.txt")
    index = await instruments.load_master(str(tmp_path), None)
    assert index.exchanges() == ("NSE", "NSE_INDEX")
    with pytest.raises(InstrumentMasterError):
        await instruments.load_master(str(tmp_path / "nothing"), None)
    (tmp_path / "BSE_symbols.txt").write_text("a,b\n1,2\n")
    with pytest.raises(InstrumentMasterError, match="Token"):
        await instruments.load_master(str(tmp_path), None)


async def test_the_simulator_masters_list_the_simulated_universe(tmp_path: Path) -> None:
    for exchange, data in instruments.master_files(UNIVERSE).items():
        (tmp_path / instruments.file_name(exchange)).write_bytes(data)
    index = await instruments.load_master(str(tmp_path), None)
    for listing in UNIVERSE:
        instrument = index.lookup(listing.exchange, listing.symbol)
        assert instrument is not None, listing.symbol
        assert index.key_of(instrument) == instruments.listing_key(listing)


def test_login_frames_of_each_dialect() -> None:
    assert json.loads(login_frame(MEMBERS["flattrade"], "FT1", "tok")) == {
        "t": "a", "uid": "FT1", "actid": "FT1", "accesstoken": "tok", "source": "API",
    }  # fmt: skip
    assert json.loads(login_frame(MEMBERS["definedge"], "DE1", "key")) == {
        "t": "c", "uid": "DE1", "actid": "DE1", "susertoken": "key", "source": "TRTP",
    }  # fmt: skip
    twice = hashlib.sha256(hashlib.sha256(b"session").hexdigest().encode()).hexdigest()
    assert json.loads(login_frame(MEMBERS["aliceblue"], "AB1", "session")) == {
        "t": "c", "uid": "AB1_API", "actid": "AB1_API", "susertoken": twice, "source": "API",
    }  # fmt: skip
    assert login_accepted({"t": "ak", "s": "OK"}) and login_accepted({"t": "ck", "s": "Ok"})
    assert login_accepted({"t": "cf", "k": "OK"}) and not login_accepted({"t": "ak", "s": "NOT_OK"})
    assert {m.ws_path for m in MEMBERS.values()} >= {"/NorenWSAPI/", "/PiConnectWSAPI/", "/NorenWSTRTP/"}


def test_credentials_from_the_environment_and_a_token_file(tmp_path: Path) -> None:
    member = MEMBERS["shoonya"]
    with pytest.raises(ConfigError, match="SHOONYA_USER_ID"):
        NorenCredentials.from_env(member, {})
    with pytest.raises(ConfigError, match="SHOONYA_ACCESS_TOKEN"):
        NorenCredentials.from_env(member, {"SHOONYA_USER_ID": "U"})
    creds = NorenCredentials.from_env(member, {"SHOONYA_USER_ID": "U", "SHOONYA_ACCESS_TOKEN": "secret"})
    assert creds.token() == "secret" and "secret" not in repr(creds)
    path = tmp_path / "token"
    path.write_text("day-1\n")
    creds = NorenCredentials.from_env(member, {"SHOONYA_USER_ID": "U", "SHOONYA_ACCESS_TOKEN_FILE": str(path)})
    assert creds.token() == "day-1"
    path.write_text("day-2\n")
    assert creds.token() == "day-2"
    path.write_text("")
    with pytest.raises(BrokerAuthError):
        creds.token()


def test_order_statuses_and_types_map_to_openalgo() -> None:
    event = order_update(
        {"norenordno": "1", "uid": "U", "exch": "NFO", "tsym": "NIFTY27JUL23F", "trantype": "B", "qty": "50",
         "prc": "19500.5", "prctyp": "LMT", "prd": "M", "status": "REJECTED", "rejreason": "margin"},
        "flattrade",
    )  # fmt: skip
    assert (event["order_status"], event["pricetype"], event["product"], event["action"]) == (
        "rejected", "LIMIT", "NRML", "BUY",
    )  # fmt: skip
    assert event["rejection_reason"] == "margin" and event["pending_quantity"] == 50
    assert order_update({"status": "CANCELED"}, "zebu")["order_status"] == "cancelled"
