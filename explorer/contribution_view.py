"""What the Attention tab shows besides attention weights, and the words around it: attention × value
norm, ALTI+ and rollout (computed by explorer/contributions.py and kept in `Trace.contributions`),
drawn in the attention maps' layout; ALTI+'s source-versus-target split per output token; the
captions, and how far each method can be trusted (the weights folder's faithfulness.json). No Gradio.

Rows, columns, pooling, hidden specials, separators and the step highlight are `views.select`'s,
applied to the contribution arrays instead of the weights: one rule for every view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from .contribution_figures import contribution_figure, share_figure
from .figures import NARROW
from .inference import Trace
from .views import View, attention_view, decoder_row_labels, decoder_rows, select, shown

WEIGHTS, VALUE_NORM, ALTI, ROLLOUT = "weights", "value_norm", "alti", "rollout"


@dataclass(frozen=True)
class Method:
    label: str  # the picker's choice
    short: str  # in figure titles
    explanation: str  # one sentence in plain words
    paper: str  # Markdown: authors, year, linked title
    one_matrix: (
        bool  # one matrix from all layers and heads: Layer, Heads and "Open one map large" do not apply
    )
    colour: str = "weight"  # the colour bar's title
    hover: str = "weight: %{z:.4f}"


METHODS = {
    WEIGHTS: Method(
        "attention weights",
        "Attention weights",
        "How strongly each query looks at each key: the softmax weights themselves, one map per layer and head.",
        "Vaswani et al. 2017, [Attention is all you need](https://arxiv.org/abs/1706.03762)",
        False,
    ),
    VALUE_NORM: Method(
        "attention × value norm",
        "Attention × value norm",
        "The weight times the length of what the key actually passes on (its value vector after the "
        "output projection): a key can get much attention and still add little.",
        "Kobayashi et al. 2020, [Attention is not only a weight](https://aclanthology.org/2020.emnlp-main.574/)",
        False,
        colour="‖α·W_O v‖",
        hover="‖α·W_O v‖: %{z:.3f}",
    ),
    ALTI: Method(
        "ALTI+",
        "ALTI+",
        "Follows every layer's mixing, residual connections included, back to the input tokens, so that each "
        "output gets one share per English token and per Chinese token already written.",
        "Ferrando et al. 2022, [Towards opening the black box of NMT: source and target interpretations of "
        "the Transformer](https://aclanthology.org/2022.emnlp-main.599/)",
        True,
        colour="share",
        hover="share: %{z:.4f}",
    ),
    ROLLOUT: Method(
        "rollout",
        "Attention rollout",
        "Multiplies the head-averaged attention weights of every layer, each mixed half and half with the "
        "residual connection, to trace attention back to the input tokens.",
        "Abnar & Zuidema 2020, [Quantifying attention flow in transformers](https://aclanthology.org/2020.acl-main.385/)",
        True,
        colour="share",
        hover="share: %{z:.4f}",
    ),
}
CHOICES = [(m.label, name) for name, m in METHODS.items()]
# The view kind → contributions' own names: value norms per attention kind, and the rolled-out matrix.
VALUE_KIND = {"encoder": "encoder_self", "decoder": "decoder_self", "cross": "cross"}
MATRIX = {"encoder": "encoder", "cross": "source", "decoder": "target"}
ONE_MATRIX_TITLE = {
    "encoder": "each encoder output from each English token",
    "cross": "each decoder row from each English token",
    "decoder": "each decoder row from each Chinese token already written",
}
MISSING = (
    "⚠️ The contributions of this translation are not computed yet, so attention weights are shown: "
    "pick the method again."
)


def method_of(name: str | None) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {list(METHODS)}")
    return METHODS[name]


def contribution_maps(trace: Trace, kind: str, method: str) -> np.ndarray:
    """The array `select` slices for this kind and method, (L, H, Tq, Tk): value norms per layer and head,
    or the one rolled-out matrix as (1, 1, Tq, Tk). Needs `trace.contributions`."""
    c = trace.contributions
    if c is None:
        raise ValueError("this trace's contributions are not computed")
    if method == VALUE_NORM:
        return np.asarray(c["value_norm"][VALUE_KIND[kind]])
    return np.asarray(c[method][MATRIX[kind]])[None, None]


def contribution_select(trace: Trace, view: View, method: str) -> dict:
    """`select`'s figure arguments, with the chosen method's array in place of the weights."""
    m = method_of(method)
    maps = contribution_maps(trace, view.kind, method)
    if m.one_matrix:  # Layer, Heads and averaging do not apply to one matrix from the whole model
        view = View(**{**vars(view), "layer": 0, "heads": [0], "average": False})
    sel = select(trace, view, maps)
    if m.one_matrix:
        layers = trace.n_decoder_layers if view.kind != "encoder" else trace.n_encoder_layers
        sel.update(
            title=f"{m.short} · {ONE_MATRIX_TITLE[view.kind]}, through all {layers} layers and every head "
            "(Layer and Heads do not apply)",
            row_titles=[f"all {layers} layers · every head"],
            col_titles=[],
            forced_rows=None,  # a contribution is not 1 by construction where attention had one key
        )
    else:
        sel["title"] = f"{m.short} · {sel['title']}"
    return sel


def method_view(trace: Trace, view: View, method: str) -> go.Figure:
    """The maps of `method` in the attention maps' layout (attention weights: exactly `attention_view`)."""
    if method == WEIGHTS:
        return attention_view(trace, view)
    m = method_of(method)
    sel = contribution_select(trace, view, method)
    # Value norms are lengths, not shares: a shared scale runs from 0 to the largest value shown.
    zmax = None
    if method == VALUE_NORM and sel["shared_scale"]:
        w = sel["weights"] if sel["masked"] is None else np.where(sel["masked"], 0.0, sel["weights"])
        zmax = max(float(w.max()) if w.size else 0.0, 1e-9)
    # A phone's flat colour bar shares its line with the title: a long one would squeeze the bar to nothing.
    colour = "norm" if view.width is not None and view.width < NARROW and method == VALUE_NORM else m.colour
    return contribution_figure(shown(sel), colour=colour, hover=m.hover, zmax=zmax)


def shares(trace: Trace, show_special: bool = True) -> dict:
    """ALTI+'s split of each decoder row shown: {rows, labels, source (n,), target (n,)}; source + target = 1
    (each row's contributions over the English tokens and over the Chinese already written)."""
    alti = trace.contributions["alti"]
    rows = decoder_rows(trace, show_special)
    labels = decoder_row_labels(trace)
    return dict(
        rows=rows,
        labels=[labels[i] for i in rows],
        source=np.asarray(alti["source"])[rows].sum(-1),
        target=np.asarray(alti["target"])[rows].sum(-1),
    )


def share_view(trace: Trace, show_special: bool = True, step: int | None = None) -> go.Figure:
    s = shares(trace, show_special)
    highlight = s["rows"].index(step) if step in s["rows"] else None
    return share_figure(s["labels"], s["source"], s["target"], highlight=highlight)


# ---- words: the captions, and how far each method can be trusted ---------------------------------------

WEIGHTS_CAPTION = (
    "Rows are queries, columns are keys; each row sums to 1. Decoder row *t* reads the token on the "
    "left of the arrow and predicts the one on its right. Grey cells in the decoder self-attention are "
    "the masked future (not a learned zero). Hover a cell for the exact weight."
)
SUBWORDS_CAPTION = (
    " English words are read as subword pieces; a word's first piece carries SentencePiece's "
    "word-start mark, shown as ␣ (`␣s es qu ip ed al ian`), so a piece without it continues the word before. "
    "*Whole words* pools the pieces back: a key's weight is summed over its pieces, an "
    "English query row averaged over them, so every row still sums to 1."
)


def maps_caption(method: str, kind: str, subwords: bool, n_layers: int = 3) -> str:
    """The text under the maps: what a cell is, what a row sums to, what the colours mean."""
    if method == WEIGHTS:
        return WEIGHTS_CAPTION + (SUBWORDS_CAPTION if subwords else "")
    pieces = (
        " With *Whole words*, a key's value is summed over its pieces and an English query row averaged."
        if subwords
        else ""
    )
    if method == VALUE_NORM:
        return (
            "Each cell is a weight times the length of the value vector that key passes on through that head "
            "(after the output projection W_O): how much the key actually adds to the query's output. These "
            "are lengths, not shares: rows do not sum to 1, and the colours run from 0 (white) to the largest "
            "value shown, which the colour bar gives (with *Scale each map to its own maximum*, each map's "
            "own largest, in its title). *Average* averages the selected heads' values. Grey cells in the "
            "decoder self-attention are the masked future. Hover a cell for the exact value." + pieces
        )
    kind_rows = {
        "encoder": "Each row sums to 1 over the English tokens.",
        "cross": "A decoder row sums to its share from the English; the rest comes from the Chinese "
        "already written (the *Decoder self-attention* choice shows it).",
        "decoder": "A decoder row sums to its share from the Chinese already written; the rest comes "
        "from the English (the *Cross-attention* choice shows it).",
    }[kind]
    common = (
        f"One map from all {n_layers} layers and every head, so *Layer*, *Heads*, *Selected heads as* and "
        "*Open one map large* do not apply. Rows are the positions explained, columns the input tokens. "
        f"{kind_rows} The colours run from 0 to 1 (or to the map's largest value, in its title, with *Scale "
        "each map to its own maximum*). Hover a cell for the exact share." + pieces
    )
    if method == ALTI:
        return (
            "Each cell is the share of that row's representation that ALTI+ traces back to that input token, "
            "through every layer's attention and residual connections. " + common
        )
    fixed = (
        ""
        if kind == "encoder"
        else f" Rollout's split between the English and the Chinese already written is fixed by its "
        f"construction (each decoder row takes 1 − 1/{2**n_layers} = {1 - 2.0**-n_layers:.3f} from the "
        "English), so only the pattern within a row says something about the model."
    )
    pale = (
        " That is why this map is pale: tick *Scale each map to its own maximum* to see its pattern."
        if kind == "decoder"
        else ""
    )
    return (
        "Each cell is attention rollout: the head-averaged weights of every layer, each half kept for the "
        "residual connection, multiplied through the model. " + common + fixed + pale
    )


def method_note(method: str) -> str:
    """Beside the picker: the chosen method in one sentence, and its paper."""
    m = method_of(method)
    return f"**{m.short}**: {m.explanation} ({m.paper})"


NO_FAITHFULNESS = (
    "**How far to trust each view**: these weights ship no faithfulness figures. "
    "`python -m explorer faithfulness --data DEV.tsv --limit 200` measures them (hiding each English token "
    "in turn and what it costs the translation); `python -m training export --dev DEV.tsv` ships them "
    "with the weights as faithfulness.json."
)
# faithfulness.json's methods, in the order the sentence names them
FAITHFULNESS_NAMES = {
    "alti": "ALTI+",
    "cross_last": "last-layer attention",
    "value_norm": "value norm",
    "rollout": "rollout",
    "random": "a random token",
}


def faithfulness_note(faith: dict | None) -> str:
    """The weights folder's faithfulness figures in one sentence, or how to make them."""
    methods = (faith or {}).get("methods") or {}
    named = [
        (label, methods[key]["top1_drop"])
        for key, label in FAITHFULNESS_NAMES.items()
        if isinstance(methods.get(key), dict) and isinstance(methods[key].get("top1_drop"), (int, float))
    ]
    if not named:
        return NO_FAITHFULNESS
    figures = ", ".join(f"{label} {drop:.2f}" for label, drop in named)
    best = (faith.get("reference") or {}).get("best_top1_drop")
    ceiling = f" (the costliest token each time: {best:.2f})" if isinstance(best, (int, float)) else ""
    data = f" of {faith['data']}" if isinstance(faith.get("data"), str) else ""
    return (
        f"**How far to trust each view**: on {faith['sentences']} sentences{data}, hiding from every "
        "cross-attention the English token a view ranks first costs the output token this many nats of "
        f"log-probability on average: {figures}{ceiling}. Higher means the view points at what the "
        "translation really used. (faithfulness.json of these weights)"
    )


def one_matrix(method: str) -> bool:
    return method_of(method).one_matrix
