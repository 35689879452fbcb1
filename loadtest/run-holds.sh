#!/usr/bin/env bash
# Holds on one hot book (issue 17, item 8): hold-then-settle pairs per second
# (k6 holds.js) against plain posts per second (k6 hot-book.js), the two
# alternated ROUNDS times in one run, each phase on a fresh database with its
# own release talead; and, with BASE_BIN, an A/B of the plain post: the same
# hot-book load against BASE_BIN (talead built before the change) and the
# current talead, alternated, each on a fresh database of its own (each binary
# migrates its own schema). Ratios are taken pair by pair (phases run back to
# back) and printed as median, min and max; the JSON of every phase goes to
# RESULTS_DIR/holds-<stamp>/ and the table to RESULTS_DIR/holds-<stamp>.txt.
#
#   loadtest/run-holds.sh [PG_ADMIN_URL]
#
# Environment (defaults in brackets):
#   ROUNDS       alternations of each comparison                 [3]
#   DURATION     length of each phase                            [20s]
#   HOT_VUS      k6 clients of every phase, back to back (RATE=max): a pair
#                is one client's hold then settle, so drafts in flight are
#                the same as the plain posts'                    [128]
#   STORES       postgres and/or sqlite (the embedded store, a file in the
#                phase's working directory)                      [postgres]
#   BASE_BIN     a talead from before holds: adds the A/B of plain posts
#                (postgres)                                      [none]
#   TALEAD_BIN   the talead under test                           [the release build]
#   RESULTS_DIR                                                  [loadtest/results]
#   KEEP_DB, K6_VERSION   see lib.sh
# Records each phase's CPU seconds: k6 (user+system, /usr/bin/time) and
# talead (/proc/PID/stat, read just before it is stopped).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
LT_NAME=holds
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_install_traps

case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
esac

rounds=${ROUNDS:-3}
[[ $rounds =~ ^[0-9]+$ ]] && ((rounds >= 1 && rounds <= 50)) || lt_die "ROUNDS must be in 1..=50"
secs=$(lt_secs "${DURATION:-20s}")
vus=${HOT_VUS:-128}
stores=${STORES:-postgres}
stores=${stores//,/ }
[[ $stores != none ]] || stores=""
stamp=$(date -u +%Y%m%d%H%M%S)
results=${RESULTS_DIR:-$ROOT/loadtest/results}
out=$results/holds-$stamp
mkdir -p "$out"
[[ -x /usr/bin/time ]] || lt_die "needs /usr/bin/time (Debian package time)"

lt_setup_pg "${1:-}"
LT_TALEAD=$(lt_talead_bin release)
new_bin=$LT_TALEAD
lt_need_k6
{
    lt_machine "$(k6 version | head -n 1)"
    echo "rounds $rounds, ${secs}s per phase, $vus clients"
} | tee "$out/machine.txt"

# phase NAME BIN STORE SCRIPT: fresh store, talead BIN, k6 SCRIPT for secs.
phase() {
    local name=$1 bin=$2 store=$3 script=$4 db rc=0 pid
    db=talea_holds_${stamp}_${name//-/_}
    if [[ $store == sqlite ]]; then
        mkdir -p "$LT_WORK/$name"
        LT_STORE_URL=sqlite://$LT_WORK/$name/talea.db
    else
        unset LT_STORE_URL
        lt_create_db "$db"
    fi
    LT_TALEAD=$bin lt_start_talead "$name" "$db"
    pid=$LT_PID
    lt_run_child $((secs + 300)) /usr/bin/time -f '%U %S %e' -o "$out/$name.k6time" \
        k6 run --quiet --no-usage-report --address 127.0.0.1:0 \
        -e "TALEA_URL=http://$LT_BIND" -e "TALEA_TOKEN=$LT_TOKEN" -e "SUMMARY=$out/$name.json" \
        -e "RUN_ID=h$stamp" -e RATE=max -e "VUS=$vus" -e "DURATION=${secs}s" \
        "$ROOT/loadtest/$script" >"$out/$name.k6out" 2>&1 || rc=$?
    lt_cpu_s "$pid" >"$out/$name.taleadcpu" || true
    lt_stop_pid "$pid"
    unset LT_STORE_URL
    if [[ $store != sqlite ]]; then
        timeout 60 psql "$LT_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if ((rc != 0 && rc != 99)) || [[ ! -s $out/$name.json ]]; then
        tail -n 20 "$out/$name.k6out" >&2
        tail -n 20 "$LT_WORK/$name/talead.log" >&2 || true
        lt_die "$name: k6 failed with status $rc"
    fi
    python3 - "$out" "$name" <<'PY'
import json, sys
out, name = sys.argv[1:]
s = json.load(open(f"{out}/{name}.json"))
u, sy, wall = map(float, open(f"{out}/{name}.k6time").read().split()[-3:])
k = s["kinds"]
rate = s["pairs_per_s"] if s.get("pairs_per_s") is not None else k["post"]["succeeded_per_s"]
fails = sum(v["requests"] - v["succeeded"] for v in k.values())
lat = " ".join(f"{kind} p50 {v['latency_ms']['p50']:.1f} p99 {v['latency_ms']['p99']:.1f}" for kind, v in k.items())
print(f"{name:24s} {rate:9.1f}/s  failed {fails}  k6 cpu {u + sy:6.1f}s of {wall:5.1f}s wall  {lat}")
PY
}

for store in $stores; do
    for ((r = 1; r <= rounds; r++)); do
        lt_say "$store round $r of $rounds: plain posts, then hold-then-settle pairs"
        phase "$store-posts-$r" "$new_bin" "$store" hot-book.js
        phase "$store-pairs-$r" "$new_bin" "$store" holds.js
    done
done
if [[ -n ${BASE_BIN:-} ]]; then
    [[ -x $BASE_BIN ]] || lt_die "BASE_BIN=$BASE_BIN is not an executable"
    for ((r = 1; r <= rounds; r++)); do
        lt_say "A/B round $r of $rounds: plain posts, base talead then this one"
        phase "ab-base-$r" "$BASE_BIN" postgres hot-book.js
        phase "ab-new-$r" "$new_bin" postgres hot-book.js
    done
fi

python3 - "$out" "$rounds" "$stores" "${BASE_BIN:+1}" <<'PY' | tee "$out.txt"
import json, statistics, sys
out, rounds, stores, ab = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4] == "1"
def load(name):
    s = json.load(open(f"{out}/{name}.json"))
    u, sy, wall = map(float, open(f"{out}/{name}.k6time").read().split()[-3:])
    try:
        talead = float(open(f"{out}/{name}.taleadcpu").read())
    except (OSError, ValueError):
        talead = float("nan")
    rate = s["pairs_per_s"] if s.get("pairs_per_s") is not None else s["kinds"]["post"]["succeeded_per_s"]
    fails = sum(v["requests"] - v["succeeded"] for v in s["kinds"].values())
    return rate, fails, (u + sy) / s["test_run_duration_s"], talead / s["test_run_duration_s"], s
def spread(xs):
    return f"median {statistics.median(xs):.3f} (min {min(xs):.3f}, max {max(xs):.3f}, n={len(xs)})"
def table(pairs, a_name, b_name, label):
    ratios = []
    print(f"{'round':>5} {a_name:>12} {b_name:>12} {'ratio':>7}  k6 cores a/b  talead cores a/b  failed a/b")
    for r, (a, b) in enumerate(pairs, 1):
        ratios.append(a[0] / b[0])
        print(f"{r:>5} {a[0]:12.1f} {b[0]:12.1f} {a[0] / b[0]:7.3f}  {a[2]:.2f}/{b[2]:.2f}       {a[3]:.2f}/{b[3]:.2f}            {a[1]}/{b[1]}")
    print(f"{label}: {spread(ratios)}")
    print()
for store in stores:
    print(f"== {store}: hold-then-settle pairs/s vs plain posts/s (rounds alternate posts, pairs)")
    table([(load(f"{store}-pairs-{r}"), load(f"{store}-posts-{r}")) for r in range(1, rounds + 1)],
          "pairs/s", "posts/s", "pairs/s / posts/s")
if ab:
    print("== postgres A/B: plain posts/s, this talead vs the base (rounds alternate base, new)")
    table([(load(f"ab-new-{r}"), load(f"ab-base-{r}")) for r in range(1, rounds + 1)],
          "new tx/s", "base tx/s", "new / base")
PY
echo "phases' JSON: $out"
