#!/usr/bin/env bash
# Writes on one hot book against the batched SQL ceiling (issue 19, item 3),
# side by side in one run on one Postgres, ROUNDS times over:
#
#   ceiling  pgbench naive/batch.sql: 64 drafts per database transaction from
#            2 clients on one book (as bench.sh's `batch` phase), drafts/s;
#            measured before the round's Postgres phases and again after
#            them (`ceiling2`): the round's ceiling is their mean
#   single   talead on Postgres, single posts from talea-post-load,
#            SINGLE_CONNECTIONS clients back to back
#   bulk     talead on Postgres, bulk requests of BULK_BATCH posts from
#            talea-post-load, BULK_CONNECTIONS clients back to back
#   log      talead on the embedded log store (log://), the same bulk load
#
# Each phase starts after a CHECKPOINT; each talea phase runs on a fresh
# database (or log directory) with its own release talead, the hash chain on. Every phase records the load
# generator's own CPU (pgbench or talea-post-load) and talead's, so the
# report gives talead's CPU per committed transaction. Ratios are taken
# round by round (phases back to back) and printed as median, min and max.
# With BASE_BIN, each round adds `base-single`: the single-post phase
# against that talead (built before a change), for the CPU-per-post A/B.
#
#   loadtest/run-writes.sh [PG_ADMIN_URL]
#
# Environment (defaults in brackets):
#   ROUNDS              rounds                                        [3]
#   DURATION            measured length of each phase                 [20s]
#   WARMUP              load before measuring, not counted            [3s]
#   SINGLE_CONNECTIONS  clients of the single phase                   [64]
#   BULK_CONNECTIONS    clients of the bulk phases                    [8]
#   BULK_BATCH          posts per bulk request                        [100]
#   PHASES              which phases, comma separated   [ceiling,single,bulk,log]
#   BASE_BIN            a talead to compare single posts against      [none]
#   TALEAD_BIN          the talead under test             [the release build]
#   RESULTS_DIR                                           [loadtest/results]
#   KEEP_DB             see lib.sh
# Writes RESULTS_DIR/writes-<stamp>/ (every phase's JSON) and
# RESULTS_DIR/writes-<stamp>.txt (the table).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_NAME=writes
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_begin "${BASH_SOURCE[0]}" "${1:-}"

uint() {
    local name=$1 value=$2 lo=$3 hi=$4
    [[ $value =~ ^[0-9]+$ ]] && ((value >= lo && value <= hi)) || lt_die "$name must be in $lo..=$hi (got '$value')"
}
rounds=${ROUNDS:-3}
uint ROUNDS "$rounds" 1 50
secs=$(lt_secs "${DURATION:-20s}")
warmup=$(lt_secs "${WARMUP:-3s}")
single_conns=${SINGLE_CONNECTIONS:-64}
uint SINGLE_CONNECTIONS "$single_conns" 1 4096
bulk_conns=${BULK_CONNECTIONS:-8}
uint BULK_CONNECTIONS "$bulk_conns" 1 4096
bulk_batch=${BULK_BATCH:-100}
uint BULK_BATCH "$bulk_batch" 2 1000
phases=",${PHASES:-ceiling,single,bulk,log},"
stamp=$(date -u +%Y%m%d%H%M%S)
results=${RESULTS_DIR:-$ROOT/loadtest/results}
out=$results/writes-$stamp
mkdir -p "$out"
for tool in psql pgbench python3; do
    command -v "$tool" >/dev/null 2>&1 || lt_die "needs $tool (Debian packages postgresql-client, python3)"
done
[[ -x /usr/bin/time ]] || lt_die "needs /usr/bin/time (Debian package time)"
has() { [[ $phases == *",$1,"* ]]; }

lt_setup_pg "${1:-}"
LT_TALEAD=$(lt_talead_bin release)
new_bin=$LT_TALEAD
(cargo build --release -p talea-post-load >&2) || lt_die "cargo build --release -p talea-post-load failed"
target=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target == /* ]] || target=$ROOT/$target
load_bin=$target/release/talea-post-load
if [[ -n ${BASE_BIN:-} ]]; then
    [[ -x $BASE_BIN ]] || lt_die "BASE_BIN=$BASE_BIN is not an executable"
fi
{
    lt_machine
    echo "rounds $rounds, ${secs}s per phase after ${warmup}s of warm-up; single: $single_conns clients;" \
        "bulk: $bulk_conns clients x $bulk_batch posts"
} | tee "$out/machine.txt"

# quiet: a checkpoint before each phase, so that no phase pays for the
# dirty pages of the one before it (a bulk phase leaves gigabytes of WAL,
# and a checkpoint that lands in the middle of the next phase slows its
# fsyncs several times over).
quiet() {
    timeout 300 psql "$LT_ADMIN_URL" -XAtqc "CHECKPOINT" >/dev/null || lt_die "CHECKPOINT failed"
    sync
}

# ceiling NAME: fresh database with naive/schema.sql, pgbench batch.sql for
# WARMUP (unmeasured: see bench.sh's sql_phase), then for DURATION.
ceiling() {
    local name=$1 db rc=0 url
    db=talea_writes_${stamp}_${name//-/_}
    lt_create_db "$db"
    url=$(lt_db_url "$db")
    PGOPTIONS="-c client_min_messages=warning" psql "$url" -Xq -v ON_ERROR_STOP=1 -v books=1 \
        -f "$ROOT/loadtest/naive/schema.sql" >/dev/null || lt_die "cannot load naive/schema.sql"
    quiet
    local common=(pgbench -n -M prepared -c 2 -j 2 -D n=0 -D books=1 -D batch=64 -f "$ROOT/loadtest/naive/batch.sql")
    lt_run_child $((warmup + 120)) "${common[@]}" -T "$warmup" -D "run=${stamp}0" "$url" >"$out/$name.warmup" 2>&1 ||
        lt_die "$name: pgbench (warm-up) failed"
    lt_run_child $((secs + 120)) /usr/bin/time -f '%U %S %e' -o "$out/$name.time" \
        "${common[@]}" -T "$secs" -D "run=$stamp" "$url" >"$out/$name.out" 2>&1 || rc=$?
    ((rc == 0)) || {
        tail -n 20 "$out/$name.out" >&2
        lt_die "$name: pgbench failed with status $rc"
    }
    python3 - "$out" "$name" "$secs" <<'PY'
import json, re, sys
out, name, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
text = open(f"{out}/{name}.out").read()
tps = float(re.search(r"tps = ([0-9.]+)", text).group(1))
lat = float(re.search(r"latency average = ([0-9.]+) ms", text).group(1))
u, s, wall = map(float, open(f"{out}/{name}.time").read().split()[-3:])
summary = {"tx_per_s": tps * 64, "batch_latency_ms_avg": lat, "generator_cores": (u + s) / wall}
json.dump(summary, open(f"{out}/{name}.json", "w"), indent=2)
print(f"{name:18s} {summary['tx_per_s']:10.1f} drafts/s  pgbench {summary['generator_cores']:.2f} cores")
PY
    timeout 60 psql "$LT_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# talea NAME BIN STORE CONNECTIONS BATCH: fresh store, talead BIN, the load.
talea() {
    local name=$1 bin=$2 store=$3 conns=$4 batch=$5 db="" pid cpu0 cpu1 rc=0
    if [[ $store == log ]]; then
        mkdir -p "$LT_WORK/$name"
        LT_STORE_URL=log://$LT_WORK/$name/log
    else
        db=talea_writes_${stamp}_${name//-/_}
        lt_create_db "$db"
        unset LT_STORE_URL
    fi
    quiet
    LT_TALEAD=$bin lt_start_talead "$name" "$db"
    pid=$LT_PID
    unset LT_STORE_URL
    # talead's CPU over the measured window only: read after the warm-up
    # (the generator sleeps through it) and when the generator stops.
    TALEA_TOKEN=$LT_TOKEN "$load_bin" --url "http://$LT_BIND" --book hot --connections "$conns" \
        --batch "$batch" --seconds "$secs" --warmup "$warmup" --run-id "w$stamp$name" \
        --summary "$out/$name.json" >"$out/$name.loadout" 2>&1 &
    local load_pid=$!
    LT_CHILD_PID=$load_pid
    sleep "$warmup"
    cpu0=$(lt_cpu_s "$pid")
    sleep "$secs"
    cpu1=$(lt_cpu_s "$pid")
    wait "$load_pid" || rc=$?
    LT_CHILD_PID=""
    lt_stop_pid "$pid"
    if [[ -n $db ]]; then
        timeout 60 psql "$LT_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if ((rc != 0)) || [[ ! -s $out/$name.json ]]; then
        tail -n 20 "$out/$name.loadout" >&2
        tail -n 20 "$LT_WORK/$name/talead.log" >&2 || true
        lt_die "$name: talea-post-load failed with status $rc"
    fi
    python3 - "$out/$name.json" "$cpu0" "$cpu1" "$secs" <<'PY'
import json, sys
path, cpu0, cpu1, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = json.load(open(path))
s["talead_cores"] = (cpu1 - cpu0) / secs
s["talead_us_per_tx"] = (cpu1 - cpu0) / s["committed"] * 1e6 if s["committed"] else None
json.dump(s, open(path, "w"), indent=2)
name = path.rsplit("/", 1)[-1][:-5]
fails = sum(s["failures"].values())
per = f"{s['talead_us_per_tx']:.1f}" if s["talead_us_per_tx"] else "-"
print(f"{name:18s} {s['tx_per_s']:10.1f} tx/s  failed {fails}  p99 {s['latency_ms']['p99']:.1f} ms  "
      f"talead {s['talead_cores']:.2f} cores, {per} us/tx  generator {s['generator_cores']:.2f} cores")
PY
}

for ((r = 1; r <= rounds; r++)); do
    lt_say "round $r of $rounds"
    if has ceiling; then ceiling "ceiling-$r"; fi
    if has single; then talea "single-$r" "$new_bin" postgres "$single_conns" 1; fi
    if [[ -n ${BASE_BIN:-} ]]; then talea "base-single-$r" "$BASE_BIN" postgres "$single_conns" 1; fi
    if has bulk; then talea "bulk-$r" "$new_bin" postgres "$bulk_conns" "$bulk_batch"; fi
    if has ceiling; then ceiling "ceiling2-$r"; fi
    if has log; then talea "log-$r" "$new_bin" log "$bulk_conns" "$bulk_batch"; fi
done

python3 - "$out" "$rounds" <<'PY' | tee "$out.txt"
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    path = f"{out}/{name}.json"
    return json.load(open(path)) if os.path.exists(path) else None
def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"median {statistics.median(xs):.3f} (min {min(xs):.3f}, max {max(xs):.3f}, n={len(xs)})"
kinds = ["ceiling", "single", "base-single", "bulk", "ceiling2", "log"]
print(f"{'round':>5} " + " ".join(f"{k:>12}" for k in kinds) + "   (tx/s; ceilings in drafts/s)")
rows = {k: [] for k in kinds}
for r in range(1, rounds + 1):
    cells = []
    for k in kinds:
        s = load(f"{k}-{r}")
        rows[k].append(s)
        cells.append(f"{s['tx_per_s']:12.1f}" if s else f"{'-':>12}")
    print(f"{r:>5} " + " ".join(cells))
# The round's ceiling: the mean of the one measured before its talea phases
# and the one after them (the disk's fsync latency drifts on a shared machine).
rows["ceiling"] = [
    {**a, "tx_per_s": (a["tx_per_s"] + b["tx_per_s"]) / 2} if a and b else a or b
    for a, b in zip(rows["ceiling"], rows["ceiling2"])
]
print()
def ratio(a, b):
    return [x["tx_per_s"] / y["tx_per_s"] if x and y else None for x, y in zip(rows[a], rows[b])]
print(f"single / ceiling: {spread(ratio('single', 'ceiling'))}")
print(f"bulk / ceiling:   {spread(ratio('bulk', 'ceiling'))}")
print(f"log bulk tx/s:    {spread([s['tx_per_s'] if s else None for s in rows['log']])}")
if any(rows["base-single"]):
    print(f"single / base single: {spread(ratio('single', 'base-single'))}")
print()
print("talead CPU per committed transaction (us), and cores used by talead and by the load generator:")
for k in ["single", "base-single", "bulk", "log"]:
    if not any(rows[k]):
        continue
    us = [s["talead_us_per_tx"] if s else None for s in rows[k]]
    print(f"  {k:12s} us/tx {spread(us)}")
    print(f"  {'':12s} talead cores {spread([s['talead_cores'] if s else None for s in rows[k]])}")
    print(f"  {'':12s} generator cores {spread([s['generator_cores'] if s else None for s in rows[k]])}")
if any(rows["ceiling"]):
    print(f"  {'ceiling':12s} pgbench cores {spread([s['generator_cores'] if s else None for s in rows['ceiling']])}")
PY
echo "phases' JSON: $out"
