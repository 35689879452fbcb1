// k6: hot-book write rate over HTTP.
//
// VUS clients (default 64) post balanced two-leg BTC transactions to ONE book
// for DURATION (default 30s), each with a unique idempotency key, as fast as
// talea answers (no think time). What it measures: successful commits per
// second (201s), their latency (p50/p95/p99), and the share of failures.
//
// Environment:
//   TALEA_URL    base URL              (default http://127.0.0.1:8080)
//   TALEA_TOKEN  a read-write token with access to BOOK and to POST /v1/assets
//   BOOK         the hot book          (default hot)
//   VUS          concurrent clients    (default 64)
//   DURATION     e.g. 30s, 2m          (default 30s)
//   RUN_ID       part of every idempotency key (default: time of setup())
//   SUMMARY      where to write the JSON summary (default: none, text only)
//
// Run: k6 run --no-usage-report -e TALEA_TOKEN=... loadtest/hot-book.js
// (loadtest/run-hot-book.sh does it all, against a fresh database.)
//
// setup() registers asset BTC (scale 8) and opens hot:a (asset, no
// min_balance) and hot:b (liability); 201 or 200 (already there, identical)
// are both fine, anything else aborts the run. Each iteration then posts
// debit hot:a / credit hot:b 0.00000001 BTC and checks for 201. Failures are
// counted, never retried: a retry would hide the rate the server sustains.
// A client that sees 20 transport errors in a row aborts the run.

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE = (__ENV.TALEA_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const TOKEN = __ENV.TALEA_TOKEN || '';
const BOOK = __ENV.BOOK || 'hot';
const VUS = parseInt(__ENV.VUS || '64', 10);
const DURATION = __ENV.DURATION || '30s';

export const options = {
  scenarios: {
    hot_book: {
      executor: 'constant-vus',
      vus: VUS,
      duration: DURATION,
      gracefulStop: '15s',
    },
  },
  setupTimeout: '60s',
  summaryTrendStats: ['avg', 'min', 'med', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'max'],
  // No think time and one connection per VU, kept alive.
  noConnectionReuse: false,
  thresholds: {
    // Reported, not a pass/fail gate of the benchmark itself.
    post_failed: [{ threshold: 'rate<0.01', abortOnFail: false }],
  },
};

const postOk = new Counter('posts_ok');
const postFailed = new Rate('post_failed');
const postOkDuration = new Trend('post_ok_duration', true);
const post4xx = new Counter('posts_4xx');
const post5xx = new Counter('posts_5xx');
const postTransport = new Counter('posts_transport_error');

const headers = {
  'Content-Type': 'application/json',
  Authorization: `Bearer ${TOKEN}`,
};

function expectCreatedOrExisting(res, what) {
  if (res.status !== 201 && res.status !== 200) {
    exec.test.abort(`setup: ${what} answered ${res.status}: ${res.body}`);
  }
}

export function setup() {
  if (!TOKEN) {
    exec.test.abort('TALEA_TOKEN is not set');
  }
  const health = http.get(`${BASE}/health`);
  if (health.status !== 200) {
    exec.test.abort(`GET ${BASE}/health answered ${health.status}: ${health.body}`);
  }
  expectCreatedOrExisting(
    http.post(`${BASE}/v1/assets`, JSON.stringify({ code: 'BTC', scale: 8, name: 'Bitcoin' }), { headers }),
    'POST /v1/assets BTC',
  );
  const accounts = [
    { name: 'hot:a', kind: 'asset' },
    { name: 'hot:b', kind: 'liability' },
  ];
  for (const account of accounts) {
    expectCreatedOrExisting(
      http.post(`${BASE}/v1/books/${BOOK}/accounts`, JSON.stringify(account), { headers }),
      `POST /v1/books/${BOOK}/accounts ${account.name}`,
    );
  }
  return { runId: __ENV.RUN_ID || `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}` };
}

let errorsLogged = 0;
// A dead server answers in microseconds: stop rather than spin on it.
let transportErrorsInARow = 0;
const MAX_TRANSPORT_ERRORS_IN_A_ROW = 20;

export default function (data) {
  const key = `hot-${data.runId}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  const body = JSON.stringify({
    idempotency_key: key,
    postings: [
      { account: 'hot:a', asset: 'BTC', debit: '0.00000001' },
      { account: 'hot:b', asset: 'BTC', credit: '0.00000001' },
    ],
  });
  const res = http.post(`${BASE}/v1/books/${BOOK}/transactions`, body, {
    headers,
    timeout: '30s',
    tags: { name: 'post_transaction' },
  });
  const ok = check(res, { 'status is 201': (r) => r.status === 201 });
  postFailed.add(!ok);
  if (res.status !== 0) transportErrorsInARow = 0;
  if (ok) {
    postOk.add(1);
    postOkDuration.add(res.timings.duration);
    return;
  }
  if (res.status === 0) {
    postTransport.add(1);
    transportErrorsInARow += 1;
    if (transportErrorsInARow >= MAX_TRANSPORT_ERRORS_IN_A_ROW) {
      exec.test.abort(`VU ${exec.vu.idInTest}: ${transportErrorsInARow} transport errors in a row (${res.error}): is talea down?`);
    }
  }
  else if (res.status >= 500) post5xx.add(1);
  else post4xx.add(1);
  if (errorsLogged < 3) {
    errorsLogged += 1;
    console.warn(`VU ${exec.vu.idInTest}: ${res.status} ${res.error || ''} ${String(res.body || '').slice(0, 300)}`);
  }
}

function metric(data, name, field, fallback = 0) {
  const m = data.metrics[name];
  if (!m || !m.values || m.values[field] === undefined) return fallback;
  return m.values[field];
}

export function handleSummary(data) {
  const durationS = data.state.testRunDurationMs / 1000;
  const ok = metric(data, 'posts_ok', 'count');
  const failedRate = metric(data, 'post_failed', 'rate');
  const attempts = metric(data, 'post_failed', 'passes') + metric(data, 'post_failed', 'fails');
  const summary = {
    scenario: 'hot-book',
    target: BASE,
    book: BOOK,
    vus: VUS,
    duration: DURATION,
    test_run_duration_s: durationS,
    posts_attempted: attempts,
    posts_ok: ok,
    // Successful posts per second over the whole run (k6's own rate).
    rate_ok_per_s: metric(data, 'posts_ok', 'rate'),
    http_reqs_per_s: metric(data, 'http_reqs', 'rate'),
    error_rate: failedRate,
    errors: {
      http_4xx: metric(data, 'posts_4xx', 'count'),
      http_5xx: metric(data, 'posts_5xx', 'count'),
      transport: metric(data, 'posts_transport_error', 'count'),
    },
    // Latency of the successful posts, in milliseconds.
    latency_ms: {
      avg: metric(data, 'post_ok_duration', 'avg', null),
      p50: metric(data, 'post_ok_duration', 'p(50)', null),
      p90: metric(data, 'post_ok_duration', 'p(90)', null),
      p95: metric(data, 'post_ok_duration', 'p(95)', null),
      p99: metric(data, 'post_ok_duration', 'p(99)', null),
      max: metric(data, 'post_ok_duration', 'max', null),
    },
  };
  const f = (x) => (x === null || x === undefined ? 'n/a' : Number(x).toFixed(2));
  const text = [
    '',
    `hot-book: ${VUS} VUs for ${DURATION} against ${BASE} (book ${BOOK})`,
    `  successful posts: ${ok} of ${attempts}  (${f(summary.rate_ok_per_s)}/s)`,
    `  latency of 201s (ms): p50 ${f(summary.latency_ms.p50)}  p95 ${f(summary.latency_ms.p95)}  p99 ${f(summary.latency_ms.p99)}  max ${f(summary.latency_ms.max)}`,
    `  error rate: ${(failedRate * 100).toFixed(3)}%  (4xx ${summary.errors.http_4xx}, 5xx ${summary.errors.http_5xx}, transport ${summary.errors.transport})`,
    '',
  ].join('\n');
  const out = { stdout: text };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(summary, null, 2) + '\n';
  return out;
}
