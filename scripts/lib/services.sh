# shellcheck shell=bash
# Finding, or starting, the PostgreSQL and NATS servers that talea's tests and
# benchmarks need. Sourced by scripts/test and the loadtest/*.sh commands.
#
#   svc_setup_pg     sets and exports TALEA_TEST_PG_URL (an admin URL)
#   svc_setup_nats   sets and exports TALEA_TEST_NATS_URL
#   svc_cleanup      stops and deletes whatever this shell started (idempotent)
#   svc_install_traps  runs svc_cleanup on exit, INT and TERM
#
# Order of preference, for each service:
#   1. the URL in TALEA_TEST_PG_URL / TALEA_TEST_NATS_URL, checked to answer
#      (it fails if it does not: an explicit URL is never silently replaced);
#   2. the local server on 127.0.0.1:5432 / 127.0.0.1:4222 (NATS must have
#      JetStream on);
#   3. a throwaway server from the local binaries (initdb + pg_ctl, found on
#      PATH or under /usr/lib/postgresql/*/bin; nats-server), on a free
#      loopback port, its files in a temporary directory deleted on exit;
#   4. as root with apt-get: install the Debian package (postgresql,
#      nats-server) and try 2 and 3 again;
#   5. otherwise fail, saying which Debian package to install.
#
# TALEA_TEST_FORCE_THROWAWAY=1 skips 1 and 2 (to test the throwaway path).
# TALEA_SVC_DEADLINE_S (default 60) bounds every wait for a server.
#
# Everything is printed on stderr; stdout stays free for the caller.

SVC_DEADLINE_S="${TALEA_SVC_DEADLINE_S:-60}"
SVC_PG_DIR=""      # throwaway Postgres: its temporary directory
SVC_PG_CTL=""      # ... the pg_ctl that started it
SVC_PG_USER=""     # ... the user it runs as (empty: the current one)
SVC_NATS_DIR=""    # throwaway NATS: its temporary directory
SVC_NATS_PID=""    # ... its process id
SVC_APT_UPDATED=0

svc_log() { printf 'services: %s\n' "$*" >&2; }

# A URL with any password replaced by ***, for printing.
svc_redact() {
    sed -E 's#^([a-z]+://[^:/@]+):[^@/]*@#\1:***@#' <<<"$1"
}

# svc_tcp_open HOST PORT: true if something accepts a TCP connection there.
svc_tcp_open() {
    # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# svc_free_port: prints a loopback TCP port nothing listens on. Ports come
# from 20000-31999, below Linux's ephemeral range, so outgoing connections do
# not take them in the meantime. A race with another process stays possible;
# the callers retry on a new port when a server fails to start.
svc_free_port() {
    local i port
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM % 12000)))
        if ! svc_tcp_open 127.0.0.1 "$port"; then
            echo "$port"
            return 0
        fi
    done
    svc_log "no free port found in 200 tries"
    return 1
}

# svc_find_pg_bin NAME: prints the path of a PostgreSQL server binary, from
# PATH or the newest /usr/lib/postgresql/*/bin.
svc_find_pg_bin() {
    local name=$1 found dir
    if found=$(command -v "$name" 2>/dev/null) && [[ -x $found ]]; then
        echo "$found"
        return 0
    fi
    # shellcheck disable=SC2012 # version directories: plain names
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $dir/$name ]]; then
            echo "$dir/$name"
            return 0
        fi
    done
    return 1
}

svc_find_nats_server() {
    local found path
    if found=$(command -v nats-server 2>/dev/null) && [[ -x $found ]]; then
        echo "$found"
        return 0
    fi
    for path in /usr/sbin/nats-server /usr/local/bin/nats-server /usr/bin/nats-server; do
        if [[ -x $path ]]; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

# svc_apt_install PACKAGE: installs a Debian package when running as root
# with apt-get. Returns non-zero when it cannot or it failed.
svc_apt_install() {
    local pkg=$1
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    svc_log "installing the Debian package $pkg with apt-get"
    if DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q "$pkg" </dev/null >&2; then
        return 0
    fi
    if [[ $SVC_APT_UPDATED -eq 0 ]]; then
        SVC_APT_UPDATED=1
        svc_log "apt-get install failed; running apt-get update and trying again"
        timeout 600 apt-get update -q </dev/null >&2 || true
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q "$pkg" </dev/null >&2 && return 0
    fi
    return 1
}

# svc_need_tool COMMAND PACKAGE: makes sure COMMAND is on PATH, installing
# the Debian PACKAGE when it is not; fails with a message naming the package.
svc_need_tool() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    svc_apt_install "$pkg" && command -v "$cmd" >/dev/null 2>&1 && return 0
    svc_log "FAIL: '$cmd' is missing. Install the Debian package '$pkg' (apt-get install $pkg)."
    return 1
}

# Runs a command as the user the throwaway Postgres runs as.
svc_as_pg_user() {
    if [[ -n $SVC_PG_USER ]]; then
        runuser -u "$SVC_PG_USER" -- "$@"
    else
        "$@"
    fi
}

# svc_pg_answers URL: true if Postgres accepts a query at URL.
svc_pg_answers() {
    local url=$1
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=5 timeout 10 psql "$url" -XAtqc 'select 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null 2>&1; then
        timeout 10 pg_isready -q -d "$url" -t 5
    else
        svc_log "neither psql nor pg_isready is installed (Debian package postgresql-client)"
        return 1
    fi
}

# svc_local_pg_ready: true if the standard local Postgres answers.
svc_local_pg_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        timeout 10 pg_isready -q -h 127.0.0.1 -p 5432 -t 3
    else
        svc_tcp_open 127.0.0.1 5432
    fi
}

# svc_start_throwaway_pg: initdb + pg_ctl start in a temporary directory.
# Sets TALEA_TEST_PG_URL. Returns non-zero when the binaries are missing or
# the server does not come up.
svc_start_throwaway_pg() {
    local initdb pg_ctl tmp_root attempt port
    initdb=$(svc_find_pg_bin initdb) || return 1
    pg_ctl=$(svc_find_pg_bin pg_ctl) || return 1
    tmp_root=${TMPDIR:-/tmp}
    SVC_PG_USER=""
    if [[ $(id -u) -eq 0 ]]; then
        # initdb refuses to run as root: use the postgres user (the Debian
        # package creates it), else nobody. They cannot always reach $TMPDIR.
        if id postgres >/dev/null 2>&1; then SVC_PG_USER=postgres; else SVC_PG_USER=nobody; fi
        tmp_root=/tmp
    fi
    SVC_PG_DIR=$(mktemp -d "$tmp_root/talea-pg.XXXXXX")
    SVC_PG_CTL=$pg_ctl
    mkdir -p "$SVC_PG_DIR/sock"
    if [[ -n $SVC_PG_USER ]]; then chown -R "$SVC_PG_USER" "$SVC_PG_DIR"; fi
    svc_log "starting a throwaway PostgreSQL ($initdb) in $SVC_PG_DIR${SVC_PG_USER:+ as $SVC_PG_USER}"
    if ! svc_as_pg_user "$initdb" -D "$SVC_PG_DIR/data" -U postgres --auth=trust \
        --no-locale -E UTF8 >"$SVC_PG_DIR/initdb.log" 2>&1; then
        svc_log "initdb failed:"
        sed 's/^/  /' "$SVC_PG_DIR/initdb.log" >&2
        return 1
    fi
    for attempt in 1 2 3; do
        port=$(svc_free_port) || return 1
        if svc_as_pg_user "$pg_ctl" -D "$SVC_PG_DIR/data" -l "$SVC_PG_DIR/server.log" \
            -w -t "$SVC_DEADLINE_S" -o "-p $port -c listen_addresses=127.0.0.1 -k $SVC_PG_DIR/sock -c fsync=on -c max_connections=200" \
            start >"$SVC_PG_DIR/pg_ctl.log" 2>&1; then
            TALEA_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
            if svc_wait_pg "$TALEA_TEST_PG_URL"; then
                svc_log "throwaway PostgreSQL ready on 127.0.0.1:$port"
                return 0
            fi
        fi
        svc_log "throwaway PostgreSQL did not start on port $port (attempt $attempt); its log:"
        tail -n 20 "$SVC_PG_DIR/server.log" 2>/dev/null | sed 's/^/  /' >&2 || true
        svc_as_pg_user "$pg_ctl" -D "$SVC_PG_DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    done
    return 1
}

# svc_wait_pg URL: waits (bounded) until Postgres answers a query.
svc_wait_pg() {
    local url=$1 deadline=$((SECONDS + SVC_DEADLINE_S))
    while ((SECONDS < deadline)); do
        if svc_pg_answers "$url"; then return 0; fi
        sleep 0.2
    done
    return 1
}

svc_stop_pg() {
    if [[ -n $SVC_PG_DIR ]]; then
        if [[ -d $SVC_PG_DIR/data && -n $SVC_PG_CTL ]]; then
            svc_as_pg_user "$SVC_PG_CTL" -D "$SVC_PG_DIR/data" -m fast -w -t 20 stop >/dev/null 2>&1 ||
                svc_as_pg_user "$SVC_PG_CTL" -D "$SVC_PG_DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        fi
        rm -rf "$SVC_PG_DIR"
        svc_log "stopped and deleted the throwaway PostgreSQL ($SVC_PG_DIR)"
        SVC_PG_DIR=""
    fi
}

svc_setup_pg() {
    local force=${TALEA_TEST_FORCE_THROWAWAY:-0}
    if [[ $force != 1 && -n ${TALEA_TEST_PG_URL:-} ]]; then
        if svc_wait_pg "$TALEA_TEST_PG_URL"; then
            svc_log "PostgreSQL: using TALEA_TEST_PG_URL ($(svc_redact "$TALEA_TEST_PG_URL"))"
            export TALEA_TEST_PG_URL
            return 0
        fi
        svc_log "FAIL: TALEA_TEST_PG_URL is set ($(svc_redact "$TALEA_TEST_PG_URL")) but does not answer within ${SVC_DEADLINE_S}s"
        return 1
    fi
    local round
    for round in 1 2; do
        if [[ $force != 1 ]] && svc_local_pg_ready; then
            TALEA_TEST_PG_URL="postgres://postgres@127.0.0.1:5432/postgres"
            if svc_wait_pg "$TALEA_TEST_PG_URL"; then
                svc_log "PostgreSQL: using the local server at 127.0.0.1:5432"
                export TALEA_TEST_PG_URL
                return 0
            fi
            svc_log "127.0.0.1:5432 answers but does not accept postgres@postgres with trust auth"
        fi
        if svc_find_pg_bin initdb >/dev/null && svc_find_pg_bin pg_ctl >/dev/null; then
            if svc_start_throwaway_pg; then
                export TALEA_TEST_PG_URL
                return 0
            fi
            svc_stop_pg
            svc_log "FAIL: could not start a throwaway PostgreSQL (see above)"
            return 1
        fi
        if ((round == 1)); then
            svc_log "no PostgreSQL answers on 127.0.0.1:5432 and initdb/pg_ctl are not installed"
            svc_apt_install postgresql || break
        fi
    done
    svc_log "FAIL: no PostgreSQL. Install the Debian package 'postgresql' (apt-get install postgresql),"
    svc_log "      or start one on 127.0.0.1:5432, or set TALEA_TEST_PG_URL=postgres://user@host:port/db"
    return 1
}

# svc_nats_answers HOST PORT: 0 if a NATS server with JetStream answers,
# 2 if NATS answers without JetStream, 1 otherwise. NATS greets every new
# connection with an `INFO {json}` line.
svc_nats_answers() {
    local line
    # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
    line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; IFS= read -r -t 3 line <&3; printf "%s" "$line"' _ "$1" "$2" 2>/dev/null) || return 1
    [[ $line == INFO* ]] || return 1
    [[ $line == *'"jetstream":true'* ]] || return 2
    return 0
}

# svc_nats_hostport URL: prints "host port" of nats://host:port (default port 4222).
svc_nats_hostport() {
    local rest=${1#*://}
    rest=${rest##*@}
    rest=${rest%%/*}
    rest=${rest%%,*}
    local host=${rest%%:*} port=4222
    [[ $rest == *:* ]] && port=${rest##*:}
    echo "$host $port"
}

svc_start_throwaway_nats() {
    local bin attempt port deadline rc
    bin=$(svc_find_nats_server) || return 1
    SVC_NATS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/talea-nats.XXXXXX")
    svc_log "starting a throwaway NATS ($bin) in $SVC_NATS_DIR"
    for attempt in 1 2 3; do
        port=$(svc_free_port) || return 1
        "$bin" -a 127.0.0.1 -p "$port" -js -sd "$SVC_NATS_DIR/js" -l "$SVC_NATS_DIR/nats.log" </dev/null >/dev/null 2>&1 &
        SVC_NATS_PID=$!
        deadline=$((SECONDS + SVC_DEADLINE_S))
        while ((SECONDS < deadline)) && kill -0 "$SVC_NATS_PID" 2>/dev/null; do
            rc=0
            svc_nats_answers 127.0.0.1 "$port" || rc=$?
            if ((rc == 0)); then
                TALEA_TEST_NATS_URL="nats://127.0.0.1:$port"
                svc_log "throwaway NATS ready on 127.0.0.1:$port (pid $SVC_NATS_PID)"
                return 0
            fi
            sleep 0.1
        done
        svc_log "throwaway NATS did not start on port $port (attempt $attempt); its log:"
        tail -n 20 "$SVC_NATS_DIR/nats.log" 2>/dev/null | sed 's/^/  /' >&2 || true
        kill "$SVC_NATS_PID" 2>/dev/null || true
        wait "$SVC_NATS_PID" 2>/dev/null || true
        SVC_NATS_PID=""
    done
    return 1
}

svc_stop_nats() {
    local i
    if [[ -n $SVC_NATS_PID ]]; then
        kill "$SVC_NATS_PID" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$SVC_NATS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SVC_NATS_PID" 2>/dev/null || true
        wait "$SVC_NATS_PID" 2>/dev/null || true
        SVC_NATS_PID=""
    fi
    if [[ -n $SVC_NATS_DIR ]]; then
        rm -rf "$SVC_NATS_DIR"
        svc_log "stopped and deleted the throwaway NATS ($SVC_NATS_DIR)"
        SVC_NATS_DIR=""
    fi
}

svc_setup_nats() {
    local force=${TALEA_TEST_FORCE_THROWAWAY:-0} hp rc
    if [[ $force != 1 && -n ${TALEA_TEST_NATS_URL:-} ]]; then
        read -r -a hp <<<"$(svc_nats_hostport "$TALEA_TEST_NATS_URL")"
        rc=0
        svc_nats_answers "${hp[0]}" "${hp[1]}" || rc=$?
        if ((rc == 0)); then
            svc_log "NATS: using TALEA_TEST_NATS_URL ($(svc_redact "$TALEA_TEST_NATS_URL"))"
            export TALEA_TEST_NATS_URL
            return 0
        fi
        if ((rc == 2)); then
            svc_log "FAIL: TALEA_TEST_NATS_URL ($(svc_redact "$TALEA_TEST_NATS_URL")) answers without JetStream (start nats-server with -js)"
        else
            svc_log "FAIL: TALEA_TEST_NATS_URL is set ($(svc_redact "$TALEA_TEST_NATS_URL")) but no NATS answers there"
        fi
        return 1
    fi
    local round
    for round in 1 2; do
        if [[ $force != 1 ]]; then
            rc=0
            svc_nats_answers 127.0.0.1 4222 || rc=$?
            if ((rc == 0)); then
                TALEA_TEST_NATS_URL="nats://127.0.0.1:4222"
                svc_log "NATS: using the local server at 127.0.0.1:4222"
                export TALEA_TEST_NATS_URL
                return 0
            fi
            if ((rc == 2)); then
                svc_log "127.0.0.1:4222 is a NATS without JetStream; starting a throwaway one instead"
            fi
        fi
        if svc_find_nats_server >/dev/null; then
            if svc_start_throwaway_nats; then
                export TALEA_TEST_NATS_URL
                return 0
            fi
            svc_stop_nats
            svc_log "FAIL: could not start a throwaway NATS (see above)"
            return 1
        fi
        if ((round == 1)); then
            svc_log "no NATS with JetStream answers on 127.0.0.1:4222 and nats-server is not installed"
            svc_apt_install nats-server || break
        fi
    done
    svc_log "FAIL: no NATS. Install the Debian package 'nats-server' (apt-get install nats-server),"
    svc_log "      or start 'nats-server -js' on 127.0.0.1:4222, or set TALEA_TEST_NATS_URL=nats://host:port"
    return 1
}

svc_cleanup() {
    svc_stop_nats
    svc_stop_pg
}

# Installs traps that clean up on exit and on INT/TERM (exit 130/143, which
# runs the EXIT trap). Callers with their own cleanup call svc_cleanup from it.
svc_install_traps() {
    trap svc_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# svc_drop_test_databases ADMIN_URL PATTERN MIN_AGE_S: drops the databases
# whose name is LIKE PATTERN, that nobody is connected to, and (where the
# server lets us read file times, i.e. as superuser) whose directory is at
# least MIN_AGE_S seconds old. So leftovers of failed runs go, while a
# concurrent run on a shared server keeps the databases it is using.
svc_drop_test_databases() {
    local url=$1 pattern=$2 min_age=$3 names name dropped=0 age_sql
    age_sql="AND coalesce((pg_stat_file('base/' || d.oid, true)).modification < now() - make_interval(secs => $min_age), true)"
    local base_sql="SELECT d.datname FROM pg_database d
        WHERE d.datname LIKE '$pattern'
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
    if ! names=$(timeout 30 psql "$url" -XAtq -v ON_ERROR_STOP=1 -c "$base_sql $age_sql" 2>/dev/null); then
        # Not a superuser: no file times; fall back to "nobody connected".
        names=$(timeout 30 psql "$url" -XAtq -v ON_ERROR_STOP=1 -c "$base_sql") || {
            svc_log "could not list leftover databases (continuing)"
            return 0
        }
    fi
    for name in $names; do
        # Without FORCE: if someone connected meanwhile, the drop fails and the
        # database stays.
        if timeout 60 psql "$url" -XAtq -c "DROP DATABASE IF EXISTS \"$name\"" >/dev/null 2>&1; then
            dropped=$((dropped + 1))
        fi
    done
    svc_log "dropped $dropped leftover database(s) matching '$pattern'"
}
