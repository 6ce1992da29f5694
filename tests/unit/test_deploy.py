"""Deployment files: the dashboard and alerts name only metrics we export, the compose file has
every component wired as documented, and the external checkers (hadolint, promtool, docker-compose
config) accept the files. The checkers are installed by `make venv` (hadolint) and `make ops-tools`
(promtool, docker-compose; .ci/run calls it); a machine without them skips only those checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from openalgo_proxy.feed.metrics import FeedCollector
from openalgo_proxy.proxy.metrics import ProxyCollector, ProxyMetrics
from openalgo_proxy.proxy.upstream_metrics import BrokerStatusCollector

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "openalgo-proxy.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ENV = {"OPENALGO_API_KEY": "test-key", "GRAFANA_ADMIN_PASSWORD": "test-password"}
METRIC = re.compile(r"\bopenalgo_proxy_[a-z0-9_]+")
PROCESS = {"openalgo_proxy_process_resident_memory_bytes", "openalgo_proxy_process_cpu_seconds_total"}


def exported_names() -> set[str]:
    """Every sample name the proxy and the feed export (histogram and counter suffixes included)."""
    metrics = ProxyMetrics()
    metrics.slow_disconnects[4008] = metrics.disconnects[1000] = metrics.errors["INVALID_JSON"] = 1
    collectors = [
        ProxyCollector(metrics, lambda: {"connections_open": 0.0, "subscriptions": 0.0, "topics": 0.0,
                                                "slow_clients": 0.0, "ready": 1.0, "broker_connected": 1.0,
                                                "tick_age_seconds": 0.0}),
        BrokerStatusCollector(lambda: {"angel": {"state": "connected", "status_age": 0.1}}, 10.0),
        FeedCollector("angel", lambda: None, lambda: 0),
    ]  # fmt: skip
    names = set(PROCESS)
    for collector in collectors:
        for family in collector.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    return names


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_live_scrape_names_cover_the_process_metrics() -> None:
    # the proxy registers ProcessCollector(namespace="openalgo_proxy"); the names above must be real
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(namespace="openalgo_proxy", registry=registry)
    text = generate_latest(registry).decode()
    for name in PROCESS:
        assert f"\n{name} " in text


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    exported = exported_names()
    used = {name for expr in dashboard_exprs() + [r["expr"] for r in alert_rules()] for name in METRIC.findall(expr)}
    assert used, "no openalgo_proxy_* metric referenced"
    assert used <= exported, f"unknown metrics referenced: {sorted(used - exported)}"


def test_dashboard_shows_what_operators_need() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in panels)
    text = " ".join(dashboard_exprs())
    for needed in ("connections_open", "messages_sent_total", "tick_to_send_seconds_bucket",
                   "slow_disconnects_total", "bus_gaps_total", "feed_broker_connected"):  # fmt: skip
        assert f"openalgo_proxy_{needed}" in text, needed


def test_alerts_cover_the_required_conditions() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "OpenalgoFeedDisconnected",
        "OpenalgoNoTicksWhileSubscribed",
        "OpenalgoBusGapsRising",
        "OpenalgoSlowDisconnectsSpiking",
        "OpenalgoProxyNotReady",
    } <= names
    assert all(rule["labels"]["severity"] in ("warning", "critical") for rule in alert_rules())


def test_compose_wires_every_component() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"bus", "feed", "proxy1", "proxy2", "lb", "prometheus", "grafana"} <= set(services)
    assert "--bus-connect" in services["feed"]["command"]
    for proxy in ("proxy1", "proxy2"):
        assert "tcp://bus:5556" in services[proxy]["command"]
        assert services[proxy]["environment"]["OPENALGO_PROXY_AUTH__MODE"] == "api_key"
    standby = services["feed-standby"]
    assert standby["profiles"] == ["ha"] and "--standby" in standby["command"]
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in haproxy and "server proxy2 proxy2:8765 check" in haproxy
    assert "http-check send ver HTTP/1.1 hdr Host localhost" in haproxy  # the proxies refuse Host-less requests
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"proxy1:8765", "proxy2:8765", "feed:9102"} <= targets
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nUSER 10001" in dockerfile and "\nHEALTHCHECK " in dockerfile


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed here (make ops-tools installs it)")
    return found


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_dockerfile_passes_hadolint() -> None:
    result = _run(_tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_config_rules_and_rule_tests() -> None:
    promtool = _tool("promtool")
    for args in (("check", "config"), ("check", "rules")):
        target = DEPLOY / "prometheus" / ("prometheus.yml" if args[1] == "config" else "alerts.yml")
        result = _run(promtool, *args, str(target))
        assert result.returncode == 0, result.stdout + result.stderr
    result = _run(promtool, "test", "rules", str(DEPLOY / "prometheus/alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = _run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_bounds_slow_request_heads() -> None:
    """Slowloris in front of the proxies: a request head must complete within seconds."""
    defaults = (DEPLOY / "haproxy.cfg").read_text().split("\ndefaults", 1)[1].split("\nfrontend", 1)[0]
    found = re.search(r"^\s*timeout http-request (\d+)s\s*$", defaults, re.MULTILINE)
    assert found is not None, "deploy/haproxy.cfg has no 'timeout http-request' in its defaults"
    assert 1 <= int(found.group(1)) <= 10
    # the 16 KB default buffer caps request heads; raising it would let 1 MB heads through
    assert not re.search(r"^\s*tune\.(bufsize|http\.maxhdr)", (DEPLOY / "haproxy.cfg").read_text(), re.MULTILINE)


def test_haproxy_config_is_valid() -> None:
    result = _run(_tool("haproxy"), "-c", "-f", str(DEPLOY / "haproxy.cfg"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_validates_without_a_daemon() -> None:
    compose = _tool("docker-compose")
    result = _run(compose, "-f", str(COMPOSE), "--profile", "ha", "config", "--services", env=COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        "bus",
        "feed",
        "feed-standby",
        "proxy1",
        "proxy2",
        "lb",
        "prometheus",
        "grafana",
    }
    # no default credentials: without the API key the file is refused
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    missing = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60, env=env
    )
    assert missing.returncode != 0 and "OPENALGO_API_KEY" in missing.stderr
