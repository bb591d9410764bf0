"""The page: a header, the English input and its translation, then the tabs in `TABS` order, each
built and wired by its own module (explorer/tabs/), then the footer; and the HTTP settings a
public Space needs at launch.

Translate (the button, Enter, an example's click, the first visit, a click on a hypothesis in the Beam
search tab) traces the input once, keeps the Trace in the server's TraceStore under a key that the
session's gr.State holds, and fills the page and every tab that asked to be filled in the same event
(`TranslateHook`). The trace lists the hypotheses of the same search (no second search); with Chinese
in "Chinese to explain" it explains that text (teacher-forced) instead of the model's own.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from . import api, share_link
from .http_guard import REQUIRED, Guard, call_v2_errors
from .inference import InputError, Trace
from .loading import LoadedModel
from .policy import (
    CONCURRENCY,
    MAX_BEAM,
    MAX_UPLOAD,
    MAX_WORDS,
    MODEL_EVENT,
    PRIVATE,
    QUEUE_SIZE,
    SESSION_CAPACITY,
    capped_trace,
    md_escape,
    notices_markdown,
)
from .tabs import attention, beam, compare, export, head, model, positional
from .tabs.base import Shared, handler
from .trace_files import MAX_AGE_S, TraceFiles
from .trace_store import InternalsCache, TraceStore

log = logging.getLogger("explorer")
CSS_DIR = Path(__file__).resolve().parent / "css"

# In page order; a new tab is one more module here.
TABS = (attention, head, compare, beam, positional, model, export)
FORCED_NOTICE = (
    "- Explaining the Chinese given under the English (every token teacher-forced), not the model's own "
    "translation: the step chart marks each given token and what the model thought of it. Empty the box "
    "for the model's own."
)
# Translated on the first visit: the time phrase moves before the verb in Chinese, which the
# cross-attention maps show, and greedy and beam agree, so the step-through tells the same story.
FIRST_EXAMPLE = "My brother reads the newspaper every morning."
EXAMPLES = [
    FIRST_EXAMPLE,
    "I love you.",
    "Where is the train station?",
    "It is going to rain tomorrow.",
    "Do you want to drink some tea?",
    "She reads a book every night before she goes to bed.",  # long enough to go wrong: see why
    "I am tired. I want to go home. Where is my coat?",  # three sentences: the maps show their blocks
]


def build_input(loaded: LoadedModel, store: TraceStore, files: TraceFiles) -> Shared:
    """The header, the English box, Translate, the examples and the translation: above every tab."""
    translator = loaded.translator
    gr.Markdown(
        "# English → Chinese attention explorer\n"
        "Type an English sentence, get a Chinese translation from a small Transformer trained from scratch, "
        "and look at every attention map that produced it."
    )
    if loaded.notice:
        gr.Markdown(f"⚠️ {loaded.notice}", elem_id="model-notice")
    trace_state = gr.State(None)
    client_width = gr.Number(None, visible=False)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=280):
            # The cap is said where the text is typed, so a cut is no surprise.
            text = gr.Textbox(
                value=FIRST_EXAMPLE,
                label="English",
                placeholder="I love you.",
                max_length=20000,
                info=f"Up to {MAX_WORDS} words (punctuation counts); longer input is cut, with a notice.",
                elem_id="source-text",
                autofocus=True,
            )
            force = gr.Textbox(
                label="Chinese to explain (leave empty for the model's own)",
                placeholder="我爱你。",
                max_length=2000,
                lines=1,
                info="Emptied when the English changes.",
                elem_id="force-text",
            )
        with gr.Column(scale=2, min_width=200):
            beam = gr.Slider(
                1,
                MAX_BEAM,
                value=translator.decoding.beam,
                step=1,
                label="Beam size (1 = greedy)",
                info="Used by the next Translate.",  # moving it alone changes nothing on screen
                elem_id="beam",
            )
            translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
    # An example fills the English and empties the Chinese to explain (shown: the English only).
    examples = gr.Examples(
        [[e, ""] for e in EXAMPLES], inputs=[text, force], example_labels=EXAMPLES,
        label="Examples (click one to translate it)",
    )  # fmt: skip
    translation = gr.Textbox(label="Chinese", interactive=False, elem_id="translation", buttons=["copy"])
    notices = gr.Markdown(elem_id="notices")
    link_notices = gr.Markdown(elem_id="link-notices")
    copy_link = gr.Button("Copy link to this view", size="sm", elem_id="copy-link")
    link_tab, link_step = gr.Textbox(visible=False), gr.Number(None, visible=False)
    return Shared(
        loaded, store, files, InternalsCache(), text, beam, translate_btn, examples, client_width,
        translation, notices, trace_state, force, link_notices, link_tab, link_step, copy_link,
    )  # fmt: skip


def footer(loaded: LoadedModel) -> None:
    cfg = loaded.translator.model.cfg
    gr.Markdown(
        f"<small>Model: `{loaded.model_id}` · {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, "
        f"{cfg.n_heads} heads, d_model {cfg.d_model} · Training data: sentences from "
        "[Tatoeba](https://tatoeba.org) by the Tatoeba contributors (CC-BY 2.0 FR).</small>",
        elem_id="footer",
    )


def run(shared: Shared, values: dict) -> dict:
    """Translate: trace the input (or explain the given Chinese), keep the Trace, fill the page and every
    tab's hook from it. A refused input only changes the notices: the last good result stays on screen."""
    force = (values.get(shared.force) or "").strip() or None
    shown = _same_search(shared, values) if force else None
    try:
        tr = capped_trace(
            shared.loaded, values[shared.text], values[shared.beam], force=force, hypotheses=shown is None
        )
    except InputError as e:
        log.info("refused translation: %s", e)
        return {shared.notices: f"- {md_escape(str(e))}"}
    if shown is not None:
        tr = dataclasses.replace(
            tr, hypotheses=copy.deepcopy(shown.hypotheses), beam_history=shown.beam_history
        )
    filled = {}
    for hook in shared.hooks:
        filled.update(hook.fill(tr, values))
    # Kept once the hooks ran: what they added to the trace (contributions) counts in the store's bytes.
    return {
        shared.translation: tr.translation,
        shared.notices: "\n".join(filter(None, [FORCED_NOTICE if tr.forced else "", notices_markdown(tr)])),
        shared.trace_state: shared.store.put(tr),
        **filled,
    }


def _same_search(shared: Shared, values: dict) -> Trace | None:
    """The trace on screen, if it is of the same input and beam: beam search depends on nothing else,
    so explaining a given Chinese beside it (a hypothesis chosen in the Beam search tab) reuses its
    hypotheses instead of searching again."""
    shown = shared.store.get(values.get(shared.trace_state))
    if shown is None or shown.hypotheses is None or shown.ablated_heads or shown.text != values[shared.text]:
        return None
    return shown if shown.decoding.get("beam") == values[shared.beam] else None


def wire_translate(shared: Shared, demo: gr.Blocks) -> None:
    hook_inputs = [c for hook in shared.hooks for c in hook.inputs]
    # The width last (attention.WITH_WIDTH writes it); each component once.
    force = shared.force
    inputs = list(dict.fromkeys([shared.text, shared.beam, force, shared.trace_state, *hook_inputs]))
    inputs.append(shared.client_width)
    outputs = [shared.translation, shared.notices, shared.trace_state]
    outputs += [c for hook in shared.hooks for c in hook.outputs]
    translate = handler(run, inputs, shared)
    event = dict(MODEL_EVENT, js=attention.WITH_WIDTH)
    gr.on([shared.translate_btn.click, shared.text.submit], translate, inputs, outputs, **event)
    # New English empties the Chinese to explain, which explained the old sentence: typed (here, in the
    # browser), or an example's click (each example's Chinese is empty: build_input).
    shared.text.input(None, None, force, js="() => ''", **PRIVATE)
    shared.examples.load_input_event.then(translate, inputs, outputs, **event)  # a click translates
    # A hypothesis clicked in the Beam search tab becomes the Chinese to explain, then translated.
    beam.choose(
        shared, shared.tabs["beam"], force, inputs, outputs, lambda values: run(shared, values), **event
    )
    # The first visit: what its link asks for (if anything), translated; else the first example.
    share_link.wire(shared, demo, translate, inputs, outputs, event)
    demo.load(None, js=head.INSTALL_CLICKS_JS, **PRIVATE)  # a click on a map opens "Inside a head"


def build(
    loaded: LoadedModel, store: TraceStore | None = None, files: TraceFiles | None = None
) -> tuple[gr.Blocks, Shared]:
    """The page and what its tabs share (the tests reach components and handlers through it)."""
    store = store if store is not None else TraceStore()
    files = files if files is not None else TraceFiles()
    # delete_cache: Gradio's sweep of its cache folder, where the trace files are (and removal at shutdown).
    with gr.Blocks(
        title="Attention explorer · English → Chinese", delete_cache=(MAX_AGE_S, MAX_AGE_S)
    ) as demo:
        shared = build_input(loaded, store, files)
        # Consecutive tabs make one bar (an explicit gr.Tabs, or its overflow_behavior="wrap", renders the
        # selected tab twice in Gradio 6.31); explorer/css/tabs.css shows the names a phone hides behind "⋯".
        for tab in TABS:
            name = tab.__name__.rsplit(".", 1)[-1]
            shared.tabs[name], shared.link_titles[name] = tab.build(shared), tab.TITLE
        footer(loaded)
        for tab in TABS:
            tab.wire(shared, shared.tabs[tab.__name__.rsplit(".", 1)[-1]])
        wire_translate(shared, demo)
        api.register(loaded)
        narrow_progress(demo, gr.Textbox(visible="hidden", elem_id="progress-sink"))
    return demo, shared


def narrow_progress(demo: gr.Blocks, sink: gr.Textbox) -> None:
    """Each event reports its progress only on the outputs a visitor watches: its plots, text boxes, tables
    and downloads shown from the start. An event with hidden progress, or with none of those, reports on
    `sink`, a hidden component.

    At every stage of every event, Gradio's page updates the loading status of each component any
    event ever reported on (every output, by default: ~50 here, several ms a pass). And an output an
    event hides while pending (visible=False) leaves its status tracker's frame loop running for good,
    so no plot that can be hidden (one not shown from the start) is ever a progress target. An event
    wired with its own `show_progress_on` keeps it."""
    for fn in demo.fns.values():
        if fn.show_progress_on:
            continue
        shown = (
            [c for c in fn.outputs if c.visible is True and watched(c)]
            if fn.show_progress != "hidden"
            else []
        )
        fn.show_progress_on = shown or [sink]


def watched(component) -> bool:
    """A live plot, a text box, a table or a download: where a wait shows."""
    if isinstance(component, gr.HTML):
        return "live-plot-block" in (component.elem_classes or [])
    return isinstance(component, (gr.Textbox, gr.Dataframe, gr.File, gr.DownloadButton))


def build_demo(
    loaded: LoadedModel,
    queue_size: int = QUEUE_SIZE,
    concurrency: int = CONCURRENCY,
    store: TraceStore | None = None,
    files: TraceFiles | None = None,
) -> gr.Blocks:
    demo, _ = build(loaded, store, files)
    # CONCURRENCY bounds each concurrency group: MODEL_GROUP as a whole, VIEW_GROUP, and the specials note.
    # api_open=False: /run and /api refuse queued events, so every model call waits in the bounded queue.
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency, api_open=False)
    return demo


def page_css() -> str:
    """The page's style sheets, explorer/css/*.css, in name order."""
    return "\n".join(f.read_text(encoding="utf-8") for f in sorted(CSS_DIR.glob("*.css")))


def launch_options(loaded: LoadedModel) -> dict[str, Any]:
    """`demo.launch(**launch_options(loaded), ...)`: the HTTP rules of a public Space."""
    return dict(
        app_kwargs={
            "middleware": [
                Middleware(Guard, api_defaults=api.api_defaults(loaded.translator.decoding.beam, REQUIRED))
            ],
            "exception_handlers": call_v2_errors(),
        },
        max_file_size=MAX_UPLOAD,
        state_session_capacity=SESSION_CAPACITY,
        mcp_server=False,  # an MCP route would be one more way in to the model
        css=page_css(),
    )
