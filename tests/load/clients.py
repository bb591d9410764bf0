"""Phases through gradio_client, as API users call the app: concurrency and overload."""

from __future__ import annotations

import json
import threading
import time

from .stats import bounded_map, pct

SENTENCES = [
    "I love you.",
    "Where is the book?",
    "She is my sister.",
    "It is going to rain tomorrow.",
    "Do you want to drink some tea?",
    "My brother became an engineer.",
    "Thank you.",
    "We are students.",
]


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def one_request(c, i: int, timeout: float) -> tuple[bool, float, str]:
    text = SENTENCES[i % len(SENTENCES)]
    t0 = time.perf_counter()
    try:
        if i % 2:
            out = c.submit(text, 2, api_name="/trace").result(timeout=timeout)
            data = json.loads(out) if isinstance(out, str) else out
            ok = bool(data["translation"]) and len(data["attention"]["cross"]) > 0
        else:
            ok = isinstance(c.submit(text, 2, api_name="/translate").result(timeout=timeout), str)
        return ok, time.perf_counter() - t0, ""
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        return False, time.perf_counter() - t0, f"{type(e).__name__}: {e}"[:200]


def concurrency(url: str, n_clients: int, n_requests: int, timeout: float) -> dict:
    """n_clients gradio_client clients, each sending n_requests one after another."""
    clients = [client(url) for _ in range(n_clients)]

    def run(k):
        return [one_request(clients[k], k * n_requests + j, timeout) for j in range(n_requests)]

    results = [r for rs in bounded_map(run, range(n_clients), n_clients) for r in rs]
    lat = [t * 1000 for ok, t, _ in results if ok]
    errors = [e for ok, _, e in results if not ok]
    return {
        "clients": n_clients,
        "requests": len(results),
        "failed": len(errors),
        "errors": errors[:3],
        "p50_ms": lat and round(pct(lat, 50), 1),
        "p95_ms": lat and round(pct(lat, 95), 1),
    }


def overload(url: str, n: int, timeout: float) -> dict:
    """n requests at the same instant from one client: the queue keeps what it can, refuses the rest."""
    c = client(url)
    barrier = threading.Barrier(n)

    def fire(i):
        barrier.wait(timeout)  # bounded: an interrupted run must not leave threads waiting here
        t0 = time.perf_counter()
        try:
            c.submit(SENTENCES[i % len(SENTENCES)] * 3, 4, api_name="/translate").result(timeout=timeout)
            return "ok", time.perf_counter() - t0, ""
        except Exception as e:  # noqa: BLE001
            msg = str(e)
            return (
                ("busy" if "queue is full" in msg.lower() else "error"),
                time.perf_counter() - t0,
                msg[:200],
            )

    outcomes = bounded_map(fire, range(n), n)
    busy = [t for kind, t, _ in outcomes if kind == "busy"]
    return {
        "sent": n,
        "served": sum(k == "ok" for k, _, _ in outcomes),
        "refused_busy": len(busy),
        "other_errors": [m for k, _, m in outcomes if k == "error"][:3],
        "n_other_errors": sum(k == "error" for k, _, _ in outcomes),
        "slowest_refusal_s": max(busy, default=0.0),
    }
