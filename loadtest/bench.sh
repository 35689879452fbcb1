#!/usr/bin/env bash
# The benchmark: talea beside a naive SQL ledger and a batched SQL ceiling, on
# the same Postgres in the same run, then the read mix, the retry storm, the
# overload run and SSE delivery. Writes docs/benchmarks.md and
# loadtest/results/bench-<stamp>.json, and prints the table and the targets.
#
#   loadtest/bench.sh [--phases LIST] [--no-doc] [PG_ADMIN_URL]
#
# PG_ADMIN_URL: a superuser URL (databases are created and dropped there).
# Default: the discovery of scripts/test (TALEA_TEST_PG_URL, else
# 127.0.0.1:5432, else a throwaway cluster); NATS likewise, for the SSE phase.
#
# Phases, in this order (LIST: comma-separated names; default all):
#   hot          talea, one book, HOT_VUS clients back to back (k6 hot-book.js, RATE=max)
#   half         talea, one book, open model at half of hot's rate; its p99
#   books        talea, BOOKS books, VUS clients back to back (k6 books.js)
#   naive        naive SQL, one transaction per request, one book (pgbench naive/commit.sql)
#   naive-books  the same over BOOKS books
#   batch        batched SQL ceiling, BATCH drafts per transaction, one book (naive/batch.sql)
#   batch-books  the same over BOOKS books
#   reads        the read mix at READS_RATE/s (k6 reads.js)
#   storm        the idempotent retry storm (k6 storm.js)
#   overload     a talead with small limits, flooded (k6 overload.js)
#   sse          loadtest/run-sse.sh with modest settings (SKIP_SSE=1: the latest
#                results/sse-*.json instead, and the report says so)
# Every talea phase gets a fresh database and its own talead (release build).
#
# Environment (defaults in brackets):
#   DURATION           length of each phase                        [20s]
#   VUS                k6 clients in the books phase               [64]
#   HOT_VUS            k6 clients in the hot phase: as many drafts in flight
#                      as the batched ceiling keeps (BATCH_CLIENTS * BATCH)  [128]
#   BOOKS              books of the many-books phases              [64]
#   NAIVE_CLIENTS      pgbench clients, naive phases               [$VUS]
#   NAIVE_JOBS         pgbench threads                             [2]
#   NAIVE_NOTIFY       1: the naive commit also runs pg_notify     [0]
#   BATCH              drafts per batched transaction              [64]
#   SQL_WARMUP_S       each SQL phase first runs its script this long,
#                      unmeasured, on the same database (see below)  [5]
#   BATCH_CLIENTS      pgbench clients, batch phase (one book)     [2]
#   BATCH_BOOKS_CLIENTS  pgbench clients, batch-books phase        [8]
#   HALF_RATE          the half phase's rate when hot does not run [hot's rate / 2]
#   HALF_VUS           at most this many clients in the half phase [256]
#   HALF_P99_TARGET_MS the target for the half phase's p99         [50]
#   READS_RATE         reads/s                                     [500]
#   STORM_RATE, STORM_COPIES   posts/s, clients per key            [200, 16]
#   OVERLOAD_DURATION, OVERLOAD_RATE   the overload phase          [10s, 1000]
#   SSE_SUBSCRIBERS, SSE_BOOKS, SSE_RATE, SSE_SECONDS              [1000, 20, 100, 15]
#   SKIP_SSE           1: use the latest results/sse-*.json         [0]
#   SSE_RESULT         with SKIP_SSE=1: that file of results/ instead of the latest
#   DOC                the report                                  [docs/benchmarks.md]
#   RESULTS_DIR        where bench-<stamp>.json goes               [loadtest/results]
#   TALEAD_BIN, KEEP_DB, K6_VERSION   see lib.sh
# talead's TALEA_* tuning variables (TALEA_DB_POOL, TALEA_WRITE_BATCH_MAX, …)
# pass through to the talead of every phase but overload.
#
# Exit status: 0 when every phase ran (a threshold or target missed is
# reported, not fatal); 1 when a phase could not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_NAME=bench
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_begin "${BASH_SOURCE[0]}"

ALL_PHASES="hot half books naive naive-books batch batch-books reads storm overload sse"
phases=$ALL_PHASES
write_doc=1
admin_url=""
while (($#)); do
    case $1 in
    --phases)
        (($# >= 2)) || lt_die "--phases needs a list"
        phases=${2//,/ }
        shift
        ;;
    --no-doc) write_doc=0 ;;
    -h | --help) lt_usage "${BASH_SOURCE[0]}" ;;
    -*) lt_die "unknown option $1 (see --help)" ;;
    *) admin_url=$1 ;;
    esac
    shift
done
for p in $phases; do
    [[ " $ALL_PHASES " == *" $p "* ]] || lt_die "unknown phase '$p' (phases: $ALL_PHASES)"
done
has() { [[ " $phases " == *" $1 "* ]]; }

# uint NAME DEFAULT MIN MAX: a whole-number setting within its limits.
uint() {
    local name=$1 value=${!1:-$2}
    [[ $value =~ ^[0-9]+$ ]] && ((10#$value >= $3 && 10#$value <= $4)) ||
        lt_die "$name must be a whole number in $3..=$4 (got '$value')"
    printf -v "$name" '%d' "$((10#$value))"
}

secs=$(lt_secs "${DURATION:-20s}")
overload_secs=$(lt_secs "${OVERLOAD_DURATION:-10s}")
uint VUS 64 1 5000
uint BOOKS 64 2 1000
uint NAIVE_CLIENTS "$VUS" 1 1000
uint NAIVE_JOBS 2 1 64
uint NAIVE_NOTIFY 0 0 1
uint SQL_WARMUP_S 5 0 600
uint BATCH 64 1 10000
# One book serializes its batches on the counter row: two clients (one
# committing, one waiting with its batch) is its best; many books want more.
uint BATCH_CLIENTS 2 1 1000
uint BATCH_BOOKS_CLIENTS 8 1 1000
uint HALF_VUS 256 1 5000
# The hot book against the batched ceiling: the same number of drafts in
# flight (a client has one post in flight; a pgbench client a whole batch).
uint HOT_VUS $((BATCH_CLIENTS * BATCH)) 1 5000
uint HALF_P99_TARGET_MS 50 1 600000
uint READS_RATE 500 1 100000
uint STORM_RATE 200 1 100000
uint STORM_COPIES 16 2 256
uint OVERLOAD_RATE 1000 1 100000
uint SSE_SUBSCRIBERS 1000 1 100000
uint SSE_BOOKS 20 1 10000
uint SSE_RATE 100 1 100000
uint SSE_SECONDS 15 1 3600
uint SKIP_SSE 0 0 1
DOC=${DOC:-$ROOT/docs/benchmarks.md}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/loadtest/results}
for tool in psql pgbench curl python3; do
    command -v "$tool" >/dev/null 2>&1 || lt_die "$tool is not installed"
done

stamp=$(date -u +%Y%m%d%H%M%S)
out=$LT_WORK/out
mkdir -p "$out"
failed=()
# note_failure PHASE WHY: the phase did not run to the end; the report says so.
note_failure() {
    echo "$LT_NAME: phase $1: $2" >&2
    failed+=("$1")
    printf '%s\n' "$2" >"$out/$1.failed"
}

# Other work on the machine moves every figure: the report shows the load.
cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-start.txt" 2>/dev/null || true

lt_say "postgres"
lt_setup_pg "$admin_url"
pg_version=$(psql "$LT_ADMIN_URL" -XAtc 'show server_version')
echo "server: $(svc_redact "$LT_ADMIN_URL") (PostgreSQL $pg_version)"
psql "$LT_ADMIN_URL" -XAt -F '=' -c "SELECT name, current_setting(name) FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'max_connections', 'shared_buffers', 'wal_level')" >"$out/pg-settings.txt"

if has hot || has half || has books || has reads || has storm || has overload; then
    lt_say "build (release) and k6"
    LT_TALEAD=$(lt_talead_bin release)
    lt_need_k6
    k6 version | head -n 1 >"$out/k6-version.txt"
fi

# talea_phase NAME SCRIPT LIMIT_S [VAR=VALUE for talead...] -- [k6 args...]:
# fresh database, talead, k6; the summary goes to out/NAME.json and the
# transactions the database holds afterwards to out/NAME.committed.
talea_phase() {
    local name=$1 script=$2 limit=$3 db rc=0 talead_env=() pid
    shift 3
    while (($#)) && [[ $1 != -- ]]; do
        talead_env+=("$1")
        shift
    done
    shift
    db=talea_bench_${stamp}_${name//-/_}
    lt_create_db "$db"
    lt_start_talead "$name" "$db" "${talead_env[@]}"
    pid=$LT_PID
    lt_k6 "$limit" "$script" "$out/$name.json" -e "RUN_ID=b$stamp" "$@" || rc=$?
    lt_stop_pid "$pid"
    psql "$(lt_db_url "$db")" -XAtc "SELECT count(*) FROM transactions" >"$out/$name.committed" 2>/dev/null || true
    if ((rc == 99)); then
        echo "$name: some thresholds failed (reported)"
    elif ((rc != 0)); then
        tail -n 30 "$LT_WORK/$name/talead.log" >&2 || true
        note_failure "$name" "k6 failed with status $rc"
    fi
    timeout 60 psql "$LT_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# sql_phase NAME SCRIPT CLIENTS BOOKS: fresh database with naive/schema.sql,
# pgbench SCRIPT for SQL_WARMUP_S (unmeasured), then for DURATION; its output
# to out/NAME.out, its per-transaction log under out/NAME/.
#
# Why the warm-up: Postgres plans a foreign-key check once per connection and
# keeps the plan; planned against the empty tables of a fresh database it is
# a sequential scan, which gets slower with every row the run adds (the
# batched script fell from 17 to 5 batches/s within 10 s). The measured run's
# new connections plan against tables the warm-up filled, as a database in
# service would have them.
sql_phase() {
    local name=$1 script=$2 clients=$3 books=$4 db rc=0 jobs=$NAIVE_JOBS
    ((jobs <= clients)) || jobs=$clients
    db=talea_bench_${stamp}_${name//-/_}
    lt_create_db "$db"
    PGOPTIONS="-c client_min_messages=warning" psql "$(lt_db_url "$db")" -Xq -v ON_ERROR_STOP=1 \
        -v "books=$BOOKS" -f "$ROOT/loadtest/naive/schema.sql" >/dev/null || lt_die "cannot load naive/schema.sql"
    mkdir -p "$out/$name"
    if ((SQL_WARMUP_S)); then
        lt_run_child $((SQL_WARMUP_S + 120)) pgbench -n -M prepared -c "$clients" -j "$jobs" -T "$SQL_WARMUP_S" \
            -D "run=${stamp}0" -D n=0 -D "books=$books" -D "notify=$NAIVE_NOTIFY" -D "batch=$BATCH" \
            -f "$ROOT/loadtest/naive/$script" "$(lt_db_url "$db")" >"$out/$name.warmup" 2>&1 || rc=$?
        if ((rc != 0)); then
            note_failure "$name" "pgbench (warm-up) failed with status $rc"
            return 0
        fi
    fi
    lt_run_child $((secs + 120)) pgbench -n -M prepared -c "$clients" -j "$jobs" -T "$secs" -P 5 \
        -l --log-prefix="$out/$name/log" -D "run=$stamp" -D n=0 -D "books=$books" \
        -D "notify=$NAIVE_NOTIFY" -D "batch=$BATCH" \
        -f "$ROOT/loadtest/naive/$script" "$(lt_db_url "$db")" >"$out/$name.out" 2>&1 || rc=$?
    tail -n 6 "$out/$name.out"
    ((rc == 0)) || note_failure "$name" "pgbench failed with status $rc"
    timeout 60 psql "$LT_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}

k6_limit=$((secs + 300))
if has hot; then
    lt_say "hot: talea, one book, $HOT_VUS clients, ${secs}s"
    talea_phase hot hot-book.js "$k6_limit" -- -e RATE=max -e "VUS=$HOT_VUS" -e "DURATION=${secs}s"
fi
if has half; then
    half_rate=${HALF_RATE:-}
    if [[ -z $half_rate && -s $out/hot.json ]]; then
        half_rate=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["kinds"]["post"]["succeeded_per_s"] // 2))' "$out/hot.json")
    fi
    if [[ -z $half_rate ]]; then
        note_failure half "no rate: run the hot phase too, or set HALF_RATE"
    else
        uint half_rate 0 1 100000
        lt_say "half: talea, one book, $half_rate posts/s (open model), ${secs}s"
        talea_phase half hot-book.js "$k6_limit" -- -e "RATE=$half_rate" -e "VUS=$HALF_VUS" \
            -e "DURATION=${secs}s" -e "P99_MS=$HALF_P99_TARGET_MS"
    fi
fi
if has books; then
    lt_say "books: talea, $BOOKS books, $VUS clients, ${secs}s"
    talea_phase books books.js "$k6_limit" -- -e RATE=max -e "VUS=$VUS" -e "BOOKS=$BOOKS" -e "DURATION=${secs}s"
fi
if has naive; then
    lt_say "naive: one transaction per request, one book, $NAIVE_CLIENTS clients, ${secs}s"
    sql_phase naive commit.sql "$NAIVE_CLIENTS" 1
fi
if has naive-books; then
    lt_say "naive-books: one transaction per request, $BOOKS books, $NAIVE_CLIENTS clients, ${secs}s"
    sql_phase naive-books commit.sql "$NAIVE_CLIENTS" "$BOOKS"
fi
if has batch; then
    lt_say "batch: $BATCH drafts per transaction, one book, $BATCH_CLIENTS clients, ${secs}s"
    sql_phase batch batch.sql "$BATCH_CLIENTS" 1
fi
if has batch-books; then
    lt_say "batch-books: $BATCH drafts per transaction, $BOOKS books, $BATCH_BOOKS_CLIENTS clients, ${secs}s"
    sql_phase batch-books batch.sql "$BATCH_BOOKS_CLIENTS" "$BOOKS"
fi
if has reads; then
    lt_say "reads: $READS_RATE reads/s, ${secs}s"
    talea_phase reads reads.js "$k6_limit" -- -e "RATE=$READS_RATE" -e "DURATION=${secs}s"
fi
if has storm; then
    lt_say "storm: $STORM_RATE posts/s, $STORM_COPIES clients per key, ${secs}s"
    talea_phase storm storm.js "$k6_limit" -- -e "RATE=$STORM_RATE" -e "COPIES=$STORM_COPIES" -e "DURATION=${secs}s"
fi
if has overload; then
    lt_say "overload: $OVERLOAD_RATE posts/s against TALEA_MAX_INFLIGHT=8, TALEA_WRITE_QUEUE_DEPTH=2, ${overload_secs}s"
    talea_phase overload overload.js $((overload_secs + 300)) \
        TALEA_MAX_INFLIGHT=8 TALEA_WRITE_QUEUE_DEPTH=2 -- \
        -e "RATE=$OVERLOAD_RATE" -e "DURATION=${overload_secs}s"
fi
sse_source=""
if has sse; then
    if ((SKIP_SSE)); then
        latest=${SSE_RESULT:-$(find "$ROOT/loadtest/results" -maxdepth 1 -name 'sse-*.json' -printf '%f\n' |
            sed -E 's/^(.*-)?([0-9]{14})\.json$/\2 &/' | sort | tail -n 1 | cut -d' ' -f2)}
        if [[ -n $latest ]]; then
            cp "$ROOT/loadtest/results/$latest" "$out/sse.json"
            floor=${latest/sse-/nats-floor-}
            [[ -f $ROOT/loadtest/results/$floor ]] && cp "$ROOT/loadtest/results/$floor" "$out/nats-floor.json"
            sse_source="loadtest/results/$latest (SKIP_SSE=1: not run now)"
        else
            note_failure sse "SKIP_SSE=1 but no loadtest/results/sse-*.json"
        fi
    else
        lt_say "sse: $SSE_SUBSCRIBERS subscribers, $SSE_BOOKS books, $SSE_RATE tx/s, ${SSE_SECONDS}s"
        mkdir -p "$out/sse"
        rc=0
        RESULTS_DIR=$out/sse SUBSCRIBERS=$SSE_SUBSCRIBERS BOOKS=$SSE_BOOKS RATE=$SSE_RATE SECONDS_=$SSE_SECONDS \
            lt_run_child $((SSE_SECONDS * 2 + 900)) "$ROOT/loadtest/run-sse.sh" "$LT_ADMIN_URL" || rc=$?
        if ((rc == 0)); then
            cp "$out"/sse/sse-*.json "$out/sse.json"
            cp "$out"/sse/nats-floor-*.json "$out/nats-floor.json" 2>/dev/null || true
            sse_source="run now: loadtest/run-sse.sh with SUBSCRIBERS=$SSE_SUBSCRIBERS BOOKS=$SSE_BOOKS RATE=$SSE_RATE SECONDS_=$SSE_SECONDS"
        else
            note_failure sse "run-sse.sh failed with status $rc"
        fi
    fi
fi

lt_say "report"
mkdir -p "$RESULTS_DIR"
doc_arg=""
((write_doc)) && doc_arg=$DOC
BENCH_STAMP=$stamp BENCH_SECS=$secs BENCH_OVERLOAD_SECS=$overload_secs BENCH_PG_VERSION=$pg_version \
    BENCH_VUS=$VUS BENCH_HOT_VUS=$HOT_VUS BENCH_BOOKS=$BOOKS BENCH_NAIVE_CLIENTS=$NAIVE_CLIENTS BENCH_NAIVE_JOBS=$NAIVE_JOBS \
    BENCH_NAIVE_NOTIFY=$NAIVE_NOTIFY BENCH_BATCH=$BATCH BENCH_BATCH_CLIENTS=$BATCH_CLIENTS \
    BENCH_BATCH_BOOKS_CLIENTS=$BATCH_BOOKS_CLIENTS BENCH_SQL_WARMUP_S=$SQL_WARMUP_S \
    BENCH_HALF_P99_TARGET_MS=$HALF_P99_TARGET_MS BENCH_SSE_SOURCE=$sse_source \
    BENCH_RESULT_REL=$(realpath --relative-to="$ROOT" "$RESULTS_DIR/bench-$stamp.json") \
    BENCH_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) \
    BENCH_DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -c . || true) \
    python3 "$ROOT/loadtest/bench_report.py" "$out" "$RESULTS_DIR/bench-$stamp.json" "$doc_arg"

if ((${#failed[@]})); then
    echo "$LT_NAME: phases that did not run to the end: ${failed[*]}" >&2
    exit 1
fi
