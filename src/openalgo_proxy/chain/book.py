"""One live option chain, pure: leg and underlying prices in, a chain object with IV and Greeks out.

The chain knows every strike of one (underlying, expiry) from the instrument directory and keeps
a window of `each_side` strikes either side of the at-the-money strike (the strike nearest the
forward). `window()` names the legs the window needs right now; the service holds exactly those
on the bus, so the window follows the market. `compute()` prices the window in one vectorised
pass (pricing.py) and returns the `data` object of an ``option_chain`` message (docs/chain.md).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from openalgo_proxy.chain.contracts import OptionContract, expiry_code, years_to_expiry
from openalgo_proxy.chain.pricing import IvStatus, forward_price, greeks, implied_vol


class Model(enum.StrEnum):
    BLACK76 = "black76"  # on the future of the same expiry
    BLACK_SCHOLES = "black_scholes"  # on spot, with rate and dividend yield


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """What one chain prices: its contracts, where its underlying price comes from, the model."""

    name: str
    exchange: str  # of the options (NFO, BFO)
    expiry: dt.date
    contracts: tuple[OptionContract, ...]  # every listed strike of this expiry, both rights
    spot: tuple[str, str]  # (exchange, symbol) of the underlying's cash price
    future: tuple[str, str] | None  # (exchange, symbol) of the future expiring with the options
    rate: float
    dividend_yield: float

    @property
    def model(self) -> Model:
        return Model.BLACK76 if self.future is not None else Model.BLACK_SCHOLES


_STATUS_TEXT = [status.text for status in IvStatus]
_LEG_KEYS = (
    "symbol",
    "ltp",
    "bid",
    "ask",
    "volume",
    "oi",
    "oi_change",
    "iv",
    "iv_status",
    "delta",
    "gamma",
    "theta",
    "vega",
)


class OptionChain:
    """Live state of one chain; `each_side` strikes either side of the ATM strike are streamed."""

    def __init__(self, spec: ChainSpec, each_side: int) -> None:
        self.spec = spec
        self.each_side = each_side
        self.strikes = np.array(sorted({c.strike for c in spec.contracts}), dtype=np.float64)
        n = len(self.strikes)
        position = {float(k): i for i, k in enumerate(self.strikes)}
        self.symbols: list[list[str]] = [["", ""] for _ in range(n)]  # [strike][0 call, 1 put]
        self.leg_of: dict[str, tuple[int, int]] = {}
        for contract in spec.contracts:
            slot = (position[contract.strike], 0 if contract.is_call else 1)
            self.symbols[slot[0]][slot[1]] = contract.symbol
            self.leg_of[contract.symbol] = slot
        shape = (n, 2)
        self.ltp = np.zeros(shape)
        self.bid = np.zeros(shape)
        self.ask = np.zeros(shape)
        self.volume = np.zeros(shape, dtype=np.int64)
        self.oi = np.zeros(shape, dtype=np.int64)
        self.oi_start = np.full(shape, -1, dtype=np.int64)  # first OI seen: oi_change is since then
        self.seen = np.zeros(shape, dtype=bool)  # legs that have reported at least once
        self.spot = 0.0
        self.future = 0.0
        self.atm_index = -1
        self.last_iv = np.zeros(shape)  # the previous solution: where the next solve starts

    # -- inputs -----------------------------------------------------------------------------------
    def set_leg(self, symbol: str, ltp: float, bid: float, ask: float, volume: int, oi: int) -> bool:
        slot = self.leg_of.get(symbol)
        if slot is None:
            return False
        self.ltp[slot] = ltp
        self.bid[slot] = bid
        self.ask[slot] = ask
        self.volume[slot] = volume
        self.oi[slot] = oi
        self.seen[slot] = True
        if self.oi_start[slot] < 0 and oi > 0:
            self.oi_start[slot] = oi
        return True

    def set_underlying(self, exchange: str, symbol: str, ltp: float) -> bool:
        if (exchange, symbol) == self.spec.spot:
            self.spot = ltp
            return True
        if (exchange, symbol) == self.spec.future:
            self.future = ltp
            return True
        return False

    # -- the window -------------------------------------------------------------------------------
    def underlying_price(self) -> float:
        """The price the model is applied to: the future (Black-76) or spot (Black-Scholes)."""
        return self.future if self.spec.future is not None else self.spot

    def forward(self, now_ms: int) -> float:
        years = years_to_expiry(self.spec.expiry, now_ms)
        if self.spec.future is not None:
            return self.future
        return float(forward_price(self.spot, years, self.spec.rate - self.spec.dividend_yield))

    def update_atm(self, now_ms: int) -> bool:
        """Move the ATM strike to the one nearest the forward; True when it moved."""
        forward = self.forward(now_ms)
        if forward <= 0 or not len(self.strikes):
            return False
        index = int(np.argmin(np.abs(self.strikes - forward)))
        if index == self.atm_index:
            return False
        self.atm_index = index
        return True

    def window(self) -> range:
        if self.atm_index < 0:
            return range(0)
        low = max(0, self.atm_index - self.each_side)
        return range(low, min(len(self.strikes), self.atm_index + self.each_side + 1))

    def window_ready(self) -> bool:
        """Every listed leg of the window has reported (what a first, full snapshot waits for)."""
        rows = self.window()
        listed = np.array([[bool(s) for s in self.symbols[i]] for i in rows], dtype=bool).reshape(-1, 2)
        return bool(len(rows)) and bool((self.seen[rows.start : rows.stop] | ~listed).all())

    def window_symbols(self) -> list[str]:
        return [symbol for i in self.window() for symbol in self.symbols[i] if symbol]

    # -- output -----------------------------------------------------------------------------------
    def compute(self, now_ms: int) -> dict[str, Any]:
        spec = self.spec
        rows = self.window()
        sl = slice(rows.start, rows.stop)
        years = years_to_expiry(spec.expiry, now_ms)
        carry = 0.0 if spec.future is not None else spec.rate - spec.dividend_yield
        underlying = self.underlying_price()
        forward = self.forward(now_ms)
        strikes = np.repeat(self.strikes[sl, None], 2, axis=1)
        is_call = np.zeros(strikes.shape, dtype=bool)
        is_call[:, 0] = True
        bid, ask, ltp = self.bid[sl], self.ask[sl], self.ltp[sl]
        two_sided = (bid > 0) & (ask >= bid)
        price = np.where(two_sided, 0.5 * (bid + ask), ltp)  # the mid where the book has both sides
        iv, status = implied_vol(price, forward, strikes, years, spec.rate, is_call, self.last_iv[sl])
        self.last_iv[sl] = iv
        g = greeks(underlying, strikes, years, iv, spec.rate, carry, is_call)
        oi, start = self.oi[sl], self.oi_start[sl]
        oi_change = np.where(start >= 0, oi - start, 0)
        call_oi, put_oi = int(oi[:, 0].sum()), int(oi[:, 1].sum())
        # one row of values per leg (strike-major, call then put), in _LEG_KEYS order
        columns = (
            [symbol for i in rows for symbol in self.symbols[i]],
            ltp.ravel().tolist(),
            bid.ravel().tolist(),
            ask.ravel().tolist(),
            self.volume[sl].ravel().tolist(),
            oi.ravel().tolist(),
            oi_change.ravel().tolist(),
            np.round(iv * 100.0, 4).ravel().tolist(),
            [_STATUS_TEXT[code] for code in status.ravel().tolist()],
            np.round(g.delta, 6).ravel().tolist(),
            np.round(g.gamma, 8).ravel().tolist(),
            np.round(g.theta, 6).ravel().tolist(),
            np.round(g.vega, 6).ravel().tolist(),
        )
        legs = [dict(zip(_LEG_KEYS, values, strict=True)) for values in zip(*columns, strict=True)]
        strike_list = self.strikes[sl].tolist()
        out_rows = [
            {"strike": strike, "ce": legs[2 * r], "pe": legs[2 * r + 1]} for r, strike in enumerate(strike_list)
        ]
        atm = float(self.strikes[self.atm_index]) if self.atm_index >= 0 else 0.0
        source = spec.future if spec.future is not None else spec.spot
        return {
            "underlying": spec.name,
            "exchange": spec.exchange,
            "expiry": expiry_code(spec.expiry),
            "expiry_date": spec.expiry.isoformat(),
            "model": str(spec.model),
            "underlying_source": "future" if spec.future is not None else "spot",
            "underlying_symbol": source[1],
            "underlying_exchange": source[0],
            "underlying_price": underlying,
            "spot": self.spot,
            "forward": round(forward, 4),
            "rate": spec.rate,
            "dividend_yield": spec.dividend_yield,
            "time_to_expiry": round(years, 8),
            "days_to_expiry": round(years * 365.0, 4),
            "atm_strike": atm,
            "strikes_each_side": self.each_side,
            "total_call_oi": call_oi,
            "total_put_oi": put_oi,
            "pcr": round(put_oi / call_oi, 4) if call_oi else 0.0,
            "timestamp": now_ms,
            "strikes": out_rows,
        }
