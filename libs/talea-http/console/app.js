// talea console: a read-only view of the ledger over talead's own /v1 API.
//
// No framework and no build step: the DOM is built with createElement and
// textContent only (never innerHTML with data), pages are chosen from
// location.hash, and every request carries the pasted token as
// `Authorization: Bearer`. The token lives in sessionStorage (this tab
// only), never in a URL, and is never logged. See docs/console.md.
"use strict";

const TOKEN_KEY = "talea.console.token";
const SVG_NS = "http://www.w3.org/2000/svg";
/** Events kept on the live tail's page. */
const TAIL_EVENTS_MAX = 500;
/** Seqs searched after a hold when looking for what ended it. */
const ENDING_SCAN_MAX = 10000;
/** Events read to recompute a checkpoint's Merkle root in the page. */
const ROOT_CHECK_EVENTS_MAX = 100000;

// ---------------------------------------------------------------- helpers

/** An element: `h("a", {href: "#/"}, "text", child…)`. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element with attributes. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const enc = encodeURIComponent;

/** A console link: `#/books/demo/accounts?prefix=x`. */
function route(segments, params) {
  let text = "#/" + segments.map(enc).join("/");
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") query.set(k, v);
  }
  const q = query.toString();
  return q ? `${text}?${q}` : text;
}

/** An API path with its query, leaving out empty parameters. */
function apiPath(segments, params) {
  let text = "/v1/" + segments.map(enc).join("/");
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") query.set(k, v);
  }
  const q = query.toString();
  return q ? `${text}?${q}` : text;
}

function num(text) {
  return h("td", {class: "num"}, text ?? "—");
}

/** A table: caption, column headers (`th scope=col`), rows of cells. */
function table(caption, headers, rows, attrs) {
  return h("div", {class: "table-wrap"},
    h("table", attrs || {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, rows)));
}

/** A definition list of [term, value] pairs. */
function facts(pairs) {
  return h("dl", {class: "facts"},
    pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]));
}

function txLink(txId, text) {
  return h("a", {href: route(["transactions", txId]), class: "mono"}, text || txId);
}

function accountLink(book, account) {
  return h("a", {href: route(["books", book, "accounts", account])}, account);
}

function postingsSummary(postings) {
  return (postings || [])
    .map((p) => `${p.account} ${p.debit ? "Dr " + p.debit : "Cr " + p.credit} ${p.asset}`)
    .join("; ");
}

/** A `datetime-local` value for an RFC 3339 instant (local time). */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

/** An RFC 3339 UTC instant for a `datetime-local` value, or "". */
function fromLocalInput(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of a lowercase hex string of `length` bytes, or null. */
function unhex(text, length) {
  if (typeof text !== "string" || text.length !== length * 2 || !/^[0-9a-f]*$/.test(text)) {
    return null;
  }
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---------------------------------------------------------------- the API

/** A refusal or failure of an API call, with talea's error body. */
class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Calls the API with the token; resolves to the JSON body or throws ApiError. */
async function api(path, options) {
  const {method = "GET", body} = options || {};
  const headers = {Accept: "application/json", Authorization: `Bearer ${token() || ""}`};
  const init = {method, headers, cache: "no-store", credentials: "omit"};
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", `talead cannot be reached (${e.message})`, null);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    // talea's errors are {"error": "<code>", "message": "…", …details}.
    const code = data && typeof data.error === "string" ? data.error : `http_${response.status}`;
    const message = data && typeof data.message === "string"
      ? data.message
      : (text.slice(0, 300) || response.statusText);
    throw new ApiError(response.status, code, message, data);
  }
  return data;
}

/** What went wrong, for the page: the API's status, code, message and details. */
function errorBox(error, context) {
  const box = h("div", {class: "error", role: "alert"});
  if (!(error instanceof ApiError)) {
    append(box, [h("p", {}, h("strong", {}, "Error"), `: ${error && error.message}`)]);
    return box;
  }
  const lead = {
    0: "talead cannot be reached",
    401: "The token was refused",
    403: "This token may not see this",
    404: "Not found",
  }[error.status] || (error.status >= 500 ? "The server failed" : "The request was refused");
  append(box, [
    h("p", {}, h("strong", {}, context ? `${context}: ${lead}` : lead),
      error.status ? ` (${error.status} ${error.code})` : ""),
    h("p", {class: "message"}, error.message),
  ]);
  const details = Object.entries(error.body || {})
    .filter(([k]) => k !== "error" && k !== "message");
  if (details.length) {
    append(box, [facts(details.map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]))]);
  }
  return box;
}

// ---------------------------------------------------------------- routing

const main = () => document.getElementById("main");
/** Incremented on every navigation: a page's late answers check it. */
let generation = 0;
/** What the current page must stop (a live tail's EventSource). */
let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const at = raw.indexOf("?");
  const path = at < 0 ? raw : raw.slice(0, at);
  const params = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
  let segments;
  try {
    segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch (_) {
    segments = ["?"];
  }
  return {segments, params};
}

/** A page being drawn: checks it is still the current one before writing. */
class Page {
  constructor(name, title, book) {
    this.generation = generation;
    this.root = main();
    this.root.replaceChildren();
    this.root.dataset.page = name;
    this.root.dataset.state = "loading";
    document.title = `${title} · talea console`;
    bookNav(book, name);
    this.root.append(h("h1", {}, title));
  }

  get live() {
    return this.generation === generation;
  }

  add(...nodes) {
    if (this.live) append(this.root, nodes);
  }

  ready() {
    if (this.live) this.root.dataset.state = "ready";
  }

  fail(error, context) {
    if (!this.live) return;
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      signIn(error);
      return;
    }
    this.root.append(errorBox(error, context));
    this.root.dataset.state = "error";
  }
}

function bookNav(book, page) {
  const nav = document.getElementById("book-nav");
  if (!book) {
    nav.hidden = true;
    nav.replaceChildren();
    return;
  }
  const items = [
    ["trial-balance", "Trial balance"],
    ["accounts", "Accounts"],
    ["holds", "Pending holds"],
    ["tail", "Live tail"],
    ["checkpoint", "Checkpoint"],
  ];
  nav.replaceChildren(
    h("span", {class: "book-name"}, h("a", {href: route([])}, "Books"), " / ", book),
    h("ul", {}, items.map(([key, label]) => h("li", {},
      h("a", {href: route(["books", book, key]), "aria-current": key === page ? "page" : null},
        label)))));
  nav.hidden = false;
}

function updateSession() {
  const signedIn = Boolean(token());
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? "Signed in" : "";
}

function render() {
  generation += 1;
  // Tests (and anyone curious) can tell one navigation from the next.
  document.body.dataset.nav = String(generation);
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  updateSession();
  if (!token()) {
    signIn(null);
    return;
  }
  const {segments, params} = parseHash();
  const [first, book, page, account] = segments;
  if (segments.length === 0) return booksPage();
  if (first === "transactions" && segments.length === 2) return transactionPage(segments[1]);
  if (first === "books" && book) {
    if (segments.length === 2 || page === "trial-balance") return trialBalancePage(book, params);
    if (page === "accounts" && segments.length === 3) return accountsPage(book, params);
    if (page === "accounts" && segments.length === 4) return accountPage(book, account, params);
    if (page === "tail") return tailPage(book);
    if (page === "holds") return holdsPage(book, params);
    if (page === "checkpoint") return checkpointPage(book);
  }
  const p = new Page("unknown", "No such page");
  p.add(h("p", {class: "error", role: "alert"}, "The console has no page at this address. "),
    h("p", {}, h("a", {href: route([])}, "Back to the books")));
  p.ready();
}

/** Focus the new page's heading for keyboard and screen-reader users. */
function focusMain() {
  const heading = main().querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({preventScroll: true});
  }
}

// ---------------------------------------------------------------- sign-in

function signIn(error) {
  const p = new Page("sign-in", "Sign in");
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off",
    spellcheck: "false", required: true,
  });
  const form = h("form", {id: "sign-in", class: "panel"},
    h("p", {}, "Paste an API token. It is kept in this browser tab only (sessionStorage), ",
      "sent only as an Authorization header to this server, and forgotten when the tab closes. ",
      "A scoped token shows only its books."),
    h("label", {for: "token"}, "API token"),
    input,
    h("button", {type: "submit"}, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    try {
      await api("/v1/books");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        signIn(e);
        return;
      }
    }
    render();
    focusMain();
  });
  if (error) p.add(errorBox(error, "Sign-in"));
  p.add(form);
  p.ready();
  input.focus();
}

// ---------------------------------------------------------------- pages

async function booksPage() {
  const p = new Page("books", "Books");
  try {
    const data = await api("/v1/books");
    const rows = data.books.map((b) => h("tr", {"data-book": b.book},
      h("th", {scope: "row"}, h("a", {href: route(["books", b.book, "trial-balance"])}, b.book)),
      num(String(b.last_seq)),
      h("td", {}, h("a", {href: route(["books", b.book, "accounts"])}, "accounts"), " · ",
        h("a", {href: route(["books", b.book, "holds"])}, "holds"), " · ",
        h("a", {href: route(["books", b.book, "tail"])}, "live tail"))));
    p.add(rows.length
      ? table("Books in this token's scope", ["Book", "Last seq", "Pages"], rows, {id: "books"})
      : h("p", {class: "empty"}, "No book with events is in this token's scope."));
    p.ready();
  } catch (e) {
    p.fail(e);
  }
}

async function trialBalancePage(book, params) {
  const p = new Page("trial-balance", `Trial balance: ${book}`, book);
  const asOf = params.get("as_of") || "";
  const input = h("input", {id: "as-of", name: "as_of", type: "datetime-local", step: "1",
    value: asOf ? toLocalInput(asOf) : null});
  const form = h("form", {class: "controls"},
    h("label", {for: "as-of"}, "As of (your local time; empty: now)"), input,
    h("button", {type: "submit"}, "Show"),
    h("a", {href: route(["books", book, "trial-balance"]), class: "button"}, "Now"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route(["books", book, "trial-balance"], {as_of: fromLocalInput(input.value)});
  });
  p.add(form);
  try {
    const tb = await api(apiPath(["books", book, "trial-balance"], {as_of: asOf}));
    const assets = Object.keys(tb.totals).sort();
    p.add(h("p", {id: "tb-status", class: tb.balanced ? "status ok" : "status bad",
      "data-balanced": String(tb.balanced), role: "status"},
    tb.balanced ? "✔ balanced" : "✘ NOT balanced",
    h("span", {class: "sub"}, ` as of ${tb.as_of}`)));
    p.add(table("Totals per asset (posted)",
      ["Asset", "Debits", "Credits", "Pending (held)", "Balanced"],
      assets.map((asset) => {
        const t = tb.totals[asset];
        const ok = t.debits === t.credits;
        return h("tr", {"data-asset": asset},
          h("th", {scope: "row"}, asset), num(t.debits), num(t.credits),
          num((tb.pending || {})[asset] || "0"),
          h("td", {class: ok ? "ok" : "bad"}, ok ? "balanced" : "NOT balanced"));
      }), {id: "tb-totals"}));
    p.add(table("Accounts",
      ["Account", "Kind", "Asset", "Debits", "Credits", "Balance"],
      tb.rows.map((r) => h("tr", {},
        h("th", {scope: "row"}, accountLink(book, r.account)), h("td", {}, r.kind),
        h("td", {}, r.asset), num(r.debits), num(r.credits), num(r.balance))),
      {id: "tb-rows"}));
    p.ready();
  } catch (e) {
    p.fail(e);
  }
}

async function accountsPage(book, params) {
  const p = new Page("accounts", `Accounts: ${book}`, book);
  const prefix = params.get("prefix") || "";
  const asset = params.get("asset") || "";
  const limit = params.get("limit") || "";
  const fields = {
    prefix: h("input", {id: "prefix", name: "prefix", type: "text", value: prefix,
      spellcheck: "false", placeholder: "customers:"}),
    asset: h("input", {id: "asset", name: "asset", type: "text", value: asset,
      spellcheck: "false", placeholder: "all"}),
    limit: h("input", {id: "limit", name: "limit", type: "number", value: limit,
      placeholder: "100"}),
  };
  const form = h("form", {class: "controls"},
    h("label", {for: "prefix"}, "Name starts with"), fields.prefix,
    h("label", {for: "asset"}, "Asset"), fields.asset,
    h("label", {for: "limit"}, "Per page (1–1000)"), fields.limit,
    h("button", {type: "submit"}, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route(["books", book, "accounts"], {
      prefix: fields.prefix.value, asset: fields.asset.value, limit: fields.limit.value,
    });
  });
  p.add(form);
  try {
    const data = await api(apiPath(["books", book, "balances"],
      {prefix, asset, limit, after: params.get("after")}));
    p.add(h("p", {id: "accounts-count", role: "status"},
      `${data.count} account${data.count === 1 ? "" : "s"} match`,
      prefix ? ` “${prefix}”` : "", ` (as of ${data.as_of}).`));
    const t = data.totals;
    p.add(table("Totals over every match",
      ["Asset", "Posted", "Held debits", "Held credits", "Available"],
      Object.keys(t.balances).sort().map((a) => h("tr", {"data-asset": a},
        h("th", {scope: "row"}, a), num(t.balances[a]),
        num((t.pending[a] || {}).debits || "0"), num((t.pending[a] || {}).credits || "0"),
        num(t.available[a]))), {id: "accounts-totals"}));
    const rows = [];
    for (const row of data.accounts) {
      const assets = Object.keys(row.balances).sort();
      if (assets.length === 0) {
        rows.push(h("tr", {}, h("th", {scope: "row"}, accountLink(book, row.account)),
          h("td", {}, "—"), num("—"), num("—"), num("—")));
      }
      for (const a of assets) {
        const held = row.pending[a] || {};
        rows.push(h("tr", {},
          h("th", {scope: "row"}, accountLink(book, row.account)), h("td", {}, a),
          num(row.balances[a]), num(`${held.debits || "0"} / ${held.credits || "0"}`),
          num(row.available[a])));
      }
    }
    p.add(table("Accounts (this page)",
      ["Account", "Asset", "Posted", "Held (Dr / Cr)", "Available"], rows, {id: "accounts"}));
    const pager = h("p", {class: "pager"});
    if (params.get("after")) {
      append(pager, [h("a", {href: route(["books", book, "accounts"], {prefix, asset, limit})},
        "First page"), " "]);
    }
    if (data.next) {
      append(pager, [h("a", {href: route(["books", book, "accounts"],
        {prefix, asset, limit, after: data.next})}, "Next page")]);
    }
    p.add(pager);
    p.ready();
  } catch (e) {
    p.fail(e);
  }
}

async function accountPage(book, account, params) {
  const p = new Page("account", `Account: ${account}`, book);
  let balances;
  try {
    // One after the other, so a refusal is always the first read's.
    const info = await api(apiPath(["books", book, "accounts", account]));
    const bal = await api(apiPath(["books", book, "accounts", account, "balances"]));
    balances = bal;
    p.add(facts([
      ["Book", h("a", {href: route(["books", book, "trial-balance"])}, book)],
      ["Kind", info.kind],
      ["Minimum balance", info.min_balance ?? "none"],
      ["Opened", `${info.opened_at} (seq ${info.seq})`],
    ]));
    const assets = Object.keys(bal.balances).sort();
    p.add(table(`Balances as of ${bal.as_of}`,
      ["Asset", "Posted", "Held debits", "Held credits", "Available"],
      assets.map((a) => h("tr", {"data-asset": a}, h("th", {scope: "row"}, a),
        num(bal.balances[a]), num((bal.pending[a] || {}).debits || "0"),
        num((bal.pending[a] || {}).credits || "0"), num(bal.available[a]))),
      {id: "balances"}));
  } catch (e) {
    p.fail(e);
    return;
  }
  const chart = h("section", {id: "history", "aria-labelledby": "history-title"});
  const postings = h("section", {id: "postings-section", "aria-labelledby": "postings-title"});
  p.add(chart, postings);
  await Promise.all([
    historySection(p, chart, book, account, Object.keys(balances.balances).sort(), params),
    postingsSection(p, postings, book, account, params),
  ]);
  p.ready();
}

async function historySection(p, section, book, account, assets, params) {
  const asset = params.get("asset") || assets[0] || "";
  const points = params.get("points") || "50";
  const from = params.get("from") || "";
  const to = params.get("to") || "";
  const f = {
    asset: assets.length
      ? h("select", {id: "h-asset", name: "asset"},
        assets.map((a) => h("option", {value: a, selected: a === asset}, a)))
      : h("input", {id: "h-asset", name: "asset", type: "text", value: asset}),
    points: h("input", {id: "h-points", name: "points", type: "number", value: points}),
    from: h("input", {id: "h-from", name: "from", type: "datetime-local", step: "1",
      value: from ? toLocalInput(from) : null}),
    to: h("input", {id: "h-to", name: "to", type: "datetime-local", step: "1",
      value: to ? toLocalInput(to) : null}),
  };
  const form = h("form", {class: "controls"},
    h("label", {for: "h-asset"}, "Asset"), f.asset,
    h("label", {for: "h-points"}, "Points (1–1000)"), f.points,
    h("label", {for: "h-from"}, "From"), f.from,
    h("label", {for: "h-to"}, "To"), f.to,
    h("button", {type: "submit"}, "Draw"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route(["books", book, "accounts", account], {
      asset: f.asset.value, points: f.points.value,
      from: fromLocalInput(f.from.value), to: fromLocalInput(f.to.value),
      after_seq: params.get("after_seq"),
    });
  });
  append(section, [h("h2", {id: "history-title"}, "Posted balance over time"), form]);
  if (!asset) {
    append(section, [h("p", {class: "empty"}, "This account has no balance in any asset yet.")]);
    return;
  }
  try {
    const history = await api(apiPath(["books", book, "accounts", account, "balances", "history"],
      {asset, points, from, to}));
    if (p.live) append(section, [drawChart(history)]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return p.fail(e);
    if (p.live) append(section, [errorBox(e, "Balance history")]);
  }
}

/** The history's buckets as an inline SVG: min–max bars, the closing balance as points and a line. */
function drawChart(history) {
  const buckets = history.buckets || [];
  const W = 800, H = 260, L = 90, R = 16, T = 16, B = 40;
  const values = buckets.flatMap((b) => [Number(b.min), Number(b.max)]).filter(Number.isFinite);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!values.length) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (i) => L + (buckets.length <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (buckets.length - 1));
  const y = (v) => T + (H - T - B) * (1 - (Number(v) - lo) / (hi - lo));
  const svg = s("svg", {
    class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "data-points": buckets.length,
    "aria-label": `${history.account} ${history.asset} balance, ${buckets.length} points from ${history.from} to ${history.to}`,
  });
  append(svg, [
    s("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}),
    s("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}),
    s("text", {class: "label", x: L - 6, y: T + 4, "text-anchor": "end"}, String(hi)),
    s("text", {class: "label", x: L - 6, y: H - B, "text-anchor": "end"}, String(lo)),
    s("text", {class: "label", x: L, y: H - 12}, history.from || ""),
    s("text", {class: "label", x: W - R, y: H - 12, "text-anchor": "end"}, history.to || ""),
  ]);
  if (buckets.length) {
    append(svg, [s("polyline", {class: "line",
      points: buckets.map((b, i) => `${x(i)},${y(b.last)}`).join(" ")})]);
  }
  buckets.forEach((b, i) => {
    append(svg, [
      s("line", {class: "range", x1: x(i), x2: x(i), y1: y(b.min), y2: y(b.max)}),
      s("circle", {class: "point", cx: x(i), cy: y(b.last), r: 3, "data-last": b.last},
        s("title", {}, `${b.start}: first ${b.first}, last ${b.last}, min ${b.min}, max ${b.max}`)),
    ]);
  });
  const data = h("details", {},
    h("summary", {}, "The chart's data"),
    table("Buckets", ["Start", "First", "Last", "Min", "Max"],
      buckets.map((b) => h("tr", {}, h("th", {scope: "row"}, b.start),
        num(b.first), num(b.last), num(b.min), num(b.max)))));
  return h("figure", {class: "chart-figure"}, svg,
    h("figcaption", {}, `${history.asset}, posted, ${buckets.length} buckets (line: closing balance; bars: min to max).`),
    data);
}

async function postingsSection(p, section, book, account, params) {
  const after = params.get("after_seq") || "";
  append(section, [h("h2", {id: "postings-title"}, "Postings")]);
  try {
    const data = await api(apiPath(["books", book, "accounts", account, "postings"],
      {after_seq: after, limit: 50}));
    const rows = data.postings.map((x) => h("tr", {},
      h("th", {scope: "row"}, String(x.seq)), h("td", {}, txLink(x.tx_id, x.tx_id.slice(0, 13) + "…")),
      h("td", {}, x.committed_at), h("td", {}, x.asset),
      num(x.debit || ""), num(x.credit || ""), num(x.balance_after)));
    if (!p.live) return;
    append(section, [table("Postings, oldest first",
      ["Seq", "Transaction", "Committed", "Asset", "Debit", "Credit", "Balance after"], rows,
      {id: "postings"})]);
    const keep = Object.fromEntries(["asset", "points", "from", "to"]
      .map((k) => [k, params.get(k)]));
    const pager = h("p", {class: "pager"});
    if (after) {
      append(pager, [h("a", {href: route(["books", book, "accounts", account], keep)}, "First page"), " "]);
    }
    if (data.next_after_seq !== null && data.next_after_seq !== undefined) {
      append(pager, [h("a", {href: route(["books", book, "accounts", account],
        {...keep, after_seq: data.next_after_seq})}, "Next page")]);
    }
    append(section, [pager]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return p.fail(e);
    if (p.live) append(section, [errorBox(e, "Postings")]);
  }
}

async function transactionPage(txId) {
  const p = new Page("transaction", "Transaction", null);
  try {
    const tx = await api(apiPath(["transactions", txId]));
    bookNav(tx.book, "transaction");
    p.add(facts([
      ["Transaction", h("span", {class: "mono", id: "tx-id"}, tx.tx_id)],
      ["Book", h("a", {href: route(["books", tx.book, "trial-balance"])}, tx.book)],
      ["Seq", String(tx.seq)],
      ["Status", h("span", {id: "tx-status", class: `badge ${tx.status}`}, tx.status)],
      ["Committed", tx.committed_at],
      ["Occurred", tx.occurred_at],
      ["Idempotency key", h("span", {class: "mono"}, tx.idempotency_key)],
      ["Expires", tx.expires_at],
      ["Memo", tx.memo],
    ]));
    if (tx.pending_tx_id) {
      p.add(h("p", {id: "tx-ends"}, tx.status === "voided" ? "Voids the hold " : "Settles the hold ",
        txLink(tx.pending_tx_id), "."));
    }
    p.add(table("Postings", ["Account", "Asset", "Debit", "Credit"],
      tx.postings.map((x) => h("tr", {},
        h("th", {scope: "row"}, accountLink(tx.book, x.account)), h("td", {}, x.asset),
        num(x.debit || ""), num(x.credit || ""))), {id: "tx-postings"}));
    p.add(h("h2", {}, "Metadata"),
      tx.metadata ? h("pre", {class: "json"}, JSON.stringify(tx.metadata, null, 2))
        : h("p", {class: "empty"}, "None."));
    const ending = h("section", {id: "tx-ending", "aria-labelledby": "ending-title"});
    p.add(ending);
    await holdEnding(p, ending, tx);
    p.ready();
  } catch (e) {
    p.fail(e);
  }
}

/** For a hold: whether it stands, and the settle or void that ended it. */
async function holdEnding(p, section, tx) {
  if (tx.pending_tx_id) return;
  const isHold = tx.status !== "posted" || tx.expires_at;
  append(section, [h("h2", {id: "ending-title"}, "Hold")]);
  if (tx.status === "pending") {
    append(section, [h("p", {}, "A pending hold: not settled, voided or expired yet",
      tx.expires_at ? ` (expires ${tx.expires_at}).` : " (no expiry).")]);
    return;
  }
  if (tx.status === "expired") {
    append(section, [h("p", {}, `An expired hold: it reserved nothing from ${tx.expires_at} on; `,
      "its expiry is a hold_expired event, not a transaction.")]);
    return;
  }
  const find = async () => {
    const out = h("p", {role: "status"}, "Looking…");
    section.replaceChildren(h("h2", {id: "ending-title"}, "Hold"), out);
    try {
      const found = await findEnding(tx);
      if (!p.live) return;
      out.replaceChildren(...(found
        ? [found.status === "voided" ? "Voided by " : "Settled by ", txLink(found.tx_id),
          ` (seq ${found.seq}).`]
        : [`No settle or void of this transaction in the ${ENDING_SCAN_MAX} events after it.`]));
    } catch (e) {
      if (p.live) section.append(errorBox(e, "Looking for the settle or void"));
    }
  };
  if (isHold) {
    await find();
  } else {
    append(section, [h("p", {}, "A posted transaction. If it was a hold, what settled it is later in the book: ",
      h("button", {type: "button", id: "find-ending", onclick: find}, "Find its settle"))]);
  }
}

/**
 * The transaction after `tx` in its book whose `pending_tx_id` is `tx`:
 * a search of the book's transactions after it with the hold's own status
 * (a settle reads `posted` as a settled hold does, a void `voided`),
 * bounded to the ENDING_SCAN_MAX seqs after the hold.
 */
async function findEnding(tx) {
  let after = tx.seq;
  while (after < tx.seq + ENDING_SCAN_MAX) {
    const page = await api(apiPath(["books", tx.book, "transactions"],
      {after_seq: after, limit: 1000, status: tx.status}));
    const hit = page.transactions.find((t) => t.pending_tx_id === tx.tx_id);
    if (hit) return hit;
    if (page.next_after_seq === null || page.next_after_seq === undefined) return null;
    after = page.next_after_seq;
  }
  return null;
}

async function holdsPage(book, params) {
  const p = new Page("holds", `Pending holds: ${book}`, book);
  const limit = params.get("limit") || "";
  const input = h("input", {id: "holds-limit", name: "limit", type: "number", value: limit,
    placeholder: "100"});
  const form = h("form", {class: "controls"},
    h("label", {for: "holds-limit"}, "How many (1–1000)"), input,
    h("button", {type: "submit"}, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route(["books", book, "holds"], {limit: input.value});
  });
  p.add(h("p", {}, "Holds still pending, the soonest to expire first; holds without an expiry last."), form);
  try {
    const data = await api(apiPath(["books", book, "holds"], {limit}));
    const rows = data.holds.map((tx) => h("tr", {"data-tx-id": tx.tx_id},
      h("th", {scope: "row"}, tx.expires_at || "never"),
      h("td", {}, txLink(tx.tx_id, tx.tx_id.slice(0, 13) + "…")),
      num(String(tx.seq)), h("td", {}, tx.committed_at),
      h("td", {}, postingsSummary(tx.postings)), h("td", {}, tx.memo ?? "")));
    p.add(rows.length
      ? table("Pending holds, soonest expiry first",
        ["Expires", "Transaction", "Seq", "Committed", "Postings", "Memo"], rows, {id: "holds"})
      : h("p", {class: "empty", id: "holds-empty"}, "No pending holds."));
    p.ready();
  } catch (e) {
    p.fail(e);
  }
}

function tailPage(book) {
  const p = new Page("tail", `Live tail: ${book}`, book);
  const status = h("p", {id: "tail-status", role: "status"}, "Connecting…");
  const lastSeen = h("span", {id: "tail-last"}, "none");
  const list = h("ol", {id: "tail", class: "tail", reversed: true});
  const stop = h("button", {type: "button", id: "tail-stop"}, "Pause");
  p.add(h("p", {}, "Events committed from now on, newest first. Last seq seen: ", lastSeen, "."),
    h("div", {class: "controls"}, stop), status, list);
  let last = null;
  let source = null;
  let stopped = false;
  let failures = 0;
  let timer = null;

  const onEvent = (event) => {
    const seq = Number(event.lastEventId);
    if (!Number.isSafeInteger(seq) || (last !== null && seq <= last)) return;
    last = seq;
    failures = 0;
    lastSeen.textContent = String(seq);
    let data = {};
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      data = {};
    }
    const what = event.type === "account_opened"
      ? [accountLink(book, data.name || "?"), ` opened (${data.kind || "?"})`]
      : [txLink(data.tx_id || "", (data.tx_id || "?").slice(0, 13) + "…"), ` ${data.status || ""} `,
        postingsSummary(data.postings)];
    list.prepend(h("li", {"data-seq": seq, "data-type": event.type},
      h("span", {class: "seq"}, `#${seq}`), " ", h("span", {class: "badge"}, event.type), " ", ...what));
    while (list.children.length > TAIL_EVENTS_MAX) list.lastElementChild.remove();
  };

  const close = () => {
    if (source) source.close();
    source = null;
    clearTimeout(timer);
  };

  // A new ticket and a new EventSource from the last seq seen: used when
  // the ticket expired (an `event: error` frame, or a reconnect refused
  // 401 that leaves the EventSource closed). The browser's own reconnects
  // (with Last-Event-ID) need nothing from us.
  const reopen = (why) => {
    close();
    if (stopped || !p.live) return;
    failures += 1;
    const wait = failures <= 1 ? 0 : Math.min(10000, 500 * 2 ** failures);
    status.textContent = `${why}; reconnecting from seq ${last ?? "now"}…`;
    timer = setTimeout(open, wait);
  };

  const open = async () => {
    if (stopped || !p.live) return;
    let ticket;
    try {
      ticket = await api("/v1/stream-tickets", {method: "POST", body: {book}});
    } catch (e) {
      if (!p.live) return;
      if (e instanceof ApiError && [401, 403, 404].includes(e.status)) {
        status.replaceChildren(errorBox(e, "Live tail"));
        main().dataset.state = "error";
        if (e.status === 401) p.fail(e);
        return;
      }
      reopen(`no ticket (${e.message})`);
      return;
    }
    if (stopped || !p.live) return;
    if (last === null) {
      // Start from the book's end as it is now, and always resume with
      // after_seq from there: a ticket that expires before the first event
      // then loses nothing either.
      try {
        const entry = (await api("/v1/books")).books.find((b) => b.book === book);
        last = entry ? entry.last_seq : 0;
        lastSeen.textContent = String(last);
      } catch (e) {
        reopen(`cannot read the book's end (${e.message})`);
        return;
      }
    }
    if (stopped || !p.live) return;
    const query = {ticket: ticket.ticket, after_seq: last};
    source = new EventSource(apiPath(["books", book, "stream"], query));
    const mine = source;
    source.addEventListener("open", () => {
      failures = 0;
      status.textContent = `Connected: following from seq ${last}.`;
      status.dataset.state = "open";
      p.ready();
    });
    for (const type of ["transaction", "account_opened", "hold_expired"]) {
      source.addEventListener(type, onEvent);
    }
    source.addEventListener("shutdown", () => {
      status.textContent = "talead is shutting down; the browser will reconnect.";
    });
    source.addEventListener("error", (event) => {
      if (mine !== source) return;
      if (event.data) {
        let code = "error";
        try {
          code = JSON.parse(event.data).error || code;
        } catch (_) { /* keep "error" */ }
        reopen(`the stream ended (${code})`);
      } else if (source.readyState === EventSource.CLOSED) {
        reopen("the stream was refused");
      } else {
        status.textContent = "Connection lost; the browser is reconnecting…";
        status.dataset.state = "reconnecting";
      }
    });
  };

  stop.addEventListener("click", () => {
    if (stopped) {
      stopped = false;
      stop.textContent = "Pause";
      failures = 0;
      open();
    } else {
      stopped = true;
      close();
      stop.textContent = "Resume";
      status.textContent = `Paused after seq ${last ?? "none"}.`;
    }
  });
  cleanup = () => {
    stopped = true;
    close();
  };
  open();
}

async function checkpointPage(book) {
  const p = new Page("checkpoint", `Checkpoint: ${book}`, book);
  try {
    const cp = await api(apiPath(["books", book, "checkpoint"]));
    p.add(facts([
      ["Book", cp.book],
      ["Events covered (tree size)", String(cp.tree_size)],
      ["Merkle root", h("span", {class: "mono"}, cp.root_hash)],
      ["Signed at", cp.timestamp],
      ["Key id", h("span", {class: "mono"}, cp.key_id)],
      ["Signature", h("span", {class: "mono wrap"}, cp.signature)],
    ]));
    const result = h("div", {id: "verify-result", role: "status"});
    const button = h("button", {type: "button", id: "verify"}, "Verify in this browser");
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.replaceChildren(h("p", {}, "Verifying…"));
      result.className = "";
      try {
        await verifyCheckpoint(cp, result);
      } catch (e) {
        result.append(errorBox(e, "Verification"));
        result.className = "verdict bad";
        result.dataset.verdict = "error";
      } finally {
        button.disabled = false;
      }
    });
    p.add(h("p", {}, "Checks the Ed25519 signature against the server's keys (GET /v1/keys) with ",
      "WebCrypto, that the key id matches its key, and recomputes the Merkle root from the served ",
      "event hashes. The chain hashes themselves are checked by talea verify (docs/proofs.md)."),
    button, result);
    p.ready();
  } catch (e) {
    p.fail(e);
  }
}

/** Runs every check the browser can make on `cp`, listing each in `out`. */
async function verifyCheckpoint(cp, out) {
  const steps = h("ol", {class: "checks"});
  out.replaceChildren(steps);
  let ok = true;
  const step = (passed, text) => {
    ok = ok && passed;
    steps.append(h("li", {class: passed ? "ok" : "bad"}, passed ? "✔ " : "✘ ", text));
  };
  const {keys} = await api("/v1/keys");
  const key = (keys || []).find((k) => k.key_id === cp.key_id);
  step(Boolean(key), key ? `key ${cp.key_id} is one of the server's keys (${key.algorithm})`
    : `no key ${cp.key_id} in GET /v1/keys`);
  const publicKey = key && unhex(key.public_key, 32);
  const signature = unhex(cp.signature, 64);
  step(Boolean(publicKey), "the public key is 32 bytes of lowercase hex");
  step(Boolean(signature), "the signature is 64 bytes of lowercase hex");
  if (publicKey) {
    const id = hex(await crypto.subtle.digest("SHA-256", publicKey)).slice(0, 16);
    step(id === cp.key_id, `the key id is the first 8 bytes of SHA-256 of the key (${id})`);
  }
  if (publicKey && signature) {
    const message = new TextEncoder().encode(
      `talea-checkpoint v1\n${cp.book}\n${cp.tree_size}\n${cp.root_hash}\n${cp.timestamp}\n`);
    let valid = false;
    try {
      const imported = await crypto.subtle.importKey("raw", publicKey, {name: "Ed25519"}, false, ["verify"]);
      valid = await crypto.subtle.verify({name: "Ed25519"}, imported, signature, message);
      step(valid, valid ? "the Ed25519 signature is valid" : "the Ed25519 signature is NOT valid");
    } catch (e) {
      step(false, `this browser cannot verify Ed25519 (${e.message})`);
    }
  }
  if (cp.tree_size <= ROOT_CHECK_EVENTS_MAX) {
    const root = await merkleRoot(cp.book, cp.tree_size);
    step(root === cp.root_hash, root === cp.root_hash
      ? `the served hashes of events 1..${cp.tree_size} give the signed root`
      : `the served hashes of events 1..${cp.tree_size} give ${root}, not the signed root`);
  } else {
    steps.append(h("li", {}, `root not recomputed: more than ${ROOT_CHECK_EVENTS_MAX} events`));
  }
  const verdict = h("p", {class: "verdict-text"}, ok ? "✔ Checkpoint verified" : "✘ Checkpoint NOT verified");
  out.prepend(verdict);
  out.className = ok ? "verdict ok" : "verdict bad";
  out.dataset.verdict = ok ? "verified" : "failed";
}

async function sha256(...parts) {
  const total = parts.reduce((n, x) => n + x.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** RFC 9162's Merkle tree hash over the chain hashes of events 1..size (docs/proofs.md). */
async function merkleRoot(book, size) {
  const leaves = [];
  let after = 0;
  while (leaves.length < size) {
    const page = await api(apiPath(["books", book, "events"],
      {after_seq: after, limit: Math.min(1000, size - leaves.length)}));
    if (!page.events.length) break;
    for (const event of page.events) {
      const hash = unhex(event.hash, 32);
      if (!hash) throw new Error(`event ${event.seq} has no valid hash`);
      leaves.push(await sha256(new Uint8Array([0]), hash));
    }
    after = page.events[page.events.length - 1].seq;
  }
  if (leaves.length !== size) throw new Error(`only ${leaves.length} of ${size} events were served`);
  const node = async (lo, hi) => {
    if (hi - lo === 1) return leaves[lo];
    let k = 1;
    while (k * 2 < hi - lo) k *= 2;
    return sha256(new Uint8Array([1]), await node(lo, lo + k), await node(lo + k, hi));
  };
  return hex(await node(0, size));
}

// ---------------------------------------------------------------- start

// Counts what the Content-Security-Policy refused (none is expected: the
// console runs no inline script or style); the tests read the count.
document.addEventListener("securitypolicyviolation", () => {
  const seen = Number(document.body.dataset.cspViolations || 0);
  document.body.dataset.cspViolations = String(seen + 1);
});

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "#/";
    render();
  });
  window.addEventListener("hashchange", () => {
    render();
    focusMain();
  });
  render();
});
