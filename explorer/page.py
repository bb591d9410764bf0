"""The page: a header, the English input and its translation, then the tabs in `TABS` order, each
built and wired by its own module (explorer/tabs/), then the footer; and the HTTP settings a
public Space needs at launch.

Translate (the button, Enter, an example's click, the first visit) traces the input once, keeps the
Trace in the server's TraceStore under a key that the session's gr.State holds, and fills the
page and every tab that asked to be filled in the same event (`TranslateHook`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from . import api
from .http_guard import REQUIRED, Guard, call_v2_errors
from .inference import InputError
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
from .tabs import attention, compare, export, head, model, positional
from .tabs.base import Shared, handler
from .trace_files import MAX_AGE_S, TraceFiles
from .trace_store import InternalsCache, TraceStore

log = logging.getLogger("explorer")
CSS_DIR = Path(__file__).resolve().parent / "css"

# In page order; a new tab is one more module here.
TABS = (attention, head, compare, positional, model, export)
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
        # The cap is said where the text is typed, so a cut is no surprise.
        text = gr.Textbox(
            value=FIRST_EXAMPLE,
            label="English",
            placeholder="I love you.",
            scale=5,
            min_width=280,
            max_length=20000,
            info=f"Up to {MAX_WORDS} words (punctuation counts); longer input is cut, with a notice.",
            elem_id="source-text",
            autofocus=True,
        )
        with gr.Column(scale=2, min_width=200):
            beam = gr.Slider(
                1, MAX_BEAM, value=translator.decoding.beam, step=1, label="Beam size (1 = greedy)"
            )
            translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
    examples = gr.Examples(EXAMPLES, inputs=text, label="Examples (click one to translate it)")
    translation = gr.Textbox(label="Chinese", interactive=False, elem_id="translation", buttons=["copy"])
    notices = gr.Markdown(elem_id="notices")
    return Shared(
        loaded, store, files, InternalsCache(), text, beam, translate_btn, examples, client_width,
        translation, notices, trace_state,
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
    """Translate: trace the input, keep the Trace, fill the page and every tab's hook from it. A refused
    input only changes the notices: the last good result stays on screen."""
    try:
        tr = capped_trace(shared.loaded, values[shared.text], values[shared.beam])
    except InputError as e:
        log.info("refused translation: %s", e)
        return {shared.notices: f"- {md_escape(str(e))}"}
    out = {
        shared.translation: tr.translation,
        shared.notices: notices_markdown(tr),
        shared.trace_state: shared.store.put(tr),
    }
    for hook in shared.hooks:
        out.update(hook.fill(tr, values))
    return out


def wire_translate(shared: Shared, demo: gr.Blocks) -> None:
    hook_inputs = [c for hook in shared.hooks for c in hook.inputs]
    # The width last (attention.WITH_WIDTH writes it); each component once.
    inputs = list(dict.fromkeys([shared.text, shared.beam, *hook_inputs])) + [shared.client_width]
    outputs = [shared.translation, shared.notices, shared.trace_state]
    outputs += [c for hook in shared.hooks for c in hook.outputs]
    translate = handler(run, inputs, shared)
    event = dict(MODEL_EVENT, js=attention.WITH_WIDTH)
    gr.on([shared.translate_btn.click, shared.text.submit], translate, inputs, outputs, **event)
    shared.examples.load_input_event.then(translate, inputs, outputs, **event)  # a click translates
    demo.load(translate, inputs, outputs, **event)  # the first visit opens on a translated example
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
        for tab in TABS:
            shared.tabs[tab.__name__.rsplit(".", 1)[-1]] = tab.build(shared)
        footer(loaded)
        for tab in TABS:
            tab.wire(shared, shared.tabs[tab.__name__.rsplit(".", 1)[-1]])
        wire_translate(shared, demo)
        api.register(loaded)
    return demo, shared


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
