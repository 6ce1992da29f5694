// openalgo-proxy web market watch: plain JavaScript, no build step, no dependencies.
// Speaks the client protocol of DESIGN.md section 4 over the WebSocket of the host that served
// the page (override with ?ws=ws://host:port/). Reconnects with exponential backoff and full
// jitter, re-authenticates and resubscribes; drops a snapshot tick whose seq was already shown.
"use strict";

(() => {
  const LIST_STORAGE = "openalgo-proxy.watchlist";
  const MODE_STORAGE = "openalgo-proxy.mode";
  const KEY_STORAGE = "openalgo-proxy.api-key";
  const DEFAULT_LIST = ["NSE:RELIANCE", "NSE:INFY", "NSE_INDEX:NIFTY"];
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const PING_EVERY_MS = 20000;
  const PONG_WITHIN_MS = 10000;
  const REQUEST_TIMEOUT_MS = 10000;
  const AUTH_CODES = new Set(["NOT_AUTHENTICATED", "AUTHENTICATION_ERROR"]);
  const TRANSIENT_CODES = new Set(["BROKER_UNAVAILABLE", "RATE_LIMITED"]);
  const MODE_NAMES = { 1: "LTP", 2: "Quote", 3: "Depth" };

  const params = new URLSearchParams(location.search);
  const wsUrl = params.get("ws") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $("conn"), connState: $("conn-state"), connDetail: $("conn-detail"),
    form: $("add-form"), input: $("add-input"), mode: $("mode-select"), message: $("message"),
    rows: document.querySelector("#quotes tbody"), empty: $("empty"),
    ladderName: $("ladder-name"), ladder: document.querySelector("#ladder tbody"), ladderInfo: $("ladder-info"),
    authDialog: $("auth-dialog"), authForm: $("auth-form"), authKey: $("auth-key"),
    authRemember: $("auth-remember"), authReason: $("auth-reason"),
  };

  const state = {
    ws: null,
    conn: "connecting",
    attempt: 0,
    reconnects: 0,
    retryTimer: null,
    pingTimer: null,
    live: false,
    mode: Number(localStorage.getItem(MODE_STORAGE)) || 2,
    rows: new Map(), // "EX:SYM" -> row
    selected: null, // "EX:SYM"
    depthStream: null, // "EX:SYM" subscribed in depth for the ladder when the table mode is not depth
    depthTick: null,
    lastSeq: new Map(), // "EX|SYM|mode" -> seq
    pending: new Map(), // request_id -> {resolve, reject, timer}
    nextId: 1,
    renderQueued: false,
  };

  // -- helpers -------------------------------------------------------------------------------

  const keyOf = (exchange, symbol) => `${exchange}:${symbol}`;

  function parseInstrument(text) {
    const trimmed = text.trim();
    const at = trimmed.indexOf(":");
    if (at <= 0 || at === trimmed.length - 1) return null;
    return { exchange: trimmed.slice(0, at).toUpperCase(), symbol: trimmed.slice(at + 1).toUpperCase() };
  }

  const fmtPrice = (v) => Number(v).toFixed(2);
  const fmtInt = (v) => Number(v).toLocaleString("en-IN");
  const fmtSigned = (v, suffix = "") => `${v > 0 ? "+" : ""}${Number(v).toFixed(2)}${suffix}`;
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleTimeString("en-GB", { hour12: false }) : "-");

  function showMessage(text, isError = false) {
    ui.message.textContent = text;
    ui.message.classList.toggle("error", isError);
  }

  function setConn(conn, detail = "") {
    state.conn = conn;
    ui.conn.dataset.state = conn;
    ui.connState.textContent = conn;
    const extra = state.reconnects ? ` · ${state.reconnects} reconnect${state.reconnects > 1 ? "s" : ""}` : "";
    ui.connDetail.textContent = detail || extra;
  }

  function storedKey() {
    return sessionStorage.getItem(KEY_STORAGE) || localStorage.getItem(KEY_STORAGE) || "";
  }

  function saveList() {
    localStorage.setItem(LIST_STORAGE, JSON.stringify([...state.rows.keys()]));
  }

  // -- requests ------------------------------------------------------------------------------

  class ServerError extends Error {
    constructor(code, message) {
      super(`${code}: ${message}`);
      this.code = code;
      this.serverMessage = message;
    }
  }

  function request(payload) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("not connected"));
    const requestId = `w${state.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        state.pending.delete(requestId);
        reject(new Error(`no reply to ${payload.action}`));
      }, REQUEST_TIMEOUT_MS);
      state.pending.set(requestId, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...payload, request_id: requestId }));
    });
  }

  function failPending(reason) {
    for (const { reject, timer } of state.pending.values()) {
      clearTimeout(timer);
      reject(new Error(reason));
    }
    state.pending.clear();
  }

  const entries = (keys) => keys.map((k) => {
    const row = state.rows.get(k) || parseInstrument(k);
    return { symbol: row.symbol, exchange: row.exchange };
  });

  async function subscribe(keys, mode) {
    if (!keys.length) return [];
    const reply = await request({ action: "subscribe", symbols: entries(keys), mode });
    const refused = (reply.subscriptions || []).filter((s) => s.status !== "success");
    const later = refused.filter((s) => TRANSIENT_CODES.has(s.code)).map((s) => keyOf(s.exchange, s.symbol));
    if (later.length) retryLater(later, mode);
    const failed = refused.filter((s) => !TRANSIENT_CODES.has(s.code));
    for (const f of failed) {
      const row = state.rows.get(keyOf(f.exchange, f.symbol));
      if (row && mode === state.mode) removeRow(row.key, false);
    }
    if (failed.length) {
      const f = failed[0];
      showMessage(`${keyOf(f.exchange, f.symbol)}: ${f.code || "error"} ${f.message || ""}`.trim(), true);
    }
    return failed;
  }

  function retryLater(keys, mode) {
    // a proxy that just started answers BROKER_UNAVAILABLE until it hears from the feed
    const ws = state.ws;
    setTimeout(() => {
      if (ws !== state.ws || ws.readyState !== WebSocket.OPEN) return; // a reconnect resubscribes all
      const wanted = (k) => (mode === 3 && k === state.depthStream) || (mode === state.mode && state.rows.has(k));
      const still = keys.filter(wanted);
      subscribe(still, mode).catch((err) => showMessage(String(err.message || err), true));
    }, 500 + Math.random() * 1000);
  }

  async function unsubscribe(keys, mode) {
    if (!keys.length || !state.live) return;
    const symbols = entries(keys).map((e) => (mode ? { ...e, mode } : e));
    for (const k of keys) for (const m of [1, 2, 3]) if (!mode || m === mode) state.lastSeq.delete(`${k}|${m}`);
    try {
      await request({ action: "unsubscribe", symbols });
    } catch (err) {
      // NOT_SUBSCRIBED and friends: the server no longer sends it either way
      console.warn("unsubscribe", err);
    }
  }

  // -- connection ----------------------------------------------------------------------------

  function connect() {
    clearTimeout(state.retryTimer);
    setConn(state.reconnects ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(wsUrl);
    } catch (err) {
      showMessage(`cannot open ${wsUrl}: ${err.message}`, true);
      return;
    }
    state.ws = ws;
    ws.onopen = () => start(ws);
    ws.onmessage = (event) => receive(event.data);
    ws.onclose = (event) => closed(ws, event);
  }

  async function start(ws) {
    setConn("authenticating");
    try {
      const key = storedKey();
      if (key) await authenticate(key);
      await resubscribeAll();
      if (ws !== state.ws) return;
      state.attempt = 0;
      state.live = true;
      setConn("live");
      schedulePing(ws);
    } catch (err) {
      if (ws !== state.ws) return;
      if (err instanceof ServerError && AUTH_CODES.has(err.code)) {
        askForKey(err.code === "AUTHENTICATION_ERROR" ? "The API key was rejected." : "This proxy asks for an API key.");
        setConn("authenticating", "waiting for API key");
      } else {
        showMessage(String(err.message || err), true);
        ws.close(4000, "setup failed");
      }
    }
  }

  function authenticate(key) {
    const looksLikeJwt = /^ey[\w-]+\.[\w-]+\.[\w-]*$/.test(key);
    return request(looksLikeJwt ? { action: "authenticate", token: key } : { action: "authenticate", api_key: key });
  }

  async function resubscribeAll() {
    const keys = [...state.rows.keys()];
    // a resubscribe for a held stream must subscribe every entry, so send one request for the table
    await subscribe(keys, state.mode);
    state.depthStream = null;
    await followDepth();
  }

  function closed(ws, event) {
    if (ws !== state.ws) return;
    state.live = false;
    clearTimeout(state.pingTimer);
    failPending("connection closed");
    if (event.code === 4401) {
      askForKey("The proxy closed the connection: no valid authentication in time.");
    }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(state.attempt, 16));
    const delay = Math.random() * ceiling;
    state.attempt += 1;
    state.reconnects += 1;
    setConn("reconnecting", `closed (${event.code}); retry in ${(delay / 1000).toFixed(1)} s`);
    state.retryTimer = setTimeout(connect, delay);
  }

  function schedulePing(ws) {
    clearTimeout(state.pingTimer);
    state.pingTimer = setTimeout(async () => {
      if (ws !== state.ws || ws.readyState !== WebSocket.OPEN) return;
      const timer = setTimeout(() => ws.close(4000, "no pong"), PONG_WITHIN_MS);
      try {
        await request({ action: "ping" });
        clearTimeout(timer);
        schedulePing(ws);
      } catch (err) {
        clearTimeout(timer);
        if (ws === state.ws && ws.readyState === WebSocket.OPEN) ws.close(4000, "ping failed");
      }
    }, PING_EVERY_MS);
  }

  function askForKey(reason) {
    ui.authReason.textContent = reason;
    if (!ui.authDialog.open) ui.authDialog.showModal();
    ui.authKey.focus();
  }

  ui.authForm.addEventListener("submit", () => {
    const key = ui.authKey.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    if (ui.authRemember.checked) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    ui.authKey.value = "";
    if (state.ws && state.ws.readyState === WebSocket.OPEN) start(state.ws);
    else connect();
  });

  // -- messages ------------------------------------------------------------------------------

  function receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      console.warn("invalid message from server", err);
      return;
    }
    if (msg.type === "market_data") {
      tick(msg);
      return;
    }
    const pending = msg.request_id && state.pending.get(msg.request_id);
    if (pending) {
      state.pending.delete(msg.request_id);
      clearTimeout(pending.timer);
      if (msg.type === "error") pending.reject(new ServerError(msg.code, msg.message));
      else pending.resolve(msg);
    } else if (msg.type === "error") {
      showMessage(`${msg.code}: ${msg.message}`, true);
    }
  }

  function tick(msg) {
    const stream = `${msg.exchange}:${msg.symbol}|${msg.mode}`;
    if (msg.seq && state.lastSeq.get(stream) === msg.seq) return; // snapshot of a tick already shown
    state.lastSeq.set(stream, msg.seq);
    const key = keyOf(msg.exchange, msg.symbol);
    const data = msg.data || {};
    if (msg.mode === 3 && key === state.selected) {
      state.depthTick = data;
      state.depthDirty = true;
    }
    const row = state.rows.get(key);
    if (row && (msg.mode === state.mode || !row.data || msg.mode >= row.mode)) {
      if (row.data && data.ltp !== row.data.ltp) {
        row.direction = data.ltp > row.data.ltp ? 1 : -1;
        row.flash = true;
      }
      row.data = data;
      row.mode = msg.mode;
      row.dirty = true;
    }
    queueRender();
  }

  // -- rendering -----------------------------------------------------------------------------

  function queueRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(render);
  }

  function render() {
    state.renderQueued = false;
    for (const row of state.rows.values()) if (row.dirty) renderRow(row);
    if (state.depthDirty) renderLadder();
  }

  function setCell(cell, text, cls) {
    cell.textContent = text;
    cell.classList.toggle("up", cls === "up");
    cell.classList.toggle("down", cls === "down");
  }

  function renderRow(row) {
    row.dirty = false;
    const d = row.data;
    const c = row.cells;
    const dirCls = row.direction > 0 ? "up" : row.direction < 0 ? "down" : "";
    setCell(c.ltp, fmtPrice(d.ltp), dirCls);
    if (row.flash) {
      row.flash = false;
      c.ltp.classList.remove("flash-up", "flash-down");
      void c.ltp.offsetWidth; // restart the animation
      c.ltp.classList.add(row.direction > 0 ? "flash-up" : "flash-down");
    }
    if ("change" in d) {
      const chgCls = d.change > 0 ? "up" : d.change < 0 ? "down" : "";
      setCell(c.change, fmtSigned(d.change), chgCls);
      setCell(c.changePercent, fmtSigned(d.change_percent, "%"), chgCls);
      setCell(c.volume, fmtInt(d.volume));
      setCell(c.high, fmtPrice(d.high));
      setCell(c.low, fmtPrice(d.low));
    }
    setCell(c.time, fmtTime(d.ltt));
  }

  function renderLadder() {
    state.depthDirty = false;
    const d = state.depthTick;
    ui.ladder.replaceChildren();
    if (!d || !d.depth) {
      ui.ladderInfo.textContent = state.selected ? "Waiting for depth..." : "Select a row to see its order book.";
      return;
    }
    const buy = d.depth.buy || [];
    const sell = d.depth.sell || [];
    const maxQty = Math.max(1, ...buy.map((l) => l.quantity), ...sell.map((l) => l.quantity));
    for (let i = 0; i < Math.max(buy.length, sell.length); i += 1) {
      const b = buy[i] || { price: 0, quantity: 0, orders: 0 };
      const s = sell[i] || { price: 0, quantity: 0, orders: 0 };
      const tr = document.createElement("tr");
      const cells = [
        [String(b.orders), ""], [fmtInt(b.quantity), "bidq"], [fmtPrice(b.price), "bid"],
        [fmtPrice(s.price), "ask"], [fmtInt(s.quantity), "askq"], [String(s.orders), ""],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      tr.children[1].style.setProperty("--w", `${(100 * b.quantity) / maxQty}%`);
      tr.children[4].style.setProperty("--w", `${(100 * s.quantity) / maxQty}%`);
      ui.ladder.appendChild(tr);
    }
    ui.ladderInfo.textContent =
      `LTP ${fmtPrice(d.ltp)} · buy qty ${fmtInt(d.total_buy_quantity)} · sell qty ${fmtInt(d.total_sell_quantity)}` +
      ` · circuit ${fmtPrice(d.lower_circuit)}-${fmtPrice(d.upper_circuit)}`;
  }

  // -- rows ----------------------------------------------------------------------------------

  function addRow(instrument) {
    const key = keyOf(instrument.exchange, instrument.symbol);
    if (state.rows.has(key)) return null;
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    const names = ["name", "ltp", "change", "changePercent", "volume", "high", "low", "time", "remove"];
    const cells = {};
    for (const name of names) {
      const td = document.createElement("td");
      td.className = name === "changePercent" ? "change-percent" : name;
      td.textContent = name === "name" ? key : name === "remove" ? "" : "-";
      cells[name] = td;
      tr.appendChild(td);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.title = `remove ${key}`;
    remove.textContent = "×";
    remove.addEventListener("click", (event) => {
      event.stopPropagation();
      removeRow(key, true);
    });
    cells.remove.appendChild(remove);
    tr.addEventListener("click", () => select(key));
    ui.rows.appendChild(tr);
    const row = { key, ...instrument, tr, cells, data: null, mode: 0, direction: 0, flash: false, dirty: false };
    state.rows.set(key, row);
    ui.empty.hidden = true;
    return row;
  }

  function removeRow(key, tellServer) {
    const row = state.rows.get(key);
    if (!row) return;
    state.rows.delete(key);
    row.tr.remove();
    ui.empty.hidden = state.rows.size > 0;
    saveList();
    if (tellServer) unsubscribe([key], null);
    if (state.depthStream === key) state.depthStream = null;
    if (state.selected === key) select([...state.rows.keys()][0] || null);
  }

  async function addInstruments(text) {
    const parts = text.split(/[\s,]+/).filter(Boolean);
    const added = [];
    for (const part of parts) {
      const instrument = parseInstrument(part);
      if (!instrument) {
        showMessage(`"${part}" is not EXCHANGE:SYMBOL (for example NSE:RELIANCE)`, true);
        continue;
      }
      if (addRow(instrument)) added.push(keyOf(instrument.exchange, instrument.symbol));
    }
    saveList();
    if (!state.selected && added.length) select(added[0]);
    if (!added.length || !state.live) return;
    try {
      const failed = await subscribe(added, state.mode);
      if (!failed.length) showMessage(`added ${added.join(", ")}`);
    } catch (err) {
      showMessage(String(err.message || err), true);
    }
  }

  function select(key) {
    state.selected = key;
    for (const row of state.rows.values()) row.tr.classList.toggle("selected", row.key === key);
    ui.ladderName.textContent = key || "-";
    state.depthTick = null;
    state.depthDirty = true;
    queueRender();
    followDepth().catch((err) => showMessage(String(err.message || err), true));
  }

  async function followDepth() {
    // in depth mode every row already streams depth; otherwise subscribe the selected row in depth
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    if (state.mode === 3) return;
    const want = state.selected;
    if (state.depthStream === want) return;
    const previous = state.depthStream;
    state.depthStream = want;
    if (previous) await unsubscribe([previous], 3);
    if (want) await subscribe([want], 3);
  }

  async function changeMode(mode) {
    const previous = state.mode;
    state.mode = mode;
    localStorage.setItem(MODE_STORAGE, String(mode));
    for (const row of state.rows.values()) row.data = null;
    if (!state.live) return;
    try {
      await request({ action: "unsubscribe_all" });
      state.lastSeq.clear();
      state.depthStream = null;
      await resubscribeAll();
      showMessage(`mode ${MODE_NAMES[mode]} (was ${MODE_NAMES[previous]})`);
    } catch (err) {
      showMessage(String(err.message || err), true);
    }
  }

  // -- wiring --------------------------------------------------------------------------------

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value;
    ui.input.value = "";
    addInstruments(text);
  });
  ui.mode.value = String(state.mode);
  ui.mode.addEventListener("change", () => changeMode(Number(ui.mode.value)));

  let saved = DEFAULT_LIST;
  try {
    const parsed = JSON.parse(localStorage.getItem(LIST_STORAGE) || "null");
    if (Array.isArray(parsed)) saved = parsed;
  } catch (err) {
    console.warn("ignoring a corrupt saved watchlist", err);
  }
  for (const key of saved) {
    const instrument = parseInstrument(String(key));
    if (instrument) addRow(instrument);
  }
  ui.empty.hidden = state.rows.size > 0;
  if (state.rows.size) select([...state.rows.keys()][0]);
  connect();
})();
