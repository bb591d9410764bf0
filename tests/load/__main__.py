"""Load test of the attention explorer as a public Space sees it: python -m tests.load --help

Starts `python app.py` on 127.0.0.1 with a temp folder of its own, then runs these phases in order:
  concurrency  gradio_client clients, each sending requests to /translate and /trace in turn;
  overload     more simultaneous requests than the queue holds: the excess must be refused at once;
  run          simultaneous POST /gradio_api/run/translate (a way round the queue, now closed),
               with GET /config timed meanwhile;
  worst        the largest input we know of (about 2,000 characters of unknown words) at beam 8,
               through /trace and through the page's Translate button: time, answer size, memory;
  soak         many requests, each in a new session as a new visitor's, a share of them long, across
               /translate, /trace and the Translate button's private event: RSS and temp folder before/after;
  upload       one file POSTed to /gradio_api/upload: what the server keeps.
Every loop is bounded in count and time, and the app is stopped and its temp folder removed at the end.
Exit status 1 when a promise of the public Space is broken: a failed or hung request, the app gone,
a /run/ request accepted, RSS grown by more than 150 MB over the soak, a response over 2 MB, an
upload kept, or temp files left after the app stopped. Server times are reported, not judged
(they depend on the machine and what else runs on it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import clients, phases
from .protocol import discover
from .report import problems, summarize, text_report
from .stats import memory, temp_size

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app_process import AppProcess  # noqa: E402

PHASES = ("concurrency", "overload", "run", "worst", "soak", "upload")


@dataclass
class Options:
    weights: str | None = None  # None: the app's default, the bundled weights/
    threads: int = 1
    queue_size: int | None = None  # None: the app's default
    concurrency_limit: int | None = None  # the app's --concurrency; None: the app's default
    clients: int = 20
    requests: int = 10
    overload: int = 80
    soak: int = 1000
    soak_workers: int = 4
    long_share: float = 0.1
    soak_max_s: float = 1800
    run_burst: int = 40
    run_text: str = "long"
    worst_chars: int = 2000
    worst_beam: int = 8
    upload_mb: float = 1.0
    timeout: float = 300
    phases: tuple[str, ...] = PHASES
    app_log: str | None = None
    quick: bool = False

    @classmethod
    def quick_mode(cls, **overrides) -> Options:
        """Seconds to a minute on a toy model: what the test suite runs so the script cannot rot."""
        small = dict(
            clients=4,
            requests=3,
            overload=40,
            soak=30,
            soak_max_s=120,
            run_burst=8,
            queue_size=4,
            timeout=60,
            quick=True,
        )
        return cls(**{**small, **overrides})


def run(opts: Options) -> dict:
    temp_root = Path(tempfile.mkdtemp(prefix="load-app-"))
    # TMPDIR holds the app's trace folder (tempfile.gettempdir()), GRADIO_TEMP_DIR Gradio's cache: both measured.
    env = {"TMPDIR": str(temp_root), "GRADIO_TEMP_DIR": str(temp_root / "gradio")}
    args = ["--threads", str(opts.threads)] + (["--weights", opts.weights] if opts.weights else [])
    args += ["--queue-size", str(opts.queue_size)] if opts.queue_size else []
    args += ["--concurrency", str(opts.concurrency_limit)] if opts.concurrency_limit else []
    app = AppProcess(args, log=Path(opts.app_log) if opts.app_log else None, env=env)
    report: dict = {"options": dataclasses.asdict(opts), "app": {"args": args}}
    try:
        report["app"]["start_s"] = round(app.wait(), 1)
        pid, url, t = app.proc.pid, app.url, opts.timeout
        with httpx.Client(limits=httpx.Limits(max_connections=2 * opts.soak_workers + 8)) as http:
            ep = discover(http, url)
            report["app"].update(
                default_beam=ep.default_beam, memory_start=memory(pid), temp_start=temp_size(temp_root)
            )
            long_text = phases.LONG_TEXTS[1] if opts.run_text == "long" else clients.SENTENCES[3]
            steps = {
                "concurrency": lambda: clients.concurrency(url, opts.clients, opts.requests, t),
                "overload": lambda: clients.overload(url, opts.overload, t),
                "run": lambda: phases.run_burst(url, pid, opts.run_burst, long_text, ep.default_beam, t),
                "worst": lambda: phases.worst_case(
                    http, url, ep, pid, temp_root, opts.worst_chars, opts.worst_beam, t
                ),
                "soak": lambda: phases.soak(
                    http,
                    url,
                    ep,
                    pid,
                    temp_root,
                    opts.soak,
                    opts.soak_workers,
                    opts.long_share,
                    opts.soak_max_s,
                    t,
                ),
                "upload": lambda: phases.uploads(http, url, temp_root, opts.upload_mb, t),
            }
            for name in PHASES:
                if name in opts.phases:
                    report[name] = steps[name]()
            report["app"].update(memory_end=memory(pid), temp_end=temp_size(temp_root))
            report["app_alive"] = (
                app.proc.poll() is None and phases.timed_get(http, url + "config", 30) is not None
            )
    finally:
        app.stop()
        report["app"]["temp_after_exit"] = temp_size(temp_root)  # what a stopped app leaves on disk
        shutil.rmtree(temp_root, ignore_errors=True)
    report["summary"] = summarize(report)
    report["problems"] = problems(report)
    return report


def parse_args(argv: list[str] | None = None) -> tuple[Options, bool, str | None]:
    d = Options()
    p = argparse.ArgumentParser(
        prog="python -m tests.load",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a(
        "--quick",
        action="store_true",
        help="small numbers (4×3 clients, overload 40 on a queue of 4, soak 30, burst 8), "
        "as the test suite runs it; explicit options still win",
    )
    a("--json", action="store_true", help="print the report as JSON (machine use) instead of text")
    a("--json-file", metavar="PATH", help="also write the JSON report to PATH (text still printed)")
    a(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated phases to run, in this order (default: all: {','.join(PHASES)})",
    )
    a("--weights", help="weights folder (default: the app's default, the bundled weights/)")
    a("--threads", type=int, default=d.threads, help=f"torch threads of the app (default: {d.threads})")
    a("--queue-size", type=int, help="the app's --queue-size (default: the app's default)")
    a("--concurrency-limit", type=int, help="the app's --concurrency (default: the app's default)")
    a("--clients", type=int, help=f"concurrency phase: gradio_client clients (default: {d.clients})")
    a("--requests", type=int, help=f"concurrency phase: requests per client (default: {d.requests})")
    a("--overload", type=int, help=f"overload phase: simultaneous requests (default: {d.overload})")
    a("--soak", type=int, help=f"soak phase: requests, each a new session (default: {d.soak})")
    a("--soak-workers", type=int, help=f"soak phase: requests in flight at once (default: {d.soak_workers})")
    a(
        "--long-share",
        type=float,
        help=f"soak phase: share of ~2,000-character inputs (default: {d.long_share})",
    )
    a(
        "--soak-max-s",
        type=float,
        help=f"soak phase: no new request after this many seconds (default: {d.soak_max_s:.0f})",
    )
    a("--run-burst", type=int, help=f"run phase: simultaneous POST /run/translate (default: {d.run_burst})")
    a(
        "--run-text",
        choices=("long", "short"),
        help="run phase: a ~2,000-character input or one sentence (default: long)",
    )
    a("--worst-chars", type=int, help=f"worst phase: characters of unknown words (default: {d.worst_chars})")
    a("--worst-beam", type=int, help=f"worst phase: beam size (default: {d.worst_beam})")
    a("--upload-mb", type=float, help=f"upload phase: size of the file (default: {d.upload_mb:g} MB)")
    a(
        "--timeout",
        type=float,
        help=f"seconds one request may take before it counts as hung (default: {d.timeout:.0f}; quick: 60)",
    )
    a("--app-log", help="write the app's output to this file (default: discarded)")
    ns = p.parse_args(argv)
    chosen = tuple(x.strip() for x in ns.phases.split(",") if x.strip())
    if unknown := set(chosen) - set(PHASES):
        p.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    given = {
        k: v
        for k, v in vars(ns).items()
        if v is not None and k not in ("quick", "json", "json_file", "phases")
    }
    opts = Options.quick_mode(**given) if ns.quick else Options(**given)
    opts.phases = chosen
    return opts, ns.json, ns.json_file


def main(argv: list[str] | None = None) -> int:
    opts, as_json, json_file = parse_args(argv)
    report = run(opts)
    if json_file:
        Path(json_file).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False) if as_json else text_report(report))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
