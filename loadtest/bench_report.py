"""The report of loadtest/bench.sh: reads the phases' outputs, writes the
JSON result and (when a path is given) docs/benchmarks.md, prints the tables.

    python3 loadtest/bench_report.py OUT_DIR RESULT_JSON [DOC_MD]

OUT_DIR holds what bench.sh left: <phase>.json (k6 summaries),
<phase>.committed, <phase>.out and <phase>/log* (pgbench), sse.json,
nats-floor.json, pg-settings.txt, k6-version.txt, <phase>.failed. Settings
come from BENCH_* environment variables (bench.sh sets them).
"""

import datetime
import glob
import json
import math
import os
import platform
import re
import sys

ENV = os.environ
# The targets of issue 8, checked in the report.
TARGET_NAIVE_RATIO = 5.0
TARGET_BATCH_RATIO = 0.5


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def pct(sorted_values, q):
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    i = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[min(i, len(sorted_values) - 1)]


def pgbench_phase(out, name, per_tx):
    """pgbench's figures; per_tx drafts per pgbench transaction."""
    text = read_text(os.path.join(out, name + ".out"))
    if text is None:
        return None

    def grab(pattern, cast=float):
        m = re.search(pattern, text, re.M)
        return cast(m.group(1)) if m else None

    # pgbench -l: "client_id tx_no latency_us script_no epoch_s epoch_us";
    # failed transactions carry "failed" instead of a latency.
    lat = []
    for path in glob.glob(os.path.join(out, name, "log*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    tps = grab(r"^tps = ([0-9.]+) \(without initial connection time\)")
    done = grab(r"^number of transactions actually processed: (\d+)", int) or 0
    failed = grab(r"^number of failed transactions: (\d+)", int) or 0
    return {
        "tps": tps,
        "drafts_per_tx": per_tx,
        "drafts_per_s": tps * per_tx if tps is not None else None,
        "transactions": done,
        "failed": failed,
        "error_rate": failed / (done + failed) if done + failed else 0.0,
        "latency_ms": {
            "avg": grab(r"^latency average = ([0-9.]+) ms"),
            "p50": pct(lat, 50),
            "p99": pct(lat, 99),
            "p99_9": pct(lat, 99.9),
            "max": lat[-1] if lat else None,
        },
    }


def machine(out):
    model = None
    mem_kib = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "loadavg_start": read_text(os.path.join(out, "loadavg-start.txt")),
        "loadavg_end": " ".join((read_text("/proc/loadavg") or "").split()[:3]) or None,
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kib / 1048576, 1) if mem_kib else None,
        "kernel": platform.release(),
    }


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def verdict(ok):
    return "n/a" if ok is None else ("holds" if ok else "MISSED")


def main():
    out, result_path = sys.argv[1], sys.argv[2]
    doc_path = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    batch = int(ENV["BENCH_BATCH"])

    k6 = {}
    for name in ("hot", "half", "books", "reads", "storm", "overload"):
        doc = load_json(os.path.join(out, name + ".json"))
        if doc is not None:
            committed = read_text(os.path.join(out, name + ".committed"))
            doc["committed_in_db"] = int(committed) if committed and committed.isdigit() else None
            k6[name] = doc
    sql = {}
    for name, per_tx in (("naive", 1), ("naive-books", 1), ("batch", batch), ("batch-books", batch)):
        figures = pgbench_phase(out, name, per_tx)
        if figures is not None:
            sql[name] = figures
    failed = {}
    for path in glob.glob(os.path.join(out, "*.failed")):
        failed[os.path.basename(path)[: -len(".failed")]] = read_text(path)
    settings = {}
    for line in (read_text(os.path.join(out, "pg-settings.txt")) or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            settings[k] = v

    def rate(name):
        d = k6.get(name)
        return d["kinds"]["post"]["succeeded_per_s"] if d else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    hot, books = rate("hot"), rate("books")
    ratios = {
        "hot_over_naive": ratio(hot, (sql.get("naive") or {}).get("drafts_per_s")),
        "hot_over_batch": ratio(hot, (sql.get("batch") or {}).get("drafts_per_s")),
        "books_over_naive": ratio(books, (sql.get("naive-books") or {}).get("drafts_per_s")),
        "books_over_batch": ratio(books, (sql.get("batch-books") or {}).get("drafts_per_s")),
    }
    half = k6.get("half")
    half_p99 = half["kinds"]["post"]["latency_ms"]["p99"] if half else None
    half_target = float(ENV["BENCH_HALF_P99_TARGET_MS"])
    half_ok = None
    if half is not None and half_p99 is not None:
        # Held only if the rate was served too: few failures, few drops.
        half_ok = half_p99 < half_target and half["thresholds_ok"]
    targets = {
        "hot_at_least_5x_naive": None if ratios["hot_over_naive"] is None else ratios["hot_over_naive"] >= TARGET_NAIVE_RATIO,
        "hot_at_least_half_batch": None if ratios["hot_over_batch"] is None else ratios["hot_over_batch"] >= TARGET_BATCH_RATIO,
        "half_rate_p99_below_target": half_ok,
    }
    sse = load_json(os.path.join(out, "sse.json"))
    floor = load_json(os.path.join(out, "nats-floor.json"))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = {
        "benchmark": "bench",
        "result_file": ENV.get("BENCH_RESULT_REL") or os.path.basename(result_path),
        "stamp": ENV["BENCH_STAMP"],
        "date": now,
        "commit": ENV["BENCH_COMMIT"],
        "uncommitted_changes": int(ENV.get("BENCH_DIRTY") or 0),
        "machine": machine(out),
        "postgres": {"version": ENV["BENCH_PG_VERSION"], "settings": settings},
        "k6": read_text(os.path.join(out, "k6-version.txt")),
        "settings": {
            "duration_s": int(ENV["BENCH_SECS"]),
            "overload_duration_s": int(ENV["BENCH_OVERLOAD_SECS"]),
            "vus": int(ENV["BENCH_VUS"]),
            "hot_vus": int(ENV.get("BENCH_HOT_VUS", ENV["BENCH_VUS"])),
            "books": int(ENV["BENCH_BOOKS"]),
            "naive_clients": int(ENV["BENCH_NAIVE_CLIENTS"]),
            "naive_jobs": int(ENV["BENCH_NAIVE_JOBS"]),
            "naive_notify": ENV["BENCH_NAIVE_NOTIFY"] == "1",
            "sql_warmup_s": int(ENV.get("BENCH_SQL_WARMUP_S") or 0),
            "batch": batch,
            "batch_clients": int(ENV["BENCH_BATCH_CLIENTS"]),
            "batch_books_clients": int(ENV["BENCH_BATCH_BOOKS_CLIENTS"]),
            "half_p99_target_ms": half_target,
        },
        "talea": k6,
        "sql": sql,
        "ratios": ratios,
        "targets": targets,
        "sse": {"source": ENV.get("BENCH_SSE_SOURCE") or None, "delivery": sse, "nats_floor": floor},
        "failed_phases": failed,
    }
    os.makedirs(os.path.dirname(os.path.abspath(result_path)), exist_ok=True)
    with open(result_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    md = render(result)
    if doc_path:
        tail = kept_tail(doc_path)
        with open(doc_path, "w") as f:
            f.write(md + ("\n" + tail if tail else ""))
    print(md)
    print(f"written: {result_path}" + (f" and {doc_path}" if doc_path else ""))


# Figures measured by other commands sit below this line in the document;
# a rerun rewrites everything above it and keeps them.
KEPT_MARKER = "<!-- Measured by other commands: loadtest/bench.sh keeps everything below this line. -->"


def kept_tail(path):
    """The document's part from KEPT_MARKER on, which a rerun keeps ("" if none)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    at = text.find(KEPT_MARKER)
    return "" if at < 0 else text[at:]


def lat_cells(lat):
    return [fmt(lat.get("p50"), 2), fmt(lat.get("p99"), 2), fmt(lat.get("p99_9"), 2)]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render(r):
    s = r["settings"]
    m = r["machine"]
    k6 = r["talea"]
    sql = r["sql"]
    pg = r["postgres"]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by loadtest/bench.sh (loadtest/bench_report.py); rerun it rather than editing. -->",
        "",
        f"Measured {r['date']} on commit `{r['commit']}`"
        + (f" with {r['uncommitted_changes']} uncommitted file(s)" if r["uncommitted_changes"] else "")
        + f", {s['duration_s']} s per phase; everything (talead, Postgres, k6, pgbench) on one machine."
        + f" Raw figures: `{r['result_file']}`.",
        "",
        "## Machine",
        "",
        table(
            ["", ""],
            [
                ["CPUs (nproc)", m["cpus"]],
                ["CPU model", m["cpu_model"] or "n/a"],
                ["memory", f"{m['mem_gib']} GiB"],
                ["kernel", m["kernel"]],
                ["load average (1, 5, 15 min) at start / end", f"{m['loadavg_start'] or 'n/a'} / {m['loadavg_end'] or 'n/a'}"],
                ["PostgreSQL", pg["version"]],
                ["Postgres settings", ", ".join(f"{k}={v}" for k, v in sorted(pg["settings"].items())) or "n/a"],
                ["k6", r["k6"] or "n/a"],
            ],
        ),
        "",
        "## Writes: talea beside SQL on the same Postgres",
        "",
        "Transactions (drafts) per second: balanced two-leg posts with a unique idempotency key each."
        " talea rows are HTTP through k6 (201s only); SQL rows are pgbench on the naive schema"
        " (`loadtest/naive/`, a copy of talea's tables): *naive* commits each request in its own"
        f" database transaction, *batched* commits {s['batch']} drafts per database transaction"
        " (the ceiling for group commit on this Postgres, with no HTTP, JSON or validation)."
        f" Each SQL phase first runs {s['sql_warmup_s']} s unmeasured on its fresh database (foreign-key"
        " checks are planned once per connection: against empty tables they scan, and slow down as the"
        " tables grow). Latencies in ms; for *batched*, of one whole batch.",
        "",
    ]
    rows = []

    def talea_row(label, name, books, clients):
        d = k6.get(name)
        if not d:
            return
        p = d["kinds"]["post"]
        rows.append([label, books, clients, fmt(p["succeeded_per_s"]), *lat_cells(p["latency_ms"]),
                     f"{p['failed_rate'] * 100:.2f}%"])

    def sql_row(label, name, books, clients):
        d = sql.get(name)
        if not d:
            return
        rows.append([label, books, clients, fmt(d["drafts_per_s"]), *lat_cells(d["latency_ms"]),
                     f"{d['error_rate'] * 100:.2f}%"])

    talea_row("talea (HTTP, k6)", "hot", 1, s.get("hot_vus", s["vus"]))
    sql_row("naive SQL (1 tx per request)", "naive", 1, s["naive_clients"])
    sql_row(f"batched SQL ceiling ({s['batch']} per tx)", "batch", 1, s["batch_clients"])
    talea_row("talea (HTTP, k6)", "books", s["books"], s["vus"])
    sql_row("naive SQL (1 tx per request)", "naive-books", s["books"], s["naive_clients"])
    sql_row(f"batched SQL ceiling ({s['batch']} per tx)", "batch-books", s["books"], s["batch_books_clients"])
    lines += [table(["", "books", "clients", "tx/s", "p50", "p99", "p99.9", "errors"], rows), ""]

    ra = r["ratios"]
    lines += [
        f"Ratios: hot book talea / naive **{fmt(ra['hot_over_naive'], 2)}x**, talea / batched"
        f" **{fmt(ra['hot_over_batch'], 2)}x**; {s['books']} books talea / naive"
        f" {fmt(ra['books_over_naive'], 2)}x, talea / batched {fmt(ra['books_over_batch'], 2)}x.",
        "",
    ]
    half = k6.get("half")
    lines += ["## p99 write latency at half the maximum rate", ""]
    if half:
        p = half["kinds"]["post"]
        lines += [
            f"The hot book again, fresh database, open model (`constant-arrival-rate`) at half the rate"
            f" measured above.",
            "",
            table(
                ["rate asked", "achieved", "p50", "p99", "p99.9", "errors", "dropped iterations"],
                [[f"{half['rate_asked']}/s", f"{fmt(p['succeeded_per_s'])}/s", *lat_cells(p["latency_ms"]),
                  f"{p['failed_rate'] * 100:.2f}%", half["dropped_iterations"]]],
            ),
            "",
        ]
    else:
        lines += ["Not run.", ""]

    t = r["targets"]
    lines += [
        "## Targets (issue 8)",
        "",
        table(
            ["target", "measured", "verdict"],
            [
                [f"hot book: talea >= {TARGET_NAIVE_RATIO:g}x naive", f"{fmt(ra['hot_over_naive'], 2)}x",
                 verdict(t["hot_at_least_5x_naive"])],
                [f"hot book: talea >= {TARGET_BATCH_RATIO:g}x batched ceiling", f"{fmt(ra['hot_over_batch'], 2)}x",
                 verdict(t["hot_at_least_half_batch"])],
                [f"p99 < {s['half_p99_target_ms']:g} ms at half the maximum rate",
                 f"{fmt(half['kinds']['post']['latency_ms']['p99'], 2)} ms" if half else "n/a",
                 verdict(t["half_rate_p99_below_target"])],
            ],
        ),
        "",
    ]

    reads = k6.get("reads")
    lines += ["## Read mix", ""]
    if reads:
        lines += [
            f"{reads['rate_asked']} reads/s, open model, over one book seeded with {reads['seed_transactions']}"
            f" transactions between {reads['accounts']} accounts (`loadtest/reads.js`)."
            f" Dropped iterations: {reads['dropped_iterations']}; wrong bodies: {reads['body_wrong']}.",
            "",
            table(
                ["kind", "requests", "ok/s", "p50", "p99", "p99.9", "errors"],
                [[kind, k["requests"], fmt(k["succeeded_per_s"]), *lat_cells(k["latency_ms"]),
                  f"{k['failed_rate'] * 100:.2f}%"] for kind, k in reads["kinds"].items()],
            ),
            "",
        ]
    else:
        lines += ["Not run.", ""]

    storm = k6.get("storm")
    lines += ["## Idempotent retry storm", ""]
    if storm:
        lines += [
            f"{storm['rate_asked']} posts/s, each key posted by {storm['copies_per_key']} clients at once with the"
            f" same body, 408/429/503 retried after `Retry-After` (`loadtest/storm.js`): {storm['keys_committed']}"
            f" keys committed, {storm['created_201']} answered 201 and {storm['deduplicated_200']} answered 200"
            f" `deduplicated`, {storm['retries']} retries, {storm['reply_mismatches']} replies differing from the"
            f" stored commit, {storm['keys_applied_twice']} keys applied twice, {storm['unresolved']} unresolved:"
            f" **{'every key applied once, every reply identical' if storm['applied_once'] else 'FAILED'}**."
            f" Post p99 {fmt(storm['kinds']['post']['latency_ms']['p99'], 2)} ms.",
            "",
        ]
    else:
        lines += ["Not run.", ""]

    ov = k6.get("overload")
    lines += ["## Overload", ""]
    if ov:
        ok = (ov["retry_after_missing"] == 0 and ov["wrong_error"] == 0 and ov["unexpected_status"] == 0
              and ov["health_busy"] > 0 and ov["shed"] > 0)
        lines += [
            f"A talead with `TALEA_MAX_INFLIGHT=8` and `TALEA_WRITE_QUEUE_DEPTH=2`, {ov['rate_asked']} posts/s,"
            f" {ov['read_rate_asked']} reads/s and {ov['health_rate_asked']} `/health`/s for"
            f" {s['overload_duration_s']} s (`loadtest/overload.js`): {ov['created_201']} posts committed,"
            f" {ov['shed_429']} answered 429 and {ov['shed_503']} answered 503, {ov['retry_after_missing']} of them"
            f" without `Retry-After`, {ov['wrong_error']} with another error than `overloaded`,"
            f" {ov['unexpected_status']} other statuses; `/health` answered 200 {ov['health_ok']} times and 503"
            f" (busy) {ov['health_busy']} times: **{'as specified' if ok else 'FAILED'}**.",
            "",
        ]
    else:
        lines += ["Not run.", ""]

    lines += ["## SSE delivery", ""]
    sse, floor = r["sse"]["delivery"], r["sse"]["nats_floor"]
    if sse:
        lat = sse.get("latency_ms", {})
        row = [
            f"{sse.get('subscribers')} / {sse.get('books')} / {sse.get('rate')} asked, {fmt(sse.get('achieved_rate'))} achieved",
            f"{sse.get('received')} of {sse.get('expected_deliveries')}",
            f"{sse.get('gaps')} / {sse.get('duplicates')}",
            fmt(lat.get("p50"), 2), fmt(lat.get("p99"), 2), fmt(lat.get("p999"), 2),
            f"{fmt((sse.get('fanout_rss_bytes_per_subscriber') or 0) / 1024, 0)} KiB",
        ]
        if floor:
            fl = floor.get("latency_ms", {})
            row.append(f"{fmt(fl.get('p50'), 2)} / {fmt(fl.get('p99'), 2)}")
        else:
            row.append("n/a")
        lines += [
            f"Source: {r['sse']['source']}. Commit-to-receive latency in ms through talead, the relay, NATS and"
            " the fan-out (`loadtest/run-sse.sh`; the README has the full-scale runs).",
            "",
            table(["subscribers / books / tx/s", "delivered", "gaps / dups", "p50", "p99", "p99.9",
                   "fan-out RSS / subscriber", "raw NATS p50 / p99"], [row]),
            "",
        ]
    else:
        lines += ["Not run.", ""]

    if r["failed_phases"]:
        lines += ["## Phases that did not complete", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(r["failed_phases"].items())] + [""]

    lines += [
        "## Reproduce",
        "",
        "```sh",
        "loadtest/bench.sh                      # every phase, 20 s each, then this file",
        "DURATION=60s loadtest/bench.sh         # longer phases",
        "SKIP_SSE=1 loadtest/bench.sh           # the SSE figures of the latest loadtest/results/sse-*.json",
        "loadtest/bench.sh --phases hot,naive,batch --no-doc   # some phases, this file untouched",
        "```",
        "",
        "It finds or starts Postgres and NATS like `scripts/test`, builds `talead` in release mode, gives each"
        " phase a fresh database and its own talead, and stops everything it started. `loadtest/README.md`"
        " describes each script and setting.",
        "",
        "## Reading the numbers",
        "",
        "- The maximum-rate rows (talea hot book and many books) are closed-model probes: "
        f"{s.get('hot_vus', s['vus'])} (hot book) and {s['vus']} (many books) clients posting back to back, so the"
        " rate is what the server sustained. The hot book gets as many clients as the batched ceiling keeps"
        " drafts in flight (its clients times its batch): a client has one post in flight at a time, and a"
        " book's batch can only hold the posts that are waiting. Every other talea"
        " run is open-model (`constant-arrival-rate`): requests arrive on schedule whatever the latency, and"
        " those that find no free client are counted as dropped.",
        "- pgbench has no HTTP layer and no JSON: the SQL rows flatter the baselines.",
        "- k6, pgbench, talead and Postgres share the machine's cores; other work on the machine moves the"
        " figures. Compare rows of one run, not runs of different days.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
