#!/usr/bin/env python3
"""Query costs on a large book (issue 20): fills a book through the bulk
route, then times each read query the console and the API offer, one
request at a time on one keep-alive connection, and prints one JSON
summary (p50, p90, p99 and max in milliseconds per query, rows returned,
and this process's own CPU).

    query_costs.py fill  --url http://127.0.0.1:8080 --book big --events 1000000
    query_costs.py query --url http://127.0.0.1:8080 --book big --repeat 200

Run by loadtest/run-queries.sh, which starts talead on each store. Reads the
token from TALEA_TOKEN. Only the standard library.

The book: CUSTOMERS customer accounts (`customers:0000`...), `hot-wallet`
and `treasury`; transactions are deposits to a random customer (97%),
withdrawals (2%) and holds pending for 1 to 60 days (1%), each with
metadata {"order_id": "O-<n>", "channel": "web"|"app"|"desk"}.
"""

import argparse
import http.client
import json
import os
import random
import resource
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

CUSTOMERS = 1000
BULK = 1000
# Events that are not transactions: the asset registration is not an
# event; each account open is one.
ACCOUNTS = CUSTOMERS + 2


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url, token):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.headers = {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
        }
        self.conn = None

    def request(self, method, path, body=None):
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            try:
                data = None if body is None else json.dumps(body).encode()
                self.conn.request(method, path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.5)
        raise RuntimeError("unreachable")


def customer(i):
    return f"customers:{i:04d}"


def fill(args):
    client = Client(args.url, args.token)
    status, _ = client.request("POST", "/v1/assets", {"code": "BTC", "scale": 8, "name": "Bitcoin"})
    assert status in (200, 201), status
    accounts = [("hot-wallet", "asset"), ("treasury", "equity")]
    accounts += [(customer(i), "liability") for i in range(CUSTOMERS)]
    for name, kind in accounts:
        status, body = client.request(
            "POST", f"/v1/books/{args.book}/accounts", {"name": name, "kind": kind}
        )
        assert status in (200, 201), (status, body)
    total = args.events - ACCOUNTS
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    next_item = [0]
    lock = threading.Lock()
    failures = []
    started = time.monotonic()

    def item(n):
        c = customer(rng.randrange(CUSTOMERS))
        amount = f"0.{rng.randrange(1, 10**8):08d}"
        roll = rng.random()
        body = {
            "idempotency_key": f"q-{n}",
            "metadata": {"order_id": f"O-{n}", "channel": rng.choice(["web", "app", "desk"])},
        }
        if roll < 0.97:
            body["postings"] = [
                {"account": "hot-wallet", "asset": "BTC", "debit": amount},
                {"account": c, "asset": "BTC", "credit": amount},
            ]
        else:
            body["postings"] = [
                {"account": c, "asset": "BTC", "debit": amount},
                {"account": "hot-wallet", "asset": "BTC", "credit": amount},
            ]
            if roll >= 0.99:
                body["pending"] = True
                expiry = now + timedelta(days=rng.randrange(1, 60), seconds=rng.randrange(86400))
                body["expires_at"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        return body

    def worker():
        c = Client(args.url, args.token)
        while True:
            with lock:
                start = next_item[0]
                if start >= total:
                    return
                end = min(start + BULK, total)
                next_item[0] = end
                items = [item(n) for n in range(start, end)]
            status, payload = c.request(
                "POST", f"/v1/books/{args.book}/transactions/batch", {"transactions": items}
            )
            if status != 200:
                failures.append((status, payload[:200]))
                return
            bad = [r for r in json.loads(payload)["results"] if r["status"] not in (200, 201)]
            if bad:
                failures.append(bad[:3])
                return
            if end % 100_000 < BULK:
                rate = end / (time.monotonic() - started)
                print(f"filled {end}/{total} transactions ({rate:,.0f}/s)", file=sys.stderr)

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"filling failed: {failures[:3]}")
    elapsed = time.monotonic() - started
    print(json.dumps({"transactions": total, "seconds": round(elapsed, 1), "tx_per_s": round(total / elapsed)}))


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def query(args):
    client = Client(args.url, args.token)
    book = args.book
    status, body = client.request("GET", f"/v1/books/{book}/transactions?limit=1")
    assert status == 200, (status, body)
    first = json.loads(body)["transactions"][0]
    # The last transaction filled, found by its order id.
    last_id = args.events - ACCOUNTS - 1
    status, body = client.request("GET", f"/v1/books/{book}/transactions?metadata.order_id=O-{last_id}")
    found = json.loads(body)["transactions"] if status == 200 else []
    last = found[0] if found else first
    events_total = last["seq"]
    t0 = datetime.fromisoformat(first["committed_at"].replace("Z", "+00:00"))
    t1 = datetime.fromisoformat(last["committed_at"].replace("Z", "+00:00"))
    span = max((t1 - t0).total_seconds(), 1.0)
    rng = random.Random(11)
    ts = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    mid = ts(t0 + timedelta(seconds=span / 2))
    n_tx = args.events - ACCOUNTS
    q = urllib.parse.quote

    def window():
        start = t0 + timedelta(seconds=rng.uniform(0, max(span - 10, 0)))
        return f"from={q(ts(start))}&to={q(ts(start + timedelta(seconds=10)))}"

    queries = {
        "trial_balance": lambda: f"/v1/books/{book}/trial-balance",
        "trial_balance_as_of": lambda: f"/v1/books/{book}/trial-balance?as_of={q(mid)}",
        "prefix_balances_100_of_1000": lambda: f"/v1/books/{book}/balances?prefix=customers:0{rng.randrange(10)}&limit=100",
        "prefix_balances_all_customers": lambda: f"/v1/books/{book}/balances?prefix=customers:&limit=100",
        "account_balances": lambda: f"/v1/books/{book}/accounts/{customer(rng.randrange(CUSTOMERS))}/balances",
        "account_postings_page": lambda: f"/v1/books/{book}/accounts/{customer(rng.randrange(CUSTOMERS))}/postings?limit=100",
        "history_changes_page": lambda: f"/v1/books/{book}/accounts/{customer(rng.randrange(CUSTOMERS))}/balances/history?asset=BTC&limit=100",
        "history_points_customer": lambda: f"/v1/books/{book}/accounts/{customer(rng.randrange(CUSTOMERS))}/balances/history?asset=BTC&points=100",
        "search_account": lambda: f"/v1/books/{book}/transactions?account={customer(rng.randrange(CUSTOMERS))}&limit=100",
        "search_metadata_unique": lambda: f"/v1/books/{book}/transactions?metadata.order_id=O-{rng.randrange(n_tx)}",
        "search_metadata_absent": lambda: f"/v1/books/{book}/transactions?metadata.order_id=none-{rng.randrange(n_tx)}",
        "search_metadata_common": lambda: f"/v1/books/{book}/transactions?metadata.channel={rng.choice(['web', 'app', 'desk'])}&limit=100",
        "search_status_pending": lambda: f"/v1/books/{book}/transactions?status=pending&limit=100",
        "search_time_window_10s": lambda: f"/v1/books/{book}/transactions?{window()}&limit=100",
        "search_account_and_status": lambda: f"/v1/books/{book}/transactions?account={customer(rng.randrange(CUSTOMERS))}&status=pending&limit=100",
        "pending_holds": lambda: f"/v1/books/{book}/holds?limit=100",
        "transaction_by_id": None,
    }
    status, body = client.request("GET", f"/v1/books/{book}/transactions?after_seq={rng.randrange(events_total // 2)}&limit=200")
    ids = [t["tx_id"] for t in json.loads(body)["transactions"]]
    queries["transaction_by_id"] = lambda: f"/v1/transactions/{rng.choice(ids)}"
    slow = {"history_points_hot_wallet": lambda: f"/v1/books/{book}/accounts/hot-wallet/balances/history?asset=BTC&points=100"}

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    out = {"events": events_total, "repeat": args.repeat, "queries": {}}
    for table, repeat in ((queries, args.repeat), (slow, args.slow_repeat)):
        for name, make in table.items():
            if args.only and name not in args.only.split(","):
                continue
            latencies, rows, errors = [], 0, {}
            for _ in range(repeat):
                path = make()
                start = time.perf_counter()
                status, body = client.request("GET", path)
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    errors[status] = errors.get(status, 0) + 1
                    continue
                doc = json.loads(body)
                for key in ("transactions", "rows", "accounts", "postings", "changes", "buckets", "holds"):
                    if isinstance(doc.get(key), list):
                        rows += len(doc[key])
                        break
                else:
                    rows += 1
            latencies.sort()
            out["queries"][name] = {
                "p50_ms": round(percentile(latencies, 50), 2),
                "p90_ms": round(percentile(latencies, 90), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
                "max_ms": round(latencies[-1], 2),
                "requests": repeat,
                "rows_per_request": round(rows / repeat, 1),
                "errors": errors,
            }
            print(f"{name:32s} p50 {out['queries'][name]['p50_ms']:9.2f} ms  p99 {out['queries'][name]['p99_ms']:9.2f} ms  rows {rows / repeat:7.1f}  {errors or ''}", file=sys.stderr)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - wall0
    out["generator_cores"] = round((cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / wall, 3)
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["fill", "query"])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--book", default="big")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--slow-repeat", type=int, default=5)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    args.token = os.environ.get("TALEA_TOKEN", "")
    if not args.token:
        sys.exit("set TALEA_TOKEN")
    if not 10_000 <= args.events <= 100_000_000:
        sys.exit("--events must be in 10000..=100000000")
    if not 1 <= args.repeat <= 100_000 or not 0 <= args.slow_repeat <= 1000:
        sys.exit("--repeat must be in 1..=100000, --slow-repeat in 0..=1000")
    if not 1 <= args.connections <= 64:
        sys.exit("--connections must be in 1..=64")
    {"fill": fill, "query": query}[args.mode](args)


if __name__ == "__main__":
    main()
