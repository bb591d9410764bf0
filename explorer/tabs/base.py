"""What every tab is given (`Shared`: the model, the kept traces, the page's shared components),
how a tab fills its outputs in the Translate event itself (`TranslateHook`: one round trip, not one
per tab), and the page's JavaScript, read from explorer/js/ at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from training.kinds import KINDS

from ..inference import Trace
from ..loading import LoadedModel
from ..trace_files import TraceFiles
from ..trace_store import InternalsCache, TraceStore

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def read_js(name: str) -> str:
    """explorer/js/NAME.js without its leading // comment lines (Gradio evaluates the text as one
    expression, so a comment before it would turn `return` into `return;`)."""
    lines = (JS_DIR / f"{name}.js").read_text(encoding="utf-8").splitlines()
    while lines and lines[0].lstrip().startswith("//"):
        lines.pop(0)
    return "\n".join(lines)


@dataclass
class TranslateHook:
    """A tab's part of the Translate event: `fill(trace, inputs)` returns values for `outputs`,
    reading what it needs of `inputs` (Gradio's dict of input values, keyed by component)."""

    inputs: list[gr.components.Component]
    outputs: list[gr.components.Component]
    fill: Callable[[Trace, dict], dict]


@dataclass
class Shared:
    loaded: LoadedModel
    store: TraceStore  # the session's trace, by the key in `trace_state`
    files: TraceFiles  # the Export tab's downloads
    internals: InternalsCache  # traces with internals, for "Inside a head"
    # the input above the tabs, and what a translation fills there
    text: gr.Textbox
    beam: gr.Slider
    translate_btn: gr.Button
    examples: gr.Examples
    client_width: gr.Number  # the attention plot's width in px, set by the browser before each render
    translation: gr.Textbox
    notices: gr.Markdown
    trace_state: gr.State  # the key of the last Trace in `store`; every view re-renders from it
    force: gr.Textbox | None = None  # "Chinese to explain": a given translation instead of the model's own
    # links (explorer/share_link.py): what a visit's URL asked for, and the button that copies the link
    link_notices: gr.Markdown | None = None
    link_tab: gr.Textbox | None = None  # the title of the tab a link opens
    link_step: gr.Number | None = None
    copy_link: gr.Button | None = None
    link_titles: dict[str, str] = field(default_factory=dict)  # tab module name → its title
    hooks: list[TranslateHook] = field(default_factory=list)
    tabs: dict[str, Any] = field(default_factory=dict)  # tab module name → its components (for wiring)


def kind_picker(elem_id: str, names: str = "title") -> gr.Radio:
    """The attention-kind radio both tabs have; `names` is the Kind field that labels the choices."""
    choices = [(getattr(k, names), name) for name, k in KINDS.items()]
    return gr.Radio(choices, value="cross", label="Attention", elem_id=elem_id)


def handler(fn: Callable, inputs: list, *bound) -> Callable:
    """A Gradio handler over `inputs` that calls `fn(*bound, values)`, `values` being
    {component: value}: handlers read their inputs by name, not by position.

    `inputs` stays a list because the browser-side js of an event sees the values in that order (the
    plot's width goes last). The handler keeps fn's name (Gradio names the event after it) but not
    its signature, which Gradio would read to decide what to pass."""

    def run(*values):
        return nothing_is_skip(fn(*bound, dict(zip(inputs, values))))

    run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return run


def nothing_is_skip(out):
    """A handler's {} ("nothing changes") as gr.skip(): Gradio reads an empty dict as the value of one
    output, so an event with several failed with "didn't return enough output values"."""
    return gr.skip() if isinstance(out, dict) and not out else out


def selected(fn: Callable, inputs: list, *bound) -> Callable:
    """`handler` for a select event: calls `fn(*bound, values, evt)`, `evt` the clicked cell's
    gr.SelectData, which Gradio passes to the positional parameter annotated with it (here the first,
    so the inputs can follow as *values)."""

    def run(evt: gr.SelectData, *values):
        return nothing_is_skip(fn(*bound, dict(zip(inputs, values)), evt))

    run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return run
