"""Gradio's HTTP protocol spoken directly (httpx), so every request can be a new session.

A gradio_client `Client` per request would cost a /config and /info fetch each; the browser instead
POSTs /gradio_api/queue/join with a fresh session_hash and reads /gradio_api/queue/data (server-sent
events) for that session: that is what `call_queue` does. `call_run` is the direct POST /run/<api_name>
route, which today does not go through the queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "gradio_api"
# Gradio sends a heartbeat every 15 s while an event waits, so a silent stream for 30 s is a dead one.
READ_TIMEOUT_S = 30


def new_session() -> str:
    return uuid.uuid4().hex[:11]  # the browser's session_hash is a short random string too


@dataclass
class Result:
    outcome: str  # "ok", "busy" (refused: queue full), "error" (an answer that is not a result), "timeout"
    seconds: float  # client wall time, request to completion
    bytes: int = 0  # what the client received for this request (for the queue: the whole event stream)
    server_s: float | None = None  # the handler's own time, as Gradio reports it ("duration")
    detail: str = ""  # why it is not "ok", cut to 200 characters
    status: int | None = None  # HTTP status of the first response
    output: list | None = field(default=None, repr=False)  # the output data, kept only when asked


@dataclass
class Endpoints:
    """The fn_index of each event, found in /config as a browser finds it."""

    translate: int
    trace: int
    ui: int  # the Translate button's private event
    ui_trigger: int  # the button's component id (the browser sends it as trigger_id)
    ui_defaults: list  # the UI event's inputs as the page first shows them
    text_pos: int
    beam_pos: int
    default_beam: int

    def ui_data(self, text: str, beam: int) -> list:
        data = list(self.ui_defaults)
        data[self.text_pos], data[self.beam_pos] = text, beam
        return data


def discover(http: httpx.Client, url: str) -> Endpoints:
    config = http.get(url + "config").raise_for_status().json()
    comps = {c["id"]: c for c in config["components"]}
    deps = config["dependencies"]
    by_name = {d.get("api_name"): d["id"] for d in deps}
    button = next((i for i, c in comps.items() if c.get("props", {}).get("elem_id") == "translate-btn"), None)
    ui = next((d for d in deps if [button, "click"] in d.get("targets", [])), None)
    if "translate" not in by_name or "trace" not in by_name or ui is None:
        raise RuntimeError("/config has no translate and trace endpoints or no Translate button event")
    inputs = [comps[i] for i in ui["inputs"]]
    text_pos = next(k for k, c in enumerate(inputs) if c.get("props", {}).get("elem_id") == "source-text")
    beam_pos = next(k for k, c in enumerate(inputs) if c["type"] == "slider")
    return Endpoints(
        by_name["translate"],
        by_name["trace"],
        ui["id"],
        button,
        [c.get("props", {}).get("value") for c in inputs],
        text_pos,
        beam_pos,
        int(inputs[beam_pos]["props"]["value"]),
    )


def call_queue(
    http: httpx.Client,
    url: str,
    fn_index: int,
    data: list,
    timeout: float,
    check: Callable[[list], bool] | None = None,
    keep_output: bool = False,
    trigger_id: int | None = None,
) -> Result:
    """One event in a new session: join the queue, then read the session's event stream to its end."""
    session, t0 = new_session(), time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0
    body = {
        "data": data,
        "fn_index": fn_index,
        "session_hash": session,
        "event_data": None,
        "trigger_id": trigger_id,
    }
    try:
        r = http.post(url + f"{API}/queue/join", json=body, timeout=timeout)
        if r.status_code != 200:
            busy = r.status_code == 503 and "queue is full" in r.text.lower()
            return Result(
                "busy" if busy else "error",
                elapsed(),
                len(r.content),
                detail=r.text[:200],
                status=r.status_code,
            )
        received, result = len(r.content), None
        with http.stream(
            "GET",
            url + f"{API}/queue/data",
            params={"session_hash": session},
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=10),
        ) as stream:
            for line in stream.iter_lines():
                received += len(line.encode()) + 1
                if elapsed() > timeout:
                    return Result(
                        "timeout", elapsed(), received, detail=f"no result in {timeout:.0f} s", status=200
                    )
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind = msg.get("msg")
                if kind == "queue_full":
                    result = Result("busy", 0, detail="queue is full", status=200)
                elif kind == "unexpected_error":
                    result = Result("error", 0, detail=str(msg.get("message"))[:200], status=200)
                elif kind == "process_completed":
                    out = msg.get("output") or {}
                    if not msg.get("success"):
                        result = Result("error", 0, detail=str(out.get("error"))[:200], status=200)
                    else:
                        values = out.get("data") or []
                        ok = check is None or _safe_check(check, values)
                        result = Result(
                            "ok" if ok else "error",
                            0,
                            server_s=out.get("duration"),
                            status=200,
                            detail="" if ok else "unexpected output: " + str(values)[:180],
                            output=values if keep_output else None,
                        )
                elif kind == "close_stream":
                    break
        if result is None:
            return Result(
                "error", elapsed(), received, detail="the event stream ended without a result", status=200
            )
        result.seconds, result.bytes = elapsed(), received
        return result
    except httpx.HTTPError as e:
        kind = "timeout" if isinstance(e, httpx.TimeoutException) else "error"
        return Result(kind, elapsed(), detail=f"{type(e).__name__}: {e}"[:200])


def call_run(http: httpx.Client, url: str, api_name: str, data: list, timeout: float) -> Result:
    """POST /gradio_api/run/<api_name>: the direct route, answered in the same HTTP response."""
    t0 = time.perf_counter()
    try:
        r = http.post(url + f"{API}/run/{api_name}", json={"data": data}, timeout=timeout)
    except httpx.HTTPError as e:
        kind = "timeout" if isinstance(e, httpx.TimeoutException) else "error"
        return Result(kind, time.perf_counter() - t0, detail=f"{type(e).__name__}: {e}"[:200])
    seconds = time.perf_counter() - t0
    if r.status_code == 200:
        return Result("ok", seconds, len(r.content), server_s=r.json().get("duration"), status=200)
    busy = "queue is full" in r.text.lower() or r.status_code in (429, 503)
    return Result(
        "busy" if busy else "error", seconds, len(r.content), detail=r.text[:200], status=r.status_code
    )


def upload(http: httpx.Client, url: str, payload: bytes, timeout: float) -> tuple[int, Any, float]:
    """POST /gradio_api/upload as the browser's file input does: (status, parsed body or text, seconds)."""
    t0 = time.perf_counter()
    r = http.post(
        url + f"{API}/upload",
        files={"files": ("load-test.bin", payload, "application/octet-stream")},
        timeout=timeout,
    )
    try:
        body = r.json()
    except ValueError:
        body = r.text[:200]
    return r.status_code, body, time.perf_counter() - t0


def _safe_check(check: Callable[[list], bool], values: list) -> bool:
    try:
        return bool(check(values))
    except (KeyError, IndexError, TypeError, ValueError):
        return False
