"""The Gradio app: event handlers first, then the wiring; the layout is in explorer/layout.py.

`build_demo` is one gr.Blocks: `build_layout` lays the page out, `wire` connects the events.
One translation = one Trace, kept in a server-side TraceStore under a key that the session's
gr.State holds; every toggle re-renders from it without running the model again.
`launch_options` are the settings a public Space needs at launch (app.py and the tests use them).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from .head_tab import INSTALL_CLICKS_JS, head_api_defaults, wire_head_tab
from .http_guard import REQUIRED, Guard, call_v2_errors
from .inference import InputError, Trace, trace, translate_one
from .layout import Components, build_layout
from .live_plot import CSS as LIVE_PLOT_CSS
from .live_plot import figure_json
from .loading import LoadedModel
from .trace_files import MAX_AGE_S, TraceFiles
from .trace_store import TTL_S, TraceStore
from .views import View, attention_view, file_stem, maps_csv, step_view

log = logging.getLogger("explorer")

MAX_BEAM = 8
QUEUE_SIZE = 32  # requests waiting beyond this get Gradio's "queue is full" message at once
CONCURRENCY = 2  # translations running at the same time (a 2-core machine)
MODEL_GROUP = "model"  # the one concurrency group of everything that runs the model
VIEW_GROUP = "views"  # re-renders and file writes: no model, but CPU; bounded together too
# What one trace may hold, so that no response is over 2 MB and none takes over ~1.5 s of CPU.
# Measured on the shipped 3+3-layer, 4-head model at beam 8: the largest response is the decoder
# self-attention of all layers, ~80 bytes per cell × 12 maps × T²: 1.6 MB at T = 40, 1.9 at 44.
MAX_WORDS = 30  # NLTK words, punctuation included (not subword pieces); ~40 Chinese tokens
MAX_CHARS = 1000  # bounds the tick and hover labels of very long "words"
MAX_TARGET_TOKENS = 40  # </s> included; the model's own cap is 2 × source length + 10
# Encoder tokens: 30 words of everyday English are ~35 subword pieces; one word of junk can be hundreds.
MAX_PIECES = 40
# The caps every model-running handler passes to `trace`, `ablate` and `head_importance`, so that
# each of them starts from the same translation.
CAPS = dict(
    max_words=MAX_WORDS, max_chars=MAX_CHARS, max_target_tokens=MAX_TARGET_TOKENS, max_pieces=MAX_PIECES
)
# Gradio keeps every session's last output values (here the Plotly JSON) until it evicts the
# session; this many sessions are kept (Gradio's default is 10,000).
SESSION_CAPACITY = 128
MAX_UPLOAD = "1kb"  # no component takes files; Guard refuses the upload routes, this is the fallback
HIDDEN_SPECIALS_NOTE = (
    "Special tokens hidden: rows need not sum to 1 (their weight on `<s>`/`</s>` is not shown)."
)
EXPIRED = (
    f"No translation to show: results are kept for {TTL_S // 60} minutes and for the most recent "
    "visitors only. Press Translate again."
)


def check_beam(beam) -> int:
    """The API takes any JSON value: only whole numbers 1..MAX_BEAM (memory grows with the beam)."""
    ok = (
        isinstance(beam, (int, float))
        and not isinstance(beam, bool)
        and float(beam).is_integer()
        and 1 <= beam <= MAX_BEAM
    )
    if not ok:
        raise InputError(f"beam must be a whole number from 1 to {MAX_BEAM}, got {beam!r}")
    return int(beam)


def refusal(where: str, message: str) -> gr.Error:
    """An expected refusal: one log line, no traceback; the client gets the message."""
    log.info("refused %s: %s", where, message.replace("\n", " ")[:200])
    return gr.Error(message, print_exception=False)


# Runs in the browser before an event that renders maps: the last input (client_width) becomes the
# plot's width in px, so sizes, fonts and the phone layout follow the screen (also after a resize).
WITH_WIDTH = """(...args) => {
  const el = document.querySelector('#attention-plot .live-plot');
  const w = el && el.clientWidth > 100 ? el.clientWidth : document.body.clientWidth - 32;
  args[args.length - 1] = Math.max(240, Math.round(w));
  return args;
}"""


def _layer_index(layer: str) -> int | None:
    return None if layer in (None, "all") else int(layer) - 1


def _width(width) -> int | None:
    return int(width) if isinstance(width, (int, float)) and 200 <= width <= 10000 else None


def make_view(kind, layer, heads, average, show_special, per_map, words, step=None, width=None) -> View:
    return View(
        kind=kind,
        layer=_layer_index(layer),
        heads=[int(h) - 1 for h in heads or []],
        average=average == "average",
        show_special=show_special,
        shared_scale=not per_map,
        words=bool(words),
        step=None if step is None else int(step) - 1,
        width=_width(width),
    )


def large_view(view: View, large: str | None) -> View | None:
    """The one map picked in "Open one map large" ("layer 2 · head 3"), in the view's kind and options."""
    m = re.fullmatch(r"layer (\d+) · head (\d+)", large or "")
    if not m:
        return None
    return View(**{**vars(view), "layer": int(m[1]) - 1, "heads": [int(m[2]) - 1], "average": False})


def md_escape(text: str) -> str:
    """User-derived text (unknown words) as literal Markdown: no markup, no HTML."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", text)


def notices_markdown(tr: Trace) -> str:
    return "\n".join(f"- ⚠️ {md_escape(n)}" for n in tr.notices)


def specials_note(show_special):
    return "" if show_special else HIDDEN_SPECIALS_NOTE


def capped_trace(loaded: LoadedModel, text, beam) -> Trace:
    """The UI's and /trace's trace: input and output cut to what a response can carry."""
    return trace(
        loaded.translator,
        text,
        beam=check_beam(beam),
        model_id=loaded.model_id,
        **CAPS,
    )


# Handlers that re-render a kept Trace: they never run the model, so they stay out of MODEL_GROUP.


def render_maps(c: Components, tr: Trace, view: View, large: str | None) -> dict:
    """The attention plot, and the large one when a map is picked (hidden otherwise)."""
    stem = file_stem(tr)
    out = {c.attention_plot: figure_json(attention_view(tr, view), stem)}
    one = large_view(view, large)
    if one is None:
        out[c.large_plot] = gr.update(visible=False, value=None)
    else:
        try:
            out[c.large_plot] = gr.update(
                visible=True, value=figure_json(attention_view(tr, one), stem + "-large")
            )
        except ValueError:  # e.g. layer 3 of a 2-layer encoder
            out[c.large_plot] = gr.update(visible=False, value=None)
    return out


def view_handlers(store: TraceStore, c: Components) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def rerender(key, kind, layer, heads, average, show_special, per_map, words, step, large, width):
        tr = store.get(key)
        if tr is None:  # never translated, or the trace was evicted or expired
            return {c.notices: EXPIRED}
        view = make_view(kind, layer, heads, average, show_special, per_map, words, step, width)
        try:
            return render_maps(c, tr, view, large)
        except ValueError as e:  # e.g. a layer this kind does not have (encoder and decoder depths differ)
            gr.Warning(str(e))
            return gr.skip()

    def on_step(key, kind, layer, heads, average, show_special, per_map, words, step, large, width):
        tr = store.get(key)
        if tr is None:
            return {c.notices: EXPIRED}
        fig, caption = step_view(tr, int(step) - 1)
        shown = rerender(key, kind, layer, heads, average, show_special, per_map, words, step, large, width)
        return {
            **(shown if isinstance(shown, dict) else {}),
            c.step_plot: figure_json(fig, file_stem(tr, "next-token")),
            c.step_caption: caption,
        }

    return rerender, on_step


UNAVAILABLE = (
    "⚠️ The download is unavailable right now: the server could not write the file ({why}). "
    "Translating and the maps still work."
)


def download_handlers(
    store: TraceStore, files: TraceFiles, c: Components
) -> tuple[Callable[..., dict], Callable[..., dict]]:
    """The Export tab's Prepare buttons: a file is written only when someone asks for it."""

    def offer(key, button: gr.DownloadButton, write: Callable[[Trace], Any]) -> dict:
        tr = store.get(key)
        if tr is None:
            return {c.download_status: EXPIRED, button: gr.update(value=None, interactive=False)}
        try:
            path = write(tr)
        except OSError as e:  # e.g. a full disk: only the download is lost, translating still works
            log.warning("download file not written: %s", e)
            return {
                c.download_status: UNAVAILABLE.format(why=e.strerror or e),
                button: gr.update(value=None, interactive=False),
            }
        size_kb = max(1, path.stat().st_size // 1024)
        return {
            c.download_status: f"Ready: `{path.name}` ({size_kb:,} KB). Press **{button.label}**.",
            button: gr.update(value=str(path), interactive=True),
        }

    def prepare_download(key) -> dict:
        return offer(key, c.download, lambda tr: files.write(tr, file_stem(tr, "trace")))

    def prepare_csv(key, kind, layer, heads, average, show_special, per_map, words) -> dict:
        view = make_view(kind, layer, heads, average, show_special, per_map, words)
        return offer(
            key, c.csv_download, lambda tr: files.write_text(maps_csv(tr, view), file_stem(tr), "csv")
        )

    return prepare_download, prepare_csv


# Handlers that run the model; `wire` puts every one in MODEL_GROUP.


def translate_handler(loaded: LoadedModel, store: TraceStore, c: Components) -> Callable[..., dict]:
    """The Translate button (and an example's click, and the first visit): trace the input, keep the
    Trace, then fill every output from it."""

    def run(text, beam, kind, layer, heads, average, show_special, per_map, words, large, width) -> dict:
        try:
            tr = capped_trace(loaded, text, beam)
        except InputError as e:
            log.info("refused translation: %s", e)
            return {c.notices: f"- {md_escape(str(e))}"}  # the last good result stays on screen
        n = len(tr.target_tokens)
        fig_step, caption = step_view(tr, 0)
        view = make_view(kind, layer, heads, average, show_special, per_map, words, 1, width)
        return {
            c.translation: tr.translation,
            c.notices: notices_markdown(tr),
            c.trace_state: store.put(tr),
            **render_maps(c, tr, view, large),
            c.step: gr.update(minimum=1, maximum=n, value=1, step=1, interactive=n > 1),
            c.step_plot: figure_json(fig_step, file_stem(tr, "next-token")),
            c.step_caption: caption,
            c.prepare_download: gr.update(interactive=True),
            c.prepare_csv: gr.update(interactive=True),
            c.download_status: "",
            # the old files belong to the old trace
            c.download: gr.update(value=None, interactive=False),
            c.csv_download: gr.update(value=None, interactive=False),
        }

    return run


def api_endpoints(loaded: LoadedModel) -> tuple[Callable[..., str], Callable[..., dict]]:
    """The API-only endpoints (gradio_client): plain text in, text / JSON out; beam defaults to the model's."""
    translator = loaded.translator
    default_beam = translator.decoding.beam

    def translate_api(text: str, beam: int = default_beam) -> str:
        try:  # no attention capture, so the model's own maximum input length
            return translate_one(translator, text, beam=check_beam(beam))
        except InputError as e:
            raise refusal("/translate", str(e)) from None

    def trace_api(text: str, beam: int = default_beam) -> dict:
        try:
            return capped_trace(loaded, text, beam).to_json()
        except InputError as e:
            raise refusal("/trace", str(e)) from None

    return translate_api, trace_api


def wire(c: Components, loaded: LoadedModel, store: TraceStore, files: TraceFiles, demo: gr.Blocks) -> None:
    """Every event of the page, plus the API endpoints; call inside the gr.Blocks that holds `c`.

    UI events are private (not in the API docs): the API is `translate` and `trace`. Every event is
    queued (`api_open=False` in build_demo), so none can skip the queue's bounds.
    """
    view = c.view_controls
    run = translate_handler(loaded, store, c)
    run_inputs = [c.text, c.beam, *view, c.large, c.client_width]
    run_outputs = [
        c.translation,
        c.notices,
        c.trace_state,
        c.attention_plot,
        c.large_plot,
        c.step,
        c.step_plot,
        c.step_caption,
        c.prepare_download,
        c.prepare_csv,
        c.download_status,
        c.download,
        c.csv_download,
    ]
    model_event = dict(api_visibility="private", concurrency_id=MODEL_GROUP, js=WITH_WIDTH)
    gr.on([c.translate_btn.click, c.text.submit], run, run_inputs, run_outputs, **model_event)
    c.examples.load_input_event.then(run, run_inputs, run_outputs, **model_event)  # a click translates
    demo.load(run, run_inputs, run_outputs, **model_event)  # the first visit opens on a translated example
    demo.load(None, js=INSTALL_CLICKS_JS, api_visibility="private")  # a click on a map opens "Inside a head"
    rerender, on_step = view_handlers(store, c)
    render_inputs = [c.trace_state, *view, c.step, c.large, c.client_width]
    gr.on(
        [control.change for control in view] + [c.large.change],
        rerender,
        inputs=render_inputs,
        outputs=[c.attention_plot, c.large_plot, c.notices],
        api_visibility="private",
        concurrency_id=VIEW_GROUP,
        js=WITH_WIDTH,
        show_progress="hidden",
    )
    c.show_special.change(specials_note, c.show_special, c.specials_note, api_visibility="private")
    c.step.change(
        on_step,
        render_inputs,
        [c.attention_plot, c.large_plot, c.step_plot, c.step_caption, c.notices],
        api_visibility="private",
        concurrency_id=VIEW_GROUP,
        js=WITH_WIDTH,
        show_progress="hidden",
    )
    prepare_download, prepare_csv = download_handlers(store, files, c)
    c.prepare_download.click(
        prepare_download,
        c.trace_state,
        [c.download_status, c.download],
        api_visibility="private",
        concurrency_id=VIEW_GROUP,
    )
    c.prepare_csv.click(
        prepare_csv,
        [c.trace_state, *view],
        [c.download_status, c.csv_download],
        api_visibility="private",
        concurrency_id=VIEW_GROUP,
    )

    translate_api, trace_api = api_endpoints(loaded)
    gr.api(translate_api, api_name="translate", concurrency_id=MODEL_GROUP)
    gr.api(trace_api, api_name="trace", concurrency_id=MODEL_GROUP)
    wire_head_tab(c, c.head, loaded, store)  # its events, and /internals, /ablate, /head_stats


def build_demo(
    loaded: LoadedModel,
    queue_size: int = QUEUE_SIZE,
    concurrency: int = CONCURRENCY,
    store: TraceStore | None = None,
    files: TraceFiles | None = None,
) -> gr.Blocks:
    store = store if store is not None else TraceStore()
    files = files if files is not None else TraceFiles()
    # delete_cache: Gradio's sweep of its cache folder, where the trace files are (and removal at shutdown).
    with gr.Blocks(
        title="Attention explorer · English → Chinese", delete_cache=(MAX_AGE_S, MAX_AGE_S)
    ) as demo:
        wire(build_layout(loaded, MAX_BEAM, MAX_WORDS), loaded, store, files, demo)
    # CONCURRENCY bounds each concurrency group: MODEL_GROUP as a whole, VIEW_GROUP, and the specials note.
    # api_open=False: /run and /api refuse queued events, so every model call waits in the bounded queue.
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency, api_open=False)
    return demo


def launch_options(loaded: LoadedModel) -> dict[str, Any]:
    """`demo.launch(**launch_options(loaded), ...)`: the HTTP rules of a public Space."""
    default_beam = loaded.translator.decoding.beam
    api_defaults = {
        "translate": [REQUIRED, default_beam],
        "trace": [REQUIRED, default_beam],
        **head_api_defaults(default_beam, REQUIRED),
    }
    return dict(
        app_kwargs={
            "middleware": [Middleware(Guard, api_defaults=api_defaults)],
            "exception_handlers": call_v2_errors(),
        },
        max_file_size=MAX_UPLOAD,
        state_session_capacity=SESSION_CAPACITY,
        mcp_server=False,  # an MCP route would be one more way in to the model
        css=LIVE_PLOT_CSS,
    )
