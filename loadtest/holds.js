// k6: hold-then-settle pairs on ONE book (`BOOK`, default hot). Each
// iteration posts a pending hold (debit hot:a, credit hot:b, 0.00000001 BTC;
// kind `hold`, 201 wanted) and then settles all of it with
// POST /v1/books/{book}/transactions/{tx_id}/post (kind `settle`, 201
// wanted): one pair is two commits on the book. RATE=max (default): VUS
// clients back to back; RATE=<n>: n pairs/s, open model. The summary's
// `pairs_per_s` is the figure to set against hot-book.js's posts/s on the
// same run. See writes.js for the settings.
//
//   k6 run --no-usage-report -e TALEA_TOKEN=... [-e RATE=500] loadtest/holds.js
import { makeWrites } from './writes.js';

const w = makeWrites('holds', 1, { holds: true });
export const options = w.options;
export const setup = w.setup;
export default w.iteration;
export const handleSummary = w.handleSummary;
