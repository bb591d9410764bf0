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

from .. import head_panels as hp
from .. import head_view as hv
from ..head_figures import delta_figure
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
from .base import Shared, handler, kind_picker, read_js, selected

TITLE = "Inside a head"
INSTALL_CLICKS_JS = read_js("install_clicks")
READ_CLICK_JS = read_js("read_click")
SHOW_TAB_JS = read_js("show_head_tab")
WITH_WIDTH = read_js("with_width")
TO_STEPS_JS = read_js("to_head_steps")


@dataclass
class HeadTab:
    tab: gr.Tab
    active: gr.State  # True once this visitor opened the tab: from then on translations get internals
    shown: gr.State  # what the steps were last drawn for: {"key", "kind", "layer", "head", "query"} (or None)
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
    kv_fold: gr.Accordion
    kv_plot: gr.HTML
    out_fold: gr.Accordion
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
    folds: gr.State = None  # the folds open now (FOLDS' names): their panels are drawn only while open
    # Hidden, placed by `wire` outside the tab (a tab's content is not in the page until opened):
    click: gr.Textbox | None = None  # a plot click's JSON, filled in by READ_CLICK_JS
    click_btn: gr.Button | None = None  # clicked by the page's plotly_click listener

    @property
    def pickers(self) -> list[gr.components.Component]:
        return [self.kind, self.layer, self.head, self.query]

    @property
    def view_inputs(self) -> list[gr.components.Component]:
        """What `render` reads besides the trace key: the pickers, what is drawn, the maps that outline it."""
        return [*self.pickers, self.shown, self.drops, self.folds]

    @property
    def panels(self) -> dict[str, gr.components.Component]:
        """The step-by-step view's figures and captions, by their names in `step_figures`."""
        return {
            "q": self.q_plot, "scores_note": self.scores_caption, "scores": self.scores_plot,
            "values": self.values_plot, "summary": self.summary, "kv": self.kv_plot,
            "out_note": self.out_caption, "out": self.out_plot,
        }  # fmt: skip

    @property
    def view_outputs(self) -> list[gr.components.Component]:
        """What `render` fills: the pickers, the step-by-step view, content vs position, the outlines."""
        return [
            *self.pickers, self.shown, self.status, self.title, self.q_plot, self.scores_caption,
            self.scores_plot, self.values_plot, self.summary, self.kv_plot, self.out_caption, self.out_plot,
            self.checks, self.terms_caption, self.terms_plot, self.importance_plot, self.importance_now, self.stats_now,
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
        gr.Markdown(hp.TAB_INTRO)
        with gr.Row(elem_id="head-pickers"):
            kind = kind_picker("head-kind", names="label")
            layers = [str(i + 1) for i in range(cfg.n_decoder_layers)]
            layer = gr.Radio(layers, value="1", label="Layer", elem_id="head-layer", min_width=120)
            heads = [str(h + 1) for h in range(cfg.n_heads)]
            head = gr.Radio(heads, value="1", label="Head", elem_id="head-head", min_width=120)
            query = gr.Dropdown([], value=None, label="Query (row)", elem_id="head-query")
        status = gr.Markdown(hp.NOT_YET, elem_id="head-status")
        title = gr.Markdown(elem_id="head-title")
        gr.Markdown(hp.STEP_CAPTIONS["q"], elem_classes=["head-step"])
        q_plot = live_plot("head-q-plot")
        gr.Markdown(hp.STEP_CAPTIONS["scores"], elem_classes=["head-step"])
        scores_caption = gr.Markdown(elem_id="head-scores-caption")
        scores_plot = live_plot("head-scores-plot")
        gr.Markdown(hp.STEP_CAPTIONS["values"], elem_classes=["head-step"])
        values_plot = live_plot("head-values-plot")
        summary = gr.Markdown(elem_id="head-summary")
        with gr.Accordion(hp.FOLD_TITLES["kv"], open=False, elem_id="head-kv-fold") as kv_fold:
            kv_plot = live_plot("head-kv-plot")
        with gr.Accordion(hp.FOLD_TITLES["out"], open=False, elem_id="head-out-fold") as out_fold:
            out_caption = gr.Markdown(elem_id="head-out-caption")
            out_plot = live_plot("head-out-plot")
        with gr.Accordion("Trust checks on this trace", open=False, elem_id="head-checks-fold"):
            checks = gr.Markdown(elem_id="head-checks")

        gr.Markdown(hp.TERMS_INTRO)
        terms_caption = gr.Markdown(elem_id="head-terms-caption")
        terms_plot = live_plot("head-terms-plot")

        gr.Markdown(hp.ABLATE_INTRO)
        with gr.Row():
            label = "Heads to switch off (kind:layer:head)"
            names = all_head_names(shape(cfg))
            ablate_heads = gr.Dropdown(
                names, value=[], multiselect=True, label=label, elem_id="ablate-heads", scale=3
            )
            ablate_btn = gr.Button("Switch off and re-translate", elem_id="ablate-btn", scale=1)
        with gr.Row():
            original = gr.Textbox(label="Original translation", interactive=False, elem_id="ablate-original")
            ablated = gr.Textbox(
                label="With those heads off", interactive=False, elem_id="ablate-translation"
            )
        ablate_note = gr.Markdown(elem_id="ablate-note")
        delta_plot = live_plot("ablate-delta-plot")

        gr.Markdown(hp.IMPORTANCE_INTRO)
        importance_btn = gr.Button("Measure every head", elem_id="importance-btn")
        importance_caption = gr.Markdown(elem_id="importance-caption")
        importance_plot = live_plot("head-importance-plot")
        importance_now, up1 = now_line("importance-now")

        gr.Markdown(hp.STATS_INTRO)
        with gr.Row():
            sources = [hp.SENTENCE, hp.CORPUS] if corpus else [hp.SENTENCE]
            stats_source = gr.Radio(sources, value=sources[-1], label="Averaged over", elem_id="stats-source")
            stat_choices = [(hv.STAT_LABELS[s], s) for s in STATS]
            stats_stat = gr.Dropdown(stat_choices, value="entropy_bits", label="Map", elem_id="stats-stat")
        # The corpus figures need no translation: shown from the start.
        table, fig, caption = (
            hp.stats_view(None, corpus, hp.CORPUS, "entropy_bits") if corpus else (None, None, "")
        )
        stats_caption = gr.Markdown(caption or hp.corpus_note(corpus), elem_id="stats-caption")
        stats_plot = live_plot("head-stats-plot", value=plot_json(fig, "head-stats") if fig else "")
        stats_now, up2 = now_line("stats-now")
        stats_table = gr.Dataframe(
            table, interactive=False, elem_id="head-stats-table", max_height=360, wrap=True, label="per head"
        )
    return HeadTab(
        tab, gr.State(False), gr.State(None), gr.State(None), kind, layer, head, query, status, title, q_plot,
        scores_caption, scores_plot, values_plot, summary, kv_fold, kv_plot, out_fold, out_caption, out_plot, checks,
        terms_caption, terms_plot, ablate_heads, ablate_btn, original, ablated, ablate_note, delta_plot, importance_btn,
        importance_caption, importance_plot, importance_now, stats_source, stats_stat, stats_caption, stats_plot,
        stats_now, stats_table, [up1, up2], gr.State([]),
    )  # fmt: skip


# ---- handlers: each takes (shared, the tab's components, {component: value}) ------------------------------


def kept(shared: Shared, values: dict, missing) -> tuple[str | None, object, dict | None]:
    """(key, the kept trace or None, what to show instead when there is none: the expired notice, or
    the first-visit hint when nothing was translated yet, in the `missing` component)."""
    key = values[shared.trace_state]
    tr = shared.store.get(key)
    return key, tr, None if tr is not None else {missing: EXPIRED if key else hp.NOT_YET}


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
    return plot_json(hp.importance_figure(drops, sel), "head-importance", "Head importance")


def step_outputs(shared: Shared, h: HeadTab, tr, sel: Head, values: dict, panels) -> dict:
    """The step-by-step view's `panels` (names in `step_figures`) of `sel`, for the page."""
    model, width = shared.loaded.translator.model, values.get(shared.client_width)
    figs = hp.step_panels(tr, sel, model, width, panels)
    return {h.panels[name]: plot_json(*v) if isinstance(v, tuple) else v for name, v in figs.items()}


def render(shared: Shared, h: HeadTab, key, sel: Head | None, values: dict, note: str = "") -> dict:
    """The step-by-step view of `sel` (or of what the pickers in `values` say) on the trace of `key`.

    Sends only what changed since `values[h.shown]`: the query menu and content vs position stay as
    they are when only the layer, head or query moved; the maps that outline the head only when it did;
    the folded panels only while their fold is open (opening it draws them: `on_fold`)."""
    entry = entry_for(shared, key)
    if entry is None:
        return {h.status: EXPIRED if key else hp.NOT_YET}
    tr = entry.trace
    sel = sel or hp.selection(tr, *(values[p] for p in h.pickers))
    was = values.get(h.shown) or {}
    same_trace, same_kind = was.get("key") == key, was.get("kind") == sel.kind
    same_head = same_trace and same_kind and was.get("layer") == sel.layer and was.get("head") == sel.head
    panels = [*hp.STEPS, "scores_note", "summary", *hp.fold_panels(values.get(h.folds))]
    out = {
        h.kind: sel.kind,
        h.layer: str(sel.layer + 1),
        h.head: str(sel.head + 1),
        h.query: sel.query,
        h.shown: {"key": key, **hp.shown_of(sel)},
        h.title: hp.selection_title(tr, sel) + (f"\n\n{md_escape(note)}" if note else ""),
        **step_outputs(shared, h, tr, sel, values, panels),
        h.stats_now: hp.now_text(sel),
    }
    if values.get(h.drops) is not None:  # else the line is empty already: a new trace clears it
        out[h.importance_now] = hp.now_text(sel)
    if not (same_trace and same_kind):
        n = hv.n_layers(tr, sel.kind)
        out[h.layer] = gr.update(choices=[str(i + 1) for i in range(n)], value=str(sel.layer + 1))
        choices = [(lab, i) for i, lab in enumerate(hv.query_labels(tr, sel.kind))]
        out[h.query] = gr.update(choices=choices, value=sel.query)
    if not same_trace:
        sentence, notes = f"“{md_escape(tr.text)}” → {md_escape(tr.translation)}", notices_markdown(tr)
        out.update({h.status: sentence + (f"\n{notes}" if notes else ""), h.checks: hp.checks_markdown(tr)})
    if not (same_trace and same_kind and was.get("head") == sel.head):  # layer 1's terms of this head
        caption, fig = hp.terms_panel(shared.loaded.translator, tr, sel, entry.terms)
        terms = plot_json(fig, f"head-{sel.kind}-1-{sel.head + 1}-terms") if fig else None
        out.update({h.terms_caption: caption, h.terms_plot: gr.update(value=terms, visible=bool(terms))})
    if not same_head and values.get(h.drops) is not None:  # its outline moves to the new head
        out[h.importance_plot] = importance_json(values[h.drops], sel)
    return out


@refusing("inside a head")
def on_pick(shared: Shared, h: HeadTab, values: dict) -> dict:
    key, shown = values[shared.trace_state], values.get(h.shown) or {}
    tr = shared.store.get(key)
    if tr is not None and shown == {
        "key": key,
        **hp.shown_of(hp.selection(tr, *(values[p] for p in h.pickers))),
    }:
        return {}  # already drawn (the query menu says so when it loses focus, changed or not)
    return render(shared, h, key, None, values)


@refusing("inside a head")
def on_fold(shared: Shared, h: HeadTab, fold: str, opened: bool, values: dict) -> dict:
    """A fold opened (its panels drawn for what the steps show) or closed (emptied: no stale figure
    shows for a moment when it opens again)."""
    folds = sorted(set(values[h.folds] or ()) - {fold} | ({fold} if opened else set()))
    if not opened:
        return {h.folds: folds, **{h.panels[p]: "" for p in hp.FOLDS[fold]}}
    key, shown = values[shared.trace_state], dict(values.get(h.shown) or {})
    entry = entry_for(shared, key) if shown.pop("key", None) == key else None
    if entry is None:  # nothing drawn yet: the steps draw it with them
        return {h.folds: folds}
    return {h.folds: folds, **step_outputs(shared, h, entry.trace, Head(**shown), values, hp.FOLDS[fold])}


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
    cleared = (
        h.ablated,
        h.ablate_note,
        h.delta_plot,
        h.importance_caption,
        h.importance_plot,
        h.importance_now,
    )
    out = {h.original: tr.translation if tr else "", **dict.fromkeys(cleared, ""), h.drops: None}
    if not values[h.active]:  # the visitor has not opened the tab: no second pass over the model
        return out
    return {**out, **render(shared, h, key, None, {**values, h.drops: None})}


@refusing("inside a head")
def on_click(shared: Shared, h: HeadTab, values: dict) -> dict:
    key, tr, instead = kept(shared, values, h.status)
    if instead:
        return instead
    current = hp.selection(tr, *(values[p] for p in h.pickers))
    attention = shared.tabs["attention"]
    layer = values[attention.layer]
    layer_index = None if layer in (None, "all") else int(layer) - 1
    payload = values[h.click] or ""
    sel = hv.click_selection(tr, payload, current, values[attention.kind], layer_index)
    return {h.active: True, **render(shared, h, key, sel, values, hv.click_note(tr, payload, sel))}


def on_table_row(shared: Shared, h: HeadTab, values: dict, evt: gr.SelectData) -> dict:
    """A row of the statistics table (kind, layer, head, …) was clicked."""
    sel = hv.table_head(evt.row_value or [], shape(shared.loaded.translator.model.cfg))
    key, tr = values[shared.trace_state], shared.store.get(values[shared.trace_state])
    if sel is None:
        return gr.skip()
    if tr is None:  # no sentence yet: the corpus table still selects the head in the pickers
        return {h.kind: sel.kind, h.layer: str(sel.layer + 1), h.head: str(sel.head + 1)}
    current = hp.selection(tr, *(values[p] for p in h.pickers))
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
    delta = delta_figure(result["target_tokens"], result["delta_logprob"])
    return {
        h.original: result["translation"],
        h.ablated: result["ablated_translation"],
        h.ablate_note: hp.ablate_note(names, result),
        h.delta_plot: plot_json(delta, "ablate-delta", f"Δ log p, {names} off"),
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
    sel = hp.selection(tr, values[h.kind], values[h.layer], values[h.head], 0)
    return {
        h.drops: drops,
        h.importance_caption: hp.importance_caption(drops, md_escape(tr.translation)),
        h.importance_plot: importance_json(drops, sel),
    }


def on_stats(shared: Shared, h: HeadTab, values: dict) -> dict:
    tr = shared.store.get(values[shared.trace_state])
    source, stat = values[h.stats_source], values[h.stats_stat]
    table, fig, caption = hp.stats_view(tr, shared.loaded.head_stats, source, stat)
    return {h.stats_table: table, h.stats_plot: plot_json(fig, "head-stats"), h.stats_caption: caption}


def on_new_stats(shared: Shared, h: HeadTab, values: dict) -> dict:
    """A new translation changes this sentence's statistics, not the corpus's: redraw only those."""
    if values[h.stats_source] != hp.SENTENCE:
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

    # The query menu sends `input` twice per choice (on the choice, and again as it loses focus): its
    # `blur` comes once, a choice by mouse or keyboard alike.
    picked = [h.kind.input, h.layer.input, h.head.input, h.query.blur]
    gr.on(picked, *event(on_pick, view), outputs=h.view_outputs, **sized)
    for name, fold in (("kv", h.kv_fold), ("out", h.out_fold)):
        for trigger, opened in ((fold.expand, True), (fold.collapse, False)):
            outputs = [h.folds, *(h.panels[p] for p in hp.FOLDS[name])]
            trigger(handler(on_fold, view, shared, h, name, opened), view, outputs, **sized)
    h.tab.select(*event(on_open, view), [h.active, *h.view_outputs], **sized)
    cleared = [h.original, h.ablated, h.ablate_note, h.delta_plot, h.importance_caption, h.importance_plot]
    stats_inputs = [key, h.stats_source, h.stats_stat]
    stats_outputs = [h.stats_table, h.stats_plot, h.stats_caption]
    key.change(
        *event(on_new_trace, [h.active, *view]),
        list(dict.fromkeys([*cleared, h.importance_now, h.drops, *h.view_outputs])),
        **MODEL_EVENT,
    ).then(*event(on_new_stats, stats_inputs), stats_outputs, **VIEW_EVENT)
    # The click first, the width last: READ_CLICK_JS.
    clicked = [h.click, attention.kind, attention.layer, *view]
    read = dict(MODEL_EVENT, js=READ_CLICK_JS, show_progress="hidden")
    h.click_btn.click(*event(on_click, clicked), [h.active, *h.view_outputs], **read).then(
        None, js=SHOW_TAB_JS, **PRIVATE
    )

    h.stats_table.select(selected(on_table_row, view, shared, h), view, [h.active, *h.view_outputs], **sized)
    ablate_outputs = [h.original, h.ablated, h.ablate_note, h.delta_plot]
    h.ablate_btn.click(*event(on_ablate, [key, h.ablate_heads]), ablate_outputs, **MODEL_EVENT)
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
