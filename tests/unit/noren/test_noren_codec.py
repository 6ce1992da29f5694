"""The Noren codec: exact decimals, the merge of updates into the last full state, ticks, requests."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy.brokers.noren import codec
from openalgo_proxy.brokers.noren.codec import MergeState, NorenCodecError, merge_fields, parse_decimal
from openalgo_proxy.model import Mode

# the documented example (Shoonya API README): a full touchline acknowledgement, then two updates
FULL = {
    "t": "tk", "e": "NSE", "tk": "11630", "ts": "NTPC-EQ", "pp": "2", "ls": "1", "ti": "0.05", "lp": "118.55",
    "h": "118.65", "l": "118.10", "ap": "118.39", "v": "162220", "bp1": "118.45", "sp1": "118.50", "bq1": "26",
    "sq1": "6325",
}  # fmt: skip
UPDATE_1 = {
    "t": "tf", "e": "NSE", "tk": "11630", "lp": "118.45", "ap": "118.40", "v": "166637", "sp1": "118.55",
    "bq1": "3135", "sq1": "30",
}  # fmt: skip
UPDATE_2 = {"t": "tf", "e": "NSE", "tk": "11630", "lp": "118.60"}
# the state after each message, as the golden file of the merge
GOLDEN = [
    {"ts": "NTPC-EQ", "pp": "2", "ls": "1", "ti": "0.05", "lp": "118.55", "h": "118.65", "l": "118.10",
     "ap": "118.39", "v": "162220", "bp1": "118.45", "sp1": "118.50", "bq1": "26", "sq1": "6325"},
    {"ts": "NTPC-EQ", "pp": "2", "ls": "1", "ti": "0.05", "lp": "118.45", "h": "118.65", "l": "118.10",
     "ap": "118.40", "v": "166637", "bp1": "118.45", "sp1": "118.55", "bq1": "3135", "sq1": "30"},
    {"ts": "NTPC-EQ", "pp": "2", "ls": "1", "ti": "0.05", "lp": "118.60", "h": "118.65", "l": "118.10",
     "ap": "118.40", "v": "166637", "bp1": "118.45", "sp1": "118.55", "bq1": "3135", "sq1": "30"},
]  # fmt: skip


def test_documented_sequence_merges_to_the_golden_states() -> None:
    merge = MergeState()
    for message, expected in zip((FULL, UPDATE_1, UPDATE_2), GOLDEN, strict=True):
        merged = merge.apply(message)
        assert merged is not None
        key, state = merged
        assert key == ("NSE", "11630")
        assert state.fields == expected
    tick = codec.to_tick(state, "NTPC", "NSE", 1_700_000_000_000)
    assert (tick.mode, tick.ltp, tick.high, tick.low, tick.avg_trade_price, tick.volume) == (
        Mode.QUOTE, 118.60, 118.65, 118.10, 118.40, 166637,
    )  # fmt: skip
    assert tick.open == 0.0 and tick.close == 0.0  # not in the messages: zero, never invented
    assert tick.exchange_time == 1_700_000_000_000


def test_an_update_before_its_full_acknowledgement_is_ignored_and_counted() -> None:
    merge = MergeState()
    assert merge.apply(UPDATE_2) is None
    assert merge.orphan_updates == 1


def test_zero_ohlc_in_an_update_keeps_the_real_values_but_a_full_ack_replaces_them() -> None:
    merge = MergeState()
    merge.apply({**FULL, "o": "117.00", "c": "117.50"})
    merged = merge.apply({"t": "tf", "e": "NSE", "tk": "11630", "o": "0", "h": "0.00", "c": "0", "ap": "0", "lp": "0"})
    assert merged is not None
    values = merged[1].values
    assert (values["o"], values["h"], values["c"], values["ap"]) == (117.0, 118.65, 117.5, 118.39)
    assert values["lp"] == 0.0  # only o/h/l/c/ap are protected
    merged = merge.apply({**FULL, "o": "0"})
    assert merged is not None and merged[1].values["o"] == 0.0


def test_empty_strings_are_no_value() -> None:
    merge = MergeState()
    merge.apply(FULL)
    merged = merge.apply({"t": "tf", "e": "NSE", "tk": "11630", "lp": ""})
    assert merged is not None and merged[1].fields["lp"] == "118.55"


@pytest.mark.parametrize(
    "text",
    ["83.4725", "0.0025", "89.1525", "118.55", "0.1", "1234567.8901", "-12.05", "0", "5", "0.0000", "26050.35"],
)
def test_decimals_are_the_nearest_float_of_the_exact_decimal(text: str) -> None:
    assert parse_decimal(text) == float(Decimal(text))


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=0, max_value=6))
def test_any_decimal_string_parses_exactly(units: int, places: int) -> None:
    text = str(Decimal(units).scaleb(-places)) if places else str(units)
    text = f"{Decimal(units).scaleb(-places):f}"
    assert parse_decimal(text) == float(Decimal(text))


def test_cds_four_decimal_prices_avoid_float_arithmetic_error() -> None:
    # the naive route (rupees * 10000 as a float, rounded, then divided) is exact here too, but
    # arithmetic on an already-parsed float is not: 0.1 + 0.2 style drift must never reach a tick
    assert parse_decimal("83.4725") == 834725 / 10000
    assert parse_decimal("0.3") != 0.1 + 0.2


@pytest.mark.parametrize("text", ["nan", "inf", "1e5", "1_000", " 1", "1.", ".5", "12.3.4", "", "-", "١٢"])
def test_malformed_decimals_are_refused(text: str) -> None:
    with pytest.raises(NorenCodecError):
        parse_decimal(text)


def test_integers() -> None:
    assert codec.parse_integer("162220") == 162220
    assert codec.parse_integer("5.00") == 5
    with pytest.raises(NorenCodecError):
        codec.parse_integer("5.5")


# -- Hypothesis: any sequence of partial updates merged equals the final full state -------------------

PRICE = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("99999"), places=2).map(lambda d: f"{d:f}")
QTY = st.integers(min_value=0, max_value=10**9).map(str)
STATE = st.fixed_dictionaries(
    {
        "lp": PRICE, "o": PRICE, "h": PRICE, "l": PRICE, "c": PRICE, "ap": PRICE, "v": QTY, "oi": QTY,
        "bp1": PRICE, "sp1": PRICE, "bq1": QTY, "sq1": QTY, "ft": QTY,
    }
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(STATE, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_partial_updates_merge_to_the_final_full_state(states: list[dict[str, str]], rnd: Any) -> None:
    merge = MergeState()
    head = {"e": "NFO", "tk": "52175"}
    merge.apply({"t": "tk", **head, **states[0]})
    reference = dict(states[0])
    for previous, current in itertools.pairwise(states):
        changed = codec.changed_fields(previous, current)
        # the server may also repeat unchanged fields: any superset of the changes is a valid update
        extra = {k: v for k, v in current.items() if k not in changed and rnd.random() < 0.2}
        merged = merge.apply({"t": "tf", **head, **changed, **extra})
        reference = merge_fields(reference, {**changed, **extra})
        assert merged is not None
    state = merge.instruments[("NFO", "52175")]
    assert state.fields == states[-1] == reference
    full = MergeState()
    full.apply({"t": "tk", **head, **states[-1]})
    only = full.instruments[("NFO", "52175")]
    assert codec.to_tick(state, "X", "NFO", 1) == codec.to_tick(only, "X", "NFO", 1)


def test_depth_ticks_carry_five_levels_each_side() -> None:
    merge = MergeState()
    book = {f"bp{i}": f"{100 - i}.05" for i in range(1, 6)} | {f"sp{i}": f"{100 + i}.10" for i in range(1, 6)}
    book |= {f"bq{i}": str(i * 10) for i in range(1, 6)} | {f"sq{i}": str(i * 20) for i in range(1, 6)}
    book |= {f"bo{i}": str(i) for i in range(1, 6)} | {f"so{i}": str(i + 1) for i in range(1, 6)}
    merge.apply({"t": "dk", "e": "NSE", "tk": "22", "lp": "100.00", "ltq": "7", "tbq": "500", "tsq": "600", **book})
    merged = merge.apply({"t": "df", "e": "NSE", "tk": "22", "bp1": "99.50", "bq1": "1"})
    assert merged is not None
    tick = codec.to_tick(merged[1], "ACC", "NSE", 5)
    assert tick.mode == Mode.DEPTH and len(tick.bids) == len(tick.asks) == 5
    assert (tick.bids[0].price, tick.bids[0].quantity, tick.bids[0].orders) == (99.5, 1, 1)
    assert (tick.asks[4].price, tick.asks[4].quantity, tick.asks[4].orders) == (105.1, 100, 6)
    assert (tick.last_trade_quantity, tick.total_buy_quantity, tick.total_sell_quantity) == (7, 500, 600)


def test_requests_are_batched_and_mode_changes_unsubscribe_first() -> None:
    keys = {("NSE", str(i)): "t" for i in range(120)}
    frames = codec.diff_requests({}, keys)
    assert len(frames) == 3 and frames[0].startswith('{"t":"t","k":"NSE|0#NSE|1#')
    assert frames[0].count("#") == 49
    assert codec.diff_requests({("NSE", "22"): "t"}, {("NSE", "22"): "d"}) == [
        '{"t":"u","k":"NSE|22"}',
        '{"t":"d","k":"NSE|22"}',
    ]
    assert codec.diff_requests({("NSE", "22"): "d", ("NSE", "1"): "t"}, {}) == [
        '{"t":"u","k":"NSE|1"}',
        '{"t":"ud","k":"NSE|22"}',
    ]
    assert codec.diff_requests(keys, keys) == []
    assert len(codec.diff_requests({}, keys, per_message=10)) == 12


def test_decode_refuses_non_messages() -> None:
    for bad in ("[]", '{"e":"NSE"}', "not json", '{"t":1}'):
        with pytest.raises(NorenCodecError):
            codec.decode(bad)


ZEROS = st.sampled_from(["0", "0.00"])


@settings(max_examples=200, deadline=None)
@given(
    STATE,
    st.lists(st.dictionaries(st.sampled_from(["o", "h", "l", "c", "ap", "lp"]), PRICE | ZEROS), max_size=10),
)
def test_zero_ohlc_in_any_update_sequence_never_replaces_a_real_value(
    first: dict[str, str], updates: list[dict[str, str]]
) -> None:
    merge = MergeState()
    head = {"e": "MCX", "tk": "450161"}
    merge.apply({"t": "tk", **head, **first})
    reference = dict(first)
    for update in updates:
        merge.apply({"t": "tf", **head, **update})
        reference = merge_fields(reference, update)
    state = merge.instruments[("MCX", "450161")]
    assert state.fields == reference
    for name in ("o", "h", "l", "c", "ap"):
        assert state.values[name] > 0  # the full state had real values; no zero update replaced them
    assert state.values["lp"] == parse_decimal(reference["lp"])
