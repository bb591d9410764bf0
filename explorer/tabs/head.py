"""The "Inside a head" tab: how one attention weight is computed, with the model's own numbers;
what switching heads off does; which heads matter; what each head does.

The Attention tab's trace holds the maps only (a trace with internals is ~10× larger). Once a
visitor has opened this tab, each of their translations is traced again with internals (same text,
beam and caps, so the same translation) and kept in `shared.internals`, keyed by the main trace's
key; until then translating costs nothing extra. Handlers that may run the model are in the model's
concurrency group, as the Translate button is; a pick or a map click is drawn outside the queue from
the internals already kept (`fast`), and hands over to a queued event when there are none.

The layout is in head_layout.py.
"""

from __future__ import annotations

import time

import gradio as gr

from training.kinds import shape

from .. import head_panels as hp
from .. import head_view as hv
from ..head_figures import delta_figure
from ..heads import Head, parse_head_names
from ..inference import InputError
from ..policy import (
    EXPIRED,
    MODEL_EVENT,
    PRIVATE,
    RENDER_EVENT,
    VIEW_EVENT,
    bounded,
    capped_ablate,
    capped_importance,
    capped_internals,
    md_escape,
    notices_markdown,
    refusing,
)
from ..trace_store import InternalsEntry
from .base import Shared, handler, read_js, selected
from .head_layout import TITLE, HeadTab, build, plot_json  # noqa: F401  (TITLE and build: for the page)

INSTALL_CLICKS_JS = read_js("install_clicks")
READ_CLICK_JS = read_js("read_click")
SHOW_TAB_JS = read_js("show_head_tab")
WITH_WIDTH = read_js("with_width")
TO_STEPS_JS = read_js("to_head_steps")


# ---- handlers: each takes (shared, the tab's components, {component: value}) ------------------------------


def kept(shared: Shared, values: dict, missing) -> tuple[str | None, object, dict | None]:
    """(key, the kept trace or None, what to show instead when there is none: the expired notice, or
    the first-visit hint when nothing was translated yet, in the `missing` component)."""
    key = values[shared.trace_state]
    tr = shared.store.get(key)
    return key, tr, None if tr is not None else {missing: EXPIRED if key else hp.NOT_YET}


class NeedsModel(Exception):
    """A render outside the queue found no internals for its trace: a queued event computes them."""


def entry_for(shared: Shared, key, compute: bool = True) -> InternalsEntry | None:
    """The kept trace with internals for the main trace `key`, computed on a miss (NeedsModel instead
    when not `compute`); None if expired."""
    tr = shared.store.get(key)
    if tr is None:
        return None
    entry = shared.internals.get(key)
    if entry is None:
        if not compute:
            raise NeedsModel
        given = tr.target_tokens[1:] if tr.forced else None  # a given translation: the same tokens again
        traced = capped_internals(shared.loaded, tr.text, tr.decoding.get("beam", 1), force=given)
        entry = shared.internals.put(key, InternalsEntry(traced))
    return entry


def importance_json(drops: dict, sel: Head) -> str:
    return plot_json(hp.importance_figure(drops, sel), "head-importance", "Head importance")


def step_outputs(shared: Shared, h: HeadTab, tr, sel: Head, values: dict, panels) -> dict:
    """The step-by-step view's `panels` (names in `step_figures`) of `sel`, for the page."""
    model, width = shared.loaded.translator.model, values.get(shared.client_width)
    figs = hp.step_panels(tr, sel, model, width, panels)
    return {h.panels[name]: plot_json(*v) if isinstance(v, tuple) else v for name, v in figs.items()}


def render(
    shared: Shared, h: HeadTab, key, sel: Head | None, values: dict, note: str = "", compute: bool = True
) -> dict:
    """The step-by-step view of `sel` (or of what the pickers in `values` say) on the trace of `key`.

    Sends only what changed since `values[h.shown]`: the query menu and content vs position stay as
    they are when only the layer, head or query moved; a picker already showing its value, not at all;
    the maps that outline the head and the lines under them only when it moved;
    the folded panels only while their fold is open (opening it draws them: `on_fold`)."""
    entry = entry_for(shared, key, compute)
    if entry is None:
        return {h.status: EXPIRED if key else hp.NOT_YET}
    tr = entry.trace
    sel = sel or hp.selection(tr, *(values[p] for p in h.pickers))
    was = values.get(h.shown) or {}
    same_trace, same_kind = was.get("key") == key, was.get("kind") == sel.kind
    same_head = same_trace and same_kind and was.get("layer") == sel.layer and was.get("head") == sel.head
    panels = [*hp.STEPS, "scores_note", "summary", *hp.fold_panels(values.get(h.folds))]
    picks = {h.kind: sel.kind, h.layer: str(sel.layer + 1), h.head: str(sel.head + 1), h.query: sel.query}
    out = {
        **{c: v for c, v in picks.items() if values.get(c) != v},  # a picker showing it already is left be
        h.shown: {"key": key, **hp.shown_of(sel)},
        h.title: hp.selection_title(tr, sel) + (f"\n\n{md_escape(note)}" if note else ""),
        **step_outputs(shared, h, tr, sel, values, panels),
    }
    if not same_head:  # the lines under the maps that choose a head
        out[h.stats_now] = hp.now_text(sel)
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
def on_pick(shared: Shared, h: HeadTab, values: dict, compute: bool = True) -> dict:
    key, shown = values[shared.trace_state], values.get(h.shown) or {}
    tr = shared.store.get(key)
    if tr is not None and shown == {
        "key": key,
        **hp.shown_of(hp.selection(tr, *(values[p] for p in h.pickers))),
    }:
        return {}  # already drawn (the query menu says so when it loses focus, changed or not)
    return render(shared, h, key, None, values, compute=compute)


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
    key, shown = values[shared.trace_state], values[h.shown] or {}
    if key is not None and key in (shown.get("key"), shown.get("pending")):  # drawn, or on its way (`fast`)
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
def on_click(shared: Shared, h: HeadTab, values: dict, compute: bool = True) -> dict:
    key, tr, instead = kept(shared, values, h.status)
    if instead:
        return instead
    current = hp.selection(tr, *(values[p] for p in h.pickers))
    attention = shared.tabs["attention"]
    layer = values[attention.layer]
    layer_index = None if layer in (None, "all") else int(layer) - 1
    payload = values[h.click] or ""
    sel = hv.click_selection(tr, payload, current, values[attention.kind], layer_index)
    note = hv.click_note(tr, payload, sel)
    return {h.active: True, **render(shared, h, key, sel, values, note, compute)}


HANDOVERS = {"pick": on_pick, "click": on_click}  # what `fast` may hand over to `on_retry`, by name


def fast(shared: Shared, h: HeadTab, name: str, values: dict) -> dict:
    """HANDOVERS[name] outside the queue (RENDER_EVENT), from the internals already kept. Without them (the
    tab drew nothing for this trace yet, or they were evicted) it hands over to `on_retry`, queued with
    the model: `h.retry` changes, and the click it read is kept in `h.click` for it. Meanwhile `h.shown`
    says a drawing is on its way, so that the tab, opened by the click, does not draw its own selection
    over it (`on_open`)."""
    try:
        return HANDOVERS[name](shared, h, values, compute=False)
    except NeedsModel:
        out = {h.retry: f"{name} {time.monotonic_ns()}", h.shown: {"pending": values[shared.trace_state]}}
        return {**out, h.click: values[h.click]} if h.click in values else out


def on_pick_fast(shared: Shared, h: HeadTab, values: dict) -> dict:
    return fast(shared, h, "pick", values)


def on_click_fast(shared: Shared, h: HeadTab, values: dict) -> dict:
    return fast(shared, h, "click", values)


def on_retry(shared: Shared, h: HeadTab, values: dict) -> dict:
    """What `fast` handed over, in the model's group: the internals computed, then the same render."""
    fn = HANDOVERS.get((values[h.retry] or "").split(" ")[0])
    return fn(shared, h, values) if fn else gr.skip()


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
    h.retry = gr.Textbox(visible="hidden", elem_id="head-retry")
    attention = shared.tabs["attention"]
    key, width = shared.trace_state, shared.client_width
    view = [key, *h.view_inputs, width]  # the width last: WITH_WIDTH
    sized = dict(MODEL_EVENT, js=WITH_WIDTH, show_progress="hidden")

    def event(fn, inputs: list) -> tuple:
        return handler(fn, inputs, shared, h), inputs

    # The query menu sends `input` twice per choice (on the choice, and again as it loses focus): its
    # `blur` comes once, a choice by mouse or keyboard alike.
    picked = [h.kind.input, h.layer.input, h.head.input, h.query.blur]
    at_once = dict(RENDER_EVENT, js=WITH_WIDTH, show_progress="hidden")
    gr.on(
        picked, bounded(handler(on_pick_fast, view, shared, h)), view, [*h.view_outputs, h.retry], **at_once
    )
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
    read = dict(RENDER_EVENT, js=READ_CLICK_JS, show_progress="hidden")
    click = bounded(handler(on_click_fast, clicked, shared, h))
    h.click_btn.click(click, clicked, [h.active, *h.view_outputs, h.retry, h.click], **read).then(
        None, js=SHOW_TAB_JS, **PRIVATE
    )
    # A render that needed the model, queued: the click is the one `fast` kept in h.click; the width last.
    retried = [h.retry, *clicked]
    h.retry.change(
        *event(on_retry, retried), [h.active, *h.view_outputs], **dict(sized, show_progress="full")
    )

    h.stats_table.select(selected(on_table_row, view, shared, h), view, [h.active, *h.view_outputs], **sized)
    ablate_outputs = [h.original, h.ablated, h.ablate_note, h.delta_plot]
    h.ablate_btn.click(*event(on_ablate, [key, h.ablate_heads]), ablate_outputs, **MODEL_EVENT)
    importance_inputs = [key, h.kind, h.layer, h.head]

    def on_importance_click(key_, kind, layer, head, progress=gr.Progress()):  # noqa: B008  (Gradio's tracker)
        values = dict(zip(importance_inputs, (key_, kind, layer, head)))
        return on_importance(shared, h, values, progress)

    importance_outputs = [h.drops, h.importance_caption, h.importance_plot]
    # Its progress bar shows on the caption too: the plot is empty (no room) until the first measure.
    on_caption = dict(MODEL_EVENT, show_progress_on=[h.importance_caption, h.importance_plot])
    h.importance_btn.click(on_importance_click, importance_inputs, importance_outputs, **on_caption)
    stats_changes = [h.stats_source.input, h.stats_stat.input]
    gr.on(stats_changes, *event(on_stats, stats_inputs), stats_outputs, **VIEW_EVENT)
    for up in h.to_steps:
        up.click(None, js=TO_STEPS_JS, **PRIVATE)
