"""European option prices, implied volatility and Greeks, vectorised with numpy (pure, no I/O).

One model covers both pricing conventions of the chain: the generalised Black-Scholes-Merton
formula on an underlying price ``U`` with cost of carry ``b``, where the forward is ``F = U e^{bT}``
and cash flows are discounted at ``r``:

- Black-76 (an option on a future, the index chains): ``U`` is the future, ``b = 0``.
- Black-Scholes (an option on spot, stocks and indices without a matching future): ``U`` is spot,
  ``b = r - q`` with ``q`` the continuous dividend yield.

``call = e^{-rT} (F N(d1) - K N(d2))``, ``put = e^{-rT} (K N(-d2) - F N(-d1))``,
``d1 = (ln(F/K) + sigma^2 T / 2) / (sigma sqrt(T))``, ``d2 = d1 - sigma sqrt(T)``.

Greeks are those of the same formula with respect to ``U``: delta, gamma, vega per 1.00 of
volatility divided by 100 (per volatility point), theta per calendar day (per year / 365).

The implied volatility solver never raises and never returns NaN: a price outside the no-arbitrage
bounds (at or below intrinsic value, at or above the forward's discounted value), a price of zero,
or no time left has no solution, reported per leg in a status array. Where a solution exists it is
found by Newton steps kept inside a bisection bracket, on the out-of-the-money side of the strike
(an in-the-money leg is converted by put-call parity first, so deep ITM prices lose no precision).
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SIGMA_LOW = 1e-4  # 0.01 % a year: below this a price is indistinguishable from intrinsic value
SIGMA_HIGH = 10.0  # 1,000 % a year: above this nothing an exchange lists is priced
TOLERANCE = 1e-10  # the solver stops within this share of the forward (or 1e-9 of a tiny price)
MAX_ITERATIONS = 60
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


class IvStatus(enum.IntEnum):
    """Why a leg has, or has not, an implied volatility (`iv_status` on the wire, lower case)."""

    OK = 0
    NO_PRICE = 1  # no usable price (zero, negative, not a number)
    NO_SOLUTION = 2  # the price is outside the model's no-arbitrage bounds
    EXPIRED = 3  # no time to expiry left

    @property
    def text(self) -> str:
        return self.name.lower()


def _pdf(x: FloatArray) -> FloatArray:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


def _arr(x: float | npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def forward_price(
    underlying: float | npt.ArrayLike, t: float | npt.ArrayLike, carry: float | npt.ArrayLike
) -> FloatArray:
    """``U e^{bT}``: the forward of the underlying for expiry in `t` years at cost of carry `carry`."""
    return _arr(underlying) * np.exp(_arr(carry) * _arr(t))


def black_price(
    forward: float | npt.ArrayLike,
    strike: float | npt.ArrayLike,
    t: float | npt.ArrayLike,
    sigma: float | npt.ArrayLike,
    rate: float | npt.ArrayLike,
    is_call: bool | npt.ArrayLike,
) -> FloatArray:
    """Discounted Black price on the forward (Black-76 when the forward is a future's price)."""
    f, k, tt, s = np.broadcast_arrays(_arr(forward), _arr(strike), _arr(t), _arr(sigma))
    call = np.broadcast_to(np.asarray(is_call, dtype=bool), f.shape)
    discount = np.exp(-_arr(rate) * tt)
    with np.errstate(divide="ignore", invalid="ignore"):
        vol = s * np.sqrt(np.maximum(tt, 0.0))
        d1 = (np.log(f / k) + 0.5 * vol * vol) / vol
        d2 = d1 - vol
        call_value = f * ndtr(d1) - k * ndtr(d2)
        put_value = k * ndtr(-d2) - f * ndtr(-d1)
    intrinsic = np.where(call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    value = np.where(call, call_value, put_value)
    value = np.where((vol > 0) & np.isfinite(value), value, intrinsic)
    return discount * value  # type: ignore[no-any-return]


def bsm_price(
    underlying: float | npt.ArrayLike,
    strike: float | npt.ArrayLike,
    t: float | npt.ArrayLike,
    sigma: float | npt.ArrayLike,
    rate: float | npt.ArrayLike,
    carry: float | npt.ArrayLike,
    is_call: bool | npt.ArrayLike,
) -> FloatArray:
    """Generalised Black-Scholes-Merton price: carry = r - q on spot, 0 on a future (Black-76)."""
    return black_price(forward_price(underlying, t, carry), strike, t, sigma, rate, is_call)


def implied_vol(
    price: float | npt.ArrayLike,
    forward: float | npt.ArrayLike,
    strike: float | npt.ArrayLike,
    t: float | npt.ArrayLike,
    rate: float | npt.ArrayLike,
    is_call: bool | npt.ArrayLike,
    guess: npt.ArrayLike | None = None,
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """Implied volatility of each leg (0.0 where there is none) and its `IvStatus` code. `guess`
    (same shape; e.g. the previous solution of a live chain) starts the search where it is usable."""
    p, f, k, tt = np.broadcast_arrays(_arr(price), _arr(forward), _arr(strike), _arr(t))
    p, f, k, tt = (np.array(a, dtype=np.float64, ndmin=1) for a in (p, f, k, tt))
    shape = np.broadcast(_arr(price), _arr(forward), _arr(strike), _arr(t)).shape
    call = np.array(np.broadcast_to(np.asarray(is_call, dtype=bool), shape), ndmin=1)
    rates = np.array(np.broadcast_to(_arr(rate), shape), dtype=np.float64, ndmin=1)
    status = np.full(p.shape, IvStatus.OK, dtype=np.int8)
    sigma = np.zeros(p.shape)

    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(p) & np.isfinite(f) & np.isfinite(k) & np.isfinite(tt) & np.isfinite(rates)
        status[~finite | (p <= 0) | (f <= 0) | (k <= 0)] = IvStatus.NO_PRICE
        status[(status == IvStatus.OK) & (tt <= 0)] = IvStatus.EXPIRED
        live = status == IvStatus.OK
        undiscounted = np.where(live, p * np.exp(np.where(live, rates * tt, 0.0)), 0.0)
        # the out-of-the-money side of the strike: an ITM leg becomes the OTM one by put-call parity
        otm_call = f < k
        parity = np.where(call, f - k, k - f)
        target = np.where(call == otm_call, undiscounted, undiscounted - parity)
        upper = np.where(otm_call, f, k)  # an OTM call is worth less than F, an OTM put less than K
        no_solution = live & ((target <= TOLERANCE * f) | (target >= upper))
        at_money = live & (f == k) & (target < f)
        status[no_solution & ~at_money] = IvStatus.NO_SOLUTION
    live = status == IvStatus.OK
    if not live.any():
        return sigma.reshape(shape), status.reshape(shape)

    with np.errstate(all="ignore"):  # extreme inputs overflow harmlessly: they end unconverged
        ff, kk, ts, goal, side = f[live], k[live], tt[live], target[live], otm_call[live]
        root_t = np.sqrt(ts)
        log_fk = np.log(ff / kk)
        lo = np.full(ff.shape, SIGMA_LOW)
        hi = np.full(ff.shape, SIGMA_HIGH)
        # start: Brenner-Subrahmanyam near the money, bounded to the bracket
        start = np.sqrt(2.0 * np.pi / ts) * goal / np.sqrt(ff * kk) + np.sqrt(2.0 * np.abs(log_fk) / ts)
        s = np.clip(start, 0.05, 3.0)
        if guess is not None:
            previous = np.array(np.broadcast_to(_arr(guess), shape), dtype=np.float64, ndmin=1)[live]
            s = np.where(np.isfinite(previous) & (previous > SIGMA_LOW) & (previous < SIGMA_HIGH), previous, s)
        done = np.zeros(ff.shape, dtype=bool)
        tolerance = np.maximum(np.minimum(TOLERANCE * ff, 1e-9 * goal), 1e-15 * ff)
        w = np.where(side, 1.0, -1.0)  # a call, or a put: w (F N(w d1) - K N(w d2))
        ff_root_t = ff * root_t
        for _ in range(MAX_ITERATIONS):
            vol = s * root_t
            d1 = log_fk / vol + 0.5 * vol
            diff = w * (ff * ndtr(w * d1) - kk * ndtr(w * (d1 - vol))) - goal
            done = np.abs(diff) <= tolerance
            if done.all():
                break
            high = diff > 0
            hi = np.where(high, s, hi)
            lo = np.where(high, lo, s)
            step = s - diff / (ff_root_t * _pdf(d1))
            inside = (step > lo) & (step < hi)  # false for NaN
            s = np.where(done, s, np.where(inside, step, 0.5 * (lo + hi)))
    converged = (done | (hi - lo <= 1e-9 * hi)) & np.isfinite(s)
    solved = np.where(converged, s, 0.0)
    out_status = np.where(converged, IvStatus.OK, IvStatus.NO_SOLUTION).astype(np.int8)
    sigma[live] = solved
    status[live] = out_status
    return sigma.reshape(shape), status.reshape(shape)


class Greeks:
    """Delta, gamma, theta (per calendar day), vega (per volatility point) of each leg."""

    __slots__ = ("delta", "gamma", "theta", "vega")

    def __init__(self, delta: FloatArray, gamma: FloatArray, theta: FloatArray, vega: FloatArray) -> None:
        self.delta = delta
        self.gamma = gamma
        self.theta = theta
        self.vega = vega


def greeks(
    underlying: float | npt.ArrayLike,
    strike: float | npt.ArrayLike,
    t: float | npt.ArrayLike,
    sigma: float | npt.ArrayLike,
    rate: float | npt.ArrayLike,
    carry: float | npt.ArrayLike,
    is_call: bool | npt.ArrayLike,
) -> Greeks:
    """Greeks of the generalised BSM formula with respect to the underlying. A leg without volatility
    or time (sigma or t <= 0) gets the limits: delta 1/-1/0 by moneyness, the rest 0. Never NaN."""
    u, k, tt, s, r, b = np.broadcast_arrays(
        _arr(underlying), _arr(strike), _arr(t), _arr(sigma), _arr(rate), _arr(carry)
    )
    call = np.broadcast_to(np.asarray(is_call, dtype=bool), u.shape)
    with np.errstate(all="ignore"):
        finite = np.isfinite(u) & np.isfinite(k) & np.isfinite(tt) & np.isfinite(s) & np.isfinite(r) & np.isfinite(b)
        valid = finite & (s > 0) & (tt > 0) & (u > 0) & (k > 0)
        ts = np.where(valid, tt, 1.0)
        ss = np.where(valid, s, 1.0)
        us = np.where(valid, u, 1.0)
        ks = np.where(valid, k, 1.0)
        root_t = np.sqrt(ts)
        vol = ss * root_t
        d1 = (np.log(us / ks) + (b + 0.5 * ss * ss) * ts) / vol
        d2 = d1 - vol
        carry_discount = np.exp((b - r) * ts)  # e^{(b-r)T}: e^{-qT} on spot, e^{-rT} on a future
        discount = np.exp(-r * ts)
        density = _pdf(d1)
        n1, n2 = ndtr(d1), ndtr(d2)
        delta = np.where(call, carry_discount * n1, carry_discount * (n1 - 1.0))
        gamma = carry_discount * density / (us * vol)
        vega = us * carry_discount * density * root_t
        decay = -us * carry_discount * density * ss / (2.0 * root_t)
        theta_call = decay - (b - r) * us * carry_discount * n1 - r * ks * discount * n2
        theta_put = decay + (b - r) * us * carry_discount * (1.0 - n1) + r * ks * discount * (1.0 - n2)
        theta = np.where(call, theta_call, theta_put)
    with np.errstate(invalid="ignore"):
        limit_delta = np.where(call, (u > k).astype(np.float64), -(u < k).astype(np.float64))
    valid &= np.isfinite(delta) & np.isfinite(gamma) & np.isfinite(theta) & np.isfinite(vega)
    return Greeks(
        delta=np.where(valid, delta, limit_delta),
        gamma=np.where(valid, gamma, 0.0),
        theta=np.where(valid, theta / 365.0, 0.0),
        vega=np.where(valid, vega / 100.0, 0.0),
    )
