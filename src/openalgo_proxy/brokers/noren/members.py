"""The six Noren brokers: endpoint, login dialect, instrument master and environment variables.

Dialects (the first frame after the WebSocket opens, and its acknowledgement):
- `a`: `{"t":"a","uid":U,"actid":U,"accesstoken":T,"source":"API"}` -> `{"t":"ak","s":"OK"}`
  (Shoonya's current API, Flattrade, Zebu, TradeSmart);
- `c`: `{"t":"c","uid":U,"actid":U,"susertoken":T,"source":S}` -> `{"t":"ck","s":"OK"}` (Shoonya's
  legacy API with source "API"; Definedge with source "TRTP"; its ack may say "Ok");
- `alice`: `{"t":"c","uid":U+"_API","actid":U+"_API","susertoken":sha256(sha256(session)),"source":"API"}`
  -> `{"t":"cf","k":"OK"}` (AliceBlue, after its REST `createWsSession`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from openalgo_proxy.brokers.noren.codec import _frame

SHOONYA_MASTERS: Final = "https://api.shoonya.com/"


@dataclass(frozen=True, slots=True)
class Member:
    """One broker of the family."""

    name: str  # our broker name (`run --broker NAME`)
    title: str
    ws_url: str
    dialect: str  # "a", "c" or "alice"
    master_url: str  # base URL of <EXCH>_symbols.txt.zip
    env: str  # prefix of the environment variables (SHOONYA_USER_ID, ...)
    source: str = "API"
    orders_need_request: bool = True  # TradeSmart pushes order updates without a "t":"o" request

    @property
    def ws_path(self) -> str:
        rest = self.ws_url.split("://", 1)[1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    def ack_type(self) -> str:
        return {"a": "ak", "c": "ck", "alice": "cf"}[self.dialect]


MEMBERS: Final[dict[str, Member]] = {
    m.name: m
    for m in (
        Member("shoonya", "Shoonya (Finvasia)", "wss://api.shoonya.com/NorenWSAPI/", "a", SHOONYA_MASTERS, "SHOONYA"),
        # Flattrade's own masters are CSVs of another layout; the exchange tokens are the same, so
        # Shoonya's public masters serve it unless --instruments says otherwise
        Member(
            "flattrade", "Flattrade", "wss://piconnect.flattrade.in/PiConnectWSAPI/", "a", SHOONYA_MASTERS, "FLATTRADE"
        ),
        Member("zebu", "Zebu (MYNT)", "wss://go.mynt.in/NorenWSAPI/", "a", "https://go.mynt.in/", "ZEBU"),
        Member(
            "tradesmart",
            "TradeSmart",
            "wss://v2api.tradesmartonline.in/NorenWSAPI/",
            "a",
            "https://v2api.tradesmartonline.in/",
            "TRADESMART",
            orders_need_request=False,
        ),
        Member(
            "definedge",
            "Definedge",
            "wss://trade.definedgesecurities.com/NorenWSTRTP/",
            "c",
            SHOONYA_MASTERS,
            "DEFINEDGE",
            source="TRTP",
        ),
        Member(
            "aliceblue", "AliceBlue", "wss://ws1.aliceblueonline.com/NorenWS/", "alice", SHOONYA_MASTERS, "ALICEBLUE"
        ),
    )
}
DIALECTS: Final = ("a", "c", "alice")
#: Shoonya's legacy endpoint (dialect `c`, source API): what `NorenRestApiPy` speaks; simulator only
SHOONYA_LEGACY: Final = Member(
    "shoonya", "Shoonya (legacy)", "wss://api.shoonya.com/NorenWSTP/", "c", SHOONYA_MASTERS, "SHOONYA"
)
#: a bare dialect name -> the member a simulator speaks for it
DIALECT_MEMBERS: Final = {"a": MEMBERS["shoonya"], "c": SHOONYA_LEGACY, "alice": MEMBERS["aliceblue"]}


def member(name: str) -> Member:
    try:
        return MEMBERS[name]
    except KeyError:
        raise ValueError(f"unknown Noren broker {name!r}; choose from {', '.join(MEMBERS)}") from None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def account_id(member: Member, user_id: str) -> str:
    """The uid/actid the login frame carries (AliceBlue appends "_API")."""
    return f"{user_id}_API" if member.dialect == "alice" else user_id


def login_frame(member: Member, user_id: str, token: str) -> str:
    """The first frame of `member`'s dialect."""
    uid = account_id(member, user_id)
    if member.dialect == "a":
        return _frame({"t": "a", "uid": uid, "actid": uid, "accesstoken": token, "source": member.source})
    secret = sha256_hex(sha256_hex(token)) if member.dialect == "alice" else token
    return _frame({"t": "c", "uid": uid, "actid": uid, "susertoken": secret, "source": member.source})


def login_accepted(ack: dict[str, str]) -> bool:
    """Whether an `ak`/`ck`/`cf` acknowledgement accepts the login (status in `s`, or `k` for cf)."""
    status = ack.get("s", ack.get("k", ""))
    return status.upper() == "OK"
