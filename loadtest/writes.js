// k6: the write scenarios, shared by hot-book.js (one book), books.js
// (writes spread over many books) and holds.js (hold-then-settle pairs on one
// book). Not a script itself.
//
// Every iteration posts a balanced two-leg BTC transaction (debit hot:a,
// credit hot:b, 0.00000001 BTC) with a unique idempotency key, to the books
// in turn, and checks for 201. Failures are counted, never retried: a retry
// would hide the rate the server sustains.
//
// Holds (makeWrites(..., { holds: true })): each iteration posts the same
// transaction with `"pending": true` (kind `hold`, 201 wanted), then settles
// the whole hold, `POST .../transactions/{tx_id}/post` with a key of its own
// (kind `settle`, 201 wanted): one pair, two commits. A failed hold is not
// settled. The summary adds `pairs` and `pairs_per_s` (the settles' 201s).
//
// Environment (besides common.js's):
//   RATE    iterations per second (open model, constant-arrival-rate), or
//           `max`: VUS clients posting back to back (closed model), the
//           probe of the maximum rate                               [max]
//   VUS     clients: the most the open model may use, or the probe's count [64]
//   BOOKS   number of books (1..=1000)                               [per script]
//   BOOK    the book's name when BOOKS=1                             [hot]
//
// setup() registers BTC and opens hot:a and hot:b in every book (201 or 200
// both fine); books are `BOOK` when BOOKS=1, else `spread-<RUN_ID>-<i>`.
// A client that sees 20 transport errors in a row aborts the run.

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  BASE, BOOKS_MAX, DURATION_S, PAIR, RATE_MAX, SUMMARY_TREND_STATS, VUS_MAX, arrivalScenario, counter,
  droppedThreshold, envInt, kindThresholds, logFailure, newRunId, openAccounts, params, postTx, setupAsset,
  summaryOutput, transfer,
} from './common.js';

const postsTransport = new Counter('posts_transport_error');
const MAX_TRANSPORT_ERRORS_IN_A_ROW = 20;

export function makeWrites(script, defaultBooks, { holds = false } = {}) {
  const kinds = holds ? ['hold', 'settle'] : ['post'];
  const vus = envInt('VUS', 64, 1, VUS_MAX);
  const books = envInt('BOOKS', defaultBooks, 1, BOOKS_MAX);
  const rateRaw = __ENV.RATE || 'max';
  const rate = rateRaw === 'max' ? null : envInt('RATE', 0, 1, RATE_MAX);
  const bookName = __ENV.BOOK || 'hot';
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(bookName)) throw new Error(`BOOK=${bookName}: not a book name`);

  const scenario = rate === null
    ? { executor: 'constant-vus', vus, duration: `${DURATION_S}s`, gracefulStop: '15s' }
    : arrivalScenario(rate, vus);
  const options = {
    scenarios: { writes: scenario },
    setupTimeout: '120s',
    summaryTrendStats: SUMMARY_TREND_STATS,
    thresholds: Object.assign(kindThresholds(kinds), rate === null ? {} : droppedThreshold(rate)),
  };

  function setup() {
    setupAsset();
    const runId = newRunId();
    const names = books === 1 ? [bookName] : Array.from({ length: books }, (_, i) => `spread-${runId}-${i}`);
    openAccounts(names, PAIR);
    return { runId, books: names };
  }

  let transportInARow = 0;
  // true when `res` is a 201; counts and logs anything else, and aborts the
  // run after MAX_TRANSPORT_ERRORS_IN_A_ROW transport errors in a row.
  function ok(kind, res) {
    if (res.status === 201) {
      transportInARow = 0;
      return true;
    }
    logFailure(kind, res);
    if (res.status !== 0) {
      transportInARow = 0;
      return false;
    }
    postsTransport.add(1);
    transportInARow += 1;
    if (transportInARow >= MAX_TRANSPORT_ERRORS_IN_A_ROW) {
      exec.test.abort(`VU ${exec.vu.idInTest}: ${transportInARow} transport errors in a row (${res.error}): is talea down?`);
    }
    return false;
  }

  function iteration(data) {
    const n = exec.scenario.iterationInTest;
    const book = data.books[n % data.books.length];
    if (!holds) {
      ok('post', postTx(book, transfer(`w-${data.runId}-${n}`, 1)));
      return;
    }
    const hold = postTx(book, Object.assign(transfer(`h-${data.runId}-${n}`, 1), { pending: true }), 'hold');
    if (!ok('hold', hold)) return;
    const txId = hold.json('tx_id');
    const settle = http.post(
      `${BASE}/v1/books/${book}/transactions/${txId}/post`,
      JSON.stringify({ idempotency_key: `s-${data.runId}-${n}` }),
      params('settle'),
    );
    ok('settle', settle);
  }

  function handleSummary(data) {
    const pairs = holds ? counter(data, 'http_reqs{kind:settle,expected_response:true}') : null;
    const out = summaryOutput(data, script, kinds, {
      books,
      book: books === 1 ? bookName : null,
      vus,
      rate_asked: rate,
      model: rate === null ? 'closed (constant-vus, maximum)' : 'open (constant-arrival-rate)',
      transport_errors: counter(data, 'posts_transport_error'),
      // holds.js: settled pairs (two commits each) and their rate.
      pairs,
      pairs_per_s: holds ? pairs / DURATION_S : null,
    });
    return out;
  }

  return { options, setup, iteration, handleSummary };
}
