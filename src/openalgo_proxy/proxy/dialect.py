"""Protocol dialects: how a session reads client messages and shapes its replies.

A session holds one dialect for its life. The seed dialect is the protocol of the README ("The
protocol"); another dialect (OpenAlgo's) implements the same methods with its own shapes. Replies
are built from plain values (results, identities, broker facts) so a dialect never sees a session,
a hub or a socket. Market-data frames are built once per tick by the hub and are not shaped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy import protocol as proto

FEATURES = {"ltp": True, "quote": True, "depth": True}


@dataclass(frozen=True, slots=True)
class BrokerFacts:
    """What `get_broker_info` reports, gathered by the session from the hub."""

    broker: str  # one name, or the names joined with "," when several feeds serve (kept for old clients)
    brokers: list[str]
    connected: bool
    exchanges: list[str]
    user_id: str = ""  # the identity of the session that asks


class Dialect(Protocol):
    name: str
    numeric_timestamp: bool  # market data carries `data.timestamp` as epoch ms (else ISO-8601)

    def parse(self, data: bytes, max_entries: int) -> proto.ParsedRequest:
        """One client text message -> a command (at most `max_entries` entries in a batch);
        proto.BadRequest with its code otherwise, never another exception."""

    def error(self, code: ErrorCode, message: str, request_id: Any = None, **extra: Any) -> bytes: ...

    def authenticated(self, identity: str, broker: str, request_id: Any) -> bytes: ...

    def pong(self, ping_id: Any, server_ms: int, request_id: Any) -> bytes: ...

    def supported_brokers(self, brokers: list[str], request_id: Any) -> bytes: ...

    def broker_info(self, facts: BrokerFacts, request_id: Any) -> bytes: ...

    def subscribed(self, results: list[dict[str, Any]], single: bool, request_id: Any) -> bytes: ...

    def unsubscribed(self, results: list[dict[str, Any]], single_topic: str | None, request_id: Any) -> bytes: ...

    def unsubscribed_all(self, removed: list[dict[str, Any]], request_id: Any) -> bytes: ...

    def subscriptions(self, listed: list[dict[str, Any]], request_id: Any) -> bytes: ...

    def orders(self, subscribed: bool, request_id: Any) -> bytes:
        """The ack of `subscribe_orders` (True) or `unsubscribe_orders` (False)."""
        ...

    def search_results(self, query: str, results: list[dict[str, Any]], request_id: Any) -> bytes: ...

    def chain_reply(self, action: str, result: dict[str, Any], request_id: Any) -> bytes: ...


def orders_ack(subscribed: bool, request_id: Any) -> bytes:
    """Both dialects answer the order actions as OpenAlgo does."""
    kind = "subscribe_orders" if subscribed else "unsubscribe_orders"
    message = "Subscribed to order updates" if subscribed else "Unsubscribed from order updates"
    return proto.reply({"type": kind, "status": "success", "message": message}, request_id)


class SeedDialect:
    """The proxy's own protocol (docs/protocol.md)."""

    name = "seed"
    numeric_timestamp = False

    def parse(self, data: bytes, max_entries: int) -> proto.ParsedRequest:
        return proto.parse_request(data, max_entries)

    def error(self, code: ErrorCode, message: str, request_id: Any = None, **extra: Any) -> bytes:
        return proto.error(code, message, request_id, **extra)

    def authenticated(self, identity: str, broker: str, request_id: Any) -> bytes:
        return proto.reply(
            {
                "type": "auth",
                "status": "success",
                "message": "Authentication successful",
                "user_id": identity,
                "broker": broker,
                "supported_features": FEATURES,
            },
            request_id,
        )

    def pong(self, ping_id: Any, server_ms: int, request_id: Any) -> bytes:
        body: dict[str, Any] = {"type": "pong", "status": "success", "server_timestamp": server_ms}
        if ping_id is not None:
            body["_pingId"] = ping_id
        return proto.reply(body, request_id)

    def supported_brokers(self, brokers: list[str], request_id: Any) -> bytes:
        return proto.reply({"type": "supported_brokers", "status": "success", "brokers": brokers}, request_id)

    def broker_info(self, facts: BrokerFacts, request_id: Any) -> bytes:
        return proto.reply(
            {
                "type": "broker_info",
                "status": "success",
                "user_id": facts.user_id,
                "broker": facts.broker,
                "brokers": facts.brokers,
                "adapter_status": "connected" if facts.connected else "disconnected",
                "exchanges": facts.exchanges,
                "supported_features": FEATURES,
            },
            request_id,
        )

    def subscribed(self, results: list[dict[str, Any]], single: bool, request_id: Any) -> bytes:
        ok = sum(1 for r in results if r["status"] == "success")
        body: dict[str, Any] = {
            "type": "subscription",
            "status": proto.overall_status(results),
            "message": f"subscribed to {ok} of {len(results)}",
            "subscriptions": results,
        }
        if single:
            body["topic"] = results[0]["topic"]
        return proto.reply(body, request_id)

    def unsubscribed(self, results: list[dict[str, Any]], single_topic: str | None, request_id: Any) -> bytes:
        body: dict[str, Any] = {
            "type": "unsubscription",
            "status": proto.overall_status(results),
            "subscriptions": results,
        }
        if single_topic is not None:
            body["topic"] = single_topic
        return proto.reply(body, request_id)

    def unsubscribed_all(self, removed: list[dict[str, Any]], request_id: Any) -> bytes:
        return proto.reply(
            {
                "type": "unsubscription",
                "status": "success",
                "message": f"unsubscribed from {len(removed)} topic(s)",
                "subscriptions": removed,
            },
            request_id,
        )

    def subscriptions(self, listed: list[dict[str, Any]], request_id: Any) -> bytes:
        return proto.reply({"type": "subscriptions", "status": "success", "subscriptions": listed}, request_id)

    def orders(self, subscribed: bool, request_id: Any) -> bytes:
        return orders_ack(subscribed, request_id)

    def search_results(self, query: str, results: list[dict[str, Any]], request_id: Any) -> bytes:
        return proto.reply({"type": "search", "status": "success", "query": query, "results": results}, request_id)

    def chain_reply(self, action: str, result: dict[str, Any], request_id: Any) -> bytes:
        """The answer to subscribe_chain / unsubscribe_chain: `type` is the action."""
        return proto.reply({"type": action, **result}, request_id)


class OpenAlgoDialect(SeedDialect):
    """OpenAlgo's own proxy protocol, for its in-app client, SDK, web UI and chart apps (README table).

    Differences from the seed: `type` is accepted for `action`; subscribe defaults to Quote; acks are
    `type:"subscribe"` with
    `subscriptions[]` and `type:"unsubscribe"` with `successful[]`/`failed[]`, always in list form;
    `data.timestamp` is epoch milliseconds.
    """

    name = "openalgo"
    numeric_timestamp = True

    def parse(self, data: bytes, max_entries: int) -> proto.ParsedRequest:
        return proto.parse_object(
            proto.decode_object(data),
            max_entries=max_entries,
            action_key="type",
            default_mode=Mode.QUOTE,
        )

    def subscribed(self, results: list[dict[str, Any]], single: bool, request_id: Any) -> bytes:
        ok = sum(1 for r in results if r["status"] == "success")
        return proto.reply(
            {
                "type": "subscribe",
                "status": proto.overall_status(results),
                "message": f"Subscription processing complete: {ok} of {len(results)} subscribed",
                "subscriptions": results,
            },
            request_id,
        )

    def unsubscribed(self, results: list[dict[str, Any]], single_topic: str | None, request_id: Any) -> bytes:
        successful = [r for r in results if r["status"] == "success"]
        failed = [r for r in results if r["status"] != "success"]
        return proto.reply(
            {
                "type": "unsubscribe",
                "status": proto.overall_status(results),
                "message": "Unsubscription processing complete",
                "successful": successful,
                "failed": failed,
            },
            request_id,
        )

    def unsubscribed_all(self, removed: list[dict[str, Any]], request_id: Any) -> bytes:
        return proto.reply(
            {
                "type": "unsubscribe",
                "status": "success",
                "message": f"Unsubscribed from {len(removed)} topic(s)",
                "successful": [{**r, "status": "success"} for r in removed],
                "failed": [],
            },
            request_id,
        )


SEED = SeedDialect()
OPENALGO = OpenAlgoDialect()
DIALECTS: dict[str, Dialect] = {"seed": SEED, "openalgo": OPENALGO}


# Candles and history are this proxy's own extensions: one shape in every dialect.


def candle_subscription(results: list[dict[str, Any]], subscribe: bool, request_id: Any) -> bytes:
    """The reply to subscribe_candles / unsubscribe_candles."""
    return proto.reply(
        {
            "type": "candle_subscription" if subscribe else "candle_unsubscription",
            "status": proto.overall_status(results),
            "subscriptions": results,
        },
        request_id,
    )


def history_reply(query: proto.History, rows: list[dict[str, Any]], more: bool, request_id: Any) -> bytes:
    """The reply to `history`: rows [offset, offset + count); `next_offset` null after the last page."""
    return proto.reply(
        {
            "type": "history",
            "status": "success",
            "symbol": query.symbol,
            "exchange": query.exchange,
            "interval": query.interval,
            "start": query.start,
            "end": query.end,
            "offset": query.offset,
            "count": len(rows),
            "next_offset": query.offset + len(rows) if more else None,
            "rows": rows,
        },
        request_id,
    )
