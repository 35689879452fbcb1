#!/usr/bin/env bash
# Proofs of a large book over HTTP (issue 18, item 8): writes one book of at
# least SIZE events into an append-log store with talea-store-log-load (the
# fastest writer; every event is chained as on every store), serves it with
# a release talead, and runs k6 proofs.js against it: inclusion and
# consistency proofs at tree size SIZE, p99 under 10 ms. The first proof
# builds the book's tree in talead and is timed apart (`tree_build_ms`).
# Prints the table and writes RESULTS_DIR/proofs-<stamp>.json.
#
#   loadtest/run-proofs.sh
#
# Environment (defaults in brackets):
#   SIZE          the tree size proven, events               [1000000]
#   LOAD_SECONDS  how long the loader writes                 [90]
#   RATE          proof requests per second                  [500]
#   DURATION      length of the k6 run                       [30s]
#   TALEAD_BIN    the talead under test                      [the release build]
#   RESULTS_DIR                                              [loadtest/results]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
LT_NAME=proofs
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_install_traps

case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
esac

size=${SIZE:-1000000}
[[ $size =~ ^[0-9]+$ ]] && ((size >= 1)) || lt_die "SIZE must be a positive number"
load_s=${LOAD_SECONDS:-90}
stamp=$(date -u +%Y%m%d%H%M%S)
results=${RESULTS_DIR:-$ROOT/loadtest/results}
mkdir -p "$results"
[[ -x /usr/bin/time ]] || lt_die "needs /usr/bin/time (Debian package time)"

LT_TALEAD=$(lt_talead_bin release)
lt_need_k6
target=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q -p talea-store-log --bin talea-store-log-load
loader=$target/release/talea-store-log-load
dir=$LT_WORK/log
lt_say "writing book load-0 for ${load_s}s"
"$loader" --dir "$dir" --books 1 --batch 256 --seconds "$load_s" 2>&1 | tail -n 3

LT_STORE_URL=log://$dir lt_start_talead proofs none
last=$(curl -s -H "Authorization: Bearer $LT_TOKEN" "http://$LT_BIND/v1/books" |
    python3 -c 'import json,sys; print(max([b["last_seq"] for b in json.load(sys.stdin)["books"] if b["book"]=="load-0"] or [0]))')
((last >= size)) || lt_die "book load-0 has $last events, fewer than SIZE=$size: raise LOAD_SECONDS"
lt_say "proofs of load-0 at tree size $size (the book has $last events)"
summary=$results/proofs-$stamp.json
lt_run_child 900 /usr/bin/time -f '%U %S %e' -o "$LT_WORK/k6time" \
    k6 run --quiet --no-usage-report --address 127.0.0.1:0 \
    -e "TALEA_URL=http://$LT_BIND" -e "TALEA_TOKEN=$LT_TOKEN" -e "SUMMARY=$summary" \
    -e BOOK=load-0 -e "SIZE=$size" -e "RATE=${RATE:-500}" -e "DURATION=${DURATION:-30s}" \
    "$ROOT/loadtest/proofs.js" || lt_die "k6 failed (see above)"
python3 - "$summary" "$LT_WORK/k6time" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
u, sy, wall = map(float, open(sys.argv[2]).read().split()[-3:])
print(f"tree of {s['size']} events built by the first proof in {s['tree_build_ms']} ms")
for kind, k in s["kinds"].items():
    l = k["latency_ms"]
    print(f"{kind:12s} {k['succeeded_per_s']:8.1f}/s  p50 {l['p50']:.2f} ms  p99 {l['p99']:.2f} ms  max {l['max']:.2f} ms  failed {k['requests'] - k['succeeded']}")
print(f"k6 cpu {u + sy:.1f}s of {wall:.1f}s wall")
PY
echo "summary: $summary"
