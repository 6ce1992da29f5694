// openalgo-proxy web market watch: plain JavaScript, no build step, no dependencies.
// Speaks the proxy's client protocol over the WebSocket of the host that served the page (override
// with ?ws=ws://host:port/: that proxy must list this page's origin in its allowed_origins).
// Reconnects with exponential backoff and full jitter, re-authenticates and resubscribes; drops a
// snapshot tick whose seq was already shown. Shows the real connection state with its reason: no
// broker feed behind the proxy, a refused handshake, a close code, an authentication failure.
// Number formatting lives in format.js (WatchFormat).
"use strict";

(() => {
  const LIST_STORAGE = "openalgo-proxy.watchlist";
  const MODE_STORAGE = "openalgo-proxy.mode";
  const KEY_STORAGE = "openalgo-proxy.api-key";
  const DEFAULT_LIST = ["NSE:RELIANCE", "NSE:INFY", "NSE_INDEX:NIFTY"];
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const TICK_SIZE_STORAGE = "openalgo-proxy.tick-sizes";
  const CHECK_EVERY_MS = 10000; // feed state check, doubling as the keepalive, while live
  const RECHECK_EVERY_MS = 3000; // the same while the proxy has no broker feed
  const REQUEST_TIMEOUT_MS = 10000;
  const PROBE_TIMEOUT_MS = 3000;
  const SEARCH_DELAY_MS = 150;
  const SEARCH_LIMIT = 10;
  const LOOKUP_SPACING_MS = 200;
  const AUTH_CODES = new Set(["NOT_AUTHENTICATED", "AUTHENTICATION_ERROR"]);
  const TRANSIENT_CODES = new Set(["BROKER_UNAVAILABLE", "RATE_LIMITED"]);
  const MODE_NAMES = { 1: "LTP", 2: "Quote", 3: "Depth" };
  const CLOSE_REASONS = {
    1000: "closed by the proxy",
    1001: "the proxy is stopping or restarting",
    1002: "protocol error",
    1003: "unsupported data",
    1006: "connection lost",
    1008: "refused by the proxy's policy",
    1009: "message too big",
    1011: "internal error of the proxy",
    1013: "the proxy is full; try again later",
    4000: "no reply from the proxy",
    4008: "this page was too slow to keep up",
    4029: "too many requests",
    4401: "no valid authentication in time",
  };
  const fmt = WatchFormat;

  const params = new URLSearchParams(location.search);
  const wsUrl = params.get("ws") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
  const crossOrigin = (() => {
    try {
      return new URL(wsUrl).host !== location.host;
    } catch (err) {
      return true;
    }
  })();

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $("conn"), connState: $("conn-state"), connDetail: $("conn-detail"),
    form: $("add-form"), input: $("add-input"), mode: $("mode-select"), message: $("message"),
    suggestions: $("suggestions"), table: $("quotes"),
    rows: document.querySelector("#quotes tbody"), empty: $("empty"),
    ladderName: $("ladder-name"), ladderTable: $("ladder"), ladder: document.querySelector("#ladder tbody"),
    ladderInfo: $("ladder-info"),
    authDialog: $("auth-dialog"), authForm: $("auth-form"), authKey: $("auth-key"),
    authRemember: $("auth-remember"), authReason: $("auth-reason"),
  };

  const state = {
    ws: null,
    conn: "connecting",
    attempt: 0,
    reconnects: 0,
    retryTimer: null,
    checkTimer: null,
    ready: false, // the WebSocket is open, authenticated and subscribed: requests may be sent
    feedProblem: "", // why the proxy has no broker feed ("" when it has one)
    broker: "",
    search: "unknown", // "supported" | "unsupported" (the proxy answers INVALID_ACTION) | "unknown"
    searchTimer: null,
    searchSeq: 0,
    suggestions: [],
    highlighted: -1,
    tickSizes: loadTickSizes(), // "EX:SYM" -> tick size, from the proxy's instrument search
    decimals: new Map(), // "EX:SYM" -> decimals shown

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

  function loadTickSizes() {
    try {
      const parsed = JSON.parse(localStorage.getItem(TICK_SIZE_STORAGE) || "{}");
      return new Map(Object.entries(parsed).filter(([, v]) => Number(v) > 0));
    } catch (err) {
      console.warn("ignoring corrupt saved tick sizes", err);
      return new Map();
    }
  }

  function learnTickSize(key, tickSize) {
    if (!(Number(tickSize) > 0) || state.tickSizes.get(key) === Number(tickSize)) return;
    state.tickSizes.set(key, Number(tickSize));
    state.decimals.delete(key);
    localStorage.setItem(TICK_SIZE_STORAGE, JSON.stringify(Object.fromEntries(state.tickSizes)));
    const row = state.rows.get(key);
    if (row && row.data) {
      row.dirty = true;
      queueRender();
    }
  }

  // Decimals of an instrument: its tick size's when known; else its exchange's, widened by the data.
  function decimalsOf(key) {
    let decimals = state.decimals.get(key);
    if (decimals === undefined) {
      const exchange = key.slice(0, key.indexOf(":"));
      decimals = fmt.decimalsFor(state.tickSizes.get(key), exchange);
      state.decimals.set(key, decimals);
    }
    return decimals;
  }

  function widenDecimals(key, data) {
    if (state.tickSizes.has(key)) return;
    let decimals = decimalsOf(key);
    const prices = [data.ltp, data.open, data.high, data.low, data.close];
    if (data.depth) for (const side of [data.depth.buy || [], data.depth.sell || []]) for (const l of side) prices.push(l.price);
    for (const price of prices) if (price) decimals = fmt.widen(decimals, price);
    state.decimals.set(key, decimals);
  }

  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleTimeString("en-GB", { hour12: false }) : "-");

  function showMessage(text, isError = false) {
    ui.message.textContent = text;
    ui.message.classList.toggle("error", isError);
  }

  const STATE_LABELS = {
    connecting: "connecting",
    authenticating: "authenticating",
    live: "live",
    "no-feed": "no broker feed",
    auth: "not authenticated",
    refused: "refused",
    reconnecting: "reconnecting",
  };

  function setConn(conn, detail = "") {
    state.conn = conn;
    ui.conn.dataset.state = conn;
    ui.connState.textContent = STATE_LABELS[conn] || conn;
    const extra = state.reconnects ? `${state.reconnects} reconnect${state.reconnects > 1 ? "s" : ""}` : "";
    ui.connDetail.textContent = [detail, conn === "live" ? extra : ""].filter(Boolean).join(" · ");
    ui.conn.title = `${wsUrl}: ${ui.connState.textContent}${detail ? ` (${detail})` : ""}`;
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
    const transient = refused.filter((s) => TRANSIENT_CODES.has(s.code));
    if (transient.length) {
      const unavailable = transient.find((s) => s.code === "BROKER_UNAVAILABLE");
      if (unavailable) feedMissing(`${unavailable.code}: ${unavailable.message || "no broker feed"}`);
      retryLater(transient.map((s) => keyOf(s.exchange, s.symbol)), mode);
    }
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
    // a proxy without a broker feed answers BROKER_UNAVAILABLE until one connects
    const ws = state.ws;
    setTimeout(() => {
      if (ws !== state.ws || ws.readyState !== WebSocket.OPEN) return; // a reconnect resubscribes all
      const wanted = (k) => (mode === 3 && k === state.depthStream) || (mode === state.mode && state.rows.has(k));
      const still = keys.filter(wanted);
      subscribe(still, mode).catch((err) => showMessage(String(err.message || err), true));
    }, 500 + Math.random() * 1500);
  }

  async function unsubscribe(keys, mode) {
    if (!keys.length || !state.ready) return;
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
    setConn(state.reconnects ? "reconnecting" : "connecting", wsUrl);
    let ws;
    try {
      ws = new WebSocket(wsUrl);
    } catch (err) {
      setConn("refused", `invalid ?ws= address ${wsUrl}`);
      showMessage(`cannot open ${wsUrl}: ${err.message}`, true);
      return;
    }
    ws.opened = false;
    state.ws = ws;
    ws.onopen = () => {
      ws.opened = true;
      start(ws);
    };
    ws.onmessage = (event) => receive(event.data);
    ws.onclose = (event) => closed(ws, event);
  }

  async function start(ws) {
    setConn("authenticating");
    try {
      const key = storedKey();
      if (key) await authenticate(key);
      state.feedProblem = "";
      await resubscribeAll();
      if (ws !== state.ws) return;
      state.attempt = 0;
      state.ready = true;
      if (state.conn === "auth" || ui.message.classList.contains("error")) showMessage("");
      await checkFeed(ws);
      await probeSearch();
      learnTickSizes([...state.rows.keys()]);
    } catch (err) {
      if (ws !== state.ws) return;
      if (err instanceof ServerError && AUTH_CODES.has(err.code)) {
        const rejected = err.code === "AUTHENTICATION_ERROR";
        askForKey(rejected ? "The API key was rejected." : "This proxy asks for an API key.");
        setConn("auth", rejected ? `${err.code}: ${err.serverMessage}` : "this proxy asks for an API key");
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
    await WatchChain.resubscribe();
  }

  function feedMissing(reason) {
    state.feedProblem = reason;
    if (state.ready || state.conn === "live") setConn("no-feed", reason);
  }

  // Whether the proxy has a broker feed behind it (get_broker_info); also the keepalive.
  async function checkFeed(ws) {
    clearTimeout(state.checkTimer);
    if (ws !== state.ws || ws.readyState !== WebSocket.OPEN) return;
    let connected = null;
    try {
      const info = await request({ action: "get_broker_info" });
      if (typeof info.adapter_status === "string") connected = info.adapter_status === "connected";
      state.broker = Array.isArray(info.brokers) && info.brokers.length ? info.brokers.join(", ") : info.broker || "";
    } catch (err) {
      if (!(err instanceof ServerError)) {
        if (ws === state.ws && ws.readyState === WebSocket.OPEN) ws.close(4000, "no reply");
        return;
      }
      // a proxy without get_broker_info: the subscription replies tell
    }
    if (ws !== state.ws) return;
    if (connected === null) connected = !state.feedProblem;
    if (connected) {
      state.feedProblem = "";
      setConn("live", state.broker);
    } else {
      if (!state.feedProblem) state.feedProblem = "BROKER_UNAVAILABLE: no broker feed is connected to the proxy";
      setConn("no-feed", state.feedProblem);
    }
    state.checkTimer = setTimeout(() => checkFeed(ws), connected ? CHECK_EVERY_MS : RECHECK_EVERY_MS);
  }

  // Why a WebSocket closed before it ever opened: nothing listening, or a server that refused the
  // handshake (browsers hide the HTTP status; a plain request to the same address tells them apart).
  async function diagnose() {
    let health;
    try {
      health = new URL("/healthz", wsUrl.replace(/^ws/i, "http"));
    } catch (err) {
      return { conn: "refused", detail: `invalid address ${wsUrl}` };
    }
    try {
      await fetch(health, { mode: "no-cors", cache: "no-store", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    } catch (err) {
      return { conn: "reconnecting", detail: `cannot reach ${wsUrl}` };
    }
    if (crossOrigin) {
      return {
        conn: "refused",
        detail: "handshake refused (HTTP 403: origin not allowed)",
        message:
          `${wsUrl} refused this page: a proxy accepts pages of other origins only when listed in its ` +
          `allowed_origins. On that proxy set [proxy] allowed_origins = ["${location.origin}"] ` +
          `(or OPENALGO_PROXY_PROXY__ALLOWED_ORIGINS='["${location.origin}"]') and restart it, ` +
          "or open the page that proxy serves itself.",
      };
    }
    return { conn: "refused", detail: "the proxy refused the WebSocket handshake (full or stopping?)" };
  }

  async function closed(ws, event) {
    if (ws !== state.ws) return;
    state.ready = false;
    clearTimeout(state.checkTimer);
    failPending("connection closed");
    hideSuggestions();
    if (event.code === 4401) {
      askForKey("The proxy closed the connection: no valid authentication in time.");
    }
    let conn = "reconnecting";
    let detail = `closed ${event.code}: ${event.reason || CLOSE_REASONS[event.code] || "connection closed"}`;
    if (!ws.opened) {
      const found = await diagnose();
      if (ws !== state.ws) return;
      ({ conn, detail } = found);
      if (found.message) showMessage(found.message, true);
    }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(state.attempt, 16));
    const delay = Math.random() * ceiling;
    state.attempt += 1;
    state.reconnects += 1;
    setConn(conn, `${detail}; retry in ${(delay / 1000).toFixed(1)} s`);
    state.retryTimer = setTimeout(connect, delay);
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

  // -- instrument search ---------------------------------------------------------------------

  // Whether the proxy answers `search` (older proxies answer INVALID_ACTION: the page then
  // offers no suggestions and formats prices from the data).
  async function probeSearch() {
    if (state.search !== "unknown") return;
    try {
      await request({ action: "search", query: "A", limit: 1 });
      state.search = "supported";
    } catch (err) {
      if (!(err instanceof ServerError)) return; // no reply: ask again on the next connection
      state.search = err.code === "INVALID_ACTION" ? "unsupported" : "supported";
    }
    ui.form.dataset.search = state.search;
    if (state.search === "supported") ui.input.placeholder = "Search, or EXCHANGE:SYMBOL (e.g. NSE:RELIANCE)";
  }

  async function search(query, exchange, limit) {
    const payload = { action: "search", query, limit };
    if (exchange) payload.exchange = exchange;
    const reply = await request(payload);
    const results = Array.isArray(reply.results) ? reply.results : [];
    for (const r of results) learnTickSize(keyOf(r.exchange, r.symbol), r.tick_size);
    return results;
  }

  // Tick sizes of instruments added by name, from the exact search hit. A search costs the
  // connection several commands of its rate budget: one at a time, spaced, at most half the budget.
  async function learnTickSizes(keys) {
    if (state.search !== "supported") return;
    let first = true;
    for (const key of keys) {
      if (state.tickSizes.has(key)) continue;
      if (!state.ready) return;
      if (!first) await new Promise((resolve) => setTimeout(resolve, LOOKUP_SPACING_MS));
      first = false;
      const { exchange, symbol } = parseInstrument(key);
      try {
        await search(symbol, exchange, 5);
      } catch (err) {
        console.warn("tick size of", key, err);
        return; // RATE_LIMITED or gone: the next connection (or reload) carries on
      }
    }
  }

  function lastToken(text) {
    const parts = text.split(/[\s,]+/);
    return parts[parts.length - 1] || "";
  }

  function scheduleSearch() {
    clearTimeout(state.searchTimer);
    const token = lastToken(ui.input.value).trim();
    if (state.search !== "supported" || !state.ready || token.length < 1) {
      hideSuggestions();
      return;
    }
    state.searchTimer = setTimeout(() => runSearch(token), SEARCH_DELAY_MS);
  }

  async function runSearch(token) {
    const at = token.indexOf(":");
    const exchange = at > 0 ? token.slice(0, at).toUpperCase() : "";
    const query = at >= 0 ? token.slice(at + 1) : token;
    if (!query) {
      hideSuggestions();
      return;
    }
    const seq = ++state.searchSeq;
    let results;
    try {
      results = await search(query, exchange, SEARCH_LIMIT);
    } catch (err) {
      if (seq === state.searchSeq) hideSuggestions();
      if (err instanceof ServerError) showMessage(`search: ${err.code}: ${err.serverMessage}`, true);
      return;
    }
    if (seq !== state.searchSeq || lastToken(ui.input.value).trim() !== token) return; // typed on meanwhile
    showSuggestions(results);
  }

  function showSuggestions(results) {
    state.suggestions = results;
    state.highlighted = -1;
    ui.suggestions.replaceChildren();
    for (const [i, r] of results.entries()) {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.dataset.key = keyOf(r.exchange, r.symbol);
      const name = document.createElement("span");
      name.className = "symbol";
      name.textContent = keyOf(r.exchange, r.symbol);
      const about = document.createElement("span");
      about.className = "about";
      about.textContent = [r.name, r.instrument_type].filter(Boolean).join(" · ");
      li.append(name, about);
      li.addEventListener("mousedown", (event) => {
        event.preventDefault(); // keep the focus in the input
        pick(i);
      });
      ui.suggestions.appendChild(li);
    }
    ui.suggestions.hidden = results.length === 0;
    ui.input.setAttribute("aria-expanded", String(results.length > 0));
  }

  function hideSuggestions() {
    state.searchSeq += 1;
    state.suggestions = [];
    state.highlighted = -1;
    ui.suggestions.replaceChildren();
    ui.suggestions.hidden = true;
    ui.input.setAttribute("aria-expanded", "false");
  }

  function highlight(index) {
    const count = state.suggestions.length;
    if (!count) return;
    state.highlighted = (index + count) % count;
    for (const [i, li] of [...ui.suggestions.children].entries()) {
      li.classList.toggle("highlighted", i === state.highlighted);
      li.setAttribute("aria-selected", String(i === state.highlighted));
    }
  }

  function pick(index) {
    const chosen = state.suggestions[index];
    if (!chosen) return;
    const text = ui.input.value;
    const rest = text.slice(0, text.length - lastToken(text).length);
    ui.input.value = "";
    hideSuggestions();
    addInstruments(`${rest} ${keyOf(chosen.exchange, chosen.symbol)}`);
  }

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
    if (msg.type === "option_chain") {
      WatchChain.receive(msg);
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
    widenDecimals(key, data);
    if (msg.mode === 3 && key === state.selected) {
      state.depthTick = data;
      state.depthDirty = true;
    }
    const row = state.rows.get(key);
    // a row shows its table mode's stream only: an LTP row never keeps Quote values from the ladder's stream
    if (row && msg.mode === state.mode) {
      if (row.data && data.ltp !== row.data.ltp) {
        row.direction = data.ltp > row.data.ltp ? 1 : -1;
        row.flash = true;
      }
      row.data = data;
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
    if (!d) return; // cleared by a mode change after this row was queued
    const c = row.cells;
    const decimals = decimalsOf(row.key);
    const dirCls = row.direction > 0 ? "up" : row.direction < 0 ? "down" : "";
    setCell(c.ltp, fmt.price(d.ltp, decimals), dirCls);
    if (row.flash) {
      row.flash = false;
      c.ltp.classList.remove("flash-up", "flash-down");
      void c.ltp.offsetWidth; // restart the animation
      c.ltp.classList.add(row.direction > 0 ? "flash-up" : "flash-down");
    }
    // only what this mode carries: LTP has no change, volume, high or low
    const chgCls = d.change > 0 ? "up" : d.change < 0 ? "down" : "";
    setCell(c.change, "change" in d ? fmt.signed(d.change, decimals) : "-", chgCls);
    setCell(c.changePercent, "change_percent" in d ? fmt.signed(d.change_percent, 2, "%") : "-", chgCls);
    setCell(c.volume, "volume" in d && !(row.isIndex && !d.volume) ? fmt.integer(d.volume) : "-"); // indices trade no volume
    setCell(c.high, "high" in d ? fmt.price(d.high, decimals) : "-");
    setCell(c.low, "low" in d ? fmt.price(d.low, decimals) : "-");
    setCell(c.time, fmtTime(d.ltt));
  }

  const isEmptyLevel = (l) => !l || (!Number(l.price) && !Number(l.quantity));

  function renderLadder() {
    state.depthDirty = false;
    const d = state.depthTick;
    const key = state.selected;
    ui.ladder.replaceChildren();
    ui.ladderTable.hidden = false;
    if (!d || !d.depth) {
      ui.ladderInfo.textContent = key ? "Waiting for depth..." : "Select a row to see its order book.";
      return;
    }
    const buy = d.depth.buy || [];
    const sell = d.depth.sell || [];
    const decimals = decimalsOf(key);
    if (buy.every(isEmptyLevel) && sell.every(isEmptyLevel)) {
      // indices have no order book: no ladder of zeros
      ui.ladderTable.hidden = true;
      const index = key && key.slice(0, key.indexOf(":")).endsWith("_INDEX");
      ui.ladderInfo.textContent = `${index ? "An index has no order book" : "The order book is empty"}` +
        ` · LTP ${fmt.price(d.ltp, decimals)}`;
      return;
    }
    const maxQty = Math.max(1, ...buy.map((l) => l.quantity), ...sell.map((l) => l.quantity));
    for (let i = 0; i < Math.max(buy.length, sell.length); i += 1) {
      const b = isEmptyLevel(buy[i]) ? null : buy[i];
      const s = isEmptyLevel(sell[i]) ? null : sell[i];
      const tr = document.createElement("tr");
      const cells = [
        [b ? String(b.orders) : "", "orders"], [b ? fmt.integer(b.quantity) : "", "bidq"],
        [b ? fmt.price(b.price, decimals) : "-", "bid"],
        [s ? fmt.price(s.price, decimals) : "-", "ask"], [s ? fmt.integer(s.quantity) : "", "askq"],
        [s ? String(s.orders) : "", "orders"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        td.className = cls;
        tr.appendChild(td);
      }
      tr.children[1].style.setProperty("--w", `${(100 * (b ? b.quantity : 0)) / maxQty}%`);
      tr.children[4].style.setProperty("--w", `${(100 * (s ? s.quantity : 0)) / maxQty}%`);
      ui.ladder.appendChild(tr);
    }
    const parts = [
      `LTP ${fmt.price(d.ltp, decimals)}`,
      `buy qty ${fmt.integer(d.total_buy_quantity)}`,
      `sell qty ${fmt.integer(d.total_sell_quantity)}`,
    ];
    if (d.lower_circuit || d.upper_circuit) {
      parts.push(`circuit ${fmt.price(d.lower_circuit, decimals)} - ${fmt.price(d.upper_circuit, decimals)}`);
    }
    ui.ladderInfo.textContent = parts.join(" · ");
  }

  function showMode() {
    ui.table.classList.remove("mode-1", "mode-2", "mode-3");
    ui.table.classList.add(`mode-${state.mode}`);
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
      if (name === "name") {
        // the exchange above the symbol on a phone (style.css), beside it elsewhere
        const exchange = document.createElement("span");
        exchange.className = "exchange";
        exchange.textContent = `${instrument.exchange}:`;
        const symbol = document.createElement("span");
        symbol.className = "symbol";
        symbol.textContent = instrument.symbol;
        td.append(exchange, symbol);
      } else if (name !== "remove") {
        td.textContent = "-";
      }
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
    const isIndex = instrument.exchange.endsWith("_INDEX");
    const row = { key, ...instrument, isIndex, tr, cells, data: null, direction: 0, flash: false, dirty: false };
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
    if (!added.length || !state.ready) return;
    try {
      const failed = await subscribe(added, state.mode);
      if (!failed.length) showMessage(`added ${added.join(", ")}`);
      await learnTickSizes(added);
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
    showMode();
    for (const row of state.rows.values()) {
      row.data = null;
      row.dirty = false; // a render already queued must not draw the old mode's tick
      row.direction = 0;
      for (const [name, cell] of Object.entries(row.cells)) if (name !== "name" && name !== "remove") setCell(cell, "-");
    }
    if (!state.ready) return;
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
    if (state.highlighted >= 0) {
      pick(state.highlighted);
      return;
    }
    const text = ui.input.value;
    ui.input.value = "";
    hideSuggestions();
    addInstruments(text);
  });
  ui.input.addEventListener("input", scheduleSearch);
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && state.suggestions.length) {
      event.preventDefault();
      highlight(state.highlighted + 1);
    } else if (event.key === "ArrowUp" && state.suggestions.length) {
      event.preventDefault();
      highlight(state.highlighted - 1);
    } else if (event.key === "Escape") {
      hideSuggestions();
    }
  });
  ui.input.addEventListener("blur", () => setTimeout(hideSuggestions, 100));
  ui.mode.value = String(state.mode);
  showMode();
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
  WatchChain.init(request);
  connect();
})();
