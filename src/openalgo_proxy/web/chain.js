// openalgo-proxy web market watch: the option chain view (plain JavaScript, no dependencies).
// The proxy computes the chain (IV and Greeks) once on the server: this page subscribes one
// `subscribe_chain` stream and draws each `option_chain` message whole, at most four a second.
// app.js owns the connection: it passes chain messages to WatchChain.receive and calls
// WatchChain.resubscribe after every (re)connect.
"use strict";

const WatchChain = (() => {
  const STORAGE = "openalgo-proxy.chain";
  const fmt = WatchFormat;
  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("chain-form"), underlying: $("chain-underlying"), expiry: $("chain-expiry"),
    strikes: $("chain-strikes"), stop: $("chain-stop"), summary: $("chain-summary"),
    table: $("chain"), rows: document.querySelector("#chain tbody"), info: $("chain-info"),
  };
  let request = null; // the app's request function
  let wanted = null; // {underlying, exchange, expiry, strikes} while a chain is shown
  let topic = "";
  let lastSeq = 0;
  let latest = null;
  let drawQueued = false;

  const num = (value, digits) => (typeof value === "number" ? value.toFixed(digits) : "-");
  const price = (value) => (value ? fmt.price(value, 2) : "-");
  const count = (value) => (value ? fmt.integer(value) : "0");

  function save() {
    if (wanted) localStorage.setItem(STORAGE, JSON.stringify(wanted));
    else localStorage.removeItem(STORAGE);
  }

  function info(text, isError = false) {
    ui.info.textContent = text;
    ui.info.classList.toggle("error", isError);
  }

  async function subscribe() {
    if (!wanted || !request) return;
    try {
      const reply = await request({ action: "subscribe_chain", ...wanted });
      topic = reply.topic || "";
      info(`Waiting for ${wanted.underlying} ${wanted.expiry.toLowerCase()}...`);
    } catch (err) {
      info(`${err.code || "error"}: ${err.serverMessage || err.message || err}`, true);
    }
  }

  async function show(underlying, expiry, strikes) {
    if (wanted && request) {
      await request({ action: "unsubscribe_chain", ...wanted }).catch(() => {});
    }
    wanted = {
      underlying: underlying.toUpperCase(), exchange: "NFO", expiry: (expiry || "nearest").toUpperCase(), strikes,
    };
    lastSeq = 0;
    latest = null;
    ui.rows.replaceChildren();
    ui.summary.textContent = "";
    save();
    await subscribe();
  }

  async function stop() {
    if (wanted && request) await request({ action: "unsubscribe_chain", ...wanted }).catch(() => {});
    wanted = null;
    topic = "";
    latest = null;
    ui.rows.replaceChildren();
    ui.summary.textContent = "";
    info("No chain shown.");
    save();
  }

  function receive(msg) {
    if (!wanted || msg.topic !== topic) return; // a chain this page no longer shows
    if (msg.seq && msg.seq === lastSeq) return; // a snapshot of the chain already drawn
    lastSeq = msg.seq;
    latest = msg.data;
    if (!drawQueued) {
      drawQueued = true;
      requestAnimationFrame(draw);
    }
  }

  function legCells(leg, side) {
    const cells = [
      ["oi", count(leg.oi)],
      ["oi-change", (leg.oi_change > 0 ? "+" : "") + count(leg.oi_change)],
      ["volume", count(leg.volume)],
      ["iv", leg.iv_status === "ok" ? num(leg.iv, 2) : "-"],
      ["delta", num(leg.delta, 3)],
      ["gamma", num(leg.gamma, 5)],
      ["theta", num(leg.theta, 2)],
      ["vega", num(leg.vega, 2)],
      ["bid", price(leg.bid)],
      ["ask", price(leg.ask)],
      ["ltp", price(leg.ltp)],
    ];
    const ordered = side === "ce" ? cells : cells.reverse();
    return ordered.map(([name, text]) => {
      const td = document.createElement("td");
      td.className = `${side} ${name}`;
      td.textContent = text;
      if (name === "iv" && leg.iv_status !== "ok") td.title = leg.iv_status;
      return td;
    });
  }

  function draw() {
    drawQueued = false;
    const data = latest;
    if (!data) return;
    const source = data.underlying_source === "future" ? `future ${data.underlying_symbol}` : "spot";
    ui.summary.textContent =
      `${data.underlying} ${data.expiry} | ${source} ${price(data.underlying_price)} | ATM ${data.atm_strike}` +
      ` | PCR ${num(data.pcr, 2)} | ${num(data.days_to_expiry, 2)} days | ${data.model === "black76" ? "Black-76" : "Black-Scholes"}`;
    ui.summary.dataset.atm = String(data.atm_strike);
    const rows = data.strikes.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.strike = String(row.strike);
      if (row.strike === data.atm_strike) tr.classList.add("atm");
      const forward = data.forward || data.underlying_price;
      if (row.strike < forward) tr.classList.add("ce-itm");
      if (row.strike > forward) tr.classList.add("pe-itm");
      const strike = document.createElement("td");
      strike.className = "strike";
      strike.textContent = fmt.price(row.strike, 2);
      tr.append(...legCells(row.ce, "ce"), strike, ...legCells(row.pe, "pe"));
      return tr;
    });
    ui.rows.replaceChildren(...rows);
    info(`${data.strikes.length} strikes, updated ${new Date(data.timestamp).toLocaleTimeString()}`);
  }

  function init(requestFunction) {
    request = requestFunction;
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const underlying = ui.underlying.value.trim();
      if (!underlying) return;
      const strikes = Math.min(50, Math.max(1, Number(ui.strikes.value) || 10));
      show(underlying, ui.expiry.value.trim() || "nearest", strikes);
    });
    ui.stop.addEventListener("click", stop);
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE) || "null");
      if (saved && saved.underlying) {
        wanted = saved;
        ui.underlying.value = saved.underlying;
        ui.expiry.value = saved.expiry === "NEAREST" ? "" : saved.expiry;
        ui.strikes.value = String(saved.strikes);
      }
    } catch (err) {
      console.warn("ignoring a corrupt saved chain", err);
    }
  }

  return { init, receive, resubscribe: subscribe };
})();
