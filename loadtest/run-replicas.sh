#!/usr/bin/env bash
# Read replicas (issue 23): read throughput of one read talead on the
# primary against two read talead instances, one on the primary and one on
# a streaming standby (TALEA_REPLICA_URL), in the same run; and the latency
# a read-your-writes read adds: each client posts on the write instance,
# then reads the standby's read instance without and with
# `Talea-Min-Seq: <the post's seq>` (only the read is timed).
#
# A throwaway primary (initdb) and its standby (pg_basebackup -R) are made
# from the local PostgreSQL binaries, under this run's work directory.
#
#   loadtest/run-replicas.sh
#
# Environment (defaults in brackets):
#   SECONDS_EACH   measured seconds of each phase                [10]
#   CONNECTIONS    load generator clients (one connection each)  [32]
#   SEED_SECONDS   seconds of writes before the reads            [3]
#   TALEAD_BIN     the talead under test             [the release build]
#   RESULTS_DIR                                      [loadtest/results]
# Writes RESULTS_DIR/replicas-<stamp>.json (every phase's talea-post-load
# summary, with the generator's own CPU) and prints a table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_NAME=replicas
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_begin "${BASH_SOURCE[0]}" "${1:-}"

secs=${SECONDS_EACH:-10}
[[ $secs =~ ^[0-9]+$ ]] && ((secs >= 1 && secs <= 600)) || lt_die "SECONDS_EACH must be in 1..=600"
conns=${CONNECTIONS:-32}
[[ $conns =~ ^[0-9]+$ ]] && ((conns >= 1 && conns <= 1024)) || lt_die "CONNECTIONS must be in 1..=1024"
seed=${SEED_SECONDS:-3}
[[ $seed =~ ^[0-9]+$ ]] && ((seed >= 1 && seed <= 600)) || lt_die "SEED_SECONDS must be in 1..=600"
results=${RESULTS_DIR:-$ROOT/loadtest/results}
mkdir -p "$results"
stamp=$(date -u +%Y%m%d%H%M%S)

LT_TALEAD=$(lt_talead_bin release)
(cd "$ROOT" && cargo build --release -p talea-post-load >&2) || lt_die "cargo build --release -p talea-post-load failed"
target=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target == /* ]] || target=$ROOT/$target
load_bin=$target/release/talea-post-load

# The newest local PostgreSQL binaries; as root, run them as `postgres`.
pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[[ -x $pg_bin/initdb && -x $pg_bin/pg_basebackup ]] || lt_die "no initdb and pg_basebackup under /usr/lib/postgresql/*/bin"
as_pg=()
if [[ $(id -u) == 0 ]]; then as_pg=(runuser -u postgres --); fi
pg_dir=$LT_WORK/pg
mkdir -p "$pg_dir"
chmod 755 "$LT_WORK"
[[ ${#as_pg[@]} == 0 ]] || chown postgres "$pg_dir"
pport=$(svc_free_port)
sport=$(svc_free_port)
pg_start() { # DATA PORT
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$1" -l "$1.log" -w -t 60 \
        -o "-p $2 -c listen_addresses=127.0.0.1 -k $pg_dir -c max_connections=200" start >/dev/null
}
pg_stop_all() {
    for d in "$pg_dir/standby" "$pg_dir/primary"; do
        [[ -d $d ]] && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    done
}
trap 'rc=$?; pg_stop_all; lt_cleanup; exit $rc' EXIT

lt_say "primary (port $pport) and streaming standby (port $sport)"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/primary" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
pg_start "$pg_dir/primary" "$pport"
"${as_pg[@]}" "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$pg_dir/standby" -R -X stream -c fast
pg_start "$pg_dir/standby" "$sport"
primary_url=postgres://postgres@127.0.0.1:$pport/postgres
standby_url=postgres://postgres@127.0.0.1:$sport/postgres

export LT_STORE_URL=$primary_url
lt_start_talead writer "" TALEA_ROLE=write
writer=$LT_BIND
token=$LT_TOKEN
lt_start_talead read-primary "" TALEA_ROLE=read "TALEA_API_TOKEN=$token"
read_primary=$LT_BIND
metrics=127.0.0.1:$(svc_free_port)
lt_start_talead read-standby "" TALEA_ROLE=read "TALEA_API_TOKEN=$token" "TALEA_REPLICA_URL=$standby_url" \
    "TALEA_METRICS_BIND=$metrics"
read_standby=$LT_BIND

path=/v1/books/hot/accounts/hot:a
phase() { # NAME SECONDS CONNECTIONS ARGS...
    local name=$1 s=$2 c=$3
    shift 3
    lt_say "$name"
    TALEA_TOKEN=$token "$load_bin" --url "http://$writer" --connections "$c" \
        --seconds "$s" --warmup 2 --summary "$LT_WORK/$name.json" "$@" >/dev/null ||
        lt_die "$name: talea-post-load failed"
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  %.0f req/s, p50 %.2f ms, p99 %.2f ms, failures %s, generator %.2f cores" % (s["requests_per_s"], s["latency_ms"]["p50"], s["latency_ms"]["p99"], s["failures"], s["generator_cores"]))' "$LT_WORK/$name.json"
}

phase seed "$seed" 8
phase one_read_instance_primary "$secs" "$conns" --read "$path" --read-url "http://$read_primary"
phase two_read_instances_primary_standby "$secs" "$conns" --read "$path" --read-url "http://$read_primary,http://$read_standby"
phase standby_read_after_write "$secs" "$conns" --read "$path" --read-url "http://$read_standby" --after-write
phase standby_read_after_write_min_seq "$secs" "$conns" --read "$path" --read-url "http://$read_standby" --after-write --min-seq
# How the standby instance's reads with min_seq ended (warm-up included).
curl -s "http://$metrics/metrics" | grep '^talea_replica_waits_total' >"$LT_WORK/waits.txt" || true
sed 's/^/  /' "$LT_WORK/waits.txt"

out=$results/replicas-$stamp.json
python3 - "$LT_WORK" "$out" "$secs" "$conns" <<'PY'
import json, os, platform, sys
work, out, secs, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
names = ["one_read_instance_primary", "two_read_instances_primary_standby",
         "standby_read_after_write", "standby_read_after_write_min_seq"]
phases = {n: json.load(open(os.path.join(work, n + ".json"))) for n in names}
waits = {}
for line in open(os.path.join(work, "waits.txt")):
    label, value = line.split()
    waits[label.split('"')[1]] = int(float(value))
doc = {"what": "read replicas: read throughput and read-your-writes latency (loadtest/run-replicas.sh)",
       "seconds_each": secs, "connections": conns, "cores": os.cpu_count(),
       "machine": platform.platform(), "phases": phases,
       "standby_min_seq_reads_by_result": waits}
json.dump(doc, open(out, "w"), indent=2)
print("\nphase                                   req/s    p50 ms   p99 ms  generator cores")
for n in names:
    s = phases[n]
    print("%-38s %7.0f %8.2f %8.2f %8.2f" % (n, s["requests_per_s"], s["latency_ms"]["p50"], s["latency_ms"]["p99"], s["generator_cores"]))
print("\nstandby reads with min_seq, by result:", waits)
print("wrote", out)
PY
