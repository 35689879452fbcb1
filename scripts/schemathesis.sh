#!/usr/bin/env bash
# The API fuzzing step of scripts/test: schemathesis generates requests from
# the OpenAPI document a live talead serves (GET /v1/openapi.json, the twin
# of docs/openapi.json) and checks every answer against it: no 5xx, every
# status, content type, header and body as documented, 405 with `Allow` for
# undocumented methods, invalid inputs refused.
#
#   scripts/schemathesis.sh [PG_ADMIN_URL]
#
# talead (the debug build the tests left, built when missing) runs on a
# fresh Postgres database seeded with two assets, a book `payments` with
# three accounts and one deposit, so that the document's examples reach real
# resources. The stream route is left out (a successful stream never ends).
#
# Environment (defaults in brackets):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase     [30]
#   SCHEMATHESIS_MAX_TIME_S    time budget of the run, in seconds      [90]
#   SCHEMATHESIS_SEED          hypothesis seed, for a reproducible run [random]
#   TALEAD_BIN, KEEP_DB        see loadtest/lib.sh
#   SCHEMATHESIS_PYTHON        the venv's interpreter                  [see below]
# Postgres: PG_ADMIN_URL, else scripts/test's discovery (TALEA_TEST_PG_URL, …).
# The pinned tools (scripts/schemathesis.requirements.txt) are installed into
# a venv under ${XDG_CACHE_HOME:-~/.cache}/talea-schemathesis-venv, made with
# a CPython free of the threads bug gh-106905 (3.11.8+ or 3.12.2+): the first
# such among SCHEMATHESIS_PYTHON, else python3, python3.13, python3.12 and
# pyenv's versions, newest first; with none the run fails, saying so.
# A Python traceback in schemathesis's output fails the run even when it
# exits 0 (a worker thread that died is otherwise only printed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_NAME=schemathesis
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
lt_begin "${BASH_SOURCE[0]}" "${1:-}"

max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-30}
max_time_s=${SCHEMATHESIS_MAX_TIME_S:-90}
[[ $max_examples =~ ^[0-9]+$ ]] && ((max_examples >= 1 && max_examples <= 10000)) ||
    lt_die "SCHEMATHESIS_MAX_EXAMPLES must be in 1..=10000 (got '$max_examples')"
[[ $max_time_s =~ ^[0-9]+$ ]] && ((max_time_s >= 1 && max_time_s <= 3600)) ||
    lt_die "SCHEMATHESIS_MAX_TIME_S must be in 1..=3600 seconds (got '$max_time_s')"
# The whole schemathesis run is stopped past this, whatever it is doing.
limit_s=$((max_time_s + 60))

# st_python: prints the interpreter for the venv. CPython 3.11 before 3.11.8
# (this machine's python3 is 3.11.7, Debian 12's 3.11.2) keeps one AST
# recursion counter for all threads (CPython issue gh-106905): schemathesis's
# worker threads both build ASTs (hypothesis reads the source of filter
# lambdas with ast.parse), and when the garbage collector runs a finalizer
# in the middle of one, the other thread's parse corrupts the counter:
# "SystemError: AST constructor recursion depth mismatch", now and then.
# Fixed in 3.11.8 and 3.12.2, so such an interpreter is required, never
# retried around.
st_python() {
    local py root cands=() found=()
    local fixed='import sys; v = sys.version_info
sys.exit(not (sys.implementation.name == "cpython" and (v >= (3, 12, 2) or (3, 11, 8) <= v < (3, 12))))'
    if [[ -n ${SCHEMATHESIS_PYTHON:-} ]]; then
        cands=("$SCHEMATHESIS_PYTHON")
    else
        cands=(python3 python3.13 python3.12)
        if root=$(pyenv root 2>/dev/null); then
            mapfile -t found < <(printf '%s\n' "$root"/versions/3.*/bin/python3 | sort -rV)
            cands+=("${found[@]}")
        fi
    fi
    for py in "${cands[@]}"; do
        if "$py" -c "$fixed" 2>/dev/null; then
            "$py" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    lt_die "no CPython 3.11.8+ or 3.12.2+ among ${cands[*]}: older ones crash now and then under schemathesis's threads (CPython gh-106905); install one or set SCHEMATHESIS_PYTHON"
}

# st_venv: prints the venv's schemathesis, making the venv again when the
# pinned requirements or the interpreter changed since the last run.
st_venv() {
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/talea-schemathesis-venv
    local req=$ROOT/scripts/schemathesis.requirements.txt py want
    py=$(st_python)
    want="$(sha256sum "$req" | cut -d' ' -f1) $("$py" -c 'import sys; print(sys.version.split()[0])') $py"
    if [[ $(cat "$venv/.talea-requirements" 2>/dev/null) != "$want" ]] ||
        ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        echo "schemathesis venv: $want" >&2
        rm -rf "$venv"
        "$py" -m venv "$venv" >&2 || {
            rm -rf "$venv"
            svc_apt_install python3-venv >&2 || true
            "$py" -m venv "$venv" >&2 || lt_die "cannot create a Python venv with $py: install the Debian package python3-venv"
        }
        "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2 || {
            rm -rf "$venv"
            lt_die "pip could not install $req"
        }
        echo "$want" >"$venv/.talea-requirements"
    fi
    echo "$venv/bin/schemathesis"
}

# post PATH JSON: an authenticated POST to the talead started last; fails
# unless it answers 2xx.
post() {
    curl -sS --fail-with-body --max-time 10 -o /dev/null \
        -H "Authorization: Bearer $LT_TOKEN" -H 'Content-Type: application/json' \
        --data "$2" "http://$LT_BIND$1" || lt_die "POST $1 failed"
}

lt_setup_pg "${1:-}"
LT_TALEAD=$(lt_talead_bin debug)
schemathesis=$(st_venv)
echo "talead: $LT_TALEAD; $("$schemathesis" --version) on Python $("${schemathesis%/*}/python" -c 'import sys; print(sys.version.split()[0])')"

db=talea_schemathesis_$(date -u +%Y%m%d%H%M%S)_$$
lt_create_db "$db"
mkdir -p "$LT_WORK/main"
cat >"$LT_WORK/main/talea.seed.toml" <<'EOF'
[[assets]]
code = "BTC"
scale = 8
name = "Bitcoin"

[[assets]]
code = "USDC"
scale = 6
name = "USD Coin"

[[accounts]]
book = "payments"
name = "hot-wallet"
kind = "asset"

[[accounts]]
book = "payments"
name = "customers:alice"
kind = "liability"
min_balance = "0"

[[accounts]]
book = "payments"
name = "treasury"
kind = "equity"
EOF
lt_start_talead main "$db"
post /v1/books/payments/transactions '{"idempotency_key":"deposit-1","postings":[
    {"account":"hot-wallet","asset":"BTC","debit":"1"},
    {"account":"customers:alice","asset":"BTC","credit":"1"}]}'

lt_say "schemathesis (at most ${max_examples} cases per operation, ${max_time_s}s)"
args=(
    run "http://$LT_BIND/v1/openapi.json"
    --url "http://$LT_BIND"
    --header "Authorization: Bearer $LT_TOKEN"
    --checks all
    # The document cannot say which well-formed requests the ledger refuses
    # (balances, scales, exactly one of debit or credit): those are its
    # documented 400 and 422 answers, not failures.
    --exclude-checks positive_data_acceptance
    --exclude-path "/v1/books/{book}/stream"
    --max-examples "$max_examples"
    --max-time "$max_time_s"
    --request-timeout 15
    --workers 2
)
if [[ -n ${SCHEMATHESIS_SEED:-} ]]; then args+=(--seed "$SCHEMATHESIS_SEED"); fi
rc=0
# From the work directory, so that its caches go with it; its output is
# also kept there for the traceback check below.
out=$LT_WORK/schemathesis.out
exec {tee_fd}> >(tee "$out")
tee_pid=$!
lt_run_child "$limit_s" env -C "$LT_WORK" "$schemathesis" "${args[@]}" >&"$tee_fd" 2>&1 || rc=$?
exec {tee_fd}>&-
wait "$tee_pid" || true
# An exception that escapes a schemathesis worker thread is printed by
# Python's threading.excepthook, and schemathesis goes on without that
# worker's operation and may exit 0: a run with a traceback is not a pass.
if ((rc == 0)) && grep -Eq '^Exception in thread |^Traceback \(most recent call last\):' "$out"; then
    echo "schemathesis: FAILED: it exited 0 but printed a Python traceback (above): a crash inside the tool, so not every case ran" >&2
    rc=1
fi
if ((rc != 0)); then
    echo "talead's last log lines:" >&2
    tail -n 20 "$LT_WORK/main/talead.log" >&2 || true
fi
exit "$rc"
