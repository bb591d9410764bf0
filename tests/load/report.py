"""The report: `summary` (the figures of issue 14's holes, now promises), `problems` (what breaks a
promise and makes the exit status 1), and the text a person reads."""

from __future__ import annotations


def summarize(r: dict) -> dict:
    run, soak, worst, up, app = r.get("run"), r.get("soak"), r.get("worst"), r.get("upload"), r["app"]
    start, end, left = app.get("temp_start"), app.get("temp_end"), app.get("temp_after_exit")
    sizes = [x["max_response_bytes"] for x in (soak, worst) if x]
    peaks = [
        x["peak_mb"]
        for x in (run, soak, worst and worst["trace"], worst and worst["ui"], app.get("memory_end"))
        if x
    ]
    return {
        "app_alive": r.get("app_alive", False),
        "run_route_sent": run and run["sent"],
        "run_route_accepted": run and run["run_route_accepted"],
        "run_route_refused": run and run["run_route_refused"],
        "config_max_ms_during_run_burst": run
        and run["config_max_ms_during"]
        and round(run["config_max_ms_during"]),
        "rss_growth_mb": soak and soak["rss_growth_mb"],
        "rss_peak_mb": max(
            peaks, default=None
        ),  # each phase restarts the kernel's count: the largest of them
        "max_response_bytes": max(sizes) if sizes else None,
        "worst_case_server_s": worst and max((worst[k]["server_s"] or 0) for k in ("trace", "ui")),
        "temp_dir_growth_bytes": end["bytes"] - start["bytes"] if start and end else None,
        "temp_dir_left_after_exit_bytes": left and left["bytes"],
        "upload_accepted_bytes": up and up["upload_accepted_bytes"],
    }


# The public Space's promises (README, reliability table).
MAX_RSS_GROWTH_MB = 150  # over the soak: new sessions, a tenth of them long inputs
MAX_RESPONSE_BYTES = 2_000_000
MAX_UPLOAD_KEPT_BYTES = 4096  # "refused or capped to a few KB"


def problems(r: dict) -> list[str]:
    """Every request answered (no hang), the app alive, the counts adding up, and the bounds held."""
    out = []
    if not r.get("app_alive"):
        out.append("the app stopped serving")
    if (c := r.get("concurrency")) and c["failed"]:
        out.append(f"concurrency: {c['failed']} of {c['requests']} failed")
    if o := r.get("overload"):
        if o["n_other_errors"] or o["served"] + o["refused_busy"] != o["sent"]:
            out.append(f"overload: {o['n_other_errors']} answers neither served nor 'queue is full'")
    if s := r.get("soak"):
        if s["short_not_ok"]:
            out.append(f"soak: {s['short_not_ok']} short requests not served")
        if s["total"]["timeout"]:
            out.append(f"soak: {s['total']['timeout']} requests hung")
    if (b := r.get("run")) and b["statuses"].get("timeout"):
        out.append(f"run: {b['statuses']['timeout']} requests hung")
    if w := r.get("worst"):
        out += [f"worst ({k}): hung" for k in ("trace", "ui") if w[k]["outcome"] == "timeout"]
    s = r["summary"]
    if s["run_route_accepted"]:
        out.append(f"run: {s['run_route_accepted']} requests skipped the queue")
    if (g := s["rss_growth_mb"]) is not None and g > MAX_RSS_GROWTH_MB:
        out.append(f"soak: RSS grew {g} MB (limit {MAX_RSS_GROWTH_MB})")
    if (n := s["max_response_bytes"]) is not None and n > MAX_RESPONSE_BYTES:
        out.append(f"a response of {n:,} bytes (limit {MAX_RESPONSE_BYTES:,})")
    if (n := s["upload_accepted_bytes"]) is not None and n > MAX_UPLOAD_KEPT_BYTES:
        out.append(f"upload: {n:,} bytes kept (limit {MAX_UPLOAD_KEPT_BYTES:,})")
    if n := s["temp_dir_left_after_exit_bytes"]:
        out.append(f"{n:,} bytes of temp files left after the app stopped")
    return out


def ms(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def size(n) -> str:
    return "-" if n is None else f"{n:,} B ({n / 1e6:,.1f} MB)"


def temp_line(t: dict) -> str:
    return (
        f"{size(t['bytes'])} in {t['files']} files (trace folder {t['trace_dir_bytes'] / 1e6:,.1f} MB, "
        f"Gradio cache {t['gradio_cache_bytes'] / 1e6:,.1f} MB)"
    )


def table(header: list[str], rows: list[list], indent: str = "  ") -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    fmt = lambda row: (
        indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    )
    return [fmt(cells[0])] + [fmt(row) for row in cells[1:]]


def text_report(r: dict) -> str:
    o, app = r["options"], r["app"]
    lines = [
        f"Load report: app {' '.join(app['args'])} (default beam {app.get('default_beam')}), "
        f"started in {app.get('start_s')} s; phases: {', '.join(o['phases'])}"
    ]
    if m := app.get("memory_start"):
        lines.append(f"  app at start: RSS {m['rss_mb']} MB; temp {temp_line(app['temp_start'])}")
    if c := r.get("concurrency"):
        lines += [
            "",
            f"concurrency (gradio_client): {c['clients']} clients × {o['requests']} requests = {c['requests']}, "
            f"failed {c['failed']}; latency p50 {ms(c['p50_ms'])} ms, p95 {ms(c['p95_ms'])} ms",
        ]
        lines += [f"  error: {e}" for e in c["errors"]]
    if v := r.get("overload"):
        lines += [
            "",
            f"overload (gradio_client): {v['sent']} at once → served {v['served']}, refused 'queue is full' "
            f"{v['refused_busy']} (slowest refusal {v['slowest_refusal_s']:.2f} s), other errors {v['n_other_errors']}",
        ]
        lines += [f"  error: {e}" for e in v["other_errors"]]
    if b := r.get("run"):
        lines += [
            "",
            f"run route: {b['sent']} simultaneous POST /gradio_api/run/translate "
            f"({b['text_chars']:,} characters, beam {b['beam']})",
            *table(
                ["accepted", "refused", "failed", "statuses", "all answered", "slowest", "slowest refusal"],
                [
                    [
                        b["run_route_accepted"],
                        b["run_route_refused"],
                        b["run_route_failed"],
                        " ".join(f"{k}×{n}" for k, n in sorted(b["statuses"].items())),
                        f"{b['wall_s']} s",
                        f"{b['slowest_s']} s",
                        f"{b['slowest_refusal_s']} s",
                    ]
                ],
            ),
            f"  GET /config: idle {ms(b['config_idle_ms'])} ms; during the burst p50 {ms(b['config_p50_ms_during'])} ms, "
            f"max {ms(b['config_max_ms_during'])} ms ({b['config_gets_during']} GETs, {b['config_failed_during']} failed); "
            f"app peak RSS during the burst {b['peak_mb']} MB",
        ]
        lines += [f"  not accepted: {e}" for e in b["errors"]]
    if w := r.get("worst"):
        lines += [
            "",
            f"worst case: {w['text_chars']:,} characters of unknown words at beam {w['beam']}, a new session each",
            *table(
                [
                    "through",
                    "outcome",
                    "server s",
                    "client s",
                    "response",
                    "target tokens",
                    "RSS before",
                    "peak RSS",
                    "temp growth",
                ],
                [
                    [
                        k,
                        w[k]["outcome"],
                        w[k]["server_s"],
                        w[k]["seconds"],
                        size(w[k]["response_bytes"]),
                        w[k]["target_tokens"],
                        f"{w[k]['rss_before_mb']} MB",
                        f"{w[k]['peak_mb']} MB ({w[k]['peak_growth_mb']:+})",
                        size(w[k]["temp_growth_bytes"]),
                    ]
                    for k in ("trace", "ui")
                ],
            ),
        ]
        lines += [f"  {k}: {w[k]['detail']}" for k in ("trace", "ui") if w[k]["detail"]]
    if s := r.get("soak"):
        rows = [
            [
                k,
                v["sent"],
                v["ok"],
                v["busy"],
                v["error"],
                v["timeout"],
                ms(v["p50_ms"]),
                ms(v["p95_ms"]),
                ms(v["max_ms"]),
                f"{v['max_bytes']:,}",
            ]
            for k, v in {**s["rows"], "total": s["total"]}.items()
        ]
        lines += [
            "",
            f"soak: {s['sent']} of {s['requested']} requests sent, each a new session, {s['long']} long, "
            f"{s['workers']} at a time, in {s['wall_s']} s"
            + (" (stopped by the deadline)" if s["stopped_by_deadline"] else ""),
            *table(
                ["request", "sent", "ok", "busy", "error", "hung", "p50 ms", "p95 ms", "max ms", "max bytes"],
                rows,
            ),
            f"  RSS: {s['rss_before_mb']} → {s['rss_after_mb']} MB ({s['rss_growth_mb']:+} MB), peak during the soak {s['peak_mb']} MB",
            f"  temp before: {temp_line(s['temp_before'])}",
            f"  temp after:  {temp_line(s['temp_after'])}",
        ]
        lines += [f"  error: {e}" for e in s["errors"]]
    if u := r.get("upload"):
        lines += [
            "",
            f"upload: {size(u['sent_bytes'])} to POST /gradio_api/upload → HTTP {u['status']} in {u['seconds']} s; "
            f"stored in the temp folder {size(u['stored_bytes'])}",
            f"  answer: {u['answer']}",
        ]
    if m := app.get("memory_end"):
        lines += ["", f"app at end: RSS {m['rss_mb']} MB; temp {temp_line(app['temp_end'])}"]
    if t := app.get("temp_after_exit"):
        lines.append(f"  left on disk after the app stopped: {temp_line(t)}")
    lines += [
        "",
        "summary (each bound is judged under problems):",
        *table(["field", "value"], [[k, "-" if v is None else v] for k, v in r["summary"].items()]),
    ]
    lines += ["", "problems: " + ("; ".join(r["problems"]) if r["problems"] else "none")]
    return "\n".join(lines)
