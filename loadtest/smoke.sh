#!/usr/bin/env bash
# The load scripts' smoke run, a step of scripts/test: every k6 script of
# loadtest/ for a few seconds at a low rate against a talead on a fresh
# database, so that the scripts keep working as the API moves. Each must end
# with all its thresholds held (k6 status 0); the storm must report every key
# applied once; and talea-post-load (run-writes.sh's generator) posts singly
# and in bulk with every transaction committed. Not a benchmark: the rates
# are tiny and the binary is the debug build.
#
#   loadtest/smoke.sh [PG_ADMIN_URL]
#
# Environment (defaults in brackets):
#   SMOKE_DURATION  length of each script's scenario            [3s]
#   SMOKE_P99_MS    p99 threshold of every request kind (ms)    [3000]
#   TALEAD_BIN      the talead to run [the debug build the tests left, built when missing]
#   KEEP_DB, K6_VERSION   see lib.sh
# Postgres: PG_ADMIN_URL, else scripts/test's discovery (TALEA_TEST_PG_URL, …).
# Takes about 30 s; every k6 run is stopped after 90 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_NAME=smoke
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_begin "${BASH_SOURCE[0]}" "${1:-}"

secs=$(lt_secs "${SMOKE_DURATION:-3s}")
p99_ms=${SMOKE_P99_MS:-3000}
[[ $p99_ms =~ ^[0-9]+$ ]] && ((p99_ms >= 1 && p99_ms <= 600000)) ||
    lt_die "SMOKE_P99_MS must be a whole number of ms in 1..=600000 (got '$p99_ms')"
# Every k6 run, setup and teardown included, ends within this.
limit_s=90
stamp=$(date -u +%Y%m%d%H%M%S)

lt_setup_pg "${1:-}"
LT_TALEAD=$(lt_talead_bin debug)
lt_need_k6
echo "talead: $LT_TALEAD; $(k6 version | head -n 1)"

failed=()
# run NAME SCRIPT [k6 args...]: one script against the last talead started.
run() {
    local name=$1 script=$2 rc=0 summary=$LT_WORK/$1.json start=$SECONDS
    shift 2
    lt_say "$name ($script)"
    lt_k6 "$limit_s" "$script" "$summary" -e "DURATION=${secs}s" -e "P99_MS=$p99_ms" -e "RUN_ID=s$stamp" "$@" || rc=$?
    if ((rc == 0)) && [[ $script == storm.js ]] &&
        ! python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["applied_once"] else 1)' "$summary"; then
        echo "storm: not every key was applied once with identical replies" >&2
        rc=1
    fi
    if ((rc == 0)); then
        echo "---- $name: ok ($((SECONDS - start))s)"
    else
        echo "---- $name: FAILED with status $rc ($((SECONDS - start))s)"
        failed+=("$name")
    fi
}

# Each script refuses a setting outside its limits before sending anything
# (`k6 inspect` evaluates the script's init code, where settings are read).
lt_say "settings outside their limits"
for case in "hot-book.js VUS=0" "books.js BOOKS=1001" "hot-book.js RATE=100001" \
    "holds.js RATE=100001" "reads.js ACCOUNTS=1" "reads.js SEED_TXS=10001" "reads.js DURATION=2h" "storm.js COPIES=1" \
    "storm.js MAX_RETRIES=21" "overload.js REQUIRE_BOTH=2" "overload.js RATE=abc" "books.js RUN_ID=A-B" "proofs.js SIZE=0"; do
    if k6 inspect -e "${case#* }" "$ROOT/loadtest/${case%% *}" >/dev/null 2>&1; then
        echo "---- ${case%% *} accepted ${case#* }"
        failed+=("limits")
    fi
done
((${#failed[@]})) || echo "---- limits: ok (every out-of-range setting refused)"

db=talea_smoke_$stamp
lt_create_db "$db"
lt_start_talead main "$db"
run hot-book hot-book.js -e RATE=20 -e VUS=8
run books books.js -e RATE=20 -e VUS=8 -e BOOKS=4
run holds holds.js -e RATE=20 -e VUS=8
run reads reads.js -e RATE=30 -e VUS=8 -e SEED_TXS=40
run storm storm.js -e RATE=40 -e VUS=40 -e COPIES=8
run proofs proofs.js -e RATE=20 -e VUS=4 -e BOOK=hot -e SIZE=20

# run-writes.sh's generator: single posts, then bulk requests, on a book of
# their own for 2 s each; every transaction sent must commit.
post_load() {
    local name=$1 rc=0 start=$SECONDS
    shift
    lt_say "$name (talea-post-load $*)"
    TALEA_TOKEN=$LT_TOKEN lt_run_child "$limit_s" "$post_load_bin" --url "http://$LT_BIND" --book post-load \
        --seconds 2 --warmup 0 --run-id "s$stamp$name" --summary "$LT_WORK/$name.json" "$@" \
        >"$LT_WORK/$name.out" 2>&1 || rc=$?
    if ((rc == 0)) && ! python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))
sys.exit(0 if s["committed"] > 0 and not any(s["failures"].values()) else 1)' "$LT_WORK/$name.json"; then
        rc=1
    fi
    if ((rc == 0)); then
        echo "---- $name: ok ($((SECONDS - start))s)"
    else
        tail -n 20 "$LT_WORK/$name.out"
        echo "---- $name: FAILED with status $rc ($((SECONDS - start))s)"
        failed+=("$name")
    fi
}
(cd "$ROOT" && cargo build -p talea-post-load >&2) || lt_die "cargo build -p talea-post-load failed"
post_load_bin=${CARGO_TARGET_DIR:-$ROOT/target}/debug/talea-post-load
[[ $post_load_bin == /* ]] || post_load_bin=$ROOT/$post_load_bin
post_load post-single --connections 8
post_load post-bulk --connections 2 --batch 50

# Small limits, so that a low rate overloads it.
overload_db=talea_smoke_${stamp}_overload
lt_create_db "$overload_db"
lt_start_talead overload "$overload_db" TALEA_MAX_INFLIGHT=4 TALEA_WRITE_QUEUE_DEPTH=1
run overload overload.js -e RATE=400 -e READ_RATE=300 -e HEALTH_RATE=50 -e VUS=100 -e SEED_TXS=20

if ((${#failed[@]})); then
    for name in "${LT_WORK}"/*/talead.log; do
        echo "---- last lines of $name" >&2
        tail -n 10 "$name" >&2
    done
    lt_die "failed: ${failed[*]}"
fi
echo "load smoke: every script ran and held its thresholds"
