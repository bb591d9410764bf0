"""The page as a person feels it: input event → the first frame with the new plot, in real Chromium.

`python -m tests.benchmarks --browser` starts `python app.py` (or measures `--url`), opens headless
Chromium at 1400×1000 and times each action of `browser_actions.actions()` (the Attention tab's, its
lines view, choosing a beam hypothesis, Compare, Inside a head), alternating so that every repetition
really changes the plot. What is timed lives in the page, so Playwright's round trips are not in it: a capture-phase listener on the document takes performance.now() when the click /
input event is dispatched, a MutationObserver on the plot's block (or blocks: Compare draws two) waits for
the new Plotly figure, and the time is taken in the next requestAnimationFrame callback (the frame that will
show it).

Payload is read from Chromium's network log (CDP), outside the page: the bytes of Gradio's queue
event stream during each action, and the attention figure's JSON inside its `process_completed`
message, with the server's own processing time for the event and when the message had arrived
(so each action splits into "result received" and the page's own work after it). A non-queued event
(`queue=False`) is one POST to /run/predict instead, whose JSON response is that same output.

`--url A --url B` compares two running apps (say an older checkout and this one): each repetition
samples both, in alternating order, so a change in the machine's load hits both alike.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # the other benchmarks run without Playwright
    PlaywrightError = sync_playwright = None

from app_process import CHROMIUM, CHROMIUM_ARGS, AppProcess  # noqa: E402  (tests/ is on sys.path: see __main__)

from .browser_actions import SENTENCES, Action, Step, actions, radio

VIEWPORT = {"width": 1400, "height": 1000}
EVENT_TIMEOUT_MS = 120_000  # one translation on a loaded 2-core machine can take many seconds

# Runs in the page. Resolves with the milliseconds from the input event to the first animation frame
# after the plot in `target` is a new, drawn Plotly figure. Gradio re-creates the plot's <div> for each
# new value and only then calls Plotly.react on it, and its loading overlay mutates the same block: so
# a mutation counts only once the block holds a drawn figure (`_fullLayout`) that is not the old one.
# With several targets, it waits for all of them. `thenTab`: a tab clicked right after the input, inside the
# timed window (a plot in a tab not shown is drawn only once its tab is).
MEASURE_JS = """async ({targets, control, how, value, thenTab, timeoutMs}) => {
  const roots = targets.map(t => document.querySelector(t));
  const el = document.querySelector(control);
  const missing = targets.filter((t, i) => !roots[i]).concat(el ? [] : [control]);
  if (missing.length) throw new Error('not on the page: ' + missing.join(', '));
  if (el.type === 'radio' && el.checked) return null;  // already there: no event, nothing to wait for
  const plotOf = root => root.querySelector('.js-plotly-plot');
  const before = roots.map(root => { const p = plotOf(root); return [p, p && p.data]; });
  const drawnAnew = (root, i) => {
    const plot = plotOf(root);
    return plot && plot._fullLayout && !(plot === before[i][0] && plot.data === before[i][1]);
  };
  const type = how === 'range' ? 'input' : how === 'mousedown' ? 'mousedown' : 'click';
  let t0 = null;
  const onInput = e => { if (t0 === null && el.contains(e.target)) t0 = performance.now(); };
  document.addEventListener(type, onInput, {capture: true});
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { mo.disconnect(); reject(new Error(targets + ' did not change')); }, timeoutMs);
      const mo = new MutationObserver(() => {
        if (t0 === null || !roots.every(drawnAnew)) return;
        mo.disconnect();
        const mutated = performance.now();
        requestAnimationFrame(() => {
          clearTimeout(timer);
          resolve({ms: performance.now() - t0, dom_ms: mutated - t0, t0_epoch_ms: performance.timeOrigin + t0});
        });
      });
      roots.forEach(root => mo.observe(root, {subtree: true, childList: true, attributes: true, characterData: true}));
      if (how === 'range') {  // what dragging the slider does: set the value, then an input event
        el.value = value;
        el.dispatchEvent(new Event('input', {bubbles: true}));
      } else if (how === 'mousedown') {  // a dropdown's option is chosen on mousedown
        el.dispatchEvent(new MouseEvent('mousedown', {bubbles: true, cancelable: true}));
      } else {
        el.click();
      }
      if (thenTab) {
        const tab = [...document.querySelectorAll('.tabs [role=tab]')].find(b => b.textContent.trim() === thenTab);
        if (!tab) throw new Error('no tab ' + thenTab);
        tab.click();
      }
    });
  } finally {
    document.removeEventListener(type, onInput, {capture: true});
  }
}"""


class EventStreams:
    """Gradio's queue/data event streams as Chromium received them, from its network log (CDP), and its
    /run/predict responses (non-queued events), which count as streams of one message.

    Chromium hands the streams' bodies over only because `Network.streamResourceContent` asks for them: Gradio's
    client aborts each stream once its events are done, so Playwright's response.body() never has them.
    """

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.open: dict[str, dict] = {}
        self.done: list[dict] = []
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.dataReceived", self._data)
        self.cdp.on("Network.loadingFinished", self._end)
        self.cdp.on("Network.loadingFailed", self._end)
        self.cdp.send("Network.enable")

    def _sent(self, e: dict) -> None:
        url = e["request"]["url"]
        if "/queue/data" in url or "/run/predict" in url:
            # wallTime and timestamp of the same instant: Chromium's network clock to epoch milliseconds
            self.open[e["requestId"]] = {
                "bytes": 0,
                "body": None,
                "arrivals": [],
                "clock": (e["wallTime"], e["timestamp"]),
                "predict": "/run/predict" in url,
            }
            if "/queue/data" in url:  # a /run/predict fetch keeps its body: it is read once loaded (_end)
                self._stream(e["requestId"])

    def _response(self, e: dict) -> None:
        stream = self.open.get(e["requestId"])
        if stream is not None and stream["body"] is None and not stream["predict"]:
            self._stream(e["requestId"])  # asking before the response can fail: ask again

    def _stream(self, request_id: str) -> None:
        """Ask as early as possible: a toggle's stream can be over in 100 ms, and once it is, its body is gone
        (then only its size counts)."""
        stream = self.open[request_id]
        stream["body"] = bytearray()  # other events may be handled while this waits: theirs go after
        try:
            got = self.cdp.send("Network.streamResourceContent", {"requestId": request_id})
        except PlaywrightError:
            stream["body"] = None
            return
        stream["body"][:0] = base64.b64decode(got["bufferedData"])

    def _data(self, e: dict) -> None:
        stream = self.open.get(e["requestId"])
        if stream is not None:
            stream["bytes"] += e["dataLength"]
            stream["arrivals"].append((stream["bytes"], epoch_ms(stream, e["timestamp"])))
            if stream["body"] is not None and e.get("data"):
                stream["body"] += base64.b64decode(e["data"])

    def _end(self, e: dict) -> None:
        stream = self.open.pop(e["requestId"], None)
        if stream is None:
            return
        if stream["predict"] and "errorText" not in e:  # loadingFinished: Chromium has the whole response
            stream["arrivals"].append((stream["bytes"], epoch_ms(stream, e["timestamp"])))
            try:
                got = self.cdp.send("Network.getResponseBody", {"requestId": e["requestId"]})
                body = got["body"]
                stream["body"] = base64.b64decode(body) if got["base64Encoded"] else body.encode()
            except PlaywrightError:  # then only its size counts, as with a stream's body missed
                pass
        self.done.append(stream)

    def take(self) -> list[dict]:
        done, self.done = self.done, []
        return done


def epoch_ms(stream: dict, timestamp: float) -> float:
    """A CDP network `timestamp` of this request's as epoch milliseconds (see the stream's `clock`)."""
    wall, mono = stream["clock"]
    return 1000 * (wall + timestamp - mono)


def completed_events(streams: list[dict]) -> list[dict]:
    """The `output` of every process_completed message in these streams (Server-Sent Events, JSON data lines),
    and of every successful /run/predict response (the same dict, as JSON), each with `arrived_epoch_ms`: when
    Chromium had received the whole message."""
    out = []
    for s in streams:
        if s["body"] is None:
            continue
        if s["predict"]:
            output = json.loads(s["body"])
            if "data" in output:  # not an error's payload
                out.append({**output, "arrived_epoch_ms": s["arrivals"][-1][1]})
            continue
        end = 0
        for line in bytes(s["body"]).split(b"\n"):
            end += len(line) + 1
            if line.startswith(b"data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("success"):
                    arrived = next((t for n, t in s["arrivals"] if n >= end - 1), None)
                    out.append({**(msg.get("output") or {}), "arrived_epoch_ms": arrived})
    return out


def first_figure(outputs: list[dict]) -> tuple[int, dict] | None:
    """UTF-8 size of the first Plotly figure's JSON in these events' outputs (a gr.Plot's, or the text of
    explorer.live_plot), and the output that holds it: the attention plot, first in the outputs of Translate,
    every toggle and the step slider (after a hypothesis is chosen: of the Translate that follows)."""
    for output in outputs:
        for value in output.get("data") or []:
            if isinstance(value, dict) and value.get("__type__") == "update":
                value = value.get("value")
            if isinstance(value, dict) and value.get("type") == "plotly":  # a gr.Plot
                value = value.get("plot")
            if isinstance(value, str) and value.startswith('{"data"'):  # explorer.live_plot's JSON
                return len(value.encode()), output
    return None


@dataclass
class Row:
    action: Action
    ms: list[float] = field(default_factory=list)
    dom_ms: list[float] = field(default_factory=list)
    arrived_ms: list[float] = field(default_factory=list)
    page_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    figure_bytes: list[int] = field(default_factory=list)
    stream_bytes: list[int] = field(default_factory=list)


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile, as the other benchmarks report (with 10 samples, p95 is the slowest)."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Bench:
    def __init__(self, page, streams: EventStreams):
        self.page, self.streams = page, streams

    def settle(self, timeout: float = 60) -> list[dict]:
        """Wait until the action's events are over (every event stream closed, and none reopens at once),
        so the next action neither queues behind it nor gets its bytes; returns its streams."""
        got, deadline, quiet_since = [], time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(25)  # lets Playwright deliver the CDP events
            got += self.streams.take()
            if self.streams.open or not got:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 0.15:
                return got
        raise RuntimeError("the page's events did not finish")

    def do(self, step: Step, targets: list[str]) -> tuple[dict | None, list[dict]]:
        """Dispatch `step` and wait until its events are over; its timing is None if it changed nothing."""
        if step.text is not None:
            self.page.fill("#source-text textarea", step.text)
        if step.opens is not None:
            self.page.click(step.opens)
            for selector in (step.control, *targets, *(f for f, _ in step.fill)):
                self.page.wait_for_selector(selector, state="attached", timeout=EVENT_TIMEOUT_MS)
        for selector, text in step.fill:
            self.page.fill(selector, text)
        if step.script is not None:
            self.page.evaluate(step.script)
        self.streams.take()
        timing = self.page.evaluate(
            MEASURE_JS,
            {
                "targets": targets,
                "control": step.control,
                "how": step.how,
                "value": step.value,
                "thenTab": step.then_tab,
                "timeoutMs": EVENT_TIMEOUT_MS,
            },
        )
        return timing, [] if timing is None else self.settle()

    def start(self, action: Action, warmup: bool) -> Row:
        self.done_steps = 0
        if action.restore:
            self.restore_value = self.page.evaluate(
                f"() => document.querySelector('#{action.restore} input:checked').value"
            )
        if action.setup:
            self.do(action.setup, action.targets)
        if warmup:  # the first render of a new figure shape pays for Plotly's one-time work
            for step in action.steps:
                self.do(step, action.targets)
        return Row(action)

    def sample(self, row: Row) -> None:
        """Alternate `row.action`'s steps until one more timed sample is in `row`."""
        action, wanted = row.action, len(row.ms) + 1
        while len(row.ms) < wanted:
            which = self.done_steps % 2
            timing, streams = self.do(action.steps[which], action.targets)
            self.done_steps += 1
            if action.timed[which]:
                record(row, timing, streams)

    def finish(self, action: Action) -> None:
        """Back to the default view for the next action."""
        if self.done_steps % 2:
            self.do(action.steps[1], action.targets)
        if action.restore:
            self.do(radio(action.restore, self.restore_value), action.targets)


def record(row: Row, timing: dict | None, streams: list[dict]) -> None:
    if timing is None:
        raise RuntimeError(f"{row.action.name}: the step changed nothing on {row.action.target}")
    outputs = completed_events(streams)
    row.ms.append(timing["ms"])
    row.dom_ms.append(timing["dom_ms"])
    figure = first_figure(outputs)
    # The event that brought the figure (else the first to complete); what is left after it is the page's work.
    arrived = [o["arrived_epoch_ms"] for o in ([figure[1]] if figure else outputs) if o["arrived_epoch_ms"]]
    if arrived:
        row.arrived_ms.append(min(arrived) - timing["t0_epoch_ms"])
        row.page_ms.append(timing["ms"] - row.arrived_ms[-1])
    row.stream_bytes.append(sum(s["bytes"] for s in streams))
    if figure is not None:
        row.figure_bytes.append(figure[0])
    durations = [o["duration"] for o in outputs if isinstance(o.get("duration"), (int, float))]
    if durations:
        row.server_ms.append(1000 * sum(durations))


def kb(xs: list[int]) -> str:
    if not xs:
        return "?"
    lo, hi = min(xs) / 1000, max(xs) / 1000
    return f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}–{hi:.0f}"


def print_table(rows: list[Row]) -> None:
    p50 = lambda xs: f"{pct(xs, 50):.0f}" if xs else "?"
    head = (
        f"   {'action':<25} {'alternates':<32} {'p50 ms':>6} {'p95 ms':>6} {'server':>6} {'result':>6} "
        f"{'page':>6} {'figure KB':>9} {'stream KB':>9}"
    )
    print(head)
    print("   " + "-" * (len(head) - 3))
    for r in rows:
        print(
            f"   {r.action.name:<25} {r.action.alternates:<32} {pct(r.ms, 50):>6.0f} {pct(r.ms, 95):>6.0f} "
            f"{p50(r.server_ms):>6} {p50(r.arrived_ms):>6} {p50(r.page_ms):>6} {kb(r.figure_bytes):>9} "
            f"{kb(r.stream_bytes):>9}"
        )


def print_legend() -> None:
    print(
        "   p50/p95 ms: input event → first animation frame with the new plot, timed in the page\n"
        "   server: the app's processing time for the action's event; result: input event → its result all "
        "received by\n   Chromium; page: the rest, what the page spends on it (parse, Svelte, Plotly); "
        "all three p50 ms\n"
        "   figure KB: the attention figure's JSON; stream KB: every byte of the action's event stream "
        "(or /run/predict\n   response, for a non-queued event) (min–max over the repetitions)"
    )


def print_comparison(urls: list[str], rows: dict[str, list[Row]]) -> None:
    def ratio(a: list[float], b: list[float]) -> str:
        return f"{pct(b, 50) / pct(a, 50):.2f}x" if a and b else "?"

    def size_ratio(a: list[int], b: list[int]) -> str:
        # Sizes take one value per side of the alternation: mid-range weighs both sides alike, even when
        # a stream's body was missed (the p50 of 4 + 5 samples would pick a side).
        return f"{(min(b) + max(b)) / (min(a) + max(a)):.2f}x" if a and b else "?"

    base = urls[0]
    for url in urls[1:]:
        print(f"   {url} against {base} (time and page: p50 over p50; figure: mid-range over mid-range):")
        for a, b in zip(rows[base], rows[url]):
            print(
                f"     {a.action.name:<25} time {ratio(a.ms, b.ms):>6}   page {ratio(a.page_ms, b.page_ms):>6}   "
                f"figure {size_ratio(a.figure_bytes, b.figure_bytes):>6}"
            )


def rows_json(rows: list[Row]) -> list[dict]:
    return [
        {
            "action": r.action.name,
            "alternates": r.action.alternates,
            "target": r.action.target,
            "p50_ms": pct(r.ms, 50),
            "p95_ms": pct(r.ms, 95),
            "ms": r.ms,
            "dom_ms": r.dom_ms,
            "result_in_ms": r.arrived_ms,
            "page_ms": r.page_ms,
            "server_ms": r.server_ms,
            "figure_bytes": r.figure_bytes,
            "stream_bytes": r.stream_bytes,
        }
        for r in rows
    ]


def open_page(browser, url: str) -> Bench:
    """`url` in its own browser context (its own Gradio session), translated once, at the default view."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    streams = EventStreams(page)
    page.goto(url)
    # Gradio renders the page in pieces: the textbox can be there before the Attention tab is. (The other tabs'
    # content is not on the page until they are opened.)
    shown = [a for a in actions() if a.tab is None]
    for selector in (
        "#source-text textarea",
        "#translate-btn",
        *{t for a in shown for t in a.targets},
        *{s.control for a in shown for s in a.steps if not s.text},
    ):
        page.wait_for_selector(selector, state="attached", timeout=60_000)
    bench = Bench(page, streams)
    # The view every action starts from: a translation of the first sentence, default controls.
    bench.do(Step("#translate-btn", text=SENTENCES[0]), ["#attention-plot"])
    return bench


def bench_browser(
    urls: list[str] | None,
    app_args: list[str],
    repeats: int,
    warmup: bool,
    chromium: str = CHROMIUM,
    json_path: str | None = None,
) -> dict[str, list[Row]]:
    """Measure the apps at `urls`, or start `python app.py APP_ARGS` for the run; prints a table per app (and
    writes JSON). With two or more apps, every repetition takes one sample of each in turn, in an order that
    alternates, so a change in the machine's load hits them alike."""

    if sync_playwright is None:
        raise SystemExit("--browser needs Python playwright (pip install -r tests/requirements.txt)")

    app = None
    if not urls:
        app = AppProcess(app_args, log=Path(tempfile.mkdtemp()) / "app.log")
        app.wait(timeout=180)
        urls = [app.url]
    try:
        load_before = os.getloadavg()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                benches = [open_page(browser, url) for url in urls]
                print(
                    f"browser: Chromium {browser.version} at {VIEWPORT['width']}×{VIEWPORT['height']}, {repeats} "
                    f"repetitions of each action{' after one warm-up each way' if warmup else ''}"
                    f"{', alternating between the apps' if len(urls) > 1 else ''}"
                )
                rows: dict[str, list[Row]] = {url: [] for url in urls}
                for action in actions():
                    started = [(url, bench, bench.start(action, warmup)) for url, bench in zip(urls, benches)]
                    for i in range(repeats):
                        for _, bench, row in started[::-1] if i % 2 else started:
                            bench.sample(row)
                    for url, bench, row in started:
                        bench.finish(action)
                        rows[url].append(row)
            finally:
                browser.close()
        load_after = os.getloadavg()
    finally:
        if app:
            app.stop()
    for url in urls:
        print(f"\n   {url}" + (f" (python app.py {' '.join(app_args)})".rstrip() if app else ""))
        print_table(rows[url])
    print_legend()
    if len(urls) > 1:
        print_comparison(urls, rows)
    print(
        f"   load average (1 min): {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} "
        f"cores (above {os.cpu_count()}, other work was competing with the app and the browser)"
    )
    if json_path:
        meta = {
            "urls": urls,
            "app_args": app_args if app else None,
            "repeats": repeats,
            "warmup": warmup,
            "viewport": VIEWPORT,
            "machine": platform.platform(),
            "cores": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
        }
        runs = [{"url": url, "rows": rows_json(rows[url])} for url in urls]
        Path(json_path).write_text(json.dumps({**meta, "runs": runs}, indent=1, ensure_ascii=False) + "\n")
        print(f"   JSON: {json_path}")
    return rows
