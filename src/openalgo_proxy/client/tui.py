"""The terminal market watch: a textual app fed by the client library on the app's own loop.

A table of instruments (LTP, change, change %, volume, high, low, time) whose LTP flashes green
or red on every move, the depth ladder of the highlighted instrument and the connection state.
Outside depth mode the ladder's instrument is subscribed in depth as well, following the cursor.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Static

from openalgo_proxy.client.backoff import Backoff
from openalgo_proxy.client.client import Client, State
from openalgo_proxy.client.errors import ClientError
from openalgo_proxy.client.messages import DepthTick, QuoteTick, Tick
from openalgo_proxy.model import Mode
from openalgo_proxy.tasks import cancel_and_wait

FLASH_SECONDS = 0.6
REFRESH_SECONDS = 0.1
COLUMNS = ("Instrument", "LTP", "Change", "Change %", "Volume", "High", "Low", "Time")
STATE_STYLE = {
    State.LIVE: "bold green",
    State.CONNECTING: "bold yellow",
    State.AUTHENTICATING: "bold yellow",
    State.RECONNECTING: "bold red",
    State.CLOSED: "bold red",
}

Instrument = tuple[str, str]  # (exchange, symbol)


@dataclass(slots=True)
class _Row:
    tick: Tick | None = None
    previous_ltp: float = 0.0
    direction: int = 0  # +1 up, -1 down, 0 unchanged
    flash_until: float = 0.0
    dirty: bool = False


def _signed(value: float, suffix: str = "") -> Text:
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:+,.2f}{suffix}", style=style, justify="right")


def _ladder(tick: DepthTick | None, name: str) -> Table:
    table = Table(title=f"Depth {name}", expand=True, show_edge=False, pad_edge=False)
    for header, style in (("Orders", "dim"), ("Qty", "green"), ("Bid", "bold green")):
        table.add_column(header, justify="right", style=style)
    for header, style in (("Ask", "bold red"), ("Qty", "red"), ("Orders", "dim")):
        table.add_column(header, justify="right", style=style)
    if tick is None:
        table.caption = "waiting for depth..."
        return table
    for bid, ask in zip(tick.depth.buy, tick.depth.sell, strict=False):
        bid_cells = (str(bid.orders), f"{bid.quantity:,}", f"{bid.price:.2f}")
        table.add_row(*bid_cells, f"{ask.price:.2f}", f"{ask.quantity:,}", str(ask.orders))
    table.caption = (
        f"LTP {tick.ltp:.2f}  buy qty {tick.total_buy_quantity:,}  sell qty {tick.total_sell_quantity:,}"
        f"  circuit {tick.lower_circuit:.2f}-{tick.upper_circuit:.2f}"
    )
    return table


class WatchApp(App[int]):
    """`openalgo-proxy watch`: live quotes, flashing moves, a depth ladder, connection status."""

    TITLE = "openalgo-proxy watch"
    CSS = """
    #body { height: 1fr; }
    #quotes { width: 3fr; }
    #ladder { width: 2fr; min-width: 44; padding: 0 1; border-left: solid $primary; }
    #status { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, instruments: list[Instrument], url: str, api_key: str | None, mode: Mode) -> None:
        super().__init__()
        self.instruments = list(dict.fromkeys(instruments))
        self.url = url
        self.api_key = api_key
        self.mode = mode
        self.rows = {instrument: _Row() for instrument in self.instruments}
        self.feed: Client | None = None
        self.note = ""
        self.ladder_for: Instrument | None = self.instruments[0] if self.instruments else None
        self.ladder_tick: DepthTick | None = None
        self._ladder_dirty = True
        self._ladder_wanted = asyncio.Event()
        self._mounted = False

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with Horizontal(id="body"):
            yield DataTable(id="quotes", cursor_type="row", zebra_stripes=True)
            yield Static(id="ladder")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#quotes", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        for exchange, symbol in self.instruments:
            table.add_row(f"{exchange}:{symbol}", *("-" for _ in COLUMNS[1:]), key=f"{exchange}:{symbol}")
        self.run_worker(self._stream(), name="feed", exit_on_error=False)
        self.set_interval(REFRESH_SECONDS, self._refresh)
        self._mounted = True
        self._render_status()

    # -- feed ------------------------------------------------------------------------------

    async def _stream(self) -> None:
        feed = Client(
            self.url,
            api_key=self.api_key,
            first_connect_timeout=None,
            backoff=Backoff(initial=0.5, maximum=10.0),
            on_state=lambda state: self._render_status(),
        )
        self.feed = feed
        follower: asyncio.Task[None] | None = None
        try:
            await feed.start()
            try:
                await feed.subscribe(self.instruments, self.mode)
            except ClientError as exc:
                self.note = str(exc)
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
        if isinstance(tick, DepthTick) and key == self.ladder_for:
            self.ladder_tick = tick
            self._ladder_dirty = True
        row = self.rows.get(key)
        if row is None:
            return
        if row.tick is not None and tick.ltp != row.tick.ltp:
            row.direction = 1 if tick.ltp > row.tick.ltp else -1
            row.flash_until = time.monotonic() + FLASH_SECONDS
        if row.tick is None or tick.mode >= row.tick.mode or tick.mode == self.mode:
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
                self._render_row(table, f"{exchange}:{symbol}", row, flashing)
        if self._ladder_dirty:
            self._ladder_dirty = False
            name = "{}:{}".format(*self.ladder_for) if self.ladder_for else "-"
            self.query_one("#ladder", Static).update(_ladder(self.ladder_tick, name))
        self._render_status()

    def _render_row(self, table: DataTable[object], key: str, row: _Row, flashing: bool) -> None:
        tick = row.tick
        assert tick is not None
        if flashing:
            ltp_style = "bold black on green" if row.direction > 0 else "bold white on red"
        else:
            ltp_style = "green" if row.direction > 0 else "red" if row.direction < 0 else ""
        arrow = "▲" if row.direction > 0 else "▼" if row.direction < 0 else " "
        cells: dict[str, Text | str] = {
            "LTP": Text(f"{tick.ltp:.2f} {arrow}", style=ltp_style, justify="right"),
            "Time": time.strftime("%H:%M:%S", time.localtime(tick.ltt / 1000)) if tick.ltt else "-",
        }
        if isinstance(tick, QuoteTick):
            cells["Change"] = _signed(tick.change)
            cells["Change %"] = _signed(tick.change_percent, "%")
            cells["Volume"] = Text(f"{tick.volume:,}", justify="right")
            cells["High"] = Text(f"{tick.high:.2f}", justify="right")
            cells["Low"] = Text(f"{tick.low:.2f}", justify="right")
        for column, value in cells.items():
            table.update_cell(key, column, value, update_width=True)

    def _render_status(self) -> None:
        if not self._mounted:
            return
        feed = self.feed
        state = feed.state if feed is not None else State.CONNECTING
        text = Text()
        text.append(f"● {state.value}", style=STATE_STYLE[state])
        text.append(f"  {self.url}  mode {self.mode.name.lower()}")
        if feed is not None:
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
