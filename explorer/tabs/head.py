"""The "Inside a head" tab: how one attention weight is computed, with the model's own numbers;
what switching heads off does; which heads matter; what each head does.

The Attention tab's trace holds the maps only (a trace with internals is ~10× larger). Once a
visitor has opened this tab, each of their translations is traced again with internals (same text,
beam and caps, so the same translation) and kept in `shared.internals`, keyed by the main trace's
key; until then translating costs nothing extra. Handlers that may run the model are in the model's
concurrency group, as the Translate button is.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from training.head_stats import STATS
from training.kinds import shape

from ..head_figures import delta_figure
from ..head_panels import (
    CORPUS,
    SENTENCE,
    STATS_INTRO,
    STEP_CAPTIONS,
    TERMS_INTRO,
    checks_markdown,
    corpus_note,
    importance_caption,
    importance_figure,
    selection,
    stats_view,
    step_figures,
    terms_panel,
)
from ..head_view import STAT_LABELS, click_selection, model_shape, n_layers, query_labels, query_steps
from ..heads import Head, all_head_names, parse_head_names
from ..inference import InputError
from ..policy import (
    EXPIRED,
    MODEL_EVENT,
    PRIVATE,
    VIEW_EVENT,
    capped_ablate,
    capped_importance,
    capped_internals,
    md_escape,
    notices_markdown,
    refusing,
)
from ..trace_store import InternalsEntry
from .base import Shared, handler, kind_picker, read_js

TITLE = "Inside a head"
NOT_YET = "Translate a sentence, then click a row of the attention map (or pick a query here)."
INSTALL_CLICKS_JS = read_js("install_clicks")
READ_CLICK_JS = read_js("read_click")
SHOW_TAB_JS = read_js("show_head_tab")


@dataclass
class HeadTab:
    tab: gr.Tab
    active: gr.State  # True once this visitor opened the tab: from then on translations get internals
    shown: gr.State  # the main trace key the step-by-step view was last drawn for
    kind: gr.Radio
    layer: gr.Radio
    head: gr.Radio
    query: gr.Dropdown
    status: gr.Markdown
    checks: gr.Markdown
    q_plot: gr.Plot
    scores_caption: gr.Markdown
    scores_plot: gr.Plot
    values_caption: gr.Markdown
    values_plot: gr.Plot
    out_caption: gr.Markdown
    out_plot: gr.Plot
    terms_caption: gr.Markdown
    terms_plot: gr.Plot
    ablate_heads: gr.Dropdown
    ablate_btn: gr.Button
    original: gr.Textbox
    ablated: gr.Textbox
    ablate_note: gr.Markdown
    delta_plot: gr.Plot
    importance_btn: gr.Button
    importance_caption: gr.Markdown
    importance_plot: gr.Plot
    stats_source: gr.Radio
    stats_stat: gr.Dropdown
    stats_caption: gr.Markdown
    stats_plot: gr.Plot
    stats_table: gr.Dataframe
    # Hidden, placed by `wire` outside the tab (a tab's content is not in the page until opened):
    click: gr.Textbox | None = None  # a plot click's JSON, filled in by READ_CLICK_JS
    click_btn: gr.Button | None = None  # clicked by the page's plotly_click listener

    @property
    def pickers(self) -> list[gr.components.Component]:
        return [self.kind, self.layer, self.head, self.query]

    @property
    def view_outputs(self) -> list[gr.components.Component]:
        """What `render` fills: the pickers, the step-by-step view and content vs position."""
        return [
            *self.pickers,
            self.shown,
            self.status,
            self.checks,
            self.q_plot,
            self.scores_caption,
            self.scores_plot,
            self.values_caption,
            self.values_plot,
            self.out_caption,
            self.out_plot,
            self.terms_caption,
            self.terms_plot,
        ]


def build(shared: Shared) -> HeadTab:
    cfg = shared.loaded.translator.model.cfg
    corpus = shared.loaded.head_stats
    with gr.Tab(TITLE, elem_id="head-tab") as tab:
        gr.Markdown(
            "How one attention weight is computed, with the model's own numbers from the pass that produced "
            "the translation. **Click a row of the attention map** (Attention tab) or pick a query here. "
            "Hover any strip or bar for exact values."
        )
        with gr.Row():
            kind = kind_picker("head-kind", names="label")
            layer = gr.Radio(
                [str(i + 1) for i in range(cfg.n_decoder_layers)],
                value="1",
                label="Layer",
                elem_id="head-layer",
            )
            head = gr.Radio(
                [str(h + 1) for h in range(cfg.n_heads)], value="1", label="Head", elem_id="head-head"
            )
            query = gr.Dropdown(
                [], value=None, label="Query (row)", elem_id="head-query", allow_custom_value=False
            )
        status = gr.Markdown(NOT_YET, elem_id="head-status")
        checks = gr.Markdown(elem_id="head-checks")
        gr.Markdown(STEP_CAPTIONS["q"])
        q_plot = gr.Plot(label="query", elem_id="head-q-plot")
        scores_caption = gr.Markdown(STEP_CAPTIONS["scores"], elem_id="head-scores-caption")
        scores_plot = gr.Plot(label="scores and weights", elem_id="head-scores-plot")
        values_caption = gr.Markdown(STEP_CAPTIONS["values"])
        values_plot = gr.Plot(label="values", elem_id="head-values-plot")
        out_caption = gr.Markdown(STEP_CAPTIONS["out"])
        out_plot = gr.Plot(label="heads, W_O and the residual stream", elem_id="head-out-plot")

        gr.Markdown(TERMS_INTRO)
        terms_caption = gr.Markdown(elem_id="head-terms-caption")
        terms_plot = gr.Plot(label="content and position terms", elem_id="head-terms-plot")

        gr.Markdown(
            "### Switch heads off\nA switched-off head's slice of the concatenation is set to 0 before W_O. "
            "The sentence is translated again, and the original translation is scored with the heads off: "
            "Δ log p per output token (negative = those heads helped predict it)."
        )
        with gr.Row():
            ablate_heads = gr.Dropdown(
                all_head_names(shape(cfg)),
                value=[],
                multiselect=True,
                label="Heads to switch off (kind:layer:head)",
                elem_id="ablate-heads",
                scale=3,
            )
            ablate_btn = gr.Button("Switch off and re-translate", elem_id="ablate-btn", scale=1)
        with gr.Row():
            original = gr.Textbox(label="Original translation", interactive=False, elem_id="ablate-original")
            ablated = gr.Textbox(
                label="With those heads off", interactive=False, elem_id="ablate-translation"
            )
        ablate_note = gr.Markdown(elem_id="ablate-note")
        delta_plot = gr.Plot(label="Δ log p per output token", elem_id="ablate-delta-plot")

        gr.Markdown(
            "### Which heads matter for this sentence\nFor each head alone: how much the translation's total "
            "log-probability drops when it is switched off. Click a cell to select that head."
        )
        importance_btn = gr.Button("Measure every head", elem_id="importance-btn")
        importance_caption = gr.Markdown(elem_id="importance-caption")
        importance_plot = gr.Plot(label="head importance", elem_id="head-importance-plot")

        gr.Markdown(STATS_INTRO)
        with gr.Row():
            sources = [SENTENCE, CORPUS] if corpus else [SENTENCE]
            stats_source = gr.Radio(sources, value=sources[-1], label="Averaged over", elem_id="stats-source")
            stats_stat = gr.Dropdown(
                [(STAT_LABELS[s], s) for s in STATS], value="entropy_bits", label="Map", elem_id="stats-stat"
            )
        # The corpus figures need no translation: shown from the start.
        table, fig, _ = stats_view(None, corpus, CORPUS, "entropy_bits") if corpus else (None, None, "")
        stats_caption = gr.Markdown(corpus_note(corpus), elem_id="stats-caption")
        stats_plot = gr.Plot(fig, label="head statistics", elem_id="head-stats-plot")
        stats_table = gr.Dataframe(
            table,
            interactive=False,
            elem_id="head-stats-table",
            max_height=360,
            wrap=True,
            label="per head (click a header to sort)",
        )
    return HeadTab(
        tab, gr.State(False), gr.State(None), kind, layer, head, query, status, checks, q_plot,
        scores_caption, scores_plot, values_caption, values_plot, out_caption, out_plot, terms_caption,
        terms_plot, ablate_heads, ablate_btn, original, ablated, ablate_note, delta_plot, importance_btn,
        importance_caption, importance_plot, stats_source, stats_stat, stats_caption, stats_plot, stats_table,
    )  # fmt: skip


# ---- handlers: each takes (shared, the tab's components, {component: value}) ------------------------------


def kept(shared: Shared, values: dict, missing) -> tuple[str | None, object, dict | None]:
    """(key, the kept trace or None, what to show instead when there is none: the expired notice, or
    the first-visit hint when nothing was translated yet, in the `missing` component)."""
    key = values[shared.trace_state]
    tr = shared.store.get(key)
    return key, tr, None if tr is not None else {missing: EXPIRED if key else NOT_YET}


def entry_for(shared: Shared, key) -> InternalsEntry | None:
    """The kept trace with internals for the main trace `key`, computed on a miss; None if expired."""
    tr = shared.store.get(key)
    if tr is None:
        return None
    entry = shared.internals.get(key)
    if entry is None:
        traced = capped_internals(shared.loaded, tr.text, tr.decoding.get("beam", 1))
        entry = shared.internals.put(key, InternalsEntry(traced))
    return entry


def render(shared: Shared, h: HeadTab, key, sel: Head | None, values: dict) -> dict:
    """The step-by-step view of `sel` (or of what the pickers in `values` say) on the trace of `key`."""
    entry = entry_for(shared, key)
    if entry is None:
        return {h.status: EXPIRED if key else NOT_YET}
    tr, translator = entry.trace, shared.loaded.translator
    sel = sel or selection(tr, *(values[p] for p in h.pickers))
    figs = step_figures(query_steps(tr, sel, pre_norm=translator.model.cfg.pre_norm), translator.model)
    terms_caption, terms_fig = terms_panel(translator, tr, sel, entry.terms)
    notes = notices_markdown(tr)
    return {
        h.kind: sel.kind,
        h.layer: gr.update(
            choices=[str(i + 1) for i in range(n_layers(tr, sel.kind))], value=str(sel.layer + 1)
        ),
        h.head: str(sel.head + 1),
        h.query: gr.update(
            choices=[(lab, i) for i, lab in enumerate(query_labels(tr, sel.kind))], value=sel.query
        ),
        h.shown: key,
        h.status: f"“{md_escape(tr.text)}” → {md_escape(tr.translation)}" + (f"\n{notes}" if notes else ""),
        h.checks: checks_markdown(tr),
        h.q_plot: figs["q"],
        h.scores_caption: figs["scores_note"],
        h.scores_plot: figs["scores"],
        h.values_caption: figs["values_note"],
        h.values_plot: figs["values"],
        h.out_caption: figs["out_note"],
        h.out_plot: figs["out"],
        h.terms_caption: terms_caption,
        h.terms_plot: gr.update(value=terms_fig, visible=terms_fig is not None),
    }


@refusing("inside a head")
def on_pick(shared: Shared, h: HeadTab, values: dict) -> dict:
    return render(shared, h, values[shared.trace_state], None, values)


@refusing("inside a head")
def on_open(shared: Shared, h: HeadTab, values: dict) -> dict:
    key = values[shared.trace_state]
    if key is not None and key == values[h.shown]:
        return {h.active: True}
    return {h.active: True, **render(shared, h, key, None, values)}


@refusing("inside a head")
def on_new_trace(shared: Shared, h: HeadTab, values: dict) -> dict:
    key = values[shared.trace_state]
    tr = shared.store.get(key)
    out = {
        h.original: tr.translation if tr else "",
        h.ablated: "",
        h.ablate_note: "",
        h.delta_plot: None,
        h.importance_caption: "",
        h.importance_plot: None,
    }
    if not values[h.active]:  # the visitor has not opened the tab: no second pass over the model
        return out
    return {**out, **render(shared, h, key, None, values)}


@refusing("inside a head")
def on_click(shared: Shared, h: HeadTab, values: dict) -> dict:
    key, tr, instead = kept(shared, values, h.status)
    if instead:
        return instead
    current = selection(tr, *(values[p] for p in h.pickers))
    attention = shared.tabs["attention"]
    layer = values[attention.layer]
    layer_index = None if layer in (None, "all") else int(layer) - 1
    sel = click_selection(tr, values[h.click] or "", current, values[attention.kind], layer_index)
    return {h.active: True, **render(shared, h, key, sel, values)}


def on_table_select(shared: Shared, h: HeadTab, values: dict, row: list) -> dict:
    """A row of the statistics table (kind, layer, head, …) was clicked."""
    try:
        sel = parse_head_names([f"{row[0]}:{row[1]}:{row[2]}"], shape(shared.loaded.translator.model.cfg))[0]
    except (InputError, IndexError, TypeError):  # e.g. an empty table
        return gr.skip()
    key = values[shared.trace_state]
    tr = shared.store.get(key)
    if tr is None:  # no sentence yet: the corpus table still selects the head in the pickers
        return {h.kind: sel.kind, h.layer: str(sel.layer + 1), h.head: str(sel.head + 1)}
    current = selection(tr, *(values[p] for p in h.pickers))
    query = current.query if current.kind == sel.kind else 0
    return {h.active: True, **render(shared, h, key, Head(sel.kind, sel.layer, sel.head, query), values)}


@refusing("ablate")
def on_ablate(shared: Shared, h: HeadTab, values: dict) -> dict:
    key, tr, instead = kept(shared, values, h.ablate_note)
    if instead:
        return instead
    chosen = parse_head_names(values[h.ablate_heads] or [], model_shape(tr))
    if not chosen:
        raise InputError("Pick at least one head to switch off.")
    result = capped_ablate(shared.loaded, tr.text, chosen, tr.decoding.get("beam", 1))
    names = ", ".join(s.name for s in chosen)
    same = result["ablated_translation"] == result["translation"]
    total = sum(result["delta_logprob"])
    return {
        h.original: result["translation"],
        h.ablated: result["ablated_translation"],
        h.ablate_note: f"Switched off: {names}. "
        + ("The translation did not change. " if same else "The translation changed. ")
        + f"Total Δ log p of the original translation: **{total:+.3f}**.",
        h.delta_plot: delta_figure(result["target_tokens"], result["delta_logprob"], f"Δ log p, {names} off"),
    }


def on_importance(shared: Shared, h: HeadTab, values: dict, progress) -> dict:
    key, tr, instead = kept(shared, values, h.importance_caption)
    if instead:
        return instead
    desc = "switching each head off in turn"
    progress(0.0, desc=desc)
    drops = capped_importance(
        shared.loaded, tr.text, tr.decoding.get("beam", 1), progress=lambda f: progress(f, desc=desc)
    )
    sel = selection(tr, values[h.kind], values[h.layer], values[h.head], 0)
    return {
        h.importance_caption: importance_caption(drops, md_escape(tr.translation)),
        h.importance_plot: importance_figure(drops, sel),
    }


def on_stats(shared: Shared, h: HeadTab, values: dict) -> dict:
    tr = shared.store.get(values[shared.trace_state])
    table, fig, caption = stats_view(
        tr, shared.loaded.head_stats, values[h.stats_source], values[h.stats_stat]
    )
    return {h.stats_table: table, h.stats_plot: fig, h.stats_caption: caption}


def on_new_stats(shared: Shared, h: HeadTab, values: dict) -> dict:
    """A new translation changes this sentence's statistics, not the corpus's: redraw only those."""
    if values[h.stats_source] != SENTENCE:
        return gr.skip()
    return on_stats(shared, h, values)


def wire(shared: Shared, h: HeadTab) -> None:
    h.click = gr.Textbox(visible="hidden", elem_id="head-click")
    h.click_btn = gr.Button("click", visible="hidden", elem_id="head-click-btn")
    attention = shared.tabs["attention"]
    key, pickers = shared.trace_state, h.pickers

    def event(fn, inputs: list) -> tuple:
        return handler(fn, inputs, shared, h), inputs

    gr.on([p.input for p in pickers], *event(on_pick, [key, *pickers]), outputs=h.view_outputs, **MODEL_EVENT)
    h.tab.select(*event(on_open, [key, h.shown, *pickers]), [h.active, *h.view_outputs], **MODEL_EVENT)
    cleared = [h.original, h.ablated, h.ablate_note, h.delta_plot, h.importance_caption, h.importance_plot]
    stats_inputs = [key, h.stats_source, h.stats_stat]
    stats_outputs = [h.stats_table, h.stats_plot, h.stats_caption]
    key.change(
        *event(on_new_trace, [key, h.active, *pickers]), [*cleared, *h.view_outputs], **MODEL_EVENT
    ).then(*event(on_new_stats, stats_inputs), stats_outputs, **VIEW_EVENT)
    h.click_btn.click(
        *event(on_click, [h.click, key, attention.kind, attention.layer, *pickers]),
        [h.active, *h.view_outputs],
        js=READ_CLICK_JS,
        **MODEL_EVENT,
    ).then(None, js=SHOW_TAB_JS, **PRIVATE)

    table_inputs = [key, *pickers]

    # Gradio passes the clicked row to the parameter annotated gr.SelectData, placed by position: so the
    # inputs are named here, not taken as *args.
    def on_table_row(key_, kind, layer, head, query, evt: gr.SelectData):
        values = dict(zip(table_inputs, (key_, kind, layer, head, query)))
        return on_table_select(shared, h, values, evt.row_value or [])

    h.stats_table.select(on_table_row, table_inputs, [h.active, *h.view_outputs], **MODEL_EVENT)
    h.ablate_btn.click(
        *event(on_ablate, [key, h.ablate_heads]),
        [h.original, h.ablated, h.ablate_note, h.delta_plot],
        **MODEL_EVENT,
    )
    importance_inputs = [key, h.kind, h.layer, h.head]

    def on_importance_click(key_, kind, layer, head, progress=gr.Progress()):  # noqa: B008  (Gradio's tracker)
        values = dict(zip(importance_inputs, (key_, kind, layer, head)))
        return on_importance(shared, h, values, progress)

    h.importance_btn.click(
        on_importance_click, importance_inputs, [h.importance_caption, h.importance_plot], **MODEL_EVENT
    )
    gr.on(
        [h.stats_source.input, h.stats_stat.input],
        *event(on_stats, stats_inputs),
        stats_outputs,
        **VIEW_EVENT,
    )
