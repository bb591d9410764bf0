"""The request policy every tab and endpoint shares: what one request may ask for (caps, beam),
how a refusal is answered, which concurrency group runs it, and the capped model calls.

Every model-running handler goes through `capped_trace`, `capped_internals`, `capped_contributions`,
`capped_ablate` or `capped_importance`, so that each starts from the same translation of the same text.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import threading
from collections.abc import Callable

import gradio as gr

from .ablation import ablate, head_importance
from .contributions import contributions
from .inference import InputError, Trace, trace
from .loading import LoadedModel
from .trace_store import TTL_S

log = logging.getLogger("explorer")

MAX_BEAM = 8
QUEUE_SIZE = 32  # requests waiting beyond this get Gradio's "queue is full" message at once
CONCURRENCY = 2  # translations running at the same time (a 2-core machine)
MODEL_GROUP = "model"  # the one concurrency group of everything that runs the model
VIEW_GROUP = "views"  # re-renders and file writes: no model, but CPU; bounded together too
# What one trace may hold: room for what visitors type (three sentences of 30 words: ~38 NLTK
# words with punctuation, ~45 subword pieces, ~50 Chinese characters), while no response is over
# 2 MB and none takes over ~1 s of CPU (tests/test_public_space.py measures the worst cases).
MAX_WORDS = 40  # NLTK words, punctuation included (not subword pieces)
MAX_CHARS = 1000  # bounds the tick and hover labels of very long "words"
MAX_TARGET_TOKENS = 64  # </s> included; the model's own cap is 2 × source length + 10
# Encoder tokens: one word of junk can be hundreds of subword pieces.
MAX_PIECES = 60
CAPS = dict(
    max_words=MAX_WORDS, max_chars=MAX_CHARS, max_target_tokens=MAX_TARGET_TOKENS, max_pieces=MAX_PIECES
)
# Gradio keeps every session's last output values (here the Plotly JSON) until it evicts the
# session; this many sessions are kept (Gradio's default is 10,000).
SESSION_CAPACITY = 128
MAX_UPLOAD = "1kb"  # no component takes files; Guard refuses the upload routes, this is the fallback
EXPIRED = (
    f"No translation to show: results are kept for {TTL_S // 60} minutes and for the most recent "
    "visitors only. Press Translate again."
)
NOT_YET = "Translate a sentence first."
# Event options: UI events are private (the API is the gr.api endpoints); the model's share one group.
PRIVATE = dict(api_visibility="private")
MODEL_EVENT = dict(PRIVATE, concurrency_id=MODEL_GROUP)
VIEW_EVENT = dict(PRIVATE, concurrency_id=VIEW_GROUP)
# Re-renders of a kept trace that a visitor waits on (the Attention tab's toggles, "Inside a head"'s
# pickers) skip the queue: one POST, no event stream. In the page, a queued event costs ~45 ms more
# (Gradio updates the loading status of every component any event has filled, at each of the stream's
# stages). Such a render never runs the model (one that would hands over to a queued event), and
# RENDERS of them run at a time: the rest wait up to RENDER_WAIT_S, then are refused.
RENDER_EVENT = dict(PRIVATE, queue=False)
RENDERS = 2
RENDER_WAIT_S = 10.0
BUSY = "The explorer is busy: try again in a moment."
_render_slots = threading.BoundedSemaphore(RENDERS)


def check_beam(beam) -> int:
    """The API takes any JSON value: only whole numbers 1..MAX_BEAM (memory grows with the beam)."""
    ok = (
        isinstance(beam, (int, float))
        and not isinstance(beam, bool)
        and float(beam).is_integer()
        and 1 <= beam <= MAX_BEAM
    )
    if not ok:
        raise InputError(f"beam must be a whole number from 1 to {MAX_BEAM}, got {beam!r}")
    return int(beam)


def refusal(where: str, message: str) -> gr.Error:
    """An expected refusal: one log line, no traceback; the client gets the message."""
    log.info("refused %s: %s", where, message.replace("\n", " ")[:200])
    return gr.Error(message, print_exception=False)


def refusing(where: str) -> Callable[[Callable], Callable]:
    """Decorator: an InputError raised by the handler becomes `refusal(where, …)`."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)  # the signature too: gr.api reads an endpoint's parameters from it
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except InputError as e:
                raise refusal(where, str(e)) from None

        return run

    return wrap


def bounded(fn: Callable) -> Callable:
    """A RENDER_EVENT's handler: at most RENDERS run at a time, outside the queue (see RENDER_EVENT)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not _render_slots.acquire(timeout=RENDER_WAIT_S):
            raise refusal("render", BUSY)
        try:
            return fn(*args, **kwargs)
        finally:
            _render_slots.release()

    return run


def md_escape(text: str) -> str:
    """User-derived text (unknown words) as literal Markdown: no markup, no HTML."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", text)


def notices_markdown(tr: Trace) -> str:
    return "\n".join(f"- ⚠️ {md_escape(n)}" for n in tr.notices)


def capped_trace(
    loaded: LoadedModel,
    text,
    beam,
    internals: bool = False,
    force: str | list[str] | None = None,
    hypotheses: bool = False,
) -> Trace:
    """The app's trace: input and output cut to what a response can carry; `force` explains a given
    Chinese translation instead of the model's own; `hypotheses` keeps what beam search weighed."""
    return trace(
        loaded.translator,
        text,
        beam=check_beam(beam),
        model_id=loaded.model_id,
        internals=internals,
        force=force,
        hypotheses=hypotheses,
        **CAPS,
    )


def capped_internals(loaded: LoadedModel, text, beam, force: str | list[str] | None = None) -> Trace:
    """The app's trace with internals: the same caps, so the same translation (or the same given one)."""
    return capped_trace(loaded, text, beam, internals=True, force=force)


def capped_contributions(loaded: LoadedModel, text, beam, force: str | None = None) -> tuple[Trace, dict]:
    """The app's translation of `text` (or the given `force`) traced with internals, under the same caps so
    the same translation, and what the model used in it (explorer/contributions.py): (that trace, its
    contributions)."""
    traced = capped_trace(loaded, text, beam, internals=True, force=force)
    return traced, contributions(traced, loaded.translator)


def capped_ablate(loaded: LoadedModel, text: str, heads, beam) -> dict:
    """`ablate` under the app's caps (so its original translation is the app's trace's); heads are Heads."""
    return ablate(
        loaded.translator, text, [(h.kind, h.layer, h.head) for h in heads], beam=check_beam(beam), **CAPS
    )


def capped_importance(loaded: LoadedModel, text: str, beam, progress=None) -> dict:
    return head_importance(loaded.translator, text, beam=check_beam(beam), progress=progress, **CAPS)
