"""Instrument search over the feeds' directory: prefix first, then words of the name, then substrings,
then near misses (typos); bounded results. Pure: no I/O, no proxy state.

Used by the `search` protocol action and to suggest names when a subscribe names an unknown symbol
(`NIFTY` on NSE -> `NSE_INDEX:NIFTY`).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
MAX_QUERY = 64  # characters; a longer query is refused by the caller
_FUZZY_DISTANCE = 2


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument as search shows it."""

    symbol: str
    exchange: str
    name: str = ""
    instrument_type: str = ""
    tick_size: float = 0.0
    lot_size: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "name": self.name,
            "instrument_type": self.instrument_type,
            "tick_size": self.tick_size,
            "lot_size": self.lot_size,
        }

    @property
    def qualified(self) -> str:
        return f"{self.exchange}:{self.symbol}"


def normalize(text: str) -> str:
    """Upper case, no surrounding blanks, inner runs of blanks as one space."""
    return " ".join(text.upper().split())


def split_query(query: str, exchange: str | None) -> tuple[str, str | None]:
    """`NSE:INFY` names its exchange in the query; an explicit `exchange` wins."""
    text = normalize(query)
    if ":" in text:
        head, _, tail = text.partition(":")
        if head and tail and " " not in head:
            return tail.strip(), normalize(exchange) if exchange else head
    return text, normalize(exchange) if exchange else None


def within_distance(a: str, b: str, limit: int) -> int | None:
    """Levenshtein distance of a and b if at most `limit`, else None (rapidfuzz, stops past the limit)."""
    distance: int = Levenshtein.distance(a, b, score_cutoff=limit)
    return distance if distance <= limit else None


class SearchIndex:
    """Every listing, indexed so that a query costs milliseconds on a full broker master (~150,000
    instruments): sorted symbols and name words for prefixes, one joined text per field for
    substrings (str.find runs in C), and (first letter, length) buckets for near misses."""

    def __init__(self, listings: Iterable[Listing] = ()) -> None:
        self._listings = sorted(listings, key=operator.attrgetter("symbol", "exchange"))
        self._symbols = [item.symbol for item in self._listings]
        self._by_symbol: dict[str, list[Listing]] = {}
        for item in self._listings:
            self._by_symbol.setdefault(item.symbol, []).append(item)
        lengths = [len(symbol) for symbol in self._symbols]
        # already in symbol order, so a stable sort by length gives (length, symbol) order
        self._by_length = sorted(range(len(lengths)), key=lengths.__getitem__)
        name_owners: dict[str, list[int]] = {}  # a master repeats names (every option of NIFTY)
        for i, item in enumerate(self._listings):
            name_owners.setdefault(normalize(item.name), []).append(i)
        owners: dict[str, list[int]] = {}
        for name, holders in name_owners.items():
            for word in name.split():
                owners.setdefault(word, []).extend(holders)
        self._words = sorted(owners)
        self._word_owners = owners
        self._names = list(name_owners)
        self._name_owners = name_owners
        self._symbol_text, self._symbol_starts = _joined(self._symbols)
        self._name_text, self._name_starts = _joined(self._names)
        self._buckets: dict[tuple[str, int], list[int]] = {}
        for i, symbol in enumerate(self._symbols):
            self._buckets.setdefault((symbol[:1], lengths[i]), []).append(i)

    def __len__(self) -> int:
        return len(self._listings)

    def search(
        self,
        query: str,
        exchange: str | None = None,
        limit: int = DEFAULT_LIMIT,
        allowed: Container[str] | None = None,
    ) -> list[Listing]:
        """Best matches first: exact symbol, symbol prefix (shorter first), a word of the name
        starting with the query, the query inside symbol or name, then symbols one or two edits away.
        `allowed` keeps only those exchanges (a role's)."""
        text, exchange = split_query(query, exchange)
        limit = max(1, min(limit, MAX_LIMIT))
        if not text:
            return []
        found: dict[tuple[str, str], Listing] = {}

        def take(indices: Iterable[int]) -> bool:
            for i in indices:
                item = self._listings[i]
                if (exchange is not None and item.exchange != exchange) or (
                    allowed is not None and item.exchange not in allowed
                ):
                    continue
                found.setdefault((item.exchange, item.symbol), item)
                if len(found) >= limit:
                    return True
            return False

        steps: tuple[Callable[[str], Iterable[int]], ...] = (
            self._exact,
            self._prefixed,
            self._word_prefixed,
            self._containing,
            self._near,
        )
        for step in steps:
            if take(step(text)):
                break
        return list(found.values())

    def suggest(self, symbol: str, exchange: str, limit: int = 3) -> list[Listing]:
        """Names to offer for an unknown (exchange, symbol): the same symbol elsewhere (NSE NIFTY ->
        NSE_INDEX:NIFTY), then symbols of that exchange starting with it (MCX CRUDEOIL -> its futures),
        then near misses there (RELAINCE -> RELIANCE), then near misses anywhere."""
        text, exchange = normalize(symbol), normalize(exchange)
        family = exchange.split("_", 1)[0]  # NSE and NSE_INDEX are one family
        same = sorted(
            (item for item in self._by_symbol.get(text, ()) if item.exchange != exchange),
            key=lambda item: (item.exchange.split("_", 1)[0] != family, item.exchange),
        )
        here = (self._listings[i] for i in self._prefixed(text))
        prefixed = list(itertools.islice((item for item in here if item.exchange == exchange), limit + 1))
        near = [self._listings[i] for i in self._near(text)]
        near_here = [item for item in near if item.exchange == exchange]
        out: dict[tuple[str, str], Listing] = {}
        for item in (*same, *prefixed, *near_here, *near):
            if (item.exchange, item.symbol) != (exchange, text):
                out.setdefault((item.exchange, item.symbol), item)
            if len(out) >= limit:
                break
        return list(out.values())

    # -- candidates (indices into the sorted listings) ----------------------------------------------
    def _exact(self, text: str) -> list[int]:
        start = bisect.bisect_left(self._symbols, text)
        end = bisect.bisect_right(self._symbols, text)
        return list(range(start, end))

    def _prefixed(self, text: str) -> Iterable[int]:
        """Symbols starting with `text`, shorter first."""
        start = bisect.bisect_left(self._symbols, text)
        end = bisect.bisect_left(self._symbols, text + "\uffff")
        if end - start <= _SORT_AT_MOST:
            return sorted(range(start, end), key=lambda i: (len(self._symbols[i]), self._symbols[i]))
        return (i for i in self._by_length if start <= i < end)  # many: walk them shortest first

    def _word_prefixed(self, text: str) -> Iterator[int]:
        start = bisect.bisect_left(self._words, text)
        end = bisect.bisect_left(self._words, text + "\uffff")
        owners = self._word_owners
        seen: set[int] = set()
        for word in self._words[start:end]:
            for i in owners[word]:
                if i not in seen:
                    seen.add(i)
                    yield i

    def _containing(self, text: str) -> Iterable[int]:
        """The query inside a symbol, then inside a name (each field searched as one joined text)."""
        yield from _occurrences(self._symbol_text, self._symbol_starts, text)
        for k in _occurrences(self._name_text, self._name_starts, text):
            yield from self._name_owners[self._names[k]]

    def _near(self, text: str) -> list[int]:
        """Symbols within two edits (one for short queries), closest first; only symbols with the same
        first letter and a length within the distance are compared, at most _NEAR_AT_MOST of them,
        and only for queries of 3 to _NEAR_LONGEST characters."""
        if not 3 <= len(text) <= _NEAR_LONGEST:
            return []
        limit = 1 if len(text) < 6 else _FUZZY_DISTANCE
        scored: list[tuple[int, int, str, int]] = []
        compared = 0
        for length in range(len(text) - limit, len(text) + limit + 1):
            for i in self._buckets.get((text[0], length), ()):
                compared += 1
                if compared > _NEAR_AT_MOST:
                    break
                distance = within_distance(text, self._symbols[i], limit)
                if distance is not None:
                    scored.append((distance, len(self._symbols[i]), self._symbols[i], i))
        scored.sort()
        return [entry[3] for entry in scored]


_SORT_AT_MOST = 2000  # a prefix shared by more symbols is walked in length order instead of sorted
_NEAR_AT_MOST = 2000  # symbols compared by edit distance per query (bounds the cost of a miss)
_NEAR_LONGEST = 14  # longer names are derivatives, found by prefix; typos are looked for in shorter ones


def _joined(fields: list[str]) -> tuple[str, list[int]]:
    """One text of every field, newline-separated, and where each field starts in it."""
    starts = [0, *itertools.accumulate(len(field) + 1 for field in fields)][:-1] if fields else []
    return "\n".join(fields), starts


def _occurrences(text: str, starts: list[int], needle: str) -> Iterable[int]:
    """Indices of the fields of a joined text that contain `needle` (a field once)."""
    if "\n" in needle:
        return
    at = text.find(needle)
    last = -1
    while at != -1:
        owner = bisect.bisect_right(starts, at) - 1
        if owner != last:
            yield owner
            last = owner
        at = text.find(needle, starts[owner + 1] if owner + 1 < len(starts) else len(text))
