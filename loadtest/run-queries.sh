#!/usr/bin/env bash
# Query costs on a book of EVENTS events (issue 20): for each store, a
# fresh release talead, the book filled through the bulk route
# (loadtest/query_costs.py fill), then each read query the API and the
# console use timed REPEAT times, one request at a time on one keep-alive
# connection (query_costs.py query): p50, p90, p99 and max per query.
# On Postgres the tables are analysed after the fill (as autovacuum would
# be, eventually), so plans are those of a settled database.
#
#   loadtest/run-queries.sh [PG_ADMIN_URL]
#
# Environment (defaults in brackets):
#   EVENTS        events in the book                        [1000000]
#   REPEAT        requests per query                        [200]
#   SLOW_REPEAT   requests of the slow queries (hot wallet history) [5]
#   STORES        which stores, comma separated   [postgres,sqlite,log]
#   TALEAD_BIN    the talead under test             [the release build]
#   RESULTS_DIR                                     [loadtest/results]
#   KEEP_DB       see lib.sh
# Writes RESULTS_DIR/queries-<stamp>-<store>.json and prints a table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_NAME=queries
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_begin "${BASH_SOURCE[0]}" "${1:-}"

events=${EVENTS:-1000000}
[[ $events =~ ^[0-9]+$ ]] && ((events >= 10000 && events <= 100000000)) || lt_die "EVENTS must be in 10000..=100000000"
repeat=${REPEAT:-200}
[[ $repeat =~ ^[0-9]+$ ]] && ((repeat >= 1 && repeat <= 100000)) || lt_die "REPEAT must be in 1..=100000"
slow_repeat=${SLOW_REPEAT:-5}
[[ $slow_repeat =~ ^[0-9]+$ ]] && ((slow_repeat <= 1000)) || lt_die "SLOW_REPEAT must be in 0..=1000"
stores=${STORES:-postgres,sqlite,log}
results=${RESULTS_DIR:-$ROOT/loadtest/results}
mkdir -p "$results"
stamp=$(date -u +%Y%m%d%H%M%S)

lt_setup_pg "${1:-}"
LT_TALEAD=$(lt_talead_bin release)

IFS=, read -r -a wanted <<<"$stores"
for store in "${wanted[@]}"; do
    name=q-$store
    db=""
    case $store in
    postgres)
        db=talea_queries_$stamp
        lt_create_db "$db"
        unset LT_STORE_URL
        ;;
    sqlite)
        mkdir -p "$LT_WORK/$name"
        export LT_STORE_URL=sqlite://$LT_WORK/$name/ledger.db
        ;;
    log)
        mkdir -p "$LT_WORK/$name"
        export LT_STORE_URL=log://$LT_WORK/$name/log
        ;;
    *) lt_die "unknown store '$store' (postgres, sqlite or log)" ;;
    esac
    lt_say "$store: filling a book of $events events"
    lt_start_talead "$name" "$db"
    TALEA_TOKEN=$LT_TOKEN python3 "$ROOT/loadtest/query_costs.py" fill \
        --url "http://$LT_BIND" --book big --events "$events" >"$LT_WORK/$name/fill.json"
    cat "$LT_WORK/$name/fill.json"
    if [[ $store == postgres ]]; then
        psql -q "$(lt_db_url "$db")" -c "VACUUM ANALYZE" >/dev/null
    fi
    lt_say "$store: timing queries ($repeat requests each)"
    out=$results/queries-$stamp-$store.json
    TALEA_TOKEN=$LT_TOKEN python3 "$ROOT/loadtest/query_costs.py" query \
        --url "http://$LT_BIND" --book big --events "$events" \
        --repeat "$repeat" --slow-repeat "$slow_repeat" >"$out"
    echo "wrote $out"
    lt_stop_pid "$LT_PID"
done
