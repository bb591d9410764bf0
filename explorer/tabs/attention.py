"""The Attention tab: every map of one kind, per layer and head, and the decoding step by step; or,
instead of the weights, what the model used (attention × value norm, ALTI+, rollout).

One translation = one Trace in the server's TraceStore; every toggle re-renders from it without
running the model again. The Translate event itself fills this tab (`TranslateHook`).

Contributions need the model (a pass with internals), so they are computed only in model-group
events: "What to show" changing, and Translate while a method other than the weights is picked.
They are kept in `Trace.contributions`; re-renders (the view group) only read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr

from ..contribution_view import (
    ALTI,
    CHOICES,
    MISSING,
    WEIGHTS,
    faithfulness_note,
    maps_caption,
    method_note,
    method_view,
    one_matrix,
    share_view,
)
from ..inference import Trace
from ..live_plot import figure_json, live_plot, plotly_loader
from ..policy import EXPIRED, MODEL_EVENT, RENDER_EVENT, bounded, capped_contributions, refusal
from ..views import View, file_stem, lines_caption, lines_view, step_view, words_note
from .base import Shared, TranslateHook, handler, kind_picker, read_js

TITLE = "Attention"
MAP, LINES = "map", "lines"
LINES_WEIGHTS_ONLY = "*Lines* draw attention weights only: with another method the maps are shown."
NO_LARGE = "none"
HIDDEN_SPECIALS_NOTE = (
    "Special tokens hidden: their columns, and the decoder rows that read `<s>` or predict `</s>`, are left "
    "out, so rows need not sum to 1 (their weight on `<s>`/`</s>` is not shown)."
)
WITH_WIDTH = read_js("with_width")
LINES_HOVER_JS = read_js("lines_hover")  # a query hovered: only its lines (drawn as shapes)


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
    # what to show: the weights, or what the model used
    method: gr.Radio
    method_note: gr.Markdown
    caption: gr.Markdown  # under the maps: what a cell is, what a row sums to, what the colours mean
    share_plot: gr.HTML  # ALTI+: each output token's share from the source and the target prefix
    display: gr.Radio  # the weights as a map (heatmaps) or as lines (bertviz's head view)

    @property
    def controls(self) -> list[gr.components.Component]:
        """The toggles that choose which attention maps are shown."""
        return [self.kind, self.layer, self.heads, self.average, self.show_special, self.per_map, self.words]


def build(shared: Shared) -> AttentionTab:
    with gr.Tab(TITLE):
        translator = shared.loaded.translator
        cfg = translator.model.cfg
        n_layers, n_heads = max(cfg.n_encoder_layers, cfg.n_decoder_layers), cfg.n_heads
        with gr.Row(elem_id="method-row"):
            with gr.Column(scale=3, min_width=280):
                method = gr.Radio(CHOICES, value=WEIGHTS, label="What to show", elem_id="method")
                note = gr.Markdown(method_note(WEIGHTS), elem_id="method-note")
            with gr.Column(scale=1, min_width=160):
                display = gr.Radio([MAP, LINES], value=MAP, label="Draw as", elem_id="display")
            with gr.Column(scale=2, min_width=280):
                gr.Markdown(faithfulness_note(shared.loaded.faithfulness), elem_id="faithfulness")
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
                    False, label="Whole words (English pieces, Chinese characters)", elem_id="words"
                )
        specials_note = gr.Markdown()
        plot = live_plot("attention-plot")
        plotly_loader()
        caption = gr.Markdown(
            maps_caption(WEIGHTS, "cross", translator.subwords is not None), elem_id="maps-caption"
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
                share_plot = live_plot("share-plot", visible=False)
        return AttentionTab(
            kind, layer, heads, average, show_special, per_map, words, specials_note, plot, large, large_plot,
            step, step_caption, step_plot, method, note, caption, share_plot, display,
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


def method_of(t: AttentionTab, values: dict) -> str:
    return values.get(t.method) or WEIGHTS  # a caller that knows no method (a test) gets the weights


def compute_contributions(shared: Shared, tr: Trace) -> None:
    """Keep what the model used in `tr.contributions`. Runs the model: model-group events only."""
    if tr.contributions is not None:
        return
    force = tr.translation if getattr(tr, "forced", False) else None
    traced, c = capped_contributions(shared.loaded, tr.text, tr.decoding.get("beam", 1), force=force)
    if (traced.source_tokens, traced.target_tokens) == (tr.source_tokens, tr.target_tokens):
        tr.contributions = c  # else not the same translation: the views fall back to the weights, and say so


def render_maps(shared: Shared, t: AttentionTab, tr: Trace, view: View, values: dict) -> dict:
    """The maps of the chosen method (the weights when its contributions are missing, with a notice), the
    large one when a map is picked (hidden otherwise), their caption, and ALTI+'s shares under the step chart."""
    method, notice = method_of(t, values), ""
    if method != WEIGHTS and tr.contributions is None:  # e.g. a toggle that overtook "What to show"
        method, notice = WEIGHTS, MISSING
    lines = values.get(t.display) == LINES
    if lines and method != WEIGHTS:
        lines, notice = False, notice or LINES_WEIGHTS_ONLY
    draw = (lambda v: lines_view(tr, v)) if lines else (lambda v: method_view(tr, v, method))
    stem = file_stem(tr, "attention" if method == WEIGHTS else method.replace("_", "-"))
    out = {t.plot: figure_json(draw(view), stem)}
    one = None if one_matrix(method) else large_view(view, values[t.large])
    if one is None:
        out[t.large_plot] = gr.update(visible=False, value=None)
    else:
        try:
            out[t.large_plot] = gr.update(visible=True, value=figure_json(draw(one), stem + "-large"))
        except ValueError:  # e.g. layer 3 of a 2-layer encoder
            out[t.large_plot] = gr.update(visible=False, value=None)
    if method == ALTI:
        shares = share_view(tr, view.show_special, view.step)
        out[t.share_plot] = gr.update(visible=True, value=figure_json(shares, file_stem(tr, "alti-shares")))
    else:
        out[t.share_plot] = gr.update(visible=False, value=None)
    layers = tr.n_encoder_layers if view.kind == "encoder" else tr.n_decoder_layers
    subwords = shared.loaded.translator.subwords is not None
    caption = lines_caption(tr, view) if lines else maps_caption(method, view.kind, subwords, layers)
    extra = [note for note in (words_note(view, subwords), notice) if note]
    out[t.caption] = "\n\n".join([caption, *extra])
    return out


def on_translated(shared: Shared, t: AttentionTab, tr: Trace, values: dict) -> dict:
    """A new translation: its maps at step 1 (what the model used computed first, when that is what is
    shown: this runs inside the Translate event, in the model group), and the step slider over its output."""
    n = len(tr.target_tokens)
    fig_step, caption = step_view(tr, 0)
    view = view_of(t, values, step=1, width=values[shared.client_width])
    if method_of(t, values) != WEIGHTS:
        compute_contributions(shared, tr)
    return {
        **render_maps(shared, t, tr, view, values),
        t.step: gr.update(minimum=1, maximum=n, value=1, step=1, interactive=n > 1),
        t.step_plot: figure_json(fig_step, file_stem(tr, "next-token")),
        t.step_caption: caption,
    }


def maps_again(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """The maps again, from the kept trace (never the model: see `on_method`); a ValueError for a view
    this trace cannot show (e.g. a layer its kind lacks: encoder and decoder depths may differ)."""
    tr = shared.store.get(values[shared.trace_state])
    if tr is None:  # never translated, or the trace was evicted or expired
        return {shared.notices: EXPIRED}
    view = view_of(t, values, step=values[t.step], width=values[shared.client_width])
    return render_maps(shared, t, tr, view, values)


def rerender(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """A toggle changed: its maps, or a toast for a view this trace cannot show (gr.Warning would need
    the queue, which RENDER_EVENT skips)."""
    try:
        return maps_again(shared, t, values)
    except ValueError as e:
        raise refusal("attention", str(e)) from None


def maps_if_any(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """`maps_again`, or nothing for a view this trace cannot show: the event's other outputs still apply."""
    try:
        return maps_again(shared, t, values)
    except ValueError:
        return {}


def on_method(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """The "What to show" choice changed: its explanation, the controls that apply to it, and its maps, what
    the model used computed first when this translation has none yet (a model-group event)."""
    method = method_of(t, values)
    applies = gr.update(interactive=not one_matrix(method))
    out = {t.method_note: method_note(method), t.layer: applies, t.heads: applies, t.average: applies}
    out[t.large] = applies
    tr = shared.store.get(values[shared.trace_state])
    if tr is not None and method != WEIGHTS:
        compute_contributions(shared, tr)
    return {**out, **maps_if_any(shared, t, values)}


def on_step(shared: Shared, t: AttentionTab, values: dict) -> dict:
    """The step slider moved: the next-token chart of that step, and the maps with its row marked."""
    tr = shared.store.get(values[shared.trace_state])
    if tr is None:
        return {shared.notices: EXPIRED}
    fig, caption = step_view(tr, int(values[t.step]) - 1)
    return {
        **maps_if_any(shared, t, values),
        t.step_plot: figure_json(fig, file_stem(tr, "next-token")),
        t.step_caption: caption,
    }


def wire(shared: Shared, t: AttentionTab) -> None:
    shown = [t.plot, t.large_plot, t.share_plot, t.caption]  # what `render_maps` fills
    shared.hooks.append(
        TranslateHook(
            inputs=[*t.controls, t.large, t.method, t.display],
            outputs=[*shown, t.step, t.step_plot, t.step_caption],
            fill=lambda tr, values: on_translated(shared, t, tr, values),
        )
    )
    inputs = [
        shared.trace_state,
        *t.controls,
        t.step,
        t.large,
        t.method,
        t.display,
        shared.client_width,
    ]  # the width last: WITH_WIDTH
    render = dict(RENDER_EVENT, js=WITH_WIDTH, show_progress="hidden")
    gr.on(
        [control.change for control in t.controls] + [t.large.change, t.display.change],
        bounded(handler(rerender, inputs, shared, t)),
        inputs=inputs,
        outputs=[*shown, shared.notices],
        **render,
    )
    t.show_special.change(specials_note, t.show_special, t.specials_note, api_visibility="private")
    t.display.change(None, js=LINES_HOVER_JS, api_visibility="private")
    t.step.change(
        bounded(handler(on_step, inputs, shared, t)),
        inputs,
        [*shown, t.step_plot, t.step_caption, shared.notices],
        **render,
    )
    # The one event of this tab that may run the model: in the model group, like Translate.
    t.method.change(
        handler(on_method, inputs, shared, t),
        inputs,
        [*shown, t.method_note, t.layer, t.heads, t.average, t.large, shared.notices],
        **dict(MODEL_EVENT, js=WITH_WIDTH, show_progress="hidden"),
    )
