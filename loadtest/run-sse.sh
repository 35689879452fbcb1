#!/usr/bin/env bash
# The SSE delivery benchmark: talead on Postgres, talea-relay, NATS and
# talea-fanout on this machine, with talea-sse-load holding SUBSCRIBERS
# streams over BOOKS books while posting RATE transactions/s; then the raw
# NATS floor at the same rate and fan-out. Prints both summaries and writes
# results/sse-<stamp>.json and results/nats-floor-<stamp>.json.
#
#   loadtest/run-sse.sh [PG_ADMIN_URL]
#
# Environment (defaults in brackets): SUBSCRIBERS [10000], BOOKS [100],
# RATE [1000], SECONDS [30], RESULTS_DIR [loadtest/results], KEEP_DB [0],
# FLOOR [1] (0: skip the raw NATS floor), BIN_DIR [the release build: built
# here] (a directory holding talead, talea-relay, talea-fanout and
# talea-sse-load, say copies of an older build, for an A/B).
# Only loopback traffic; everything started is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

say() { printf '\n==== %s ====\n' "$*"; }
die() {
    printf 'run-sse: %s\n' "$*" >&2
    exit 1
}

SUBSCRIBERS=${SUBSCRIBERS:-10000}
BOOKS=${BOOKS:-100}
RATE=${RATE:-1000}
SECONDS_=${SECONDS_RUN:-${SECONDS_:-30}}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/loadtest/results}
KEEP_DB=${KEEP_DB:-0}
admin_url=${1:-}
stamp=$(date -u +%Y%m%d%H%M%S)
work=$(mktemp -d "${TMPDIR:-/tmp}/talea-sse.XXXXXX")
pids=()
db=""

cleanup() {
    local rc=$? pid
    for pid in "${pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    sleep 1
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $db && $KEEP_DB != 1 && -n $admin_url ]]; then
        timeout 60 psql "$admin_url" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    svc_cleanup
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "services"
if [[ -z $admin_url ]]; then
    svc_setup_pg || die "no Postgres"
    admin_url=$TALEA_TEST_PG_URL
fi
svc_setup_nats || die "no NATS"
nats_url=$TALEA_TEST_NATS_URL

if [[ -n ${BIN_DIR:-} ]]; then
    bin=$BIN_DIR
    for tool in talead talea-relay talea-fanout talea-sse-load; do
        [[ -x $bin/$tool ]] || die "BIN_DIR=$bin holds no executable $tool"
    done
else
    say "build (release)"
    cargo build --release -p talead -p talea-relay -p talea-fanout -p talea-sse-load
    target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target == /* ]] || target=$ROOT/$target
    bin=$target/release
fi

db=talea_sse_$stamp
psql "$admin_url" -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" || die "cannot create $db"
db_url=$(python3 - "$admin_url" "$db" <<'PY'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
PY
)
token=sse-load-token-$stamp
talead_bind=127.0.0.1:$(svc_free_port)
relay_bind=127.0.0.1:$(svc_free_port)
fanout_bind=127.0.0.1:$(svc_free_port)
prefix=sse$stamp.events
clean_env=(env -u TALEA_DB_URL -u TALEA_API_TOKEN -u TALEA_TOKENS_FILE -u TALEA_SCOPE_URL RUST_LOG=warn)

(cd "$work" && "${clean_env[@]}" "$bin/talead" init --db-url "$db_url" >/dev/null) || die "talead init failed"
(cd "$work" && exec "${clean_env[@]}" TALEA_DB_URL="$db_url" TALEA_API_TOKEN="$token" TALEA_BIND="$talead_bind" \
    TALEA_DB_POOL=20 "$bin/talead" serve) >"$work/talead.log" 2>&1 &
pids+=($!)
talead_pid=$!
(cd "$work" && exec "${clean_env[@]}" TALEA_DB_URL="$db_url" TALEA_NATS_URL="$nats_url" TALEA_BIND="$relay_bind" \
    TALEA_NATS_SUBJECT_PREFIX="$prefix" "$bin/talea-relay") >"$work/relay.log" 2>&1 &
pids+=($!)
relay_pid=$!
(cd "$work" && exec "${clean_env[@]}" TALEA_DB_URL="$db_url" TALEA_NATS_URL="$nats_url" TALEA_BIND="$fanout_bind" \
    TALEA_NATS_SUBJECT_PREFIX="$prefix" TALEA_API_TOKEN="$token" TALEA_SSE_MAX_CONNECTIONS=$((SUBSCRIBERS + 100)) TALEA_SSE_MAX_PER_TOKEN=$((SUBSCRIBERS + 100)) \
    "$bin/talea-fanout") >"$work/fanout.log" 2>&1 &
fanout_pid=$!
pids+=("$fanout_pid")
for addr in "$talead_bind" "$relay_bind" "$fanout_bind"; do
    deadline=$((SECONDS + 60))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$addr/health" || true) == 200 ]]; do
        ((SECONDS < deadline)) || { tail -n 30 "$work"/*.log >&2; die "$addr did not become ready"; }
        sleep 0.2
    done
done
echo "talead $talead_bind, relay $relay_bind, fan-out $fanout_bind (pid $fanout_pid)"

mkdir -p "$RESULTS_DIR"
say "SSE: $SUBSCRIBERS subscribers, $BOOKS books, $RATE tx/s for ${SECONDS_}s"
"$bin/talea-sse-load" --stream-url "http://$fanout_bind" --write-url "http://$talead_bind" \
    --token "$token" --books "$BOOKS" --subscribers "$SUBSCRIBERS" --rate "$RATE" --seconds "$SECONDS_" \
    --rss-pid "$fanout_pid" --cpu-pid "talead=$talead_pid" --cpu-pid "talea-relay=$relay_pid" \
    --cpu-pid "talea-fanout=$fanout_pid" --pg-database "$db" --json "$RESULTS_DIR/sse-$stamp.json" || {
    tail -n 30 "$work"/*.log >&2
    die "the SSE load failed"
}

if [[ ${FLOOR:-1} == 0 ]]; then
    exit 0
fi
say "raw NATS floor: $SUBSCRIBERS subscriptions, $BOOKS subjects, $RATE msg/s"
"$bin/talea-sse-load" --nats-floor --nats-url "$nats_url" --token unused --books "$BOOKS" \
    --subscribers "$SUBSCRIBERS" --rate "$RATE" --seconds "$SECONDS_" \
    --json "$RESULTS_DIR/nats-floor-$stamp.json"
