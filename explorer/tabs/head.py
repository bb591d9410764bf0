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

from .. import head_view as hv
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
    selection_text,
    selection_title,
    stats_view,
    step_figures,
    terms_panel,
)
from ..heads import Head, all_head_names, parse_head_names
from ..inference import InputError
from ..live_plot import figure_json, live_plot
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
WITH_WIDTH = read_js("with_width")
TO_STEPS_JS = read_js("to_head_steps")


@dataclass
class HeadTab:
    tab: gr.Tab
    active: gr.State  # True once this visitor opened the tab: from then on translations get internals
    shown: gr.State  # what the steps were last drawn for: {"key", "kind", "layer", "head"} (or None)
    drops: gr.State  # the last "Measure every head" result ({kind: (L, H) drops}), to outline the selection
    kind: gr.Radio
    layer: gr.Radio
    head: gr.Radio
    query: gr.Dropdown
    status: gr.Markdown
    title: gr.Markdown
    q_plot: gr.HTML
    scores_caption: gr.Markdown
    scores_plot: gr.HTML
    values_plot: gr.HTML
    summary: gr.Markdown
    kv_plot: gr.HTML
    out_caption: gr.Markdown
    out_plot: gr.HTML
    checks: gr.Markdown
    terms_caption: gr.Markdown
    terms_plot: gr.HTML
    ablate_heads: gr.Dropdown
    ablate_btn: gr.Button
    original: gr.Textbox
    ablated: gr.Textbox
    ablate_note: gr.Markdown
    delta_plot: gr.HTML
    importance_btn: gr.Button
    importance_caption: gr.Markdown
    importance_plot: gr.HTML
    importance_now: gr.Markdown
    stats_source: gr.Radio
    stats_stat: gr.Dropdown
    stats_caption: gr.Markdown
    stats_plot: gr.HTML
    stats_now: gr.Markdown
    stats_table: gr.Dataframe
    to_steps: list[gr.Button]
    # Hidden, placed by `wire` outside the tab (a tab's content is not in the page until opened):
    click: gr.Textbox | None = None  # a plot click's JSON, filled in by READ_CLICK_JS
    click_btn: gr.Button | None = None  # clicked by the page's plotly_click listener

    @property
    def pickers(self) -> list[gr.components.Component]:
        return [self.kind, self.layer, self.head, self.query]

    @property
    def view_inputs(self) -> list[gr.components.Component]:
        """What `render` reads besides the trace key: the pickers, what is drawn, the maps that outline it."""
        return [*self.pickers, self.shown, self.drops, self.stats_source, self.stats_stat]

    @property
    def view_outputs(self) -> list[gr.components.Component]:
        """What `render` fills: the pickers, the step-by-step view, content vs position, the outlines."""
        return [
            *self.pickers, self.shown, self.status, self.title, self.q_plot, self.scores_caption,
            self.scores_plot, self.values_plot, self.summary, self.kv_plot, self.out_caption, self.out_plot,
            self.checks, self.terms_caption, self.terms_plot, self.importance_plot, self.importance_now,
            self.stats_now,
        ]  # fmt: skip


def now_line(elem_id: str) -> tuple[gr.Markdown, gr.Button]:
    """Where a click chooses a head: a line saying which head the steps above now show, and a way up."""
    with gr.Row(elem_classes=["head-now"]):
        line = gr.Markdown(elem_id=elem_id)
        up = gr.Button("↑ view its steps", size="sm", scale=0, min_width=130, elem_classes=["head-up"])
    return line, up


def build(shared: Shared) -> HeadTab:
    cfg = shared.loaded.translator.model.cfg
    corpus = shared.loaded.head_stats
    with gr.Tab(TITLE, elem_id="head-tab") as tab:
        gr.Markdown(
            "How one attention weight is computed, top to bottom in the order of the computation, with the "
            "model's own numbers. **Click a row of the attention map** (Attention tab) or pick a query here; "
            "hover any strip or bar for exact values. Strips: red positive, blue negative, white 0."
        )
        with gr.Row(elem_id="head-pickers"):
            kind = kind_picker("head-kind", names="label")
            layers = [str(i + 1) for i in range(cfg.n_decoder_layers)]
            layer = gr.Radio(layers, value="1", label="Layer", elem_id="head-layer", min_width=120)
            heads = [str(h + 1) for h in range(cfg.n_heads)]
            head = gr.Radio(heads, value="1", label="Head", elem_id="head-head", min_width=120)
            query = gr.Dropdown(
                [], value=None, label="Query (row)", elem_id="head-query", allow_custom_value=False
            )
        status = gr.Markdown(NOT_YET, elem_id="head-status")
        title = gr.Markdown(elem_id="head-title")
        gr.Markdown(STEP_CAPTIONS["q"], elem_classes=["head-step"])
        q_plot = live_plot("head-q-plot")
        gr.Markdown(STEP_CAPTIONS["scores"], elem_classes=["head-step"])
        scores_caption = gr.Markdown(elem_id="head-scores-caption")
        scores_plot = live_plot("head-scores-plot")
        gr.Markdown(STEP_CAPTIONS["values"], elem_classes=["head-step"])
        values_plot = live_plot("head-values-plot")
        summary = gr.Markdown(elem_id="head-summary")
        with gr.Accordion("The keys k_j and values v_j in full", open=False, elem_id="head-kv-fold"):
            kv_plot = live_plot("head-kv-plot")
        with gr.Accordion("④ Heads → W_O → residual stream", open=False, elem_id="head-out-fold"):
            out_caption = gr.Markdown(elem_id="head-out-caption")
            out_plot = live_plot("head-out-plot")
        with gr.Accordion("Trust checks on this trace", open=False, elem_id="head-checks-fold"):
            checks = gr.Markdown(elem_id="head-checks")

        gr.Markdown(TERMS_INTRO)
        terms_caption = gr.Markdown(elem_id="head-terms-caption")
        terms_plot = live_plot("head-terms-plot")

        gr.Markdown(
            "### Switch heads off\nA switched-off head's slice of the concatenation is set to 0 before W_O. "
            "The sentence is translated again, and the original translation is scored with the heads off: "
            "Δ log p per output token (blue, negative: those heads helped predict it; red: they hindered it)."
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
        delta_plot = live_plot("ablate-delta-plot")

        gr.Markdown(
            "### Which heads matter for this sentence\nFor each head alone: how much the translation's total "
            "log-probability drops when it is switched off. Click a cell to select that head."
        )
        importance_btn = gr.Button("Measure every head", elem_id="importance-btn")
        importance_caption = gr.Markdown(elem_id="importance-caption")
        importance_plot = live_plot("head-importance-plot")
        importance_now, up1 = now_line("importance-now")

        gr.Markdown(STATS_INTRO)
        with gr.Row():
            sources = [SENTENCE, CORPUS] if corpus else [SENTENCE]
            stats_source = gr.Radio(sources, value=sources[-1], label="Averaged over", elem_id="stats-source")
            stat_choices = [(hv.STAT_LABELS[s], s) for s in STATS]
            stats_stat = gr.Dropdown(stat_choices, value="entropy_bits", label="Map", elem_id="stats-stat")
        # The corpus figures need no translation: shown from the start.
        table, fig, caption = stats_view(None, corpus, CORPUS, "entropy_bits") if corpus else (None, None, "")
        stats_caption = gr.Markdown(caption or corpus_note(corpus), elem_id="stats-caption")
        stats_plot = live_plot("head-stats-plot", value=plot_json(fig, "head-stats") if fig else "")
        stats_now, up2 = now_line("stats-now")
        stats_table = gr.Dataframe(
            table, interactive=False, elem_id="head-stats-table", max_height=360, wrap=True, label="per head"
        )
    return HeadTab(
        tab, gr.State(False), gr.State(None), gr.State(None), kind, layer, head, query, status, title, q_plot,
        scores_caption, scores_plot, values_plot, summary, kv_plot, out_caption, out_plot, checks, terms_caption,
        terms_plot, ablate_heads, ablate_btn, original, ablated, ablate_note, delta_plot, importance_btn,
        importance_caption, importance_plot, importance_now, stats_source, stats_stat, stats_caption, stats_plot,
        stats_now, stats_table, [up1, up2],
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
        given = tr.target_tokens[1:] if tr.forced else None  # a given translation: the same tokens again
        traced = capped_internals(shared.loaded, tr.text, tr.decoding.get("beam", 1), force=given)
        entry = shared.internals.put(key, InternalsEntry(traced))
    return entry


def plot_json(fig, stem: str, meta: str = "") -> str:
    """The tab's figures carry what they show in `meta` (not drawn: the headings say it; tests read it)."""
    fig.layout.meta = meta
    return figure_json(fig, stem, decimals=7)


def importance_json(drops: dict, sel: Head) -> str:
    return plot_json(importance_figure(drops, sel), "head-importance", "Head importance")


def render(shared: Shared, h: HeadTab, key, sel: Head | None, values: dict, note: str = "") -> dict:
    """The step-by-step view of `sel` (or of what the pickers in `values` say) on the trace of `key`.

    Sends only what changed since `values[h.shown]`: the query menu and content vs position stay as
    they are when only the layer, head or query moved; the maps that outline the head only when it did."""
    entry = entry_for(shared, key)
    if entry is None:
        return {h.status: EXPIRED if key else NOT_YET}
    tr, translator = entry.trace, shared.loaded.translator
    sel = sel or selection(tr, *(values[p] for p in h.pickers))
    before = values.get(h.shown) or {}
    same_trace, same_kind = before.get("key") == key, before.get("kind") == sel.kind
    same_head = (
        same_trace and same_kind and (before.get("layer"), before.get("head")) == (sel.layer, sel.head)
    )
    steps = hv.query_steps(tr, sel, pre_norm=translator.model.cfg.pre_norm)
    figs = step_figures(steps, translator.model, values.get(shared.client_width))
    stem = f"head-{sel.kind}-{sel.layer + 1}-{sel.head + 1}-q{sel.query + 1}"
    tag = selection_text(tr, sel)
    notes = notices_markdown(tr)
    name = f"{sel.kind}:{sel.layer + 1}:{sel.head + 1}"
    now = f"Now showing **{name}**, query {sel.query + 1}, in the steps at the top of this tab."
    out = {
        h.kind: sel.kind,
        h.layer: str(sel.layer + 1),
        h.head: str(sel.head + 1),
        h.query: sel.query,
        h.shown: {"key": key, "kind": sel.kind, "layer": sel.layer, "head": sel.head},
        h.title: selection_title(tr, sel) + (f"\n\n{md_escape(note)}" if note else ""),
        h.q_plot: plot_json(figs["q"], stem + "-query", tag),
        h.scores_caption: figs["scores_note"],
        h.scores_plot: plot_json(figs["scores"], stem + "-scores", tag),
        h.values_plot: plot_json(figs["values"], stem + "-values", tag),
        h.summary: figs["summary"],
        h.kv_plot: plot_json(figs["kv"], stem + "-keys-values", tag),
        h.out_caption: figs["out_note"],
        h.out_plot: plot_json(figs["out"], stem + "-residual", tag),
        h.importance_now: now if values.get(h.drops) is not None else "",
        h.stats_now: now,
    }
    if not (same_trace and same_kind):
        n = hv.n_layers(tr, sel.kind)
        out[h.layer] = gr.update(choices=[str(i + 1) for i in range(n)], value=str(sel.layer + 1))
        choices = [(lab, i) for i, lab in enumerate(hv.query_labels(tr, sel.kind))]
        out[h.query] = gr.update(choices=choices, value=sel.query)
    if not same_trace:
        sentence = f"“{md_escape(tr.text)}” → {md_escape(tr.translation)}"
        out.update({h.status: sentence + (f"\n{notes}" if notes else ""), h.checks: checks_markdown(tr)})
    if not (same_trace and same_kind and before.get("head") == sel.head):  # layer 1's terms of this head
        terms_caption, terms_fig = terms_panel(translator, tr, sel, entry.terms)
        terms = plot_json(terms_fig, f"head-{sel.kind}-1-{sel.head + 1}-terms") if terms_fig else None
        out.update(
            {h.terms_caption: terms_caption, h.terms_plot: gr.update(value=terms, visible=bool(terms))}
        )
    if not same_head and values.get(h.drops) is not None:  # its outline moves to the new head
        out[h.importance_plot] = importance_json(values[h.drops], sel)
    return out


@refusing("inside a head")
def on_pick(shared: Shared, h: HeadTab, values: dict) -> dict:
    return render(shared, h, values[shared.trace_state], None, values)


@refusing("inside a head")
def on_open(shared: Shared, h: HeadTab, values: dict) -> dict:
    key = values[shared.trace_state]
    if key is not None and key == (values[h.shown] or {}).get("key"):
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
        h.delta_plot: "",
        h.importance_caption: "",
        h.importance_plot: "",
        h.importance_now: "",
        h.drops: None,
    }
    if not values[h.active]:  # the visitor has not opened the tab: no second pass over the model
        return out
    return {**out, **render(shared, h, key, None, {**values, h.drops: None})}


@refusing("inside a head")
def on_click(shared: Shared, h: HeadTab, values: dict) -> dict:
    key, tr, instead = kept(shared, values, h.status)
    if instead:
        return instead
    current = selection(tr, *(values[p] for p in h.pickers))
    attention = shared.tabs["attention"]
    layer = values[attention.layer]
    layer_index = None if layer in (None, "all") else int(layer) - 1
    payload = values[h.click] or ""
    sel = hv.click_selection(tr, payload, current, values[attention.kind], layer_index)
    return {h.active: True, **render(shared, h, key, sel, values, hv.click_note(tr, payload, sel))}


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
    chosen = parse_head_names(values[h.ablate_heads] or [], hv.model_shape(tr))
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
        + f"Total Δ log p of the original translation: **{total:+.3f}**. Below, Δ log p per output token.",
        h.delta_plot: plot_json(
            delta_figure(result["target_tokens"], result["delta_logprob"]),
            "ablate-delta",
            f"Δ log p, {names} off",
        ),
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
        h.drops: drops,
        h.importance_caption: importance_caption(drops, md_escape(tr.translation)),
        h.importance_plot: importance_json(drops, sel),
    }


def on_stats(shared: Shared, h: HeadTab, values: dict) -> dict:
    key = values[shared.trace_state]
    tr = shared.store.get(key)
    table, fig, caption = stats_view(
        tr, shared.loaded.head_stats, values[h.stats_source], values[h.stats_stat]
    )
    return {h.stats_table: table, h.stats_plot: plot_json(fig, "head-stats"), h.stats_caption: caption}


def on_new_stats(shared: Shared, h: HeadTab, values: dict) -> dict:
    """A new translation changes this sentence's statistics, not the corpus's: redraw only those."""
    if values[h.stats_source] != SENTENCE:
        return gr.skip()
    return on_stats(shared, h, values)


def wire(shared: Shared, h: HeadTab) -> None:
    h.click = gr.Textbox(visible="hidden", elem_id="head-click")
    h.click_btn = gr.Button("click", visible="hidden", elem_id="head-click-btn")
    attention = shared.tabs["attention"]
    key, width = shared.trace_state, shared.client_width
    view = [key, *h.view_inputs, width]  # the width last: WITH_WIDTH
    sized = dict(MODEL_EVENT, js=WITH_WIDTH, show_progress="hidden")

    def event(fn, inputs: list) -> tuple:
        return handler(fn, inputs, shared, h), inputs

    gr.on([p.input for p in h.pickers], *event(on_pick, view), outputs=h.view_outputs, **sized)
    h.tab.select(*event(on_open, view), [h.active, *h.view_outputs], **sized)
    cleared = [h.original, h.ablated, h.ablate_note, h.delta_plot, h.importance_caption, h.importance_plot]
    stats_inputs = [key, h.stats_source, h.stats_stat]
    stats_outputs = [h.stats_table, h.stats_plot, h.stats_caption]
    key.change(
        *event(on_new_trace, [h.active, *view]),
        list(dict.fromkeys([*cleared, h.importance_now, h.drops, *h.view_outputs])),
        **MODEL_EVENT,
    ).then(*event(on_new_stats, stats_inputs), stats_outputs, **VIEW_EVENT)
    clicked = [
        h.click,
        attention.kind,
        attention.layer,
        *view,
    ]  # the click first, the width last: READ_CLICK_JS
    h.click_btn.click(
        *event(on_click, clicked), [h.active, *h.view_outputs], js=READ_CLICK_JS, **MODEL_EVENT
    ).then(None, js=SHOW_TAB_JS, **PRIVATE)

    # Gradio passes the clicked row to the parameter annotated gr.SelectData, placed by position: so the
    # inputs are named here, not taken as *args.
    def on_table_row(key_, kind, layer, head, query, shown, drops, source, stat, width_, evt: gr.SelectData):
        values = dict(zip(view, (key_, kind, layer, head, query, shown, drops, source, stat, width_)))
        return on_table_select(shared, h, values, evt.row_value or [])

    h.stats_table.select(on_table_row, view, [h.active, *h.view_outputs], **sized)
    h.ablate_btn.click(
        *event(on_ablate, [key, h.ablate_heads]),
        [h.original, h.ablated, h.ablate_note, h.delta_plot],
        **MODEL_EVENT,
    )
    importance_inputs = [key, h.kind, h.layer, h.head]

    def on_importance_click(key_, kind, layer, head, progress=gr.Progress()):  # noqa: B008  (Gradio's tracker)
        values = dict(zip(importance_inputs, (key_, kind, layer, head)))
        return on_importance(shared, h, values, progress)

    importance_outputs = [h.drops, h.importance_caption, h.importance_plot]
    h.importance_btn.click(on_importance_click, importance_inputs, importance_outputs, **MODEL_EVENT)
    stats_changes = [h.stats_source.input, h.stats_stat.input]
    gr.on(stats_changes, *event(on_stats, stats_inputs), stats_outputs, **VIEW_EVENT)
    for up in h.to_steps:
        up.click(None, js=TO_STEPS_JS, **PRIVATE)
