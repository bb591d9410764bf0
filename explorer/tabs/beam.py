"""The Beam search tab: the finished hypotheses the search weighed for the current translation, with
their summed log-probability and normalized score, best first, and the search step by step (what each
step kept, finished and dropped).

Filled in the Translate event itself (a `TranslateHook`): the hypotheses come from the very search
that produced the translation, so they cost nothing more. A click on a hypothesis puts its text in
the page's "Chinese to explain" box and the same event translates again with it (the page's own
Translate, handed to `choose`), so every tab shows the pass of the translation it displays.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..beam_view import HEADERS, history_html, hypothesis_choice, hypothesis_rows, summary_markdown
from ..inference import Trace
from .base import Shared, TranslateHook, selected

TITLE = "Beam search"


@dataclass
class BeamTab:
    summary: gr.Markdown
    table: gr.Dataframe
    history: gr.HTML

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.summary, self.table, self.history]


def build(shared: Shared) -> BeamTab:
    with gr.Tab(TITLE, elem_id="beam-tab"):
        summary = gr.Markdown(
            "Translate a sentence to see the hypotheses beam search weighed.", elem_id="beam-summary"
        )
        table = gr.Dataframe(
            headers=HEADERS,
            datatype=["number", "str", "number", "number", "str", "str"],
            interactive=False,
            wrap=True,
            max_height=420,
            buttons=["copy"],
            elem_id="beam-hypotheses",
            label="Finished hypotheses, best score first (click a row to explain it)",
        )
        history = gr.HTML(elem_id="beam-history")
    return BeamTab(summary, table, history)


# ---- handlers: each takes (shared, the tab's components, {component: value}) ------------------------------


def on_translated(t: BeamTab, tr: Trace) -> dict:
    return {
        t.summary: summary_markdown(tr),
        t.table: {"headers": HEADERS, "data": hypothesis_rows(tr)},
        t.history: history_html(tr),
    }


def on_choose(shared: Shared, force: gr.Textbox, values: dict, row: int):
    """A clicked row → the Chinese to explain ("" for the search's choice: the model's own), translated
    in the same event (`on_row`). An expired trace or a row that is no hypothesis changes nothing."""
    tr = shared.store.get(values[shared.trace_state])
    text = None if tr is None else hypothesis_choice(tr, row)
    return gr.skip() if text is None else {force: text}


def on_row(shared: Shared, force: gr.Textbox, translate, values: dict, evt: gr.SelectData) -> dict:
    """The table's click: the chosen hypothesis becomes the Chinese to explain and is translated
    (`translate`: the page's values → its outputs) in this one event, one round trip instead of two."""
    index = evt.index if isinstance(evt.index, (list, tuple)) else [evt.index]
    chosen = on_choose(shared, force, values, int(index[0]))
    if force not in chosen:
        return {}  # no hypothesis there (or the trace expired): everything stays as it is
    return {**translate({**values, **chosen}), **chosen}


def wire(shared: Shared, t: BeamTab) -> None:
    shared.hooks.append(TranslateHook([], t.outputs, lambda tr, values: on_translated(t, tr)))


def choose(shared: Shared, t: BeamTab, force: gr.Textbox, inputs: list, outputs: list, translate, **event):
    """Wire the table's click (`on_row`) over the page's Translate `inputs` and `outputs`, plus the box."""
    return t.table.select(
        selected(on_row, inputs, shared, force, translate), inputs, [*outputs, force], **event
    )
