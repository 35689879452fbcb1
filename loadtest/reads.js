// k6: the read mix, open model. setup() seeds one book (`reads-<RUN_ID>`)
// with ACCOUNTS accounts and SEED_TXS transactions between them, and keeps
// the commit time of the middle one as the `as_of` point; then RATE reads/s
// of these kinds (the `kind` tag; each has its own thresholds):
//
//   kind            share  request
//   balance         6/20   GET /v1/books/B/accounts/A            (current balances)
//   balance_as_of   4/20   GET /v1/books/B/accounts/A/balances?as_of=T
//   trial_balance   3/20   GET /v1/books/B/trial-balance[?as_of=T] (every other one)
//   tx_page         3/20   GET /v1/books/B/transactions?after_seq=N&limit=100
//   events_page     2/20   GET /v1/books/B/events?after_seq=N&limit=100
//   postings_page   2/20   GET /v1/books/B/accounts/A/postings?after_seq=N&limit=100
//
// Every answer must be 200 with the expected shape (a trial balance must say
// balanced; a page must hold items); a wrong body counts in `read_body_wrong`
// (threshold: none).
//
// Environment (besides common.js's): RATE reads/s [200], VUS at most [256],
// ACCOUNTS 2..=100 [8], SEED_TXS 1..=10000 [200].
//
//   k6 run --no-usage-report -e TALEA_TOKEN=... loadtest/reads.js

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  BASE, RATE_MAX, SUMMARY_TREND_STATS, VUS_MAX, arrivalScenario, batchOrAbort, counter, droppedThreshold,
  envInt, kindThresholds, logFailure, newRunId, openAccounts, params, setupAsset, summaryOutput, transfer,
} from './common.js';

const RATE = envInt('RATE', 200, 1, RATE_MAX);
const VUS = envInt('VUS', 256, 1, VUS_MAX);
const ACCOUNTS = envInt('ACCOUNTS', 8, 2, 100);
const SEED_TXS = envInt('SEED_TXS', 200, 1, 10000);
const KINDS = ['balance', 'balance_as_of', 'trial_balance', 'tx_page', 'events_page', 'postings_page'];
// Which kind iteration n runs: n % 20 indexes this table (the shares above).
const MIX = [].concat(
  Array(6).fill('balance'),
  Array(4).fill('balance_as_of'),
  Array(3).fill('trial_balance'),
  Array(3).fill('tx_page'),
  Array(2).fill('events_page'),
  Array(2).fill('postings_page'),
);

export const options = {
  scenarios: { reads: arrivalScenario(RATE, VUS) },
  setupTimeout: '300s',
  summaryTrendStats: SUMMARY_TREND_STATS,
  thresholds: Object.assign(
    kindThresholds(KINDS),
    droppedThreshold(RATE),
    { read_body_wrong: ['count==0'] },
  ),
};

const bodyWrong = new Counter('read_body_wrong');

function accountName(i) {
  return `r:${i}`;
}

export function setup() {
  setupAsset();
  const runId = newRunId();
  const book = `reads-${runId}`;
  const accounts = Array.from({ length: ACCOUNTS }, (_, i) => ({
    name: accountName(i),
    kind: i % 2 === 0 ? 'asset' : 'liability',
  }));
  openAccounts([book], accounts);
  // Transaction i moves i+1 satoshis from account i % ACCOUNTS to the next.
  const posts = Array.from({ length: SEED_TXS }, (_, i) => [
    'POST',
    `${BASE}/v1/books/${book}/transactions`,
    transfer(`seed-${runId}-${i}`, i + 1, accountName(i % ACCOUNTS), accountName((i + 1) % ACCOUNTS)),
  ]);
  const res = batchOrAbort(posts, [201], 'seeding transactions');
  const middle = res[Math.floor(res.length / 2)].json();
  const lastSeq = res[res.length - 1].json().seq;
  return { book, asOf: middle.committed_at, lastSeq };
}

function pagesPoint(data, n) {
  return (n * 7919) % Math.max(1, data.lastSeq);
}

export default function (data) {
  const n = exec.scenario.iterationInTest;
  const kind = MIX[n % MIX.length];
  const account = accountName(n % ACCOUNTS);
  const b = `${BASE}/v1/books/${data.book}`;
  const asOf = encodeURIComponent(data.asOf);
  const after = pagesPoint(data, n);
  let url;
  let shape;
  switch (kind) {
    case 'balance':
      url = `${b}/accounts/${account}`;
      shape = (j) => j.name === account && typeof j.balances === 'object';
      break;
    case 'balance_as_of':
      url = `${b}/accounts/${account}/balances?as_of=${asOf}`;
      shape = (j) => j.account === account && typeof j.balances === 'object';
      break;
    case 'trial_balance':
      url = n % 2 === 0 ? `${b}/trial-balance` : `${b}/trial-balance?as_of=${asOf}`;
      shape = (j) => j.balanced === true && Array.isArray(j.rows) && j.rows.length > 0;
      break;
    case 'tx_page':
      url = `${b}/transactions?after_seq=${after}&limit=100`;
      shape = (j) => Array.isArray(j.transactions) && j.transactions.length > 0;
      break;
    case 'events_page':
      url = `${b}/events?after_seq=${after}&limit=100`;
      shape = (j) => Array.isArray(j.events) && j.events.length > 0 && j.events[0].seq === after + 1;
      break;
    default:
      url = `${b}/accounts/${account}/postings?after_seq=${after}&limit=100`;
      shape = (j) => Array.isArray(j.postings);
  }
  const res = http.get(url, params(kind));
  if (res.status !== 200) {
    logFailure(kind, res);
    return;
  }
  let ok = false;
  try {
    ok = shape(res.json());
  } catch (e) {
    ok = false;
  }
  if (!check(res, { [`${kind} body has the expected shape`]: () => ok })) {
    bodyWrong.add(1, { kind });
    logFailure(kind, res);
  }
}

export function handleSummary(data) {
  return summaryOutput(data, 'reads', KINDS, {
    rate_asked: RATE,
    vus: VUS,
    accounts: ACCOUNTS,
    seed_transactions: SEED_TXS,
    body_wrong: counter(data, 'read_body_wrong'),
  });
}
