"""NATS subject and KV key names of bus topics: built and parsed here and nowhere else.

A NATS subject is dot-separated tokens; ``.``, ``*``, ``>`` and white space have meanings there, and a
KV key may only use ``[-/_=.A-Za-z0-9]``. Exchange and symbol names carry ``&`` (``M&M``), spaces
(``Nifty 50``) and dots, so every name is escaped into one token: each UTF-8 byte outside
``[A-Za-z0-9_-]`` becomes ``=HH`` (upper-case hex; ``=`` itself is ``=3D``). The escape is
reversible and valid both as a subject token and as a KV key token.

Names (``P`` is the configured prefix, default ``oa``):

- market data ``EX|SYM|MODE`` -> ``P.md.<EX~>.<SYM~>.<MODE>`` (a deeper book's ``Dnnn`` as the mode token)
- control ``#KIND|A|B..`` -> ``P.ctl.<KIND>.<A~>.<B~>..`` (status, instruments, reject, orders)
- snapshot requests for one exchange -> ``P.snap.<EX~>``; announce (a proxy asks every feed for its
  status and directory) -> ``P.hello``
- interest key ``<PROXY>.<EX~>.<SYM~>.<MODE>`` in the interest bucket
"""

from __future__ import annotations

import re
import string

from openalgo_proxy import topics

_PLAIN = frozenset((string.ascii_letters + string.digits + "_-").encode())
_ESCAPED = re.compile(r"=([0-9A-F]{2})")
_TOKEN = re.compile(r"^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$")
CONTROL_KINDS = ("status", "instruments", "reject", "orders")
DEFAULT_PREFIX = "oa"


def escape(name: str) -> str:
    """One subject token for any non-empty name."""
    if not name:
        raise ValueError("an empty name has no subject token")
    return "".join(chr(byte) if byte in _PLAIN else f"={byte:02X}" for byte in name.encode())


def unescape(token: str) -> str:
    """Inverse of escape; ValueError for a token escape never builds."""
    if not _TOKEN.match(token):
        raise ValueError(f"not an escaped name: {token[:80]!r}")
    raw = bytearray()
    pos = 0
    for match in _ESCAPED.finditer(token):
        raw += token[pos : match.start()].encode()
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += token[pos:].encode()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ValueError(f"not UTF-8 once unescaped: {token[:80]!r}") from None


def valid_prefix(prefix: str) -> bool:
    return all(_TOKEN.match(part) for part in prefix.split(".")) if prefix else False


def _mode_token(topic: bytes) -> str:
    """The topic's last part as it is (a one-digit mode, or ``Dnnn`` for a deeper book): a valid token."""
    return topic.rsplit(topics.SEPARATOR.encode(), 1)[1].decode()


def _market_topic(exchange: str, symbol: str, mode: str) -> bytes:
    """The market-data topic of escaped parts, checked by topics.py (ValueError if it is none)."""
    if topics.SEPARATOR in mode:
        raise ValueError(f"not a mode: {mode[:20]!r}")
    topic = f"{exchange}{topics.SEPARATOR}{symbol}{topics.SEPARATOR}{mode}".encode()
    topics.parse_bus_topic(topic)
    return topic


class Names:
    """Every NATS name of one deployment (one subject prefix)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not valid_prefix(prefix):
            raise ValueError(f"invalid subject prefix {prefix!r}: dot-separated [A-Za-z0-9_-] tokens")
        self.prefix = prefix
        self.md = f"{prefix}.md."
        self.ctl = f"{prefix}.ctl."
        self.hello = f"{prefix}.hello"
        bucket = prefix.replace(".", "_").replace("-", "_")
        self.interest_bucket = f"{bucket}_interest"
        self.proxies_bucket = f"{bucket}_proxies"
        self.leader_bucket = f"{bucket}_leader"

    # -- topics <-> subjects -----------------------------------------------------------------------
    def subject(self, topic: bytes) -> str:
        """The subject of a full market-data or control topic."""
        if topics.is_control(topic):
            text = topic[1:].decode()
            kind, *parts = text.split(topics.SEPARATOR)
            if kind not in CONTROL_KINDS or not parts or not all(parts):
                raise ValueError(f"no subject for control topic {topic[:80]!r}")
            return self.ctl + ".".join([kind, *(escape(part) for part in parts)])
        key = topics.parse_bus_topic(topic)
        return f"{self.md}{escape(key.exchange)}.{escape(key.symbol)}.{_mode_token(topic)}"

    def subscription(self, prefix: bytes) -> str:
        """The subject (with a wildcard) of a control prefix subscription such as ``#status|``."""
        if not prefix.startswith(topics.CONTROL_MARK) or not prefix.endswith(topics.SEPARATOR.encode()):
            raise ValueError(f"not a control prefix: {prefix[:80]!r}")
        kind = prefix[1:-1].decode()
        if kind not in CONTROL_KINDS:
            raise ValueError(f"not a control prefix: {prefix[:80]!r}")
        return f"{self.ctl}{kind}.>"

    def topic(self, subject: str) -> bytes:
        """Inverse of subject; ValueError for a subject of no topic."""
        if subject.startswith(self.md):
            parts = subject[len(self.md) :].split(".")
            if len(parts) != 3:
                raise ValueError(f"not a market-data subject: {subject[:80]!r}")
            return _market_topic(unescape(parts[0]), unescape(parts[1]), parts[2])
        if subject.startswith(self.ctl):
            kind, *parts = subject[len(self.ctl) :].split(".")
            if kind not in CONTROL_KINDS or not parts:
                raise ValueError(f"not a control subject: {subject[:80]!r}")
            names = [unescape(part) for part in parts]
            if not all(topics.valid_name(name) for name in names):
                raise ValueError(f"not a control subject: {subject[:80]!r}")
            return ("#" + topics.SEPARATOR.join([kind, *names])).encode()
        raise ValueError(f"not a bus subject: {subject[:80]!r}")

    def snapshot_subject(self, exchange: str) -> str:
        return f"{self.prefix}.snap.{escape(exchange)}"

    # -- interest keys ----------------------------------------------------------------------------
    def interest_key(self, proxy: str, topic: bytes) -> str:
        key = topics.parse_bus_topic(topic)
        return f"{escape(proxy)}.{escape(key.exchange)}.{escape(key.symbol)}.{_mode_token(topic)}"

    def parse_interest_key(self, key: str) -> tuple[str, bytes]:
        """(proxy, topic) of an interest key; ValueError for anything else."""
        parts = key.split(".")
        if len(parts) != 4:
            raise ValueError(f"not an interest key: {key[:80]!r}")
        return unescape(parts[0]), _market_topic(unescape(parts[1]), unescape(parts[2]), parts[3])

    def proxy_key(self, proxy: str) -> str:
        """The key of a proxy's liveness entry in the proxies bucket."""
        return escape(proxy)

    def parse_proxy_key(self, key: str) -> str:
        return unescape(key)

    def proxy_interest(self, proxy: str) -> str:
        """The KV key filter of every interest key of one proxy."""
        return f"{escape(proxy)}.>"
