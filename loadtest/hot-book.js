// k6: hot-book writes. All posts go to ONE book (`BOOK`, default hot), the
// worst case for a ledger: every writer of a book takes its counter row lock.
// RATE=max (default): VUS clients back to back, the probe of the maximum;
// RATE=<n>: n posts/s, open model. See writes.js for the settings.
//
//   k6 run --no-usage-report -e TALEA_TOKEN=... [-e RATE=1000] loadtest/hot-book.js
import { makeWrites } from './writes.js';

const w = makeWrites('hot-book', 1);
export const options = w.options;
export const setup = w.setup;
export default w.iteration;
export const handleSummary = w.handleSummary;
