"""The Noren codec bench row measures the feed's real path on a realistic stream."""

from __future__ import annotations

import json

from bench import noren_codec


def test_the_stream_is_full_acks_then_partial_updates_and_every_message_merges() -> None:
    messages = noren_codec.make_messages(600)
    kinds = [json.loads(m)["t"] for m in messages]
    assert kinds[:50].count("tk") == 45 and kinds[:50].count("dk") == 5
    assert set(kinds[50:]) == {"tf", "df"}
    full = len(json.loads(messages[5]))  # a tk: header and every field
    assert all(len(json.loads(m)) < full for m in messages[50:] if json.loads(m)["t"] == "tf")
    assert noren_codec.run_once(messages) > 0
