"""Phases in Gradio's own protocol (see protocol.py): each request is a new session, as a new visitor is."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from .clients import SENTENCES
from .protocol import Endpoints, Result, call_queue, call_run, upload
from .stats import bounded_map, memory, pct, reset_peak, temp_size, unknown_words

KINDS = ("translate", "trace", "ui")
# Long inputs (about 2,000 characters) that the public page accepts: markup the tokenizer splits into
# many tokens, and numbers; both run to the model's maximum source length.
LONG_TEXTS = ("<b>" * 500, "1 " * 1000)

CHECKS = {
    "translate": lambda v: isinstance(v[0], str) and v[0] != "",
    "trace": lambda v: bool(v[0]["translation"]) and len(v[0]["attention"]["cross"]) > 0,
    "ui": lambda v: isinstance(v[0], str) and v[0] != "",  # the translation box
}


def request(
    http: httpx.Client,
    url: str,
    ep: Endpoints,
    kind: str,
    text: str,
    beam: int,
    timeout: float,
    keep_output: bool = False,
) -> Result:
    """One request of `kind` in a new session: a named endpoint, or the page's Translate button."""
    if kind == "ui":
        return call_queue(
            http, url, ep.ui, ep.ui_data(text, beam), timeout, CHECKS[kind], keep_output, ep.ui_trigger
        )
    # The queue takes every input of an endpoint (only /call/ fills defaults): /trace's third is `force`,
    # empty for the model's own translation.
    fn, data = (ep.translate, [text, beam]) if kind == "translate" else (ep.trace, [text, beam, ""])
    return call_queue(http, url, fn, data, timeout, CHECKS[kind], keep_output)


def soak_plan(n: int, long_share: float) -> list[tuple[str, bool]]:
    """(kind, long?) for each request: kinds in turn, long inputs spread evenly (floor(n * share) of them)."""
    longs = lambda i: math.floor(round(i * long_share, 9))
    return [(KINDS[i % len(KINDS)], longs(i + 1) > longs(i)) for i in range(n)]


def soak(
    http: httpx.Client,
    url: str,
    ep: Endpoints,
    pid: int,
    temp_root: Path,
    n: int,
    workers: int,
    long_share: float,
    max_s: float,
    timeout: float,
) -> dict:
    """n requests, a new session each, `workers` at a time; memory and temp folder before and after."""
    for kind in KINDS:  # warm every code path before the first reading
        request(http, url, ep, kind, SENTENCES[0], ep.default_beam, timeout)
    reset_peak(pid)
    mem0, temp0 = memory(pid), temp_size(temp_root)
    plan, t0 = soak_plan(n, long_share), time.perf_counter()

    def one(i: int) -> tuple[str, bool, Result] | None:
        if time.perf_counter() - t0 > max_s:
            return None  # past the deadline: the rest are not sent
        kind, long = plan[i]
        text = LONG_TEXTS[i % len(LONG_TEXTS)] if long else SENTENCES[i % len(SENTENCES)]
        return kind, long, request(http, url, ep, kind, text, ep.default_beam, timeout)

    done = [r for r in bounded_map(one, range(n), workers) if r is not None]
    wall = time.perf_counter() - t0
    mem1, temp1 = memory(pid), temp_size(temp_root)
    rows = {}
    for kind in KINDS:
        for long in (False, True):
            rs = [r for k, lg, r in done if k == kind and lg == long]
            if rs:
                rows[f"{kind} {'long' if long else 'short'}"] = outcome_row(rs)
    total = outcome_row([r for _, _, r in done])
    return {
        "requested": n,
        "sent": len(done),
        "long": sum(lg for _, lg, _ in done),
        "workers": workers,
        "wall_s": round(wall, 1),
        "stopped_by_deadline": len(done) < n,
        "rows": rows,
        "total": total,
        "short_not_ok": sum(r.outcome != "ok" for _, lg, r in done if not lg),
        "errors": [r.detail for _, _, r in done if r.outcome != "ok"][:3],
        "rss_before_mb": mem0["rss_mb"],
        "rss_after_mb": mem1["rss_mb"],
        "peak_mb": mem1["peak_mb"],
        "rss_growth_mb": round(mem1["rss_mb"] - mem0["rss_mb"], 1),
        "temp_before": temp0,
        "temp_after": temp1,
        "temp_growth_bytes": temp1["bytes"] - temp0["bytes"],
        "max_response_bytes": total["max_bytes"],
    }


def outcome_row(rs: list[Result]) -> dict:
    counts = Counter(r.outcome for r in rs)
    ok_ms = [r.seconds * 1000 for r in rs if r.outcome == "ok"]
    return {
        "sent": len(rs),
        "ok": counts["ok"],
        "busy": counts["busy"],
        "error": counts["error"],
        "timeout": counts["timeout"],
        "p50_ms": rounded(pct(ok_ms, 50)),
        "p95_ms": rounded(pct(ok_ms, 95)),
        "max_ms": rounded(max(ok_ms, default=None)),
        "max_bytes": max((r.bytes for r in rs), default=0),
    }


def run_burst(url: str, pid: int, n: int, text: str, beam: int, timeout: float) -> dict:
    """n simultaneous POST /run/translate; meanwhile GET /config, as a new visitor's page load would."""
    with httpx.Client(limits=httpx.Limits(max_connections=n + 4)) as http:
        idle = [timed_get(http, url + "config", timeout) for _ in range(5)]
        reset_peak(pid)
        barrier, finished = threading.Barrier(n + 1), threading.Event()
        during: list[float | None] = []

        def watch():
            barrier.wait(timeout)  # bounded: an interrupted run must not leave threads waiting here
            deadline = time.perf_counter() + timeout + 10
            while not finished.is_set() and time.perf_counter() < deadline:
                during.append(timed_get(http, url + "config", timeout))
                finished.wait(0.2)

        def fire(_):
            barrier.wait(timeout)
            return call_run(http, url, "translate", [text, beam], timeout)

        watcher = threading.Thread(target=watch)
        watcher.start()
        t0 = time.perf_counter()
        results = bounded_map(fire, range(n), n)
        wall = time.perf_counter() - t0
        finished.set()
        watcher.join()
    answered = [r for r in results if r.status is not None]
    refused = [r for r in answered if r.status != 200 and (400 <= r.status < 500 or r.status == 503)]
    got = [t for t in during if t is not None]
    return {
        "sent": n,
        "text_chars": len(text),
        "beam": beam,
        "run_route_accepted": sum(r.status == 200 for r in results),
        "run_route_refused": len(refused),
        "run_route_failed": n - sum(r.status == 200 for r in results) - len(refused),
        "statuses": dict(Counter(str(r.status or r.outcome) for r in results)),
        "errors": [r.detail for r in results if r.status != 200][:3],
        "wall_s": round(wall, 2),
        "slowest_s": round(max(r.seconds for r in results), 2),
        "slowest_refusal_s": round(max((r.seconds for r in refused), default=0.0), 2),
        "config_idle_ms": rounded(pct([t for t in idle if t is not None], 50)),
        "config_gets_during": len(during),
        "config_failed_during": len(during) - len(got),
        "config_p50_ms_during": rounded(pct(got, 50)),
        "config_max_ms_during": rounded(max(got, default=None)),
        "peak_mb": memory(pid)["peak_mb"],
    }


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def timed_get(http: httpx.Client, url: str, timeout: float) -> float | None:
    """Milliseconds for one GET, or None when it failed."""
    t0 = time.perf_counter()
    try:
        http.get(url, timeout=timeout).raise_for_status()
    except httpx.HTTPError:
        return None
    return (time.perf_counter() - t0) * 1000


def worst_case(
    http: httpx.Client,
    url: str,
    ep: Endpoints,
    pid: int,
    temp_root: Path,
    chars: int,
    beam: int,
    timeout: float,
) -> dict:
    """The largest input we know of at the largest beam, through /trace and through the Translate button."""
    text, out = unknown_words(chars), {}
    for kind in ("trace", "ui"):
        reset_peak(pid)
        mem0, temp0 = memory(pid), temp_size(temp_root)
        r = request(http, url, ep, kind, text, beam, timeout, keep_output=True)
        mem1, temp1 = memory(pid), temp_size(temp_root)
        out[kind] = {
            "outcome": r.outcome,
            "detail": r.detail,
            "seconds": round(r.seconds, 2),
            "server_s": None if r.server_s is None else round(r.server_s, 2),
            "response_bytes": r.bytes,
            "target_tokens": target_tokens(kind, r.output),
            "rss_before_mb": mem0["rss_mb"],
            "peak_mb": mem1["peak_mb"],
            "peak_growth_mb": round(mem1["peak_mb"] - mem0["rss_mb"], 1),
            "temp_growth_bytes": temp1["bytes"] - temp0["bytes"],
        }
    return {
        "text_chars": len(text),
        "beam": beam,
        **out,
        "max_response_bytes": max(v["response_bytes"] for v in out.values()),
    }


def target_tokens(kind: str, output: list | None) -> int | None:
    try:
        if kind == "trace":
            return len(output[0]["predicted_tokens"])
        return next(
            int(v["maximum"]) for v in output if isinstance(v, dict) and "maximum" in v
        )  # the step slider
    except (TypeError, KeyError, IndexError, StopIteration, ValueError):
        return None


def uploads(http: httpx.Client, url: str, temp_root: Path, size_mb: float, timeout: float) -> dict:
    """One file through POST /gradio_api/upload (the page has no file input, but the route is open)."""
    before = temp_size(temp_root)["bytes"]
    payload = b"\0" * int(size_mb * 1024 * 1024)
    try:
        status, body, seconds = upload(http, url, payload, timeout)
    except httpx.HTTPError as e:
        status, body, seconds = None, f"{type(e).__name__}: {e}"[:200], None
    time.sleep(1)  # Gradio moves the upload into its cache in a background task
    stored = temp_size(temp_root)["bytes"] - before
    return {
        "sent_bytes": len(payload),
        "status": status,
        "seconds": None if seconds is None else round(seconds, 2),
        "upload_accepted": status == 200,
        "upload_accepted_bytes": len(payload) if status == 200 else 0,
        "stored_bytes": stored,
        "answer": str(body)[:200],
    }
