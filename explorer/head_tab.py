"""The "Inside a head" tab: its layout (`build_head_tab`), handlers and wiring (`wire_head_tab`), and the
API endpoints /internals, /ablate and /head_stats.

The Attention tab's trace holds the maps only (a trace with internals is ~10× larger). Once a
visitor has opened this tab, each of their translations is traced again with internals (same
text, beam and caps, so the same translation) and kept here, keyed by the main trace's key, in a
small LRU cache; until then translating costs nothing extra. Handlers that may run the model go
through the model's concurrency group, as the Translate button does.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from training.files import HEAD_STATS_FILE
from training.head_stats import STATS

from .content_position import TERMS, first_layer_terms
from .figures import escape
from .head_figures import (
    delta_figure,
    head_grid_figure,
    scores_figure,
    strips_figure,
    terms_figure,
    values_figure,
)
from .head_view import (
    KIND_LABELS,
    STAT_LABELS,
    Head,
    QuerySteps,
    causal_mask,
    checked,
    click_selection,
    corpus_arrays,
    first_layer_scores,
    key_labels,
    maps_of,
    model_shape,
    n_layers,
    parse_head_names,
    query_labels,
    query_steps,
    sentence_head_stats,
    stats_json,
    stats_table,
    steps_json,
)
from .inference import KINDS, InputError, Trace, ablate, head_importance, trace
from .loading import LoadedModel

log = logging.getLogger("explorer")

CACHE_SIZE = 16  # traces with internals kept (~1–3 MB each at the app's caps)
CLICK_PLOTS = ("attention-plot", "head-importance-plot", "head-stats-plot")
SENTENCE, CORPUS = "this sentence", "corpus"

# Installed once per page (on load; see ui.wire): binds plotly_click on the plots above, again
# whenever Gradio redraws one into a new element. A click is written to window.__headTabClick and
# sent by clicking the hidden button, whose event reads it (READ_CLICK_JS).
INSTALL_CLICKS_JS = """() => {
  if (window.__headTabInstalled) return;
  window.__headTabInstalled = true;
  const PLOTS = __PLOTS__;
  const NAME = /^(encoder|decoder|cross):\\d+:\\d+$/;
  function send(id, gd, ev) {
    const pt = ev && ev.points && ev.points[0];
    if (!pt) return;
    let panel = '';
    if (pt.xaxis && pt.yaxis) {
      const xd = pt.xaxis.domain, yd = pt.yaxis.domain;
      const a = (gd.layout.annotations || []).find(a => a.xref === 'paper' && a.yref === 'paper'
        && a.x >= xd[0] - 1e-6 && a.x <= xd[1] + 1e-6 && Math.abs(a.y - yd[1]) < 1e-3);
      if (a) panel = String(a.text);
    }
    const row = Array.isArray(pt.pointNumber) ? pt.pointNumber[0] : pt.pointNumber;
    const head = typeof pt.customdata === 'string' && NAME.test(pt.customdata) ? pt.customdata : '';
    window.__headTabClick = JSON.stringify({plot: id, y: String(pt.y === undefined ? '' : pt.y),
      row: typeof row === 'number' ? row : null, panel: panel, head: head, t: Date.now()});
    const btn = document.querySelector('#head-click-btn');
    if (btn) btn.click();
  }
  setInterval(() => {
    for (const id of PLOTS) {
      const gd = document.querySelector('#' + id + ' .js-plotly-plot');
      if (!gd || !gd.on) continue;
      const fn = gd.__headTabFn || (gd.__headTabFn = ev => send(id, gd, ev));
      const bound = gd._ev && gd._ev.listeners && gd._ev.listeners('plotly_click').includes(fn);
      if (!bound) gd.on('plotly_click', fn);
    }
  }, 300);
}""".replace("__PLOTS__", json.dumps(list(CLICK_PLOTS)))
READ_CLICK_JS = "(click, ...rest) => [window.__headTabClick || '', ...rest]"
# After a click on the Attention tab's map has been handled, show its result.
SHOW_TAB_JS = """() => {
  const c = JSON.parse(window.__headTabClick || '{}');
  if (c.plot !== 'attention-plot') return;
  const tab = [...document.querySelectorAll('button[role=tab]')].find(b => b.textContent.trim() === 'Inside a head');
  if (tab) tab.click();
}"""

NOT_YET = "Translate a sentence, then click a row of the attention map (or pick a query here)."
STEP_CAPTIONS = {
    "q": "**① The query.** h = the sublayer's input at this position, normalized (LN(x) in a pre-norm layer); "
    "q = W_q·h + b_q, split into heads: this head's d_head values.",
    "scores": "**② Scores → weights.** Each key k_j = W_k·h_j + b_k (for cross-attention h_j is the encoder's "
    'output); score_j = q·k_j, scaled by 1/√d_head; keys the query may not see get −∞ ("masked"); '
    "softmax turns the scores into weights that sum to 1.",
    "values": "**③ Values.** v_j = W_v·h_j + b_v; each is scaled by its weight and the results are summed: "
    "this head's output for the query.",
    "out": "**④ Heads → W_O → residual.** The heads' outputs are concatenated (this head's slice outlined), "
    "multiplied by W_O (plus b_O) and added to the residual stream.",
}


@dataclass
class HeadComponents:
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
    # Hidden, placed by `wire_head_tab` outside the tab (a tab's content is not in the page until opened):
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


def read_corpus_stats(loaded: LoadedModel) -> dict | None:
    """The weights folder's head_stats.json, or None when it has none (or it cannot be read)."""
    folder = loaded.translator.folder
    path = folder / HEAD_STATS_FILE if folder else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        corpus_arrays(data)  # shape check: a broken file is reported, never half shown
        return data
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s not used: %s", path, e)
        return None


def head_names(loaded: LoadedModel) -> list[str]:
    cfg = loaded.translator.model.cfg
    layers = {"encoder": cfg.n_encoder_layers, "decoder": cfg.n_decoder_layers, "cross": cfg.n_decoder_layers}
    return [
        f"{k}:{layer + 1}:{h + 1}" for k in KINDS for layer in range(layers[k]) for h in range(cfg.n_heads)
    ]


def build_head_tab(loaded: LoadedModel, tab: gr.Tab) -> HeadComponents:
    """Lay the tab out (call inside `with gr.Tab("Inside a head") as tab`)."""
    cfg = loaded.translator.model.cfg
    corpus = read_corpus_stats(loaded)
    gr.Markdown(
        "How one attention weight is computed, with the model's own numbers from the pass that produced "
        "the translation. **Click a row of the attention map** (Attention tab) or pick a query here. "
        "Hover any strip or bar for exact values."
    )
    with gr.Row():
        kind = gr.Radio(
            [(label, k) for k, label in KIND_LABELS.items()],
            value="cross",
            label="Attention",
            elem_id="head-kind",
        )
        layer = gr.Radio(
            [str(i + 1) for i in range(cfg.n_decoder_layers)], value="1", label="Layer", elem_id="head-layer"
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

    gr.Markdown(
        "### Content versus position (layer 1)\nLayer 1 reads token embedding·√d + positional encoding. "
        "LayerNorm is linear once its mean and σ are fixed, so the scaled scores split exactly into five terms: "
        + "; ".join(f"**{name}** ({what})" for name, what in TERMS.items())
        + "."
    )
    terms_caption = gr.Markdown(elem_id="head-terms-caption")
    terms_plot = gr.Plot(label="content and position terms", elem_id="head-terms-plot")

    gr.Markdown(
        "### Switch heads off\nA switched-off head's slice of the concatenation is set to 0 before W_O. "
        "The sentence is translated again, and the original translation is scored with the heads off: "
        "Δ log p per output token (negative = those heads helped predict it)."
    )
    with gr.Row():
        ablate_heads = gr.Dropdown(
            head_names(loaded),
            value=[],
            multiselect=True,
            label="Heads to switch off (kind:layer:head)",
            elem_id="ablate-heads",
            scale=3,
        )
        ablate_btn = gr.Button("Switch off and re-translate", elem_id="ablate-btn", scale=1)
    with gr.Row():
        original = gr.Textbox(label="Original translation", interactive=False, elem_id="ablate-original")
        ablated = gr.Textbox(label="With those heads off", interactive=False, elem_id="ablate-translation")
    ablate_note = gr.Markdown(elem_id="ablate-note")
    delta_plot = gr.Plot(label="Δ log p per output token", elem_id="ablate-delta-plot")

    gr.Markdown(
        "### Which heads matter for this sentence\nFor each head alone: how much the translation's total "
        "log-probability drops when it is switched off. Click a cell to select that head."
    )
    importance_btn = gr.Button("Measure every head", elem_id="importance-btn")
    importance_caption = gr.Markdown(elem_id="importance-caption")
    importance_plot = gr.Plot(label="head importance", elem_id="head-importance-plot")

    gr.Markdown(
        "### What each head does\nPer head, a mean over its rows: "
        + "; ".join(f"**{html.escape(STAT_LABELS[s])}**: {html.escape(d)}" for s, d in STATS.items())
        + ". Click a cell or a table row to select that head; click a column header to sort."
    )
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
    h = HeadComponents(
        tab=tab,
        active=gr.State(False),
        shown=gr.State(None),
        kind=kind,
        layer=layer,
        head=head,
        query=query,
        status=status,
        checks=checks,
        q_plot=q_plot,
        scores_caption=scores_caption,
        scores_plot=scores_plot,
        values_caption=values_caption,
        values_plot=values_plot,
        out_caption=out_caption,
        out_plot=out_plot,
        terms_caption=terms_caption,
        terms_plot=terms_plot,
        ablate_heads=ablate_heads,
        ablate_btn=ablate_btn,
        original=original,
        ablated=ablated,
        ablate_note=ablate_note,
        delta_plot=delta_plot,
        importance_btn=importance_btn,
        importance_caption=importance_caption,
        importance_plot=importance_plot,
        stats_source=stats_source,
        stats_stat=stats_stat,
        stats_caption=stats_caption,
        stats_plot=stats_plot,
        stats_table=stats_table,
    )
    return h


def corpus_note(corpus: dict | None) -> str:
    if corpus is None:
        return (
            f"This weights folder has no `{HEAD_STATS_FILE}`, so only this sentence's figures are shown "
            "(`training export --dev` writes it; so does `python -m explorer head-stats --data DEV.tsv`)."
        )
    return f"Corpus: the {corpus.get('sentences', '?'):,} sentences of `{corpus.get('data', '?')}` (from `{HEAD_STATS_FILE}`)."


def stats_view(tr: Trace | None, corpus: dict | None, source: str, stat: str) -> tuple[Any, go.Figure, str]:
    """(table rows as a DataFrame, the layers × heads maps of `stat`, a caption) for one source."""
    import pandas as pd

    if stat not in STATS:
        stat = "entropy_bits"
    if source == CORPUS and corpus is not None:
        stats, where = corpus_arrays(corpus), f"averaged over {corpus.get('sentences', '?'):,} sentences"
    elif tr is not None:
        stats, where = sentence_head_stats(tr), "this sentence"
    else:
        return None, go.Figure(), corpus_note(corpus)
    headers, rows = stats_table(stats)
    fig = head_grid_figure(
        {k: v[stat] for k, v in stats.items()},
        f"{escape(STAT_LABELS[stat])} per head<br>{where}",
        STAT_LABELS[stat],
    )
    caption = corpus_note(corpus) + (
        "" if stat not in ("distance", "same", "previous") else " Grey: not defined for cross-attention."
    )
    return pd.DataFrame(rows, columns=headers), fig, caption


# ---- the internals cache -------------------------------------------------------------------------------


@dataclass
class Entry:
    trace: Trace  # with internals
    terms: dict[str, dict] = field(default_factory=dict)  # side → first_layer_terms (H, T, T)


class InternalsCache:
    """Main trace key → its trace with internals; least recently used first out; thread-safe."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: str) -> Entry | None:
        with self._lock:
            entry = self._items.pop(key, None)
            if entry is not None:
                self._items[key] = entry
            return entry

    def put(self, key: str, entry: Entry) -> Entry:
        with self._lock:
            self._items[key] = entry
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return entry


# ---- handlers --------------------------------------------------------------------------------------------


def _caps():
    from . import ui  # ui imports this module: read its caps when called, not at import

    return ui


def capped_internals(loaded: LoadedModel, text: str, beam) -> Trace:
    """The app's trace with internals: the caps of `ui.capped_trace`, so the same translation."""
    ui = _caps()
    return trace(
        loaded.translator,
        text,
        beam=ui.check_beam(beam),
        model_id=loaded.model_id,
        internals=True,
        **ui.CAPS,
    )


def checks_markdown(tr: Trace) -> str:
    c = tr.checks
    if c is None:
        return ""
    return (
        "**Trust checks on this trace** (0 would be exact): "
        f"max |row sum − 1| = {c.row_sum_error:.1e} · largest weight on a masked key = {c.masked_weight:g} "
        f"(must be 0) · capture on vs off, max |Δ logit| = {c.capture_logit_diff:.1e} · "
        f"KV-cached decoding vs the maps' pass, max |Δ log p| = {c.cached_vs_teacher_forced:.1e}"
    )


def selection(tr: Trace, kind, layer, head, query) -> Head:
    """The pickers' values → a Head on this trace, clamped to what this trace has."""
    kind = kind if kind in KINDS else "cross"
    maps = maps_of(tr, kind)
    as_int = lambda v, d: int(v) if str(v).strip().isdigit() and len(str(v).strip()) < 10 else d  # noqa: E731
    return Head(
        kind,
        min(max(as_int(layer, 1) - 1, 0), maps.shape[0] - 1),
        min(max(as_int(head, 1) - 1, 0), maps.shape[1] - 1),
        min(max(as_int(query, 0), 0), maps.shape[2] - 1),
    )


def step_figures(steps: QuerySteps, w_o: np.ndarray, b_o: np.ndarray) -> dict[str, Any]:
    s = steps.sel
    where = f"{KIND_LABELS[s.kind]} · layer {s.layer + 1} · head {s.head + 1}<br>query “{escape(steps.query_label)}”"
    n_open = int((~steps.masked).sum())
    scores_note = (
        f"{STEP_CAPTIONS['scores']}\n\nThese weights, recomputed from the captured q and k, differ from the "
        f"attention map's row by at most **{steps.row_diff:.1e}**. "
        + (
            f"{int(steps.masked.sum())} keys are masked (the future): −∞, weight exactly 0. "
            if steps.masked.any()
            else ""
        )
        + f"{n_open} keys are visible."
    )
    values_note = (
        f"{STEP_CAPTIONS['values']}\n\nΣ weight·v recomputed vs the model's head output: max |diff| = "
        f"**{steps.output_diff:.1e}**."
    )
    residual = steps.residual_diff
    out_note = (
        f"{STEP_CAPTIONS['out']}\n\nConcat·W_Oᵀ + b_O vs the captured output: max |diff| = **{steps.wo_diff(w_o, b_o):.1e}**. "
        + (
            f"stream_in + attn_out vs the stream after the sublayer: max |diff| = **{residual:.1e}**."
            if residual is not None
            else "This post-norm layer normalizes stream_in + attn_out: LN(stream_in + attn_out) is the stream after it."
        )
    )
    return {
        "q": strips_figure(
            [("h = normalized input", steps.h), ("q = W_q·h + b_q (this head)", steps.q)], f"① {where}"
        ),
        "scores": scores_figure(
            steps.keys, steps.k, steps.raw, steps.scaled, steps.weights, steps.masked, f"② {where}"
        ),
        "scores_note": scores_note,
        "values": values_figure(steps.keys, steps.v, steps.weights, steps.output, steps.masked, f"③ {where}"),
        "values_note": values_note,
        "out": strips_figure(
            [
                ("Concat(head outputs)", steps.concat),
                ("attn_out = Concat·W_Oᵀ + b_O", steps.attn_out),
                ("stream_in (residual stream before)", steps.stream_in),
                ("stream_out (after the add)", steps.stream_out),
            ],
            f"④ {where}",
            highlight={"Concat(head outputs)": steps.head_slice},
        ),
        "out_note": out_note,
    }


def terms_view(loaded: LoadedModel, entry: Entry, sel: Head) -> tuple[str, dict]:
    tr = entry.trace
    if sel.kind == "cross":
        return (
            "Cross-attention's keys are the encoder's output, not embeddings: the split applies to the encoder's "
            "and the decoder's self-attention. Choose one of those above.",
            gr.update(value=None, visible=False),
        )
    translator = loaded.translator
    if sel.kind not in entry.terms:
        ids = (
            translator.src_vocab.encode(tr.source_tokens)
            if sel.kind == "encoder"
            else translator.tgt_vocab.encode(tr.target_tokens)
        )
        entry.terms[sel.kind] = first_layer_terms(translator.model, ids, sel.kind)
    terms = {name: t[sel.head] for name, t in entry.terms[sel.kind].items()}
    scores = first_layer_scores(tr, sel.kind, sel.head)
    masked = causal_mask(len(scores)) if sel.kind == "decoder" else None
    diff = np.abs(sum(terms.values()) - scores)
    if masked is not None:
        diff = diff[~masked]
    keys = key_labels(tr, sel.kind)
    caption = (
        f"{KIND_LABELS[sel.kind]}, layer 1, head {sel.head + 1}: the five terms add up to the captured scores "
        f"q·k/√d to within **{float(diff.max()):.1e}**."
        + (" Grey: the masked future." if masked is not None else "")
    )
    title = f"{KIND_LABELS[sel.kind]}<br>layer 1 · head {sel.head + 1}: five terms and their sum"
    fig = terms_figure(terms, scores, keys, query_labels(tr, sel.kind), masked, title)
    return caption, gr.update(value=fig, visible=True)


def make_handlers(loaded: LoadedModel, store, h: HeadComponents, cache: InternalsCache, corpus: dict | None):
    ui = _caps()
    translator = loaded.translator

    def entry_for(key) -> Entry | None:
        """The cached trace with internals for the main trace `key`, computed on a miss; None if expired."""
        tr = store.get(key)
        if tr is None:
            return None
        entry = cache.get(key)
        if entry is None:
            entry = cache.put(key, Entry(capped_internals(loaded, tr.text, tr.decoding.get("beam", 1))))
        return entry

    def render(key, sel: Head | None, kind, layer, head, query) -> dict:
        entry = entry_for(key)
        if entry is None:
            return {h.status: ui.EXPIRED if key else NOT_YET}
        tr = entry.trace
        sel = sel or selection(tr, kind, layer, head, query)
        steps = query_steps(tr, sel, pre_norm=translator.model.cfg.pre_norm)
        attn = _attention_module(translator.model, sel)
        w_o, b_o = (p.detach().double().cpu().numpy() for p in (attn.out_proj.weight, attn.out_proj.bias))
        figs = step_figures(steps, w_o, b_o)
        terms_caption, terms_fig = terms_view(loaded, entry, sel)
        notes = ui.notices_markdown(tr)
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
            h.status: f"“{ui.md_escape(tr.text)}” → {ui.md_escape(tr.translation)}"
            + (f"\n{notes}" if notes else ""),
            h.checks: checks_markdown(tr),
            h.q_plot: figs["q"],
            h.scores_caption: figs["scores_note"],
            h.scores_plot: figs["scores"],
            h.values_caption: figs["values_note"],
            h.values_plot: figs["values"],
            h.out_caption: figs["out_note"],
            h.out_plot: figs["out"],
            h.terms_caption: terms_caption,
            h.terms_plot: terms_fig,
        }

    def guarded(fn: Callable[..., dict]) -> Callable[..., dict]:
        def run(*args):
            try:
                return fn(*args)
            except InputError as e:
                raise ui.refusal("inside a head", str(e)) from None

        run.__name__ = fn.__name__
        return run

    @guarded
    def on_pick(key, kind, layer, head, query) -> dict:
        return render(key, None, kind, layer, head, query)

    @guarded
    def on_open(key, shown, kind, layer, head, query) -> dict:
        if key is not None and key == shown:
            return {h.active: True}
        return {h.active: True, **render(key, None, kind, layer, head, query)}

    @guarded
    def on_new_trace(key, active, kind, layer, head, query) -> dict:
        tr = store.get(key)
        out = {
            h.original: tr.translation if tr else "",
            h.ablated: "",
            h.ablate_note: "",
            h.delta_plot: None,
            h.importance_caption: "",
            h.importance_plot: None,
        }
        if not active:  # the visitor has not opened the tab: no second pass over the model
            return out
        return {**out, **render(key, None, kind, layer, head, query)}

    @guarded
    def on_click(payload, key, attention_kind, attention_layer, kind, layer, head, query) -> dict:
        tr = store.get(key)
        if tr is None:
            return {h.status: ui.EXPIRED if key else NOT_YET}
        current = selection(tr, kind, layer, head, query)
        layer_index = None if attention_layer in (None, "all") else int(attention_layer) - 1
        sel = click_selection(tr, payload or "", current, attention_kind, layer_index)
        return {h.active: True, **render(key, sel, kind, layer, head, query)}

    def on_table_select(key, kind, layer, head, query, evt: gr.SelectData) -> dict:
        row = evt.row_value or []
        try:
            sel = parse_head_names([f"{row[0]}:{row[1]}:{row[2]}"], _shape(loaded))[0]
        except (InputError, IndexError, TypeError):  # e.g. an empty table
            return gr.skip()
        tr = store.get(key)
        current = selection(tr, kind, layer, head, query) if tr else None
        if tr is None:  # no sentence yet: the corpus table still selects the head in the pickers
            return {h.kind: sel.kind, h.layer: str(sel.layer + 1), h.head: str(sel.head + 1)}
        query = current.query if current and current.kind == sel.kind else 0
        return {
            h.active: True,
            **render(key, Head(sel.kind, sel.layer, sel.head, query), kind, layer, head, query),
        }

    def on_ablate(key, heads) -> dict:
        tr = store.get(key)
        if tr is None:
            return {h.ablate_note: ui.EXPIRED if key else NOT_YET}
        try:
            chosen = parse_head_names(heads or [], model_shape(tr))
            if not chosen:
                raise InputError("Pick at least one head to switch off.")
            result = ui_ablate(loaded, tr.text, chosen, tr.decoding.get("beam", 1))
        except InputError as e:
            raise ui.refusal("ablate", str(e)) from None
        names = ", ".join(s.name for s in chosen)
        same = result["ablated_translation"] == result["translation"]
        total = sum(result["delta_logprob"])
        return {
            h.original: result["translation"],
            h.ablated: result["ablated_translation"],
            h.ablate_note: f"Switched off: {names}. "
            + ("The translation did not change. " if same else "The translation changed. ")
            + f"Total Δ log p of the original translation: **{total:+.3f}**.",
            h.delta_plot: delta_figure(
                result["target_tokens"], result["delta_logprob"], f"Δ log p, {names} off"
            ),
        }

    def on_importance(key, kind, layer, head, progress=gr.Progress()) -> dict:  # noqa: B008  (Gradio's way to ask for a tracker)
        tr = store.get(key)
        if tr is None:
            return {h.importance_caption: ui.EXPIRED if key else NOT_YET}
        progress(0.0, desc="switching each head off in turn")
        drops = head_importance(
            translator,
            tr.text,
            beam=tr.decoding.get("beam", 1),
            **ui.CAPS,
            progress=lambda f: progress(f, desc="switching each head off in turn"),
        )
        sel = selection(tr, kind, layer, head, 0)
        best = max(
            ((k, *np.unravel_index(np.argmax(v), v.shape)) for k, v in drops.items()),
            key=lambda t: drops[t[0]][t[1], t[2]],
        )
        return {
            h.importance_caption: f"Drop in the log-probability of “{ui.md_escape(tr.translation)}” when each head alone is off "
            f"(positive = the head helps). Largest: **{best[0]}:{best[1] + 1}:{best[2] + 1}** "
            f"({drops[best[0]][best[1], best[2]]:+.3f}).",
            h.importance_plot: head_grid_figure(
                drops,
                "Head importance for this sentence<br>drop in log p when it alone is off",
                "drop in log p",
                diverging=True,
                selected=(sel.kind, sel.layer, sel.head),
            ),
        }

    def on_stats(key, source, stat) -> dict:
        table, fig, caption = stats_view(store.get(key), corpus, source, stat)
        return {h.stats_table: table, h.stats_plot: fig, h.stats_caption: caption}

    return on_pick, on_open, on_new_trace, on_click, on_table_select, on_ablate, on_importance, on_stats


def _shape(loaded: LoadedModel) -> dict[str, tuple[int, int]]:
    cfg = loaded.translator.model.cfg
    return {
        "encoder": (cfg.n_encoder_layers, cfg.n_heads),
        "decoder": (cfg.n_decoder_layers, cfg.n_heads),
        "cross": (cfg.n_decoder_layers, cfg.n_heads),
    }


def _attention_module(model, sel: Head):
    if sel.kind == "encoder":
        return model.encoder[sel.layer].self_attn
    layer = model.decoder[sel.layer]
    return layer.self_attn if sel.kind == "decoder" else layer.cross_attn


def ui_ablate(loaded: LoadedModel, text: str, heads: list[Head], beam) -> dict:
    """`ablate` under the app's caps (so its original translation is the app's trace's)."""
    ui = _caps()
    return ablate(
        loaded.translator,
        text,
        [(s.kind, s.layer, s.head) for s in heads],
        beam=ui.check_beam(beam),
        **ui.CAPS,
    )


# ---- API -------------------------------------------------------------------------------------------------


def head_api_defaults(default_beam: int, required: object) -> dict[str, list[Any]]:
    """For http_guard: the new endpoints' arguments, with their defaults (`required` where none)."""
    return {
        "internals": [required, default_beam, "cross", 1, 1, 1],
        "ablate": [required, required, default_beam],
        "head_stats": [required, default_beam],
    }


def api_endpoints(loaded: LoadedModel, corpus: dict | None):
    ui = _caps()
    default_beam = loaded.translator.decoding.beam

    def whole(value, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise InputError(f"{what} must be a whole number (from 1); got {value!r}")
        return int(value)

    def internals_api(
        text: str,
        beam: int = default_beam,
        kind: str = "cross",
        layer: int = 1,
        head: int = 1,
        query: int = 1,
    ) -> dict:
        """One query of one head, step by step (1-based layer, head and query row; kind encoder, decoder or cross)."""
        try:
            if kind not in KINDS:
                raise InputError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
            sel = Head(kind, whole(layer, "layer") - 1, whole(head, "head") - 1, whole(query, "query") - 1)
            ui.check_beam(beam)  # before the model runs
            tr = capped_internals(loaded, text, beam)
            steps = query_steps(tr, checked(tr, sel), pre_norm=loaded.translator.model.cfg.pre_norm)
        except InputError as e:
            raise ui.refusal("/internals", str(e)) from None
        out = {
            k: getattr(tr, k)
            for k in ("text", "translation", "source_tokens", "target_tokens", "predicted_tokens")
        }
        return {**out, **steps_json(steps), "checks": tr.to_json()["checks"], "notices": tr.notices}

    def ablate_api(text: str, heads: str, beam: int = default_beam) -> dict:
        """Switch heads off (\"cross:2:1,encoder:1:3\", 1-based) and re-translate; Δ log p per output token."""
        try:
            if not isinstance(heads, str):
                raise InputError(f"heads must be text like cross:2:1,encoder:1:3; got {heads!r}")
            chosen = parse_head_names(heads, _shape(loaded))
            result = ui_ablate(loaded, text, chosen, beam)
        except InputError as e:
            raise ui.refusal("/ablate", str(e)) from None
        return {**result, "heads": [s.name for s in chosen]}

    def head_stats_api(text: str, beam: int = default_beam) -> dict:
        """Per-head statistics of this sentence's maps, and the corpus figures shipped with the weights (or null)."""
        try:
            tr = ui.capped_trace(loaded, text, beam)
        except InputError as e:
            raise ui.refusal("/head_stats", str(e)) from None
        return {
            "translation": tr.translation,
            "descriptions": STATS,
            "sentence": stats_json(sentence_head_stats(tr)),
            "corpus": corpus,
        }

    return internals_api, ablate_api, head_stats_api


def wire_head_tab(c, h: HeadComponents, loaded: LoadedModel, store) -> None:
    """The tab's events and its API endpoints; call inside the gr.Blocks, from `ui.wire`."""
    ui = _caps()
    h.click = gr.Textbox(visible="hidden", elem_id="head-click")
    h.click_btn = gr.Button("click", visible="hidden", elem_id="head-click-btn")
    cache = InternalsCache()
    corpus = read_corpus_stats(loaded)
    on_pick, on_open, on_new_trace, on_click, on_table_select, on_ablate, on_importance, on_stats = (
        make_handlers(loaded, store, h, cache, corpus)
    )
    private = dict(api_visibility="private")
    model = dict(private, concurrency_id=ui.MODEL_GROUP)
    views = dict(private, concurrency_id=ui.VIEW_GROUP)
    gr.on(
        [p.input for p in h.pickers],
        on_pick,
        inputs=[c.trace_state, *h.pickers],
        outputs=h.view_outputs,
        **model,
    )
    h.tab.select(on_open, [c.trace_state, h.shown, *h.pickers], [h.active, *h.view_outputs], **model)
    c.trace_state.change(
        on_new_trace,
        [c.trace_state, h.active, *h.pickers],
        [
            h.original,
            h.ablated,
            h.ablate_note,
            h.delta_plot,
            h.importance_caption,
            h.importance_plot,
            *h.view_outputs,
        ],
        **model,
    ).then(
        on_stats,
        [c.trace_state, h.stats_source, h.stats_stat],
        [h.stats_table, h.stats_plot, h.stats_caption],
        **views,
    )
    h.click_btn.click(
        on_click,
        [h.click, c.trace_state, c.kind, c.layer, *h.pickers],
        [h.active, *h.view_outputs],
        js=READ_CLICK_JS,
        **model,
    ).then(None, js=SHOW_TAB_JS, **private)
    h.stats_table.select(on_table_select, [c.trace_state, *h.pickers], [h.active, *h.view_outputs], **model)
    h.ablate_btn.click(
        on_ablate,
        [c.trace_state, h.ablate_heads],
        [h.original, h.ablated, h.ablate_note, h.delta_plot],
        **model,
    )
    h.importance_btn.click(
        on_importance, [c.trace_state, *h.pickers[:3]], [h.importance_caption, h.importance_plot], **model
    )
    gr.on(
        [h.stats_source.input, h.stats_stat.input],
        on_stats,
        [c.trace_state, h.stats_source, h.stats_stat],
        [h.stats_table, h.stats_plot, h.stats_caption],
        **views,
    )
    internals_api, ablate_api, head_stats_api = api_endpoints(loaded, corpus)
    gr.api(internals_api, api_name="internals", concurrency_id=ui.MODEL_GROUP)
    gr.api(ablate_api, api_name="ablate", concurrency_id=ui.MODEL_GROUP)
    gr.api(head_stats_api, api_name="head_stats", concurrency_id=ui.MODEL_GROUP)
