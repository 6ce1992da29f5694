"""The terminal market watch: a textual app fed by the client library on the app's own loop.

A table of instruments (LTP, change, change %, volume, high, low, time) whose LTP flashes green
or red on every move, the depth ladder of the highlighted instrument and the connection state
with the reason when it is not live. Outside depth mode the ladder's instrument is subscribed in
depth as well, following the cursor. The layout follows the terminal's size: the ladder beside the
table on a wide terminal, under it otherwise; columns that do not fit are dropped by priority
(LTP mode shows only what it carries: LTP and time).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from ssl import SSLContext

from rich import box
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import DataTable, Footer, Header, Static

from openalgo_proxy.client import prices
from openalgo_proxy.client.backoff import Backoff
from openalgo_proxy.client.client import Client, State
from openalgo_proxy.client.errors import ClientError
from openalgo_proxy.client.messages import DepthTick, QuoteTick, Tick
from openalgo_proxy.model import DepthLevel, Mode
from openalgo_proxy.tasks import cancel_and_wait

FLASH_SECONDS = 0.6
REFRESH_SECONDS = 0.1
STATE_STYLE = {
    State.LIVE: "bold green",
    State.CONNECTING: "bold yellow",
    State.AUTHENTICATING: "bold yellow",
    State.RECONNECTING: "bold red",
    State.CLOSED: "bold red",
}
# typical content widths for fitting columns (26,150.40; a wider price widens its column, which
# then scrolls rather than truncates)
PRICE_WIDTH = 9
LADDER_PRICE_WIDTH = 11
# the ladder sits beside the table only when both fit whole
LADDER_WIDTH = 52
SIDE_BY_SIDE_MIN = 150
TABLE_CHROME = 3  # scrollbar and margin

Instrument = tuple[str, str]  # (exchange, symbol)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    width: int  # content width; the table pads each column by one cell on both sides
    priority: int  # columns with the highest number go first when the terminal is narrow
    quote: bool = True  # carried by Quote and Depth only


COLUMNS = (
    Column("Instrument", "Instrument", 0, 0, quote=False),  # width: the longest name
    Column("LTP", "LTP", PRICE_WIDTH + 2, 0, quote=False),  # price and arrow
    Column("Change", "Chg", 8, 3),
    Column("Change %", "Chg%", 7, 1),
    Column("Volume", "Volume", 10, 4),
    Column("High", "High", PRICE_WIDTH, 5),
    Column("Low", "Low", PRICE_WIDTH, 5),
    Column("Time", "Time", 8, 2, quote=False),
)


def fit_columns(width: int, name_width: int, mode: Mode) -> list[Column]:
    """The columns to show in `width` cells: those of the mode, dropped by priority until they fit."""
    wanted = [column for column in COLUMNS if mode != Mode.LTP or not column.quote]

    def cost(column: Column) -> int:
        return (name_width if column.key == "Instrument" else column.width) + 2

    for column in sorted(wanted, key=lambda c: -c.priority):
        if sum(cost(c) for c in wanted) <= width or column.priority == 0:
            break
        wanted.remove(column)
    return wanted


@dataclass(slots=True)
class _Row:
    tick: Tick | None = None
    direction: int = 0  # +1 up, -1 down, 0 unchanged
    flash_until: float = 0.0
    dirty: bool = False


def _signed(value: float, decimals: int, suffix: str = "") -> Text:
    shown = prices.signed(value, decimals, suffix)
    style = "green" if shown.startswith("+") else "red" if shown.startswith("-") else ""
    return Text(shown, style=style, justify="right")


def _ladder(tick: DepthTick | None, name: str, decimals: int, with_orders: bool) -> Table:
    table = Table(title=f"Depth {name}", expand=True, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    if with_orders:
        table.add_column("Ord", justify="right", style="dim", no_wrap=True)
    table.add_column("Qty", justify="right", style="green", no_wrap=True)
    table.add_column("Bid", justify="right", style="bold green", no_wrap=True, min_width=LADDER_PRICE_WIDTH)
    table.add_column("Ask", justify="right", style="bold red", no_wrap=True, min_width=LADDER_PRICE_WIDTH)
    table.add_column("Qty", justify="right", style="red", no_wrap=True)
    if with_orders:
        table.add_column("Ord", justify="right", style="dim", no_wrap=True)
    if tick is None:
        table.caption = "waiting for depth..."
        return table
    levels = [
        (bid, ask)
        for bid, ask in zip(tick.depth.buy, tick.depth.sell, strict=False)
        if bid.price or bid.quantity or ask.price or ask.quantity
    ]
    if not levels:
        index = name.partition(":")[0].endswith("_INDEX")
        what = "an index has no order book" if index else "order book empty"
        table.caption = f"{what}  LTP {prices.price(tick.ltp, decimals)}"
        return table
    for bid, ask in levels:
        bid_cells = [prices.integer(bid.quantity), prices.price(bid.price, decimals)] if bid.price else ["", "-"]
        ask_cells = [prices.price(ask.price, decimals), prices.integer(ask.quantity)] if ask.price else ["-", ""]
        if with_orders:
            bid_cells.insert(0, str(bid.orders) if bid.price else "")
            ask_cells.append(str(ask.orders) if ask.price else "")
        table.add_row(*bid_cells, *ask_cells)
    caption = f"LTP {prices.price(tick.ltp, decimals)}  buy {prices.integer(tick.total_buy_quantity)}"
    caption += f"  sell {prices.integer(tick.total_sell_quantity)}"
    if tick.lower_circuit or tick.upper_circuit:
        low, high = prices.price(tick.lower_circuit, decimals), prices.price(tick.upper_circuit, decimals)
        caption += f"  circuit {low}-{high}"
    table.caption = caption
    return table


class WatchApp(App[int]):
    """`openalgo-proxy watch`: live quotes, flashing moves, a depth ladder, connection status."""

    TITLE = "openalgo-proxy watch"
    CSS = f"""
    #body {{ height: 1fr; layout: horizontal; }}
    #quotes {{ width: 1fr; height: 1fr; }}
    #ladder {{ width: {LADDER_WIDTH}; height: 1fr; padding: 0 1; border-left: solid $primary; }}
    #body.stacked {{ layout: vertical; }}
    #body.stacked #ladder {{ width: 1fr; height: auto; max-height: 11; border-left: none; border-top: solid $primary; }}
    #status {{ height: 1; padding: 0 1; background: $panel; }}
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        instruments: list[Instrument],
        url: str,
        api_key: str | None,
        mode: Mode,
        ssl: SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.instruments = list(dict.fromkeys(instruments))
        self.url = url
        self.api_key = api_key
        self.mode = mode
        self.rows = {instrument: _Row() for instrument in self.instruments}
        self.feed = Client(
            url,
            api_key=api_key,
            first_connect_timeout=None,
            backoff=Backoff(initial=0.5, maximum=10.0),
            on_state=lambda state: self._render_status(),
            ssl=ssl,
        )
        self.note = ""
        self.ladder_for: Instrument | None = self.instruments[0] if self.instruments else None
        self.ladder_tick: DepthTick | None = None
        self.decimals: dict[Instrument, int] = {i: prices.decimals_for(None, i[0]) for i in self.instruments}
        self.columns: list[Column] = []
        self._name_width = max([len(f"{e}:{s}") for e, s in self.instruments] + [len("Instrument")])
        self._ladder_orders = True
        self._ladder_dirty = True
        self._ladder_wanted = asyncio.Event()
        self._mounted = False
        self._waiting_for_feed = False

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with Container(id="body"):
            yield DataTable(id="quotes", cursor_type="row", zebra_stripes=True)
            yield Static(id="ladder")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._layout(self.size.width)
        self.run_worker(self._stream(), name="feed", exit_on_error=False)
        self.set_interval(REFRESH_SECONDS, self._refresh)
        self._mounted = True
        self._render_status()

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        """Ladder beside or under the table; the table's columns chosen to fit."""
        stacked = width < SIDE_BY_SIDE_MIN
        self.query_one("#body").set_class(stacked, "stacked")
        table_width = (width if stacked else width - LADDER_WIDTH) - TABLE_CHROME
        self._ladder_orders = (width if stacked else LADDER_WIDTH) >= 2 * LADDER_PRICE_WIDTH + 30
        self._ladder_dirty = True
        columns = fit_columns(table_width, self._name_width, self.mode)
        if [c.key for c in columns] == [c.key for c in self.columns]:
            return
        self.columns = columns
        table = self.query_one("#quotes", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for column in columns:
            table.add_column(column.header, key=column.key)
        for exchange, symbol in self.instruments:
            table.add_row(f"{exchange}:{symbol}", *("-" for _ in columns[1:]), key=f"{exchange}:{symbol}")
        for row in self.rows.values():
            row.dirty = True
        if self.instruments:
            table.move_cursor(row=min(cursor, len(self.instruments) - 1))

    # -- feed ------------------------------------------------------------------------------

    async def _stream(self) -> None:
        feed = self.feed
        follower: asyncio.Task[None] | None = None
        try:
            await feed.start()
            try:
                results = await feed.subscribe(self.instruments, self.mode)
            except ClientError as exc:
                self.note = str(exc)
            else:
                waiting = next((r for r in results if r.code == "BROKER_UNAVAILABLE"), None)
                if waiting is not None:  # held and retried by the client until a feed arrives
                    self.note = f"no broker feed behind the proxy ({waiting.code}: {waiting.message}); waiting"
                    self._waiting_for_feed = True
            if self.mode != Mode.DEPTH:
                follower = asyncio.create_task(self._follow_ladder(feed))
                self._ladder_wanted.set()
            async for tick in feed:
                self._accept(tick)
        except ClientError as exc:
            self.note = str(exc)
            self._render_status()
        finally:
            await cancel_and_wait(follower)
            await feed.close()

    async def _follow_ladder(self, feed: Client) -> None:
        """Keep exactly the highlighted instrument subscribed in depth (quote and LTP modes)."""
        current: Instrument | None = None
        while True:
            await self._ladder_wanted.wait()
            self._ladder_wanted.clear()
            wanted = self.ladder_for
            if wanted == current:
                continue
            try:
                if current is not None:
                    await feed.unsubscribe([current], Mode.DEPTH)
                current = None
                if wanted is not None:
                    await feed.subscribe([wanted], Mode.DEPTH)
                    current = wanted
            except ClientError as exc:
                self.note = f"depth: {exc}"
                self._render_status()

    def _accept(self, tick: Tick) -> None:
        key = (tick.exchange, tick.symbol)
        decimals = self.decimals.get(key, prices.MIN_DECIMALS)
        for price in (tick.ltp, *(level.price for level in _levels(tick))):
            decimals = prices.widen(decimals, price)
        self.decimals[key] = decimals
        if isinstance(tick, DepthTick) and key == self.ladder_for:
            self.ladder_tick = tick
            self._ladder_dirty = True
        if self._waiting_for_feed:
            self._waiting_for_feed = False
            self.note = ""
        row = self.rows.get(key)
        # a row shows its table mode's stream only: never Quote values from the ladder's depth stream
        if row is None or tick.mode != self.mode:
            return
        if row.tick is not None and tick.ltp != row.tick.ltp:
            row.direction = 1 if tick.ltp > row.tick.ltp else -1
            row.flash_until = time.monotonic() + FLASH_SECONDS
        row.tick = tick
        row.dirty = True

    # -- rendering -------------------------------------------------------------------------

    def _refresh(self) -> None:
        table = self.query_one("#quotes", DataTable)
        now = time.monotonic()
        for (exchange, symbol), row in self.rows.items():
            flashing = row.flash_until > now
            if not row.dirty and not (row.flash_until and not flashing):
                continue
            if not flashing:
                row.flash_until = 0.0
            row.dirty = False
            if row.tick is not None:
                self._render_row(table, (exchange, symbol), row, flashing)
        if self._ladder_dirty:
            self._ladder_dirty = False
            name = "{}:{}".format(*self.ladder_for) if self.ladder_for else "-"
            decimals = self.decimals.get(self.ladder_for, prices.MIN_DECIMALS) if self.ladder_for else 2
            self.query_one("#ladder", Static).update(_ladder(self.ladder_tick, name, decimals, self._ladder_orders))
        self._render_status()

    def _render_row(self, table: DataTable[object], key: Instrument, row: _Row, flashing: bool) -> None:
        tick = row.tick
        assert tick is not None
        decimals = self.decimals.get(key, prices.MIN_DECIMALS)
        if flashing:
            ltp_style = "bold black on green" if row.direction > 0 else "bold white on red"
        else:
            ltp_style = "green" if row.direction > 0 else "red" if row.direction < 0 else ""
        arrow = "▲" if row.direction > 0 else "▼" if row.direction < 0 else " "
        cells: dict[str, Text | str] = {
            "LTP": Text(f"{prices.price(tick.ltp, decimals)} {arrow}", style=ltp_style, justify="right"),
            "Time": time.strftime("%H:%M:%S", time.localtime(tick.ltt / 1000)) if tick.ltt else "-",
        }
        if isinstance(tick, QuoteTick):
            index = key[0].endswith("_INDEX")
            cells["Change"] = _signed(tick.change, decimals)
            cells["Change %"] = _signed(tick.change_percent, 2, "%")
            volume = "-" if index and not tick.volume else prices.integer(tick.volume)  # indices trade no volume
            cells["Volume"] = Text(volume, justify="right")
            cells["High"] = Text(prices.price(tick.high, decimals), justify="right")
            cells["Low"] = Text(prices.price(tick.low, decimals), justify="right")
        shown = {column.key for column in self.columns}
        for column, value in cells.items():
            if column in shown:
                table.update_cell("{}:{}".format(*key), column, value, update_width=True)

    def _render_status(self) -> None:
        if not self._mounted:
            return
        feed = self.feed
        state = feed.state
        text = Text()
        text.append(f"● {state.value}", style=STATE_STYLE[state])
        if state != State.LIVE and feed.last_error:
            attempts = f" (attempt {feed.failed_attempts})" if feed.failed_attempts > 1 else ""
            text.append(f"  {feed.last_error}{attempts}", style="bold red")
            if "TLS certificate" in feed.last_error:
                text.append("  private CA: --ca FILE", style="yellow")
        text.append(f"  {self.url}  mode {self.mode.name.lower()}")
        if state == State.LIVE or feed.ticks_received:
            text.append(f"  ticks {feed.ticks_received:,}  reconnects {feed.reconnects}")
        if self.note:
            text.append(f"  {self.note}", style="yellow")
        self.query_one("#status", Static).update(text)

    # -- events ----------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is None:
            return
        exchange, _, symbol = key.partition(":")
        if (exchange, symbol) != self.ladder_for:
            self.ladder_for = (exchange, symbol)
            self.ladder_tick = None
            self._ladder_dirty = True
            self._ladder_wanted.set()


def _levels(tick: Tick) -> list[DepthLevel]:
    return [*tick.depth.buy, *tick.depth.sell] if isinstance(tick, DepthTick) else []
