"""The Gradio app: event functions first, then the wiring; the layout is in explorer/layout.py.

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
from pathlib import Path

import gradio as gr

from .inference import InputError, Trace, trace, translate_one
from .layout import build_layout
from .loading import LoadedModel
from .views import View, attention_view, step_view

MAX_BEAM = 8
QUEUE_SIZE = 32  # requests waiting beyond this get Gradio's "queue is full" message at once
CONCURRENCY = 2  # translations running at the same time (a 2-core machine)
HIDDEN_SPECIALS_NOTE = "Special tokens hidden: rows need not sum to 1 (their weight on <s>/</s> is not shown)."


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


TRACE_DIR = Path(tempfile.gettempdir()) / f"attention-explorer-{os.getpid()}"
TRACE_MAX_AGE_S = 15 * 60  # old trace files are pruned, so a long-running app does not fill the disk


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


def build_demo(loaded: LoadedModel, queue_size: int = QUEUE_SIZE, concurrency: int = CONCURRENCY) -> gr.Blocks:
    translator, model_id = loaded.translator, loaded.model_id
    default_beam = translator.decoding.beam

    def run(text, beam, kind, layer, heads, average, show_special, per_map):
        try:
            tr = trace(translator, text, beam=check_beam(beam), model_id=model_id)
        except (InputError, gr.Error) as e:
            return (gr.skip(), f"- {md_escape(str(e))}", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())
        n = len(tr.target_tokens)
        view = make_view(kind, layer, heads, average, show_special, per_map, 1)
        fig_step, caption = step_view(tr, 0)
        return (tr.translation, notices_markdown(tr), tr, attention_view(tr, view),
                gr.update(minimum=1, maximum=n, value=1, step=1, interactive=n > 1),
                fig_step, caption, gr.update(value=write_trace_json(tr), interactive=True))

    def rerender(tr, kind, layer, heads, average, show_special, per_map, step):
        if tr is None:
            return gr.skip()
        try:
            return attention_view(tr, make_view(kind, layer, heads, average, show_special, per_map, step))
        except ValueError as e:  # e.g. a layer this kind does not have (encoder and decoder depths differ)
            gr.Warning(str(e))
            return gr.skip()

    def on_step(tr, kind, layer, heads, average, show_special, per_map, step):
        if tr is None:
            return gr.skip(), gr.skip(), gr.skip()
        fig, caption = step_view(tr, int(step) - 1)
        return rerender(tr, kind, layer, heads, average, show_special, per_map, step), fig, caption

    def specials_note(show_special):
        return "" if show_special else HIDDEN_SPECIALS_NOTE

    # API-only endpoints (gradio_client): plain text in, text / JSON out.
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

    # delete_cache: Gradio's own copies of served files (the trace downloads) are dropped after 15 minutes.
    with gr.Blocks(title="Attention explorer · English → Chinese", delete_cache=(TRACE_MAX_AGE_S, TRACE_MAX_AGE_S)) as demo:
        c = build_layout(loaded, MAX_BEAM)
        controls = c.view_controls
        run_outputs = [c.translation, c.notices, c.trace_state, c.attention_plot, c.step, c.step_plot, c.step_caption,
                       c.download]
        # One concurrency group for everything that runs the model, so CONCURRENCY bounds them all together.
        for trigger in (c.translate_btn.click, c.text.submit):
            trigger(run, [c.text, c.beam, *controls], run_outputs, api_visibility="private", concurrency_id="model")
        for control in controls:
            control.change(rerender, [c.trace_state, *controls, c.step], c.attention_plot, api_visibility="private")
        c.show_special.change(specials_note, c.show_special, c.specials_note, api_visibility="private")
        c.step.change(on_step, [c.trace_state, *controls, c.step], [c.attention_plot, c.step_plot, c.step_caption],
                      api_visibility="private")
        gr.api(translate_api, api_name="translate", concurrency_id="model")
        gr.api(trace_api, api_name="trace", concurrency_id="model")
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo
