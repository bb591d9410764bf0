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

from .head_tab import head_api_defaults, wire_head_tab
from .http_guard import REQUIRED, Guard, call_v2_errors
from .inference import InputError, Trace, trace, translate_one
from .layout import Components, build_layout
from .loading import LoadedModel
from .trace_files import MAX_AGE_S, TraceFiles
from .trace_store import TTL_S, TraceStore
from .views import View, attention_view, step_view

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


def _layer_index(layer: str) -> int | None:
    return None if layer in (None, "all") else int(layer) - 1


def make_view(kind, layer, heads, average, show_special, per_map, step) -> View:
    return View(
        kind=kind,
        layer=_layer_index(layer),
        heads=[int(h) - 1 for h in heads or []],
        average=average == "average",
        show_special=show_special,
        shared_scale=not per_map,
        step=None if step is None else int(step) - 1,
    )


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
        max_words=MAX_WORDS,
        max_chars=MAX_CHARS,
        max_target_tokens=MAX_TARGET_TOKENS,
    )


# Handlers that re-render a kept Trace: they never run the model, so they stay out of MODEL_GROUP.


def view_handlers(store: TraceStore, c: Components) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def rerender(key, kind, layer, heads, average, show_special, per_map, step):
        tr = store.get(key)
        if tr is None:  # never translated, or the trace was evicted or expired
            return {c.notices: EXPIRED}
        try:
            return {
                c.attention_plot: attention_view(
                    tr, make_view(kind, layer, heads, average, show_special, per_map, step)
                )
            }
        except ValueError as e:  # e.g. a layer this kind does not have (encoder and decoder depths differ)
            gr.Warning(str(e))
            return gr.skip()

    def on_step(key, kind, layer, heads, average, show_special, per_map, step):
        tr = store.get(key)
        if tr is None:
            return {c.notices: EXPIRED}
        fig, caption = step_view(tr, int(step) - 1)
        shown = rerender(key, kind, layer, heads, average, show_special, per_map, step)
        return {**(shown if isinstance(shown, dict) else {}), c.step_plot: fig, c.step_caption: caption}

    return rerender, on_step


def download_handler(store: TraceStore, files: TraceFiles, c: Components) -> Callable[..., dict]:
    """The Export tab's Prepare button: the JSON file is written only when someone asks for it."""

    def prepare_download(key) -> dict:
        tr = store.get(key)
        if tr is None:
            return {c.download_status: EXPIRED, c.download: gr.update(value=None, interactive=False)}
        try:
            path = files.write(tr)
        except OSError as e:  # e.g. a full disk: only the download is lost, translating still works
            log.warning("trace file not written: %s", e)
            return {
                c.download_status: "⚠️ The download is unavailable right now: the server could not write "
                f"the file ({e.strerror or e}). Translating and the maps still work.",
                c.download: gr.update(value=None, interactive=False),
            }
        size_kb = max(1, path.stat().st_size // 1024)
        return {
            c.download_status: f"Ready ({size_kb:,} KB): press **Download trace JSON**.",
            c.download: gr.update(value=str(path), interactive=True),
        }

    return prepare_download


# Handlers that run the model; `wire` puts every one in MODEL_GROUP.


def translate_handler(loaded: LoadedModel, store: TraceStore, c: Components) -> Callable[..., dict]:
    """The Translate button: trace the input, keep the Trace, then fill every output from it."""

    def run(text, beam, kind, layer, heads, average, show_special, per_map) -> dict:
        try:
            tr = capped_trace(loaded, text, beam)
        except InputError as e:
            log.info("refused translation: %s", e)
            return {c.notices: f"- {md_escape(str(e))}"}  # the last good result stays on screen
        n = len(tr.target_tokens)
        fig_step, caption = step_view(tr, 0)
        return {
            c.translation: tr.translation,
            c.notices: notices_markdown(tr),
            c.trace_state: store.put(tr),
            c.attention_plot: attention_view(
                tr, make_view(kind, layer, heads, average, show_special, per_map, 1)
            ),
            c.step: gr.update(minimum=1, maximum=n, value=1, step=1, interactive=n > 1),
            c.step_plot: fig_step,
            c.step_caption: caption,
            c.prepare_download: gr.update(interactive=True),
            c.download_status: "",
            c.download: gr.update(value=None, interactive=False),  # the old file belongs to the old trace
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


def wire(c: Components, loaded: LoadedModel, store: TraceStore, files: TraceFiles) -> None:
    """Every event of the page, plus the API endpoints; call inside the gr.Blocks that holds `c`.

    UI events are private (not in the API docs): the API is `translate` and `trace`. Every event is
    queued (`api_open=False` in build_demo), so none can skip the queue's bounds.
    """
    view = c.view_controls
    gr.on(
        [c.translate_btn.click, c.text.submit],
        translate_handler(loaded, store, c),
        inputs=[c.text, c.beam, *view],
        outputs=[
            c.translation,
            c.notices,
            c.trace_state,
            c.attention_plot,
            c.step,
            c.step_plot,
            c.step_caption,
            c.prepare_download,
            c.download_status,
            c.download,
        ],
        api_visibility="private",
        concurrency_id=MODEL_GROUP,
    )
    rerender, on_step = view_handlers(store, c)
    gr.on(
        [control.change for control in view],
        rerender,
        inputs=[c.trace_state, *view, c.step],
        outputs=[c.attention_plot, c.notices],
        api_visibility="private",
        concurrency_id=VIEW_GROUP,
    )
    c.show_special.change(specials_note, c.show_special, c.specials_note, api_visibility="private")
    c.step.change(
        on_step,
        [c.trace_state, *view, c.step],
        [c.attention_plot, c.step_plot, c.step_caption, c.notices],
        api_visibility="private",
        concurrency_id=VIEW_GROUP,
    )
    c.prepare_download.click(
        download_handler(store, files, c),
        c.trace_state,
        [c.download_status, c.download],
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
        wire(build_layout(loaded, MAX_BEAM, MAX_WORDS), loaded, store, files)
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
    )
