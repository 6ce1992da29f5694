"""Operations units: the standby election rule, log redaction, JSON log lines, the feed/standby CLI."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import pytest

from openalgo_proxy.cli import _overrides, build_parser, main
from openalgo_proxy.config import load_settings
from openalgo_proxy.control import FeedStatus, decode_status
from openalgo_proxy.feed.standby import Claim, should_yield
from openalgo_proxy.logs import redact, setup_logging


def test_a_standby_always_yields_to_a_plain_primary() -> None:
    mine = Claim("b", active_since=1000, standby=True)
    assert should_yield(mine, Claim("a", active_since=5000, standby=False))


def test_between_standbys_the_one_active_first_keeps_the_account() -> None:
    older = Claim("x", active_since=1000, standby=True)
    younger = Claim("y", active_since=2000, standby=True)
    assert should_yield(younger, older)
    assert not should_yield(older, younger)
    # same instant: the instance id breaks the tie, and exactly one side yields
    a, b = Claim("a", 1000, True), Claim("b", 1000, True)
    assert should_yield(b, a) != should_yield(a, b)


def _status(**claim: object) -> FeedStatus:
    wire = {
        "broker": "b",
        "state": "connected",
        "connections": 1,
        "subscriptions": 0,
        "topics": 0,
        "reconnects": 0,
        "last_tick_age": -1,
        "exchanges": [],
        "time": 1,
        **claim,
    }
    return decode_status(json.dumps(wire).encode())


def test_claim_needs_instance_and_start_time() -> None:
    assert Claim.of(_status(instance="i", active_since=5, standby=True)) == Claim("i", 5, True)
    assert Claim.of(_status(instance="i")) is None
    assert Claim.of(_status(active_since=5)) is None


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login with api_key=abcd1234efgh", "abcd1234efgh"),
        ('payload {"password": "hunter2"}', "hunter2"),
        ("header Authorization: Bearer s3cr3t.token-value", "s3cr3t.token-value"),
        ("got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl from client", "eyJhbGciOiJIUzI1NiJ9"),
        ("totp=123456 pin:9876", "123456"),
        ("jwt=not-a-real-jwt-but-secret", "not-a-real-jwt-but-secret"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert "***" in cleaned


def test_ordinary_lines_are_untouched() -> None:
    line = "conn 3 127.0.0.1:5000 subscribe requested=2 ok=2 failed=0 holding=2"
    assert redact(line) == line
    identity = "conn 1 127.0.0.1:5000 authenticated as jwt:carol role=default"  # identities are logged
    assert redact(identity) == identity


def test_json_log_lines_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    try:
        setup_logging("INFO", "json", "serve")
        logger = logging.getLogger("openalgo_proxy.test")
        logger.info("auth with token=%s for %s", "tok-123", "user")
        try:
            raise ValueError("bad password=hunter2")
        except ValueError:
            logger.exception("login failed")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().strip().splitlines()]
    entry, failure = lines[-2], lines[-1]
    assert entry["level"] == "info" and entry["logger"] == "openalgo_proxy.test" and entry["component"] == "serve"
    assert "tok-123" not in entry["message"] and entry["message"].endswith("for user")
    assert failure["level"] == "error" and "ValueError" in failure["exception"]
    assert "hunter2" not in failure["exception"]


def test_text_tracebacks_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    try:
        setup_logging("INFO", "text", "feed")
        try:
            raise RuntimeError("refused api_key=abcdef123")
        except RuntimeError:
            logging.getLogger("openalgo_proxy.test").exception("upstream")
    finally:
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert " feed ERROR openalgo_proxy.test: upstream" in text and "RuntimeError" in text
    assert "abcdef123" not in text


def test_a_stop_that_overruns_its_bound_still_exits() -> None:
    import os
    import signal
    import threading

    from openalgo_proxy.runtime import run_until_signal

    async def start() -> None:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()

    async def stop() -> None:
        await asyncio.sleep(30)

    began = time.monotonic()
    assert run_until_signal(start, stop, stop_within=0.2) == 1
    assert time.monotonic() - began < 5


def test_feed_standby_flags_reach_the_config() -> None:
    args = build_parser().parse_args(
        ["feed", "--standby", "--watch", "tcp://127.0.0.1:5556", "--takeover-after", "6", "--metrics-port", "9102"]
    )
    feed = load_settings(None, _overrides(args)).feed
    assert feed.standby and feed.standby_watch == ["tcp://127.0.0.1:5556"]
    assert feed.takeover_after == 6.0 and feed.metrics_port == 9102


def test_a_standby_without_a_forwarder_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feed", "--broker", "simulator", "--standby", "--watch", "tcp://127.0.0.1:1"]) == 2
    assert "--bus-connect" in capsys.readouterr().err
