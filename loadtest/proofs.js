// k6: proofs of a large book (issue 18, item 8: under 10 ms at the 99th
// percentile for a book of 1,000,000 events). The book BOOK must exist with
// at least SIZE events (loadtest/run-proofs.sh writes one). setup() asks
// once for the checkpoint (which builds the book's tree in the server and
// is timed apart, as `tree_build_ms`); then RATE requests/s of two kinds
// (the `kind` tag):
//
//   kind          share  request
//   inclusion     1/2    GET /v1/books/B/proofs/inclusion?seq=<random>&tree_size=SIZE
//   consistency   1/2    GET /v1/books/B/proofs/consistency?from=<random>&to=SIZE
//
// Each answer must be 200 with a proof of the expected length (⌈log2 SIZE⌉
// hashes at most); a wrong body counts in `proof_body_wrong`.
//
// Environment (besides common.js's): BOOK, SIZE (1..=10^9), RATE [500],
// VUS at most [64]; P99_MS [10].

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  BASE, P99_MS, RATE_MAX, SUMMARY_TREND_STATS, VUS_MAX, arrivalScenario, droppedThreshold, envInt,
  kindThresholds, logFailure, params, summaryOutput,
} from './common.js';

const BOOK = __ENV.BOOK || '';
const SIZE = envInt('SIZE', 1000000, 1, 1000000000);
const RATE = envInt('RATE', 500, 1, RATE_MAX);
const VUS = envInt('VUS', 64, 1, VUS_MAX);
const KINDS = ['inclusion', 'consistency'];
const MAX_PATH = Math.ceil(Math.log2(SIZE)) + 1;
// The target, 10 ms, unless P99_MS says otherwise (the smoke run's debug build).
const PROOF_P99_MS = __ENV.P99_MS ? P99_MS : 10;

export const options = {
  scenarios: { proofs: arrivalScenario(RATE, VUS) },
  setupTimeout: '600s',
  summaryTrendStats: SUMMARY_TREND_STATS,
  thresholds: Object.assign(kindThresholds(KINDS, PROOF_P99_MS), droppedThreshold(RATE), {
    proof_body_wrong: ['count==0'],
  }),
};

const bodyWrong = new Counter('proof_body_wrong');

export function setup() {
  if (!BOOK) exec.test.abort('BOOK is not set');
  const started = Date.now();
  const res = http.get(`${BASE}/v1/books/${BOOK}/proofs/inclusion?seq=1&tree_size=${SIZE}`,
    params('warmup', { timeout: '600s' }));
  if (res.status !== 200) exec.test.abort(`warm-up answered ${res.status}: ${String(res.body).slice(0, 300)}`);
  return { tree_build_ms: Date.now() - started };
}

function seq() {
  return 1 + Math.floor(Math.random() * SIZE);
}

export default function () {
  const n = exec.scenario.iterationInTest;
  const kind = KINDS[n % 2];
  const url = kind === 'inclusion'
    ? `${BASE}/v1/books/${BOOK}/proofs/inclusion?seq=${seq()}&tree_size=${SIZE}`
    : `${BASE}/v1/books/${BOOK}/proofs/consistency?from=${seq()}&to=${SIZE}`;
  const res = http.get(url, params(kind));
  if (res.status !== 200) {
    logFailure(kind, res);
    return;
  }
  const body = res.json();
  const path = kind === 'inclusion' ? body.audit_path : body.proof;
  const ok = check(body, {
    'a proof of the tree size': (b) => (b.tree_size === SIZE || b.to === SIZE) && Array.isArray(path) && path.length <= 2 * MAX_PATH,
  });
  if (!ok) bodyWrong.add(1);
}

export function handleSummary(data) {
  return summaryOutput(data, 'proofs.js', KINDS, {
    book: BOOK,
    size: SIZE,
    tree_build_ms: data.setup_data ? data.setup_data.tree_build_ms : null,
  });
}
