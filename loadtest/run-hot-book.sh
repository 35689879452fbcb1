#!/usr/bin/env bash
# The hot-book figure alone: talea over HTTP (k6, loadtest/hot-book.js) against
# the naive one-transaction-per-request ledger commit (pgbench,
# loadtest/naive/commit.sql), on the same Postgres, in the same run. A
# shorthand for two phases of loadtest/bench.sh (which see for the settings:
# DURATION, HOT_VUS, NAIVE_CLIENTS, NAIVE_JOBS, NAIVE_NOTIFY, TALEAD_BIN, KEEP_DB,
# RESULTS_DIR); docs/benchmarks.md is left alone.
#
#   loadtest/run-hot-book.sh [--talea-only | --naive-only] [PG_ADMIN_URL]
#
# Add the batched SQL ceiling with `loadtest/bench.sh --phases hot,naive,batch --no-doc`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
phases=hot,naive
args=()
while (($#)); do
    case $1 in
    --talea-only) phases=hot ;;
    --naive-only) phases=naive ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        printf 'run-hot-book: unknown option %s (see --help)\n' "$1" >&2
        exit 1
        ;;
    *) args+=("$1") ;;
    esac
    shift
done
DURATION=${DURATION:-30s} exec "$ROOT/loadtest/bench.sh" --phases "$phases" --no-doc "${args[@]}"
