"""The Compare tab: two sentences translated and traced side by side, the same kind, layer and head
of each, and where their tokens align, the difference B − A. `/compare` gives the same as JSON."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..compare_figures import difference_figure, no_alignment_figure
from ..compare_view import difference, marked_translations
from ..inference import InputError, Trace
from ..live_plot import figure_json, live_plot
from ..policy import EXPIRED, MODEL_EVENT, VIEW_EVENT, capped_trace, md_escape, notices_markdown
from ..views import View, attention_view, file_stem
from .base import Shared, handler, kind_picker, read_js

TITLE = "Compare"
MINIMAL_PAIR = ("I love you.", "I loved you.")  # one word's tense: where does the model look differently?
MEAN = "mean"
WITH_WIDTH = read_js("compare_width")


@dataclass
class CompareTab:
    tab: gr.Tab
    text_a: gr.Textbox
    text_b: gr.Textbox
    run_btn: gr.Button
    kind: gr.Radio
    layer: gr.Radio
    head: gr.Radio
    translations: gr.HTML
    notices: gr.Markdown
    plot_a: gr.HTML
    plot_b: gr.HTML
    diff_caption: gr.Markdown
    diff_plot: gr.HTML
    keys: gr.State  # the two traces' keys in the store, [A, B]
    width: gr.Number  # one map's width in px, set by the browser (compare_width.js)

    @property
    def controls(self) -> list[gr.components.Component]:
        return [self.kind, self.layer, self.head]


def build(shared: Shared) -> CompareTab:
    cfg = shared.loaded.translator.model.cfg
    n_layers = max(cfg.n_encoder_layers, cfg.n_decoder_layers)
    with gr.Tab(TITLE, elem_id="compare-tab") as tab:
        gr.Markdown(
            "Two sentences, each translated and traced on its own, the same map of each side by side; where "
            "their tokens line up, the difference **B − A** (red: B attends more; blue: less)."
        )
        with gr.Row():
            text_a = gr.Textbox(MINIMAL_PAIR[0], label="A", elem_id="compare-a-text", min_width=240)
            text_b = gr.Textbox(MINIMAL_PAIR[1], label="B", elem_id="compare-b-text", min_width=240)
        run_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
        with gr.Row():
            kind = kind_picker("compare-kind")
            layer = gr.Radio(
                [str(i + 1) for i in range(n_layers)],
                value=str(n_layers),
                label="Layer",
                elem_id="compare-layer",
            )
            head = gr.Radio(
                [MEAN] + [str(h + 1) for h in range(cfg.n_heads)],
                value=MEAN,
                label="Head",
                elem_id="compare-head",
            )
        translations = gr.HTML(elem_id="compare-translations")
        notices = gr.Markdown(elem_id="compare-notices")
        with gr.Row():
            plot_a = live_plot("compare-a", min_width=280)
            plot_b = live_plot("compare-b", min_width=280)
        diff_caption = gr.Markdown(elem_id="compare-diff-caption")
        diff_plot = live_plot("compare-diff")
        # Inside the tab: a component between two tabs would split the page's tab bar in two.
        keys, width = gr.State(None), gr.Number(None, visible=False)
    return CompareTab(
        tab, text_a, text_b, run_btn, kind, layer, head, translations, notices, plot_a, plot_b,
        diff_caption, diff_plot, keys, width,
    )  # fmt: skip


# ---- Gradio-free: what to draw ----------------------------------------------------------------------------


def view_of(kind: str, layer: str, head: str, n_layers: int, width: int | None) -> View:
    layer_index = min(max(int(layer) - 1 if str(layer).isdigit() else n_layers - 1, 0), n_layers - 1)
    if head == MEAN or not str(head).isdigit():
        return View(kind=kind, layer=layer_index, heads=None, average=True, width=width)
    return View(kind=kind, layer=layer_index, heads=[int(head) - 1], width=width)


def translations_html(a: Trace, b: Trace) -> str:
    marked_a, marked_b = marked_translations(a.translation, b.translation)
    return (
        '<div class="compare-translations">'
        f"<p><b>A</b> {marked_a}</p><p><b>B</b> {marked_b}</p>"
        "<p><small>Marked: the characters one translation has and the other lacks.</small></p></div>"
    )


def difference_panel(a: Trace, b: Trace, view: View, width: int | None) -> tuple[str, object]:
    """(caption, figure) of B − A for the view's kind, layer and head (or head mean)."""
    d = difference(a, b, view.kind)
    if d is None:
        return "No token of A lines up with one of B here: no difference map.", no_alignment_figure(
            "Nothing lines up: the two sentences share no token on this map's rows or keys."
        )
    layer = min(view.layer, d.diff.shape[0] - 1)
    diff = d.diff[layer].mean(axis=0) if view.average else d.diff[layer, view.heads[0]]  # (R, C)
    which = "mean of the heads" if view.average else f"head {view.heads[0] + 1}"
    n_rows_a, n_keys_a = len(d.rows.a), len(d.keys.a)
    caption = (
        f"B − A where both sentences have the same token: {n_rows_a} rows and {n_keys_a} keys line up "
        "(a token-level diff matches the rest around a changed word); rows and keys labelled as in B."
    )
    title = f"B − A · layer {layer + 1} · {which}"
    return caption, difference_figure(diff, d.row_labels, d.key_labels, title, "", width or 700)


def render(t: CompareTab, a: Trace, b: Trace, values: dict) -> dict:
    width = values[t.width] if isinstance(values[t.width], (int, float)) else None
    n_layers = max(a.n_encoder_layers, a.n_decoder_layers)
    view = view_of(values[t.kind], values[t.layer], values[t.head], n_layers, int(width) if width else None)
    caption, diff_fig = difference_panel(a, b, view, int(2 * width) if width else None)
    return {
        t.plot_a: figure_json(attention_view(a, view), file_stem(a, "compare-a")),
        t.plot_b: figure_json(attention_view(b, view), file_stem(b, "compare-b")),
        t.diff_caption: caption,
        t.diff_plot: figure_json(diff_fig, file_stem(b, "compare-difference")),
    }


# ---- handlers ----------------------------------------------------------------------------------------------


def on_compare(shared: Shared, t: CompareTab, values: dict) -> dict:
    """Translate and trace both sentences (the page's beam), keep both traces, draw."""
    try:
        a = capped_trace(shared.loaded, values[t.text_a], values[shared.beam])
        b = capped_trace(shared.loaded, values[t.text_b], values[shared.beam])
    except InputError as e:
        return {t.notices: f"- {md_escape(str(e))}"}
    notes = [f"A: {n}" for n in notices_markdown(a).splitlines()] + [
        f"B: {n}" for n in notices_markdown(b).splitlines()
    ]
    return {
        t.keys: [shared.store.put(a), shared.store.put(b)],
        t.translations: translations_html(a, b),
        t.notices: "\n".join(notes),
        **render(t, a, b, values),
    }


def on_open(shared: Shared, t: CompareTab, values: dict) -> dict:
    """The first look at the tab compares the prefilled pair; later looks leave what is shown."""
    if values[t.keys]:
        return {}
    return on_compare(shared, t, values)


def rerender(shared: Shared, t: CompareTab, values: dict) -> dict:
    keys = values[t.keys] or []
    traces = [shared.store.get(k) for k in keys]
    if len(traces) != 2 or None in traces:
        return {t.notices: EXPIRED.replace("Press Translate", "Press Compare")} if keys else {}
    return render(t, *traces, values)


def wire(shared: Shared, t: CompareTab) -> None:
    inputs = [t.keys, t.text_a, t.text_b, shared.beam, *t.controls, t.width]  # the width last: WITH_WIDTH
    outputs = [t.keys, t.translations, t.notices, t.plot_a, t.plot_b, t.diff_caption, t.diff_plot]
    draw = dict(js=WITH_WIDTH, show_progress="hidden")
    gr.on(
        [t.run_btn.click, t.text_a.submit, t.text_b.submit],
        handler(on_compare, inputs, shared, t),
        inputs,
        outputs,
        **MODEL_EVENT,
        js=WITH_WIDTH,
    )
    t.tab.select(handler(on_open, inputs, shared, t), inputs, outputs, **MODEL_EVENT, **draw)
    gr.on(
        [c.input for c in t.controls],
        handler(rerender, inputs, shared, t),
        inputs,
        [t.plot_a, t.plot_b, t.diff_caption, t.diff_plot, t.notices],
        **VIEW_EVENT,
        **draw,
    )
