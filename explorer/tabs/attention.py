"""The Attention tab: every map of one kind, per layer and head, and the decoding step by step.

One translation = one Trace in the server's TraceStore; every toggle re-renders from it without
running the model again. The Translate event itself fills this tab (`TranslateHook`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr

from ..inference import Trace
from ..live_plot import figure_json, live_plot, plotly_loader
from ..policy import EXPIRED, VIEW_EVENT
from ..views import View, attention_view, file_stem, step_view
from .base import Shared, TranslateHook, handler, kind_picker, read_js

TITLE = "Attention"
NO_LARGE = "none"
HIDDEN_SPECIALS_NOTE = (
    "Special tokens hidden: their columns, and the decoder rows that read `<s>` or predict `</s>`, are left "
    "out, so rows need not sum to 1 (their weight on `<s>`/`</s>` is not shown)."
)
WITH_WIDTH = read_js("with_width")


@dataclass
class AttentionTab:
    # the view controls, in the order `controls` lists them
    kind: gr.Radio
    layer: gr.Radio
    heads: gr.CheckboxGroup
    average: gr.Radio
    show_special: gr.Checkbox
    per_map: gr.Checkbox
    words: gr.Checkbox
    specials_note: gr.Markdown
    plot: gr.HTML
    large: gr.Dropdown
    large_plot: gr.HTML
    step: gr.Slider
    step_caption: gr.Markdown
    step_plot: gr.HTML

    @property
    def controls(self) -> list[gr.components.Component]:
        """The toggles that choose which attention maps are shown."""
        return [self.kind, self.layer, self.heads, self.average, self.show_special, self.per_map, self.words]


def build(shared: Shared) -> AttentionTab:
    with gr.Tab(TITLE):
        translator = shared.loaded.translator
        cfg = translator.model.cfg
        n_layers, n_heads = max(cfg.n_encoder_layers, cfg.n_decoder_layers), cfg.n_heads
        with gr.Row():
            kind = kind_picker("kind")
            # One layer by default: its heads fit side by side at a readable size. The last, because
            # its cross-attention is the sharpest (mean row entropy 1.2 bits against 1.6 for layer 1).
            layer = gr.Radio(
                ["all"] + [str(i + 1) for i in range(n_layers)],
                value=str(n_layers),
                label="Layer",
                elem_id="layer",
            )
        with gr.Row():
            every_head = [str(h + 1) for h in range(n_heads)]
            heads = gr.CheckboxGroup(every_head, value=every_head, label="Heads", elem_id="heads")
            average = gr.Radio(
                ["grid", "average"], value="grid", label="Selected heads as", elem_id="average"
            )
            with gr.Column(min_width=200):
                show_special = gr.Checkbox(True, label="Show <s> and </s>", elem_id="show-special")
                per_map = gr.Checkbox(False, label="Scale each map to its own maximum", elem_id="per-map")
                words = gr.Checkbox(
                    False,
                    label="Whole words (pool subword pieces)",
                    visible=translator.subwords is not None,
                    elem_id="words",
                )
        specials_note = gr.Markdown()
        plot = live_plot("attention-plot")
        plotly_loader()
        gr.Markdown(
            "Rows are queries, columns are keys; each row sums to 1. Decoder row *t* reads the token on the "
            "left of the arrow and predicts the one on its right. Grey cells in the decoder self-attention are "
            "the masked future (not a learned zero). Hover a cell for the exact weight."
            + (
                " English words are read as subword pieces; a word's first piece carries SentencePiece's "
                "`▁` mark (`▁s es qu ip ed al ian`), so a piece without it continues the word before. "
                "*Whole words* pools the pieces back: a key's weight is summed over its pieces, an "
                "English query row averaged over them, so every row still sums to 1."
                if translator.subwords is not None
                else ""
            )
        )
        large = gr.Dropdown(
            [NO_LARGE] + [f"layer {la + 1} · head {h + 1}" for la in range(n_layers) for h in range(n_heads)],
            value=NO_LARGE,
            label="Open one map large",
            elem_id="large",
        )
        large_plot = live_plot("large-plot", visible=False)
        with gr.Row():
            with gr.Column(scale=2, min_width=280):
                step = gr.Slider(
                    1, 2, value=1, step=1, label="Step through decoding", interactive=False, elem_id="step"
                )
                step_caption = gr.Markdown()
            with gr.Column(scale=3, min_width=280):
                step_plot = live_plot("step-plot")
        return AttentionTab(
            kind, layer, heads, average, show_special, per_map, words, specials_note, plot, large, large_plot,
            step, step_caption, step_plot,
        )  # fmt: skip


# ---- Gradio-free: the controls' values → a View ---------------------------------------------------------


def _width(width) -> int | None:
    return int(width) if isinstance(width, (int, float)) and 200 <= width <= 10000 else None


def view_of(t: AttentionTab, values: dict, step=None, width=None) -> View:
    """The view the controls ask for; `values` is Gradio's {component: value} (see base.handler)."""
    layer = values[t.layer]
    return View(
        kind=values[t.kind],
        layer=None if layer in (None, "all") else int(layer) - 1,
        heads=[int(h) - 1 for h in values[t.heads] or []],
        average=values[t.average] == "average",
        show_special=values[t.show_special],
        shared_scale=not values[t.per_map],
        words=bool(values[t.words]),
        step=None if step is None else int(step) - 1,
        width=_width(width),
    )


def large_view(view: View, large: str | None) -> View | None:
    """The one map picked in "Open one map large" ("layer 2 · head 3"), in the view's kind and options."""
    m = re.fullmatch(r"layer (\d+) · head (\d+)", large or "")
    if not m:
        return None
    return View(**{**vars(view), "layer": int(m[1]) - 1, "heads": [int(m[2]) - 1], "average": False})


def specials_note(show_special: bool) -> str:
    return "" if show_special else HIDDEN_SPECIALS_NOTE


# ---- handlers ---------------------------------------------------------------------------------------------


def render_maps(t: AttentionTab, tr: Trace, view: View, large: str | None) -> dict:
    """The attention plot, and the large one when a map is picked (hidden otherwise)."""
    stem = file_stem(tr)
    out = {t.plot: figure_json(attention_view(tr, view), stem)}
    one = large_view(view, large)
    if one is None:
        out[t.large_plot] = gr.update(visible=False, value=None)
    else:
        try:
            out[t.large_plot] = gr.update(
                visible=True, value=figure_json(attention_view(tr, one), stem + "-large")
            )
        except ValueError:  # e.g. layer 3 of a 2-layer encoder
            out[t.large_plot] = gr.update(visible=False, value=None)
    return out


def on_translated(shared: Shared, t: AttentionTab, tr: Trace, values: dict) -> dict:
    """A new translation: its maps at step 1, and the step slider spanning its output."""
    n = len(tr.target_tokens)
    fig_step, caption = step_view(tr, 0)
    view = view_of(t, values, step=1, width=values[shared.client_width])
    return {
        **render_maps(t, tr, view, values[t.large]),
        t.step: gr.update(minimum=1, maximum=n, value=1, step=1, interactive=n > 1),
        t.step_plot: figure_json(fig_step, file_stem(tr, "next-token")),
        t.step_caption: caption,
    }


def rerender(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """A toggle changed: the maps again, from the kept trace."""
    tr = shared.store.get(values[shared.trace_state])
    if tr is None:  # never translated, or the trace was evicted or expired
        return {shared.notices: EXPIRED}
    view = view_of(t, values, step=values[t.step], width=values[shared.client_width])
    try:
        return render_maps(t, tr, view, values[t.large])
    except ValueError as e:  # e.g. a layer this kind does not have (encoder and decoder depths differ)
        gr.Warning(str(e))
        return gr.skip()


def on_step(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """The step slider moved: the next-token chart of that step, and the maps with its row marked."""
    tr = shared.store.get(values[shared.trace_state])
    if tr is None:
        return {shared.notices: EXPIRED}
    fig, caption = step_view(tr, int(values[t.step]) - 1)
    shown = rerender(shared, t, values)
    return {
        **(shown if isinstance(shown, dict) else {}),
        t.step_plot: figure_json(fig, file_stem(tr, "next-token")),
        t.step_caption: caption,
    }


def wire(shared: Shared, t: AttentionTab) -> None:
    shared.hooks.append(
        TranslateHook(
            inputs=[*t.controls, t.large],
            outputs=[t.plot, t.large_plot, t.step, t.step_plot, t.step_caption],
            fill=lambda tr, values: on_translated(shared, t, tr, values),
        )
    )
    inputs = [
        shared.trace_state,
        *t.controls,
        t.step,
        t.large,
        shared.client_width,
    ]  # the width last: WITH_WIDTH
    render = dict(VIEW_EVENT, js=WITH_WIDTH, show_progress="hidden")
    gr.on(
        [control.change for control in t.controls] + [t.large.change],
        handler(rerender, inputs, shared, t),
        inputs=inputs,
        outputs=[t.plot, t.large_plot, shared.notices],
        **render,
    )
    t.show_special.change(specials_note, t.show_special, t.specials_note, api_visibility="private")
    t.step.change(
        handler(on_step, inputs, shared, t),
        inputs,
        [t.plot, t.large_plot, t.step_plot, t.step_caption, shared.notices],
        **render,
    )
