// k6: what every talea load script shares. Not a script itself.
//
// - settings read from the environment, checked against named limits (a bad
//   value aborts the run before any load is sent);
// - the open-model scenario (`constant-arrival-rate`) every script uses, and
//   thresholds per request kind (the `kind` tag on every request);
// - setup helpers: register BTC, open accounts in many books at once, seed
//   transactions;
// - the JSON summary written by `handleSummary` (to $SUMMARY) and its text.
//
// Environment common to every script:
//   TALEA_URL          base URL                                  [http://127.0.0.1:8080]
//   TALEA_TOKEN        a rw token with access to every book and to POST /v1/assets
//   DURATION           length of the scenario: 20, 20s, 2m       [20s]
//   RUN_ID             part of book names and idempotency keys   [time of the run]
//   SUMMARY            file the JSON summary goes to             [none: text only]
//   P99_MS             threshold: p99 latency of each kind, ms   [500]
//   ERROR_RATE_MAX     threshold: failed share of each kind      [0.01]
//   DROPPED_SHARE_MAX  threshold: dropped iterations, share of the scheduled ones [0.01]

import http from 'k6/http';
import exec from 'k6/execution';

export const BASE = (__ENV.TALEA_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const TOKEN = __ENV.TALEA_TOKEN || '';
export const HEADERS = {
  'Content-Type': 'application/json',
  Authorization: `Bearer ${TOKEN}`,
};

// Named limits of the settings. A scenario longer than an hour or a rate
// above 100,000/s is a typo on this kind of machine, not a benchmark.
export const DURATION_S_MAX = 3600;
export const RATE_MAX = 100000;
export const VUS_MAX = 5000;
export const BOOKS_MAX = 1000;

// A setting that does not parse is a bad run: stop before sending load.
// (exec.test.abort is unavailable in the init context, hence throw.)
function bad(name, value, why) {
  throw new Error(`${name}=${JSON.stringify(value)}: ${why}`);
}

export function envInt(name, fallback, min, max) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw)) bad(name, raw, 'not a whole number');
  const n = parseInt(raw, 10);
  if (n < min || n > max) bad(name, raw, `must be in ${min}..=${max}`);
  return n;
}

export function envFloat(name, fallback, min, max) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(raw)) bad(name, raw, 'not a decimal number');
  const n = parseFloat(raw);
  if (n < min || n > max) bad(name, raw, `must be in ${min}..=${max}`);
  return n;
}

// "20", "20s", "2m", "1h" -> seconds.
export function envDurationS(name, fallback) {
  const raw = __ENV[name] || fallback;
  const m = /^([0-9]+)(s|m|h)?$/.exec(raw);
  if (!m) bad(name, raw, 'must look like 20, 20s, 2m or 1h');
  const n = parseInt(m[1], 10) * ({ s: 1, m: 60, h: 3600 }[m[2] || 's']);
  if (n < 1 || n > DURATION_S_MAX) bad(name, raw, `must be between 1s and ${DURATION_S_MAX}s`);
  return n;
}

export const DURATION_S = envDurationS('DURATION', '20s');
export const P99_MS = envFloat('P99_MS', 500, 1, 600000);
export const ERROR_RATE_MAX = envFloat('ERROR_RATE_MAX', 0.01, 0, 1);
export const DROPPED_SHARE_MAX = envFloat('DROPPED_SHARE_MAX', 0.01, 0, 1);

// Part of book names (at most 64 characters) and keys: short, lowercase.
if (__ENV.RUN_ID && !/^[a-z0-9]{1,24}$/.test(__ENV.RUN_ID)) bad('RUN_ID', __ENV.RUN_ID, 'must match [a-z0-9]{1,24}');

// Called by setup(), which hands the result to every VU.
export function newRunId() {
  if (__ENV.RUN_ID) return __ENV.RUN_ID;
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

// An open-model scenario: `rate` iterations per second whatever the server's
// latency, from at most `maxVUs` clients; iterations that find no free
// client are dropped and counted (`dropped_iterations`).
export function arrivalScenario(rate, maxVUs, extra = {}) {
  return Object.assign(
    {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: `${DURATION_S}s`,
      preAllocatedVUs: Math.min(maxVUs, Math.max(1, Math.ceil(rate / 10))),
      maxVUs,
      gracefulStop: '15s',
    },
    extra,
  );
}

// Thresholds for one request kind: p99 of the successful requests and the
// failed share, on the `kind` tag. Every kind listed here also appears in the
// summary (a submetric exists only when a threshold names it).
export function kindThresholds(kinds, p99Ms = P99_MS, errorRateMax = ERROR_RATE_MAX) {
  const t = {};
  for (const kind of kinds) {
    t[`http_req_duration{kind:${kind},expected_response:true}`] = [`p(99)<${p99Ms}`];
    t[`http_req_failed{kind:${kind}}`] = [`rate<=${errorRateMax}`];
    t[`http_reqs{kind:${kind}}`] = ['count>=0'];
    t[`http_reqs{kind:${kind},expected_response:true}`] = ['count>=0'];
  }
  return t;
}

// The dropped-iterations threshold of a scenario scheduled at `rate` for
// DURATION_S: at most DROPPED_SHARE_MAX of the scheduled iterations.
export function droppedThreshold(rate) {
  return { dropped_iterations: [`count<=${Math.floor(rate * DURATION_S * DROPPED_SHARE_MAX)}`] };
}

export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'max'];

export function params(kind, extra = {}) {
  return Object.assign({ headers: HEADERS, timeout: '30s', tags: { kind, name: kind } }, extra);
}

export function abortUnless(res, statuses, what) {
  if (!statuses.includes(res.status)) {
    exec.test.abort(`${what} answered ${res.status}: ${String(res.body || res.error).slice(0, 300)}`);
  }
}

// Checks the server and the token, registers BTC (scale 8).
export function setupAsset() {
  if (!TOKEN) exec.test.abort('TALEA_TOKEN is not set');
  const health = http.get(`${BASE}/health`, { tags: { kind: 'setup' } });
  abortUnless(health, [200], `GET ${BASE}/health`);
  abortUnless(
    http.post(`${BASE}/v1/assets`, JSON.stringify({ code: 'BTC', scale: 8, name: 'Bitcoin' }), params('setup')),
    [200, 201],
    'POST /v1/assets BTC',
  );
}

// Sends requests [method, url, body] in parallel chunks; aborts on any status
// outside `ok`. Returns the responses in order.
export function batchOrAbort(requests, ok, what, chunk = 32) {
  const out = [];
  for (let i = 0; i < requests.length; i += chunk) {
    const part = requests.slice(i, i + chunk).map(([method, url, body]) => ({
      method,
      url,
      body: body === undefined ? null : JSON.stringify(body),
      params: params('setup'),
    }));
    const res = http.batch(part);
    res.forEach((r, j) => abortUnless(r, ok, `${what} (${part[j].method} ${part[j].url})`));
    out.push(...res);
  }
  return out;
}

// Opens `accounts` ([{name, kind}]) in every book of `books`.
export function openAccounts(books, accounts) {
  const requests = [];
  for (const book of books) {
    for (const account of accounts) requests.push(['POST', `${BASE}/v1/books/${book}/accounts`, account]);
  }
  batchOrAbort(requests, [200, 201], 'opening accounts');
}

// The two accounts every write goes through: hot:a (asset) and hot:b (liability).
export const PAIR = [
  { name: 'hot:a', kind: 'asset' },
  { name: 'hot:b', kind: 'liability' },
];

// A balanced two-leg transaction of `sats` satoshis from `from` to `to`.
export function transfer(key, sats, from = 'hot:a', to = 'hot:b') {
  const amount = (sats / 1e8).toFixed(8);
  return {
    idempotency_key: key,
    postings: [
      { account: from, asset: 'BTC', debit: amount },
      { account: to, asset: 'BTC', credit: amount },
    ],
  };
}

export function postTx(book, body, kind = 'post', extra = {}) {
  return http.post(`${BASE}/v1/books/${book}/transactions`, JSON.stringify(body), params(kind, extra));
}

// Logs the first few failures of a VU, so that a failing run says why.
let failuresLogged = 0;
export function logFailure(kind, res) {
  if (failuresLogged < 3) {
    failuresLogged += 1;
    console.warn(`VU ${exec.vu.idInTest} ${kind}: ${res.status} ${res.error || ''} ${String(res.body || '').slice(0, 300)}`);
  }
}

function value(data, metric, field, fallback = null) {
  const m = data.metrics[metric];
  if (!m || !m.values || m.values[field] === undefined) return fallback;
  return m.values[field];
}

// Figures of one request kind from the end-of-test data.
export function kindFigures(data, kind, seconds) {
  const ok = `http_req_duration{kind:${kind},expected_response:true}`;
  const requests = value(data, `http_reqs{kind:${kind}}`, 'count', 0);
  const succeeded = value(data, `http_reqs{kind:${kind},expected_response:true}`, 'count', 0);
  return {
    requests,
    succeeded,
    succeeded_per_s: seconds > 0 ? succeeded / seconds : null,
    failed_rate: value(data, `http_req_failed{kind:${kind}}`, 'rate', 0),
    // Latency of the successful requests, client side, milliseconds.
    latency_ms: {
      avg: value(data, ok, 'avg'),
      p50: value(data, ok, 'p(50)'),
      p90: value(data, ok, 'p(90)'),
      p99: value(data, ok, 'p(99)'),
      p99_9: value(data, ok, 'p(99.9)'),
      max: value(data, ok, 'max'),
    },
  };
}

// Every threshold of the run and whether it held.
export function thresholdResults(data) {
  const out = {};
  let allOk = true;
  for (const [name, metric] of Object.entries(data.metrics)) {
    if (!metric.thresholds) continue;
    for (const [expr, result] of Object.entries(metric.thresholds)) {
      out[`${name}: ${expr}`] = result.ok;
      allOk = allOk && result.ok;
    }
  }
  return { thresholds: out, thresholds_ok: allOk };
}

export function counter(data, name) {
  return value(data, name, 'count', 0);
}

const f = (x) => (x === null || x === undefined ? 'n/a' : Number(x).toFixed(2));

// The handleSummary result: the JSON document to $SUMMARY and a short text
// on stdout. `doc` holds the script's own fields; `kinds` its request kinds.
export function summaryOutput(data, script, kinds, doc) {
  const figures = {};
  for (const kind of kinds) figures[kind] = kindFigures(data, kind, DURATION_S);
  const full = Object.assign(
    {
      script,
      target: BASE,
      duration_s: DURATION_S,
      test_run_duration_s: data.state.testRunDurationMs / 1000,
      dropped_iterations: counter(data, 'dropped_iterations'),
      kinds: figures,
    },
    doc,
    thresholdResults(data),
  );
  const lines = ['', `${script}: ${DURATION_S}s against ${BASE}`];
  for (const [kind, k] of Object.entries(figures)) {
    const l = k.latency_ms;
    lines.push(
      `  ${kind}: ${k.succeeded} ok of ${k.requests} (${f(k.succeeded_per_s)}/s), failed ${(k.failed_rate * 100).toFixed(2)}%,` +
        ` ms p50 ${f(l.p50)} p99 ${f(l.p99)} p99.9 ${f(l.p99_9)} max ${f(l.max)}`,
    );
  }
  lines.push(`  dropped iterations: ${full.dropped_iterations}`);
  for (const [name, ok] of Object.entries(full.thresholds)) {
    if (!ok) lines.push(`  threshold FAILED: ${name}`);
  }
  lines.push(`  thresholds: ${full.thresholds_ok ? 'all held' : 'some FAILED'}`, '');
  const out = { stdout: lines.join('\n') };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(full, null, 2) + '\n';
  return out;
}
