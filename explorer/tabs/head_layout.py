"""The layout of the "Inside a head" tab (explorer/tabs/head.py has its handlers and wiring): the
pickers, the steps ① to ③ with their folds, content vs position, switching heads off, head importance
and the head statistics, as components `HeadTab` names."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from training.head_stats import STATS
from training.kinds import shape

from .. import head_panels as hp
from .. import head_view as hv
from ..heads import all_head_names
from ..live_plot import figure_json, live_plot
from .base import Shared, kind_picker

TITLE = "Inside a head"


def plot_json(fig, stem: str, meta: str = "") -> str:
    """The tab's figures carry what they show in `meta` (not drawn: the headings say it; tests read it)."""
    fig.layout.meta = meta
    return figure_json(fig, stem, decimals=7)


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
    retry: gr.Textbox | None = None  # a render that needs the model: "pick …" or "click …" (head.fast)

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
        terms_plot = live_plot("head-terms-plot", visible=False)  # cross-attention, the first kind, has none

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
