// k6: writes spread over BOOKS books (default 64), in turn: the same posts as
// hot-book.js, where books are the scaling unit (one counter row lock each).
// RATE=max (default): VUS clients back to back; RATE=<n>: n posts/s, open
// model. See writes.js for the settings.
//
//   k6 run --no-usage-report -e TALEA_TOKEN=... [-e BOOKS=64] loadtest/books.js
import { makeWrites } from './writes.js';

const w = makeWrites('books', 64);
export const options = w.options;
export const setup = w.setup;
export default w.iteration;
export const handleSummary = w.handleSummary;
