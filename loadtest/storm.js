// k6: an idempotent retry storm. The same keys from many clients at once:
// iteration n posts key floor(n / COPIES) of a fresh book (`storm-<RUN_ID>`),
// so each key arrives COPIES times from different clients within
// COPIES / RATE seconds, with the identical body. A 408, 429 or 503 is
// retried with the same key after its Retry-After (at most MAX_RETRIES times),
// as the SDK does.
//
// What must hold:
// - every reply is 201 (the one that applied it) or 200 with
//   "deduplicated": true, and equals the stored commit of its key
//   (GET /v1/transactions/{tx_id}, `deduplicated` aside): so every reply of a
//   key is identical; mismatches count in `storm_reply_mismatch` (threshold 0);
// - every key is in the book exactly once: teardown() reads the whole book and
//   counts keys applied twice (`storm_key_applied_twice`, threshold 0) and the
//   keys committed (`storm_keys_committed`); the summary says `applied_once`
//   when, besides, as many 201s came back as keys were committed;
// - no request stays unanswered after its retries (`storm_unresolved`, 0).
//
// Environment (besides common.js's): RATE posts/s [100], COPIES 2..=256 [16],
// MAX_RETRIES 0..=20 [5], VUS at most [256].
//
//   k6 run --no-usage-report -e TALEA_TOKEN=... loadtest/storm.js

import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  BASE, PAIR, RATE_MAX, SUMMARY_TREND_STATS, VUS_MAX, arrivalScenario, counter, droppedThreshold, envInt,
  kindThresholds, logFailure, newRunId, openAccounts, params, postTx, setupAsset, summaryOutput, transfer,
} from './common.js';

const RATE = envInt('RATE', 100, 1, RATE_MAX);
const VUS = envInt('VUS', 256, 1, VUS_MAX);
const COPIES = envInt('COPIES', 16, 2, 256);
const MAX_RETRIES = envInt('MAX_RETRIES', 5, 0, 20);
// A Retry-After longer than this is waited only this long (seconds).
const RETRY_AFTER_S_MAX = 5;
const PAGE_LIMIT = 1000;
// teardown() reads at most this many pages (PAGE_LIMIT transactions each).
const TEARDOWN_PAGES_MAX = 10000;

export const options = {
  scenarios: { storm: arrivalScenario(RATE, VUS) },
  setupTimeout: '60s',
  teardownTimeout: '300s',
  summaryTrendStats: SUMMARY_TREND_STATS,
  thresholds: Object.assign(kindThresholds(['post', 'verify']), droppedThreshold(RATE), {
    storm_reply_mismatch: ['count==0'],
    storm_key_applied_twice: ['count==0'],
    storm_unresolved: ['count==0'],
  }),
};

const created = new Counter('storm_created');
const deduplicated = new Counter('storm_deduplicated');
const retries = new Counter('storm_retries');
const mismatch = new Counter('storm_reply_mismatch');
const unresolved = new Counter('storm_unresolved');
const appliedTwice = new Counter('storm_key_applied_twice');
const keysCommitted = new Counter('storm_keys_committed');

export function setup() {
  setupAsset();
  const runId = newRunId();
  const book = `storm-${runId}`;
  openAccounts([book], PAIR);
  return { runId, book };
}

// JSON with object keys sorted at every level, so that equal values compare
// equal whatever the order the server wrote their keys in.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

// A commit without the field that differs by design between the first reply
// and the others.
function comparable(j) {
  const copy = Object.assign({}, j);
  delete copy.deduplicated;
  return canonical(copy);
}

function retryAfterS(res) {
  const raw = res.headers['Retry-After'];
  const n = raw && /^[0-9]+$/.test(raw) ? parseInt(raw, 10) : 1;
  return Math.min(RETRY_AFTER_S_MAX, Math.max(0, n));
}

export default function (data) {
  const k = Math.floor(exec.scenario.iterationInTest / COPIES);
  const key = `storm-${data.runId}-${k}`;
  const body = transfer(key, k + 1);
  let res = postTx(data.book, body);
  for (let attempt = 0; attempt < MAX_RETRIES && [0, 408, 429, 503].includes(res.status); attempt++) {
    retries.add(1);
    sleep(retryAfterS(res) + Math.random() * 0.1);
    res = postTx(data.book, body);
  }
  if (res.status !== 201 && res.status !== 200) {
    unresolved.add(1);
    logFailure('post', res);
    return;
  }
  let reply;
  try {
    reply = res.json();
  } catch (e) {
    mismatch.add(1);
    logFailure('post', res);
    return;
  }
  if (res.status === 201) created.add(1);
  else deduplicated.add(1);
  const deduplicatedAsExpected = reply.deduplicated === (res.status === 200);
  const stored = http.get(`${BASE}/v1/transactions/${reply.tx_id}`, params('verify'));
  let same = false;
  try {
    same = stored.status === 200 && reply.idempotency_key === key && comparable(stored.json()) === comparable(reply);
  } catch (e) {
    same = false;
  }
  if (!same || !deduplicatedAsExpected) {
    mismatch.add(1);
    logFailure('verify', stored);
  }
}

// Reads the whole book: each key of the run must be there once.
export function teardown(data) {
  const seen = {};
  let after = 0;
  for (let page = 0; page < TEARDOWN_PAGES_MAX; page++) {
    const res = http.get(
      `${BASE}/v1/books/${data.book}/transactions?after_seq=${after}&limit=${PAGE_LIMIT}`,
      params('teardown'),
    );
    if (res.status !== 200) {
      console.error(`teardown: GET transactions answered ${res.status}`);
      unresolved.add(1);
      return;
    }
    const j = res.json();
    for (const tx of j.transactions) seen[tx.idempotency_key] = (seen[tx.idempotency_key] || 0) + 1;
    if (j.next_after_seq === null || j.next_after_seq === undefined) break;
    after = j.next_after_seq;
  }
  let keys = 0;
  for (const count of Object.values(seen)) {
    keys += 1;
    if (count > 1) appliedTwice.add(1);
  }
  keysCommitted.add(keys);
}

export function handleSummary(data) {
  const c = {
    created_201: counter(data, 'storm_created'),
    deduplicated_200: counter(data, 'storm_deduplicated'),
    retries: counter(data, 'storm_retries'),
    reply_mismatches: counter(data, 'storm_reply_mismatch'),
    unresolved: counter(data, 'storm_unresolved'),
    keys_committed: counter(data, 'storm_keys_committed'),
    keys_applied_twice: counter(data, 'storm_key_applied_twice'),
  };
  const appliedOnce = c.keys_applied_twice === 0 && c.reply_mismatches === 0 && c.unresolved === 0 &&
    c.keys_committed > 0 && c.created_201 === c.keys_committed;
  const out = summaryOutput(data, 'storm', ['post', 'verify'], Object.assign(
    { rate_asked: RATE, vus: VUS, copies_per_key: COPIES, max_retries: MAX_RETRIES, applied_once: appliedOnce },
    c,
  ));
  out.stdout += `  storm: ${c.keys_committed} keys committed, ${c.created_201} created (201), ` +
    `${c.deduplicated_200} deduplicated (200), ${c.retries} retries, ${c.reply_mismatches} mismatches, ` +
    `${c.keys_applied_twice} applied twice: ${appliedOnce ? 'every key applied once, replies identical' : 'FAILED'}\n`;
  return out;
}
