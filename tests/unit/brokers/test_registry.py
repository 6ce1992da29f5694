"""The broker registry: every `--broker` name is a spec, and the CLI, config and contract read it there."""

from __future__ import annotations

import argparse
import inspect

import pytest

from openalgo_proxy.brokers import registry
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.local import LocalAdapter
from openalgo_proxy.brokers.pooled import PooledAdapter
from openalgo_proxy.config import FeedSettings

NOREN = ("shoonya", "flattrade", "zebu", "tradesmart", "definedge", "aliceblue")


def test_every_broker_and_feed_is_registered_once() -> None:
    names = registry.names()
    assert len(names) == len(set(names))
    assert names[0] == registry.DEFAULT == "angel-simulator"
    for name in ("angel", "zerodha", "dhan", "mstock", "upstox", *NOREN, "simulator", "replay", "openalgo"):
        assert name in names, name
    with_simulator = [s.name for s in registry.simulated()]
    assert with_simulator == ["angel", "zerodha", "dhan", "mstock", "upstox", *NOREN]
    assert {f"{b}-simulator" for b in with_simulator} <= set(names)
    assert not {"simulator-simulator", "replay-simulator", "openalgo-simulator"} & set(names)


def test_every_spec_loads_its_adapter_and_simulator_entries() -> None:
    for spec in registry.specs().values():
        assert callable(spec.adapter_module().create), spec.name
        assert spec.summary and spec.max_connections >= 1
        if not spec.simulator:
            with pytest.raises(ValueError, match="has no simulator"):
                spec.simulator_module()
            continue
        simulator = spec.simulator_module()
        for hook in ("add_arguments", "serve", "simulator_for", "adapter_for"):
            assert callable(getattr(simulator, hook)), (spec.name, hook)


async def test_the_spec_cap_is_the_adapter_cap() -> None:
    """`max_connections` in a spec is what the broker's adapter allows (the contract's pool test fills it)."""
    for spec in registry.simulated():
        options = FeedOptions(max_connections=99)
        simulator = spec.simulator_module()
        adapter = simulator.adapter_for(simulator.simulator_for(options), options)
        assert isinstance(adapter, PooledAdapter), spec.name
        assert adapter.pool.max_connections == spec.max_connections, spec.name


def test_noren_members_share_one_adapter_and_one_simulator_family() -> None:
    for name in NOREN:
        spec = registry.spec(name)
        assert spec.family == "noren"
        assert spec.adapter.startswith("openalgo_proxy.brokers.noren.adapter:")
        assert registry.describe(f"{name}-simulator") == f"simulated market via the {spec.summary} adapter"
    assert registry.simulator_names()[-1] == "noren"
    assert registry.simulator_module("noren") is registry.spec("shoonya").simulator_module()
    parser = argparse.ArgumentParser()
    registry.simulator_module("definedge").add_arguments(parser)
    assert parser.parse_args([]).dialect == "definedge"


def test_name_simulator_is_the_generic_local_adapter() -> None:
    for spec in registry.simulated():
        adapter = registry.creator(f"{spec.name}-simulator")(FeedOptions(seed=1))
        assert isinstance(adapter, LocalAdapter) and adapter.name == spec.name


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown broker 'nosuch'; choose from angel-simulator, angel"):
        registry.creator("nosuch")
    with pytest.raises(ValueError, match="unknown broker 'replay-simulator'"):
        registry.creator("replay-simulator")
    with pytest.raises(ValueError, match=r"no simulator for 'replay'; choose from angel, zerodha"):
        registry.simulator_module("replay")


def test_help_ready_line_and_config_come_from_the_specs() -> None:
    text = registry.help_text()
    for spec in registry.specs().values():
        assert f"{spec.name} ({spec.summary})" in text
    assert "upstox-simulator" in text and "aliceblue-simulator" in text
    assert registry.describe("upstox-simulator") == "simulated market via the Upstox Market Data Feed V3 adapter"
    assert registry.describe("simulator") == "simulated market"
    assert FeedSettings(broker="tradesmart-simulator").broker == "tradesmart-simulator"
    with pytest.raises(ValueError, match="unknown broker 'kotak'"):
        FeedSettings(broker="kotak")


def test_a_spec_is_keyword_only_with_defaults_after_the_entries() -> None:
    from openalgo_proxy.brokers.spec import BrokerSpec

    parameters = inspect.signature(BrokerSpec).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    spec = BrokerSpec(name="x", summary="X", adapter="openalgo_proxy.brokers.replay.adapter")
    assert (spec.simulator, spec.max_connections, spec.family) == ("", 1, "")
