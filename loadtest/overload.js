// k6: overload. Run it against a talead with small limits (the benchmark and
// the smoke run start one with TALEA_MAX_INFLIGHT=8 and
// TALEA_WRITE_QUEUE_DEPTH=2), so that a modest open-model rate exceeds them:
//
//   scenario  rate         request
//   flood     RATE/s       POST a transaction to one book (`overload-<RUN_ID>`)
//   reads     READ_RATE/s  GET a page of 200 of that book's transactions
//   health    HEALTH_RATE  GET /health
//
// What must hold:
// - every 429 and 503 carries `Retry-After` (whole seconds >= 1) and the
//   error `overloaded` (a 429 may be `rate_limited`): `overload_retry_after_missing`
//   and `overload_wrong_error`, threshold 0;
// - /health answers 503 (busy) at some point while the flood runs, and 200
//   otherwise: `health_busy` > 0;
// - the server sheds (`overload_shed` > 0: both 429 and 503 when
//   REQUIRE_BOTH=1, the default) and answers nothing but 200, 201, 429, 503:
//   `overload_unexpected_status`, threshold 0.
//
// In this script's summary a kind's `succeeded` counts every answer expected
// under overload (200, 201, 429, 503); the overload_* counters split them.
//
// Environment (besides common.js's): RATE [1000], READ_RATE [300],
// HEALTH_RATE [20], VUS at most per scenario [200], SEED_TXS 1..=10000 [300],
// REQUIRE_BOTH 0|1 [1].
//
//   k6 run --no-usage-report -e TALEA_TOKEN=... loadtest/overload.js

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  BASE, PAIR, RATE_MAX, SUMMARY_TREND_STATS, VUS_MAX, arrivalScenario, batchOrAbort, counter, envInt,
  kindThresholds, logFailure, newRunId, openAccounts, params, postTx, setupAsset, summaryOutput, transfer,
} from './common.js';

const RATE = envInt('RATE', 1000, 1, RATE_MAX);
const READ_RATE = envInt('READ_RATE', 300, 1, RATE_MAX);
const HEALTH_RATE = envInt('HEALTH_RATE', 20, 1, 1000);
const VUS = envInt('VUS', 200, 1, VUS_MAX);
const SEED_TXS = envInt('SEED_TXS', 300, 1, 10000);
const REQUIRE_BOTH = envInt('REQUIRE_BOTH', 1, 0, 1) === 1;
// The answers overload may give; anything else fails `http_req_failed`.
const EXPECTED = http.expectedStatuses(200, 201, 429, 503);

export const options = {
  scenarios: {
    flood: arrivalScenario(RATE, VUS, { exec: 'flood' }),
    reads: arrivalScenario(READ_RATE, VUS, { exec: 'reads' }),
    health: arrivalScenario(HEALTH_RATE, Math.min(VUS, 50), { exec: 'health' }),
  },
  setupTimeout: '120s',
  summaryTrendStats: SUMMARY_TREND_STATS,
  // No dropped-iterations threshold: an overloaded server is the point.
  thresholds: Object.assign(kindThresholds(['post', 'read', 'health']), {
    overload_retry_after_missing: ['count==0'],
    overload_wrong_error: ['count==0'],
    overload_unexpected_status: ['count==0'],
    overload_shed: ['count>0'],
    health_busy: ['count>0'],
  }, REQUIRE_BOTH ? { overload_429: ['count>0'], overload_503: ['count>0'] } : {}),
};

const created = new Counter('overload_created');
const shed = new Counter('overload_shed');
const shed429 = new Counter('overload_429');
const shed503 = new Counter('overload_503');
const retryAfterMissing = new Counter('overload_retry_after_missing');
const wrongError = new Counter('overload_wrong_error');
const unexpected = new Counter('overload_unexpected_status');
const healthOk = new Counter('health_ok');
const healthBusy = new Counter('health_busy');

export function setup() {
  setupAsset();
  const runId = newRunId();
  const book = `overload-${runId}`;
  openAccounts([book], PAIR);
  const posts = Array.from({ length: SEED_TXS }, (_, i) => [
    'POST', `${BASE}/v1/books/${book}/transactions`, transfer(`seed-${runId}-${i}`, 1),
  ]);
  // One at a time: the server's limits are small on purpose.
  batchOrAbort(posts, [201], 'seeding transactions', 1);
  return { runId, book };
}

function errorCode(res) {
  try {
    return res.json().error;
  } catch (e) {
    return null;
  }
}

// A shed answer: Retry-After in whole seconds >= 1, and the right error.
function checkShed(kind, res) {
  shed.add(1, { kind });
  if (res.status === 429) shed429.add(1, { kind });
  else shed503.add(1, { kind });
  const retryAfter = res.headers['Retry-After'];
  const hasRetryAfter = retryAfter !== undefined && /^[1-9][0-9]*$/.test(retryAfter);
  const code = errorCode(res);
  const rightError = code === 'overloaded' || (res.status === 429 && code === 'rate_limited');
  check(res, {
    [`${res.status} carries Retry-After`]: () => hasRetryAfter,
    [`${res.status} says overloaded`]: () => rightError,
  });
  if (!hasRetryAfter) retryAfterMissing.add(1, { kind, status: String(res.status) });
  if (!rightError) wrongError.add(1, { kind, status: String(res.status) });
  if (!hasRetryAfter || !rightError) logFailure(kind, res);
}

function outcome(kind, res, okStatus) {
  if (res.status === okStatus) return true;
  if (res.status === 429 || res.status === 503) {
    checkShed(kind, res);
    return false;
  }
  unexpected.add(1, { kind, status: String(res.status) });
  logFailure(kind, res);
  return false;
}

export function flood(data) {
  const n = exec.scenario.iterationInTest;
  const res = postTx(data.book, transfer(`flood-${data.runId}-${n}`, 1), 'post', { responseCallback: EXPECTED });
  if (outcome('post', res, 201)) created.add(1);
}

export function reads(data) {
  const n = exec.scenario.iterationInTest;
  const after = (n * 7919) % SEED_TXS;
  const res = http.get(
    `${BASE}/v1/books/${data.book}/transactions?after_seq=${after}&limit=200`,
    params('read', { responseCallback: EXPECTED }),
  );
  outcome('read', res, 200);
}

export function health() {
  const res = http.get(`${BASE}/health`, { tags: { kind: 'health', name: 'health' }, responseCallback: EXPECTED, timeout: '30s' });
  if (res.status === 200) healthOk.add(1);
  else if (res.status === 503) {
    healthBusy.add(1);
    checkShed('health', res);
  } else {
    unexpected.add(1, { kind: 'health', status: String(res.status) });
    logFailure('health', res);
  }
}

export function handleSummary(data) {
  const c = {
    created_201: counter(data, 'overload_created'),
    shed: counter(data, 'overload_shed'),
    shed_429: counter(data, 'overload_429'),
    shed_503: counter(data, 'overload_503'),
    retry_after_missing: counter(data, 'overload_retry_after_missing'),
    wrong_error: counter(data, 'overload_wrong_error'),
    unexpected_status: counter(data, 'overload_unexpected_status'),
    health_ok: counter(data, 'health_ok'),
    health_busy: counter(data, 'health_busy'),
  };
  const out = summaryOutput(data, 'overload', ['post', 'read', 'health'], Object.assign(
    { rate_asked: RATE, read_rate_asked: READ_RATE, health_rate_asked: HEALTH_RATE, vus: VUS },
    c,
  ));
  out.stdout += `  overload: ${c.created_201} posts committed, shed ${c.shed} (429: ${c.shed_429}, 503: ${c.shed_503}), ` +
    `Retry-After missing ${c.retry_after_missing}, wrong error ${c.wrong_error}, unexpected ${c.unexpected_status}; ` +
    `/health ok ${c.health_ok}, busy ${c.health_busy}\n`;
  return out;
}
