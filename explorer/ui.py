"""The Gradio app: event handlers first, then the wiring; the layout is in explorer/layout.py.

`build_demo` is one gr.Blocks: `build_layout` lays the page out, `wire` connects the events.
One translation = one Trace kept in gr.State; every toggle re-renders from it
without running the model again.
"""
from __future__ import annotations

import contextlib
import html
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from .inference import InputError, Trace, trace, translate_one
from .layout import Components, build_layout
from .loading import LoadedModel
from .views import View, attention_view, step_view

MAX_BEAM = 8
QUEUE_SIZE = 32  # requests waiting beyond this get Gradio's "queue is full" message at once
CONCURRENCY = 2  # translations running at the same time (a 2-core machine)
MODEL_GROUP = "model"  # the one concurrency group of everything that runs the model
HIDDEN_SPECIALS_NOTE = "Special tokens hidden: rows need not sum to 1 (their weight on `<s>`/`</s>` is not shown)."
TRACE_DIR = Path(tempfile.gettempdir()) / f"attention-explorer-{os.getpid()}"
TRACE_MAX_AGE_S = 15 * 60  # old trace files are pruned, so a long-running app does not fill the disk


def check_beam(beam) -> int:
    """The API takes any JSON value: only whole numbers 1..MAX_BEAM (memory grows with the beam)."""
    ok = (isinstance(beam, (int, float)) and not isinstance(beam, bool) and float(beam).is_integer()
          and 1 <= beam <= MAX_BEAM)
    if not ok:
        raise gr.Error(f"beam must be a whole number from 1 to {MAX_BEAM}, got {beam!r}")
    return int(beam)


def _layer_index(layer: str) -> int | None:
    return None if layer in (None, "all") else int(layer) - 1


def make_view(kind, layer, heads, average, show_special, per_map, step) -> View:
    return View(kind=kind, layer=_layer_index(layer), heads=[int(h) - 1 for h in heads or []],
                average=average == "average", show_special=show_special, shared_scale=not per_map,
                step=None if step is None else int(step) - 1)


def md_escape(text: str) -> str:
    """User-derived text (unknown words) as literal Markdown: no markup, no HTML."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", text)


def notices_markdown(tr: Trace) -> str:
    return "\n".join(f"- ⚠️ {md_escape(n)}" for n in tr.notices)


def write_trace_json(tr: Trace) -> str:
    """The trace as a JSON file for the download button (Gradio serves files from the temp dir)."""
    TRACE_DIR.mkdir(exist_ok=True)
    now = time.time()
    for old in TRACE_DIR.glob("trace-*.json"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > TRACE_MAX_AGE_S:
                old.unlink()
    f = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="trace-", dir=TRACE_DIR, delete=False, encoding="utf-8")
    with f:
        json.dump(tr.to_json(), f, ensure_ascii=False)
    return f.name


# Handlers that re-render the kept Trace: they never run the model, so they stay out of MODEL_GROUP.

def rerender(tr, kind, layer, heads, average, show_special, per_map, step):
    if tr is None:  # nothing translated yet
        return gr.skip()
    try:
        return attention_view(tr, make_view(kind, layer, heads, average, show_special, per_map, step))
    except ValueError as e:  # e.g. a layer this kind does not have (encoder and decoder depths differ)
        gr.Warning(str(e))
        return gr.skip()


def on_step(tr, kind, layer, heads, average, show_special, per_map, step):
    if tr is None:
        return gr.skip()  # one skip leaves every output as it is
    fig, caption = step_view(tr, int(step) - 1)
    return rerender(tr, kind, layer, heads, average, show_special, per_map, step), fig, caption


def specials_note(show_special):
    return "" if show_special else HIDDEN_SPECIALS_NOTE


# Handlers that run the model; `wire` puts every one in MODEL_GROUP.

def translate_handler(loaded: LoadedModel, c: Components) -> Callable[..., dict]:
    """The Translate button: trace the input, then fill every output from the new Trace."""
    translator, model_id = loaded.translator, loaded.model_id

    def run(text, beam, kind, layer, heads, average, show_special, per_map) -> dict:
        try:
            tr = trace(translator, text, beam=check_beam(beam), model_id=model_id)
        except (InputError, gr.Error) as e:
            return {c.notices: f"- {md_escape(str(e))}"}  # the last good result stays on screen
        n = len(tr.target_tokens)
        fig_step, caption = step_view(tr, 0)
        return {
            c.translation: tr.translation,
            c.notices: notices_markdown(tr),
            c.trace_state: tr,
            c.attention_plot: attention_view(tr, make_view(kind, layer, heads, average, show_special, per_map, 1)),
            c.step: gr.update(minimum=1, maximum=n, value=1, step=1, interactive=n > 1),
            c.step_plot: fig_step,
            c.step_caption: caption,
            c.download: gr.update(value=write_trace_json(tr), interactive=True),
        }

    return run


def api_endpoints(loaded: LoadedModel) -> tuple[Callable[..., str], Callable[..., dict]]:
    """The API-only endpoints (gradio_client): plain text in, text / JSON out; beam defaults to the model's."""
    translator, model_id = loaded.translator, loaded.model_id
    default_beam = translator.decoding.beam

    def translate_api(text: str, beam: int = default_beam) -> str:
        try:
            return translate_one(translator, text, beam=check_beam(beam))  # no attention capture needed
        except InputError as e:
            raise gr.Error(str(e))

    def trace_api(text: str, beam: int = default_beam) -> dict:
        try:
            return trace(translator, text, beam=check_beam(beam), model_id=model_id).to_json()
        except InputError as e:
            raise gr.Error(str(e))

    return translate_api, trace_api


def wire(c: Components, loaded: LoadedModel) -> None:
    """Every event of the page, plus the API endpoints; call inside the gr.Blocks that holds `c`.

    UI events are private (not in the API docs, not callable by clients): the API is `translate` and `trace`.
    """
    view = c.view_controls
    gr.on([c.translate_btn.click, c.text.submit], translate_handler(loaded, c),
          inputs=[c.text, c.beam, *view],
          outputs=[c.translation, c.notices, c.trace_state, c.attention_plot, c.step, c.step_plot, c.step_caption,
                   c.download],
          api_visibility="private", concurrency_id=MODEL_GROUP)
    gr.on([control.change for control in view], rerender, inputs=[c.trace_state, *view, c.step],
          outputs=c.attention_plot, api_visibility="private")
    c.show_special.change(specials_note, c.show_special, c.specials_note, api_visibility="private")
    c.step.change(on_step, [c.trace_state, *view, c.step], [c.attention_plot, c.step_plot, c.step_caption],
                  api_visibility="private")

    translate_api, trace_api = api_endpoints(loaded)
    gr.api(translate_api, api_name="translate", concurrency_id=MODEL_GROUP)
    gr.api(trace_api, api_name="trace", concurrency_id=MODEL_GROUP)


def build_demo(loaded: LoadedModel, queue_size: int = QUEUE_SIZE, concurrency: int = CONCURRENCY) -> gr.Blocks:
    # delete_cache: Gradio's own copies of served files (the trace downloads) are dropped after 15 minutes.
    with gr.Blocks(title="Attention explorer · English → Chinese", delete_cache=(TRACE_MAX_AGE_S, TRACE_MAX_AGE_S)) as demo:
        wire(build_layout(loaded, MAX_BEAM), loaded)
    # CONCURRENCY bounds each concurrency group: MODEL_GROUP as a whole, and each re-render event.
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo
