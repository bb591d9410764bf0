"""Load test: python -m tests.load --help

Starts the app (`python app.py`) on 127.0.0.1, then
  1. concurrency: N gradio_client clients × M requests each (translate and trace endpoints);
  2. overload: more simultaneous requests than the queue holds; the excess must be refused at
     once with Gradio's "queue is full" message, never hang or crash the server;
  3. soak: K requests, with the server's resident memory read before and after.
Everything is bounded in count and time, and the app is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app_process import AppProcess, proc_status_mb  # noqa: E402

SENTENCES = ["I love you.", "Where is the book?", "She is my sister.", "It is going to rain tomorrow.",
             "Do you want to drink some tea?", "My brother became an engineer.", "Thank you.", "We are students."]
REQUEST_TIMEOUT_S = 120


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def one_request(c, i: int) -> tuple[bool, float, str]:
    text = SENTENCES[i % len(SENTENCES)]
    t0 = time.perf_counter()
    try:
        if i % 2:
            out = c.submit(text, 2, api_name="/trace").result(timeout=REQUEST_TIMEOUT_S)
            data = json.loads(out) if isinstance(out, str) else out
            ok = bool(data["translation"]) and len(data["attention"]["cross"]) > 0
        else:
            ok = isinstance(c.submit(text, 2, api_name="/translate").result(timeout=REQUEST_TIMEOUT_S), str)
        return ok, time.perf_counter() - t0, ""
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        return False, time.perf_counter() - t0, f"{type(e).__name__}: {e}"[:200]


def concurrency(url: str, n_clients: int, n_requests: int) -> dict:
    clients = [client(url) for _ in range(n_clients)]

    def run(k):
        return [one_request(clients[k], k * n_requests + j) for j in range(n_requests)]

    with ThreadPoolExecutor(n_clients) as pool:
        results = [r for rs in pool.map(run, range(n_clients)) for r in rs]
    lat = [t * 1000 for ok, t, _ in results if ok]
    errors = [e for ok, _, e in results if not ok]
    return {"requests": len(results), "failed": len(errors), "errors": errors[:3],
            "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)}


def overload(url: str, n: int) -> dict:
    """n requests at the same instant from one client: the queue keeps what it can, refuses the rest."""
    c = client(url)
    barrier = threading.Barrier(n)
    outcomes = []

    def fire(i):
        barrier.wait()
        t0 = time.perf_counter()
        try:
            c.submit(SENTENCES[i % len(SENTENCES)] * 3, 4, api_name="/translate").result(timeout=REQUEST_TIMEOUT_S)
            return "ok", time.perf_counter() - t0, ""
        except Exception as e:  # noqa: BLE001
            msg = str(e)
            return ("busy" if "queue is full" in msg.lower() else "error"), time.perf_counter() - t0, msg[:200]

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(fire, range(n)))
    busy = [t for kind, t, _ in outcomes if kind == "busy"]
    return {"sent": n, "served": sum(k == "ok" for k, _, _ in outcomes), "refused_busy": len(busy),
            "other_errors": [m for k, _, m in outcomes if k == "error"][:3],
            "slowest_refusal_s": max(busy, default=0.0)}


def soak(app: AppProcess, n: int, workers: int = 4) -> dict:
    clients = [client(app.url) for _ in range(workers)]
    for i in range(8):  # warm every code path before the first reading
        one_request(clients[0], i)
    before = proc_status_mb(app.proc.pid, "VmRSS")
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda i: one_request(clients[i % workers], i), range(n)))
    after = proc_status_mb(app.proc.pid, "VmRSS")
    return {"requests": n, "failed": sum(not ok for ok, _, _ in results), "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1), "rss_growth_mb": round(after - before, 1)}


def run(weights: str | None, clients: int, requests: int, overload_n: int, soak_n: int, threads: int,
        queue_size: int | None = None) -> dict:
    args = ["--threads", str(threads)] + (["--weights", weights] if weights else [])
    app = AppProcess(args + (["--queue-size", str(queue_size)] if queue_size else []))
    try:
        app.wait()
        report = {"concurrency": concurrency(app.url, clients, requests)}
        report["overload"] = overload(app.url, overload_n)
        report["soak"] = soak(app, soak_n)
        report["app_alive"] = app.proc.poll() is None
        return report
    finally:
        app.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="weights folder (default: the app's default, the bundled weights/)")
    p.add_argument("--clients", type=int, default=20, help="concurrent gradio_client clients (default: 20)")
    p.add_argument("--requests", type=int, default=10, help="requests per client (default: 10)")
    p.add_argument("--overload", type=int, default=80, help="simultaneous requests in the overload phase (default: 80)")
    p.add_argument("--soak", type=int, default=1000, help="requests in the memory soak (default: 1000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the app (default: 1)")
    p.add_argument("--queue-size", type=int, help="the app's --queue-size (default: the app's default)")
    args = p.parse_args()
    report = run(args.weights, args.clients, args.requests, args.overload, args.soak, args.threads, args.queue_size)
    c, o, s = report["concurrency"], report["overload"], report["soak"]
    print(f"concurrency: {args.clients} clients × {args.requests} requests = {c['requests']}, failed {c['failed']}, "
          f"latency p50 {c['p50_ms']:.0f} ms, p95 {c['p95_ms']:.0f} ms")
    print(f"overload: {o['sent']} at once → served {o['served']}, refused 'queue is full' {o['refused_busy']} "
          f"(slowest refusal {o['slowest_refusal_s']:.2f} s), other errors {len(o['other_errors'])}")
    print(f"soak: {s['requests']} requests, failed {s['failed']}, RSS {s['rss_before_mb']} → {s['rss_after_mb']} MB "
          f"({s['rss_growth_mb']:+} MB)")
    print(f"app still serving: {report['app_alive']}")
    failed = c["failed"] or o["other_errors"] or s["failed"] or not report["app_alive"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
