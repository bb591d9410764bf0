"""Links that restore a view, wired to the page: a visit with URL parameters (explorer/links.py
names them) sets the controls, translates and opens the tab and step it names; every change of a linked
control, and every tab chosen, writes the address bar (in the browser, no server call); "Copy link" copies it."""

from __future__ import annotations

import json

import gradio as gr

from .links import Limits, parse_link
from .policy import MAX_BEAM, MAX_CHARS, PRIVATE, md_escape
from .tabs.base import Shared, read_js

# URL name → (tab module, component attribute) of every linked control; the sentence and beam are
# the page's own. Order matters: link_write.js receives the values in this order.
LINKED = (
    ("kind", "attention", "kind"),
    ("layer", "attention", "layer"),
    ("heads", "attention", "heads"),
    ("avg", "attention", "average"),
    ("words", "attention", "words"),
    ("specials", "attention", "show_special"),
    ("show", "attention", "method"),
    ("step", "attention", "step"),
    ("hkind", "head", "kind"),
    ("hlayer", "head", "layer"),
    ("hhead", "head", "head"),
    ("hquery", "head", "query"),
)


def limits(shared: Shared) -> Limits:
    cfg = shared.loaded.translator.model.cfg
    method = shared.tabs["attention"].method
    return Limits(
        layers=max(cfg.n_encoder_layers, cfg.n_decoder_layers),
        heads=cfg.n_heads,
        max_beam=MAX_BEAM,
        max_chars=MAX_CHARS,
        tabs=tuple(name for name in shared.tabs if name != "force"),
        shows=tuple(value for _, value in method.choices),
    )


def linked(shared: Shared) -> list[gr.components.Component]:
    return [getattr(shared.tabs[tab], attr) for _, tab, attr in LINKED]


def restore(shared: Shared, params: dict[str, str]) -> dict:
    """The controls a link sets (the rest keep their defaults), the tab to open, and its notices."""
    link = parse_link(params, limits(shared))
    a, h = shared.tabs["attention"], shared.tabs["head"]
    values = {
        shared.text: link.s,
        shared.beam: link.beam,
        a.kind: link.kind,
        a.layer: link.layer,
        a.heads: link.heads,
        a.average: None if link.average is None else ("average" if link.average else "grid"),
        a.words: link.words,
        a.show_special: link.show_special,
        a.method: link.show,
        h.kind: link.hkind,
        h.layer: link.hlayer,
        h.head: link.hhead,
        h.query: link.hquery,
    }
    out = {c: v for c, v in values.items() if v is not None}
    out[shared.link_tab] = shared.link_titles.get(link.tab, "") if link.tab else ""
    out[shared.link_step] = link.step
    out[shared.link_notices] = "\n".join(f"- ⚠️ {md_escape(n)}" for n in link.notices)  # names are the URL's
    return out


def wire(shared: Shared, demo: gr.Blocks, translate, inputs: list, outputs: list, event: dict) -> None:
    """Replace the first visit's plain Translate: restore the link, translate, then open its tab and step."""
    a = shared.tabs["attention"]
    controls = [c for (name, _, _), c in zip(LINKED, linked(shared)) if name != "step"]  # step: after
    restored = [shared.text, shared.beam, *controls, shared.link_tab, shared.link_step, shared.link_notices]

    query = shared.tabs["head"].query

    def on_visit(request: gr.Request):
        params = dict(request.query_params) if request is not None else {}
        out = restore(shared, params)
        if query in out:  # the menu lists this trace's rows only once the tab draws: till then, the one row
            row = out[query]  # (so that the tab's first event accepts it; the tab clamps it to the sentence)
            out[query] = gr.update(choices=[(f"query {row + 1}", row)], value=row)
        return [out.get(c, gr.skip()) for c in restored]

    def to_step(step):  # the slider spans the new translation by now: a step past its end is its last
        return gr.skip() if not step else gr.update(value=int(step))

    demo.load(on_visit, None, restored, **PRIVATE).then(translate, inputs, outputs, **event).then(
        to_step, shared.link_step, a.step, **PRIVATE
    ).then(None, shared.link_tab, None, js=read_js("link_open_tab"), **PRIVATE)
    names = [name for name, _, _ in LINKED]
    tabs = json.dumps({title: name for name, title in shared.link_titles.items()}, ensure_ascii=False)
    write = (
        read_js("link_write")
        .replace("__NAMES__", json.dumps(["s", "beam", *names]))
        .replace("__TABS__", tabs)
    )
    demo.load(None, js=read_js("plot_urls"), **PRIVATE)  # the plots' colour bars follow the address bar
    demo.load(None, js=read_js("link_tabs").replace("__TABS__", tabs), **PRIVATE)  # a tab chosen: its link
    watched = [shared.text, shared.beam, *linked(shared)]
    triggers = [c.change for c in watched[1:]] + [shared.translate_btn.click]
    gr.on(triggers, None, watched, None, js=write, **PRIVATE)
    shared.copy_link.click(None, js=read_js("copy_link"), **PRIVATE)
