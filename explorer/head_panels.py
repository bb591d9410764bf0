"""What each section of the "Inside a head" tab shows, as captions and figures: a Trace with
internals (and the model, for W_O and layer 1's terms) in, Markdown and go.Figure out. No Gradio here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from training.files import HEAD_STATS_FILE
from training.head_stats import STATS
from training.kinds import KINDS

from .content_position import TERMS, first_layer_terms
from .head_figures import (
    head_grid_figure,
    keys_values_figure,
    label_step,
    scores_figure,
    strips_figure,
    terms_figure,
    values_figure,
)
from .head_view import (
    STAT_LABELS,
    QuerySteps,
    causal_mask,
    corpus_arrays,
    first_layer_scores,
    key_labels,
    maps_of,
    query_labels,
    query_steps,
    sentence_head_stats,
    stats_table,
)
from .heads import Head
from .inference import Trace

SENTENCE, CORPUS = "this sentence", "corpus"
NOT_YET = "Translate a sentence, then click a row of the attention map (or pick a query here)."
TAB_INTRO = (
    "How one attention weight is computed, top to bottom in the order of the computation, with the "
    "model's own numbers. **Click a row of the attention map** (Attention tab) or pick a query here; "
    "hover any strip or bar for exact values. Strips: red positive, blue negative, white 0."
)
ABLATE_INTRO = (
    "### Switch heads off\nA switched-off head's slice of the concatenation is set to 0 before W_O. "
    "The sentence is translated again, and the original translation is scored with the heads off: "
    "Δ log p per output token (blue, negative: those heads helped predict it; red: they hindered it)."
)
IMPORTANCE_INTRO = (
    "### Which heads matter for this sentence\nFor each head alone: how much the translation's total "
    "log-probability drops when it is switched off. Click a cell to select that head."
)
STEP_CAPTIONS = {
    "q": "### ① The query\nh = the sublayer's input at this position, normalized (LN(x) in a pre-norm layer); "
    "q = W_q·h + b_q, split into heads: this head's d_head values.",
    "scores": "### ② Scores → softmax → weights\nscore_j = q·k_j for each key k_j = W_k·h_j + b_k (in "
    "cross-attention h_j is the encoder's output), divided by √d_head; keys the query may not see get −∞ "
    '("masked"); softmax turns the scores into weights that sum to 1.',
    "values": "### ③ The weighted sum of values\nEach key's value v_j = W_v·h_j + b_v is scaled by its weight; "
    "their sum is this head's output for the query.",
    "out": "The heads' outputs are concatenated (this head's slice outlined), multiplied by W_O (plus b_O) and "
    "added to the residual stream.",
}
TERMS_INTRO = (
    "### Content versus position (layer 1)\nLayer 1 reads token embedding·√d + positional encoding. "
    "LayerNorm is linear once its mean and σ are fixed, so the scaled scores split exactly into five terms: "
    + "; ".join(f"**{name}** ({what})" for name, what in TERMS.items())
    + "."
)
STATS_INTRO = (
    "### What each head does\nPer head, a mean over its rows: "
    + "; ".join(f"**{html.escape(STAT_LABELS[s])}**: {html.escape(d)}" for s, d in STATS.items())
    + ". Click a cell or a table row to select that head."
)
POSITIONAL = (
    "distance",
    "same",
    "previous",
)  # not defined for cross-attention: its keys are another sentence
NOT_DEFINED = "not defined for cross-attention: its keys are the other sentence's positions"


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

    def as_int(v, default: int) -> int:
        text = str(v).strip()
        return int(text) if text.isdigit() and len(text) < 10 else default

    return Head(
        kind,
        min(max(as_int(layer, 1) - 1, 0), maps.shape[0] - 1),
        min(max(as_int(head, 1) - 1, 0), maps.shape[1] - 1),
        min(max(as_int(query, 0), 0), maps.shape[2] - 1),
    )


def attention_module(model, sel: Head):
    if sel.kind == "encoder":
        return model.encoder[sel.layer].self_attn
    layer = model.decoder[sel.layer]
    return layer.self_attn if sel.kind == "decoder" else layer.cross_attn


STEPS = ("q", "scores", "values")  # the steps always shown: ①–③
FOLDS = {"kv": ("kv",), "out": ("out", "out_note")}  # a fold's panels: computed only while it is open
FOLD_TITLES = {"kv": "The keys k_j and values v_j in full", "out": "④ Heads → W_O → residual stream"}
PANELS = (*STEPS, "scores_note", "summary", *FOLDS["kv"], *FOLDS["out"])


def step_figures(
    steps: QuerySteps, model, width: int | None = None, panels: Sequence[str] | None = None
) -> dict[str, Any]:
    """The steps of one query of one head: a figure each, the captions that carry measured numbers, and
    a one-line summary of every check (the folded sections hold the detail). panels: the names of the
    figures and captions wanted (default: all, PANELS)."""
    wanted = set(PANELS if panels is None else panels)
    width = int(width) if isinstance(width, (int, float)) and 200 <= width <= 10000 else None
    attn = attention_module(model, steps.sel)
    w_o, b_o = (p.detach().double().cpu().numpy() for p in (attn.out_proj.weight, attn.out_proj.bias))
    wo_diff, residual = steps.wo_diff(w_o, b_o), steps.residual_diff
    worst_out = max(wo_diff, residual or 0.0)
    out: dict[str, Any] = {}
    if "summary" in wanted:
        out["summary"] = (
            "✓ Every number in ①–③ comes from the model's own q, k and v: these weights, recomputed from q and "
            f"k, match the attention map's row to **{steps.row_diff:.1e}**, and Σ weight·v matches the head's "
            f"output to **{steps.output_diff:.1e}**; W_O and the residual add match the captured stream to "
            f"**{worst_out:.1e}**."
        )
    if "scores_note" in wanted:
        out["scores_note"] = scores_note(steps, width)
    if "out_note" in wanted:
        out["out_note"] = (
            f"{STEP_CAPTIONS['out']} Concat·W_Oᵀ + b_O vs the captured output: max |diff| = **{wo_diff:.1e}**. "
            + (
                f"stream_in + attn_out vs the stream after the sublayer: max |diff| = **{residual:.1e}**."
                if residual is not None
                else "This post-norm layer normalizes stream_in + attn_out: LN(stream_in + attn_out) is the stream after it."
            )
        )
    figures = {
        "q": lambda: strips_figure(
            [("h = normalized input", steps.h), ("q = W_q·h + b_q (this head)", steps.q)], width=width
        ),
        "scores": lambda: scores_figure(
            steps.keys, steps.raw, steps.scaled, steps.weights, steps.masked, len(steps.q), width
        ),
        "kv": lambda: keys_values_figure(steps.keys, steps.k, steps.v, width),
        "values": lambda: values_figure(
            steps.keys, steps.v, steps.weights, steps.output, steps.masked, width
        ),
        "out": lambda: strips_figure(
            [
                ("Concat(head outputs)", steps.concat),
                ("attn_out = Concat·W_Oᵀ + b_O", steps.attn_out),
                ("stream_in (residual stream before)", steps.stream_in),
                ("stream_out (after the add)", steps.stream_out),
            ],
            highlight={"Concat(head outputs)": steps.head_slice},
            width=width,
        ),
    }
    out.update({name: make() for name, make in figures.items() if name in wanted})
    return out


PLOT_STEMS = {"q": "query", "scores": "scores", "values": "values", "kv": "keys-values", "out": "residual"}


def step_panels(tr: Trace, sel: Head, model, width, panels: Sequence[str]) -> dict[str, Any]:
    """`step_figures` of `sel` on `tr`: captions as Markdown, figures as (figure, file stem, what it shows)."""
    steps = query_steps(tr, sel, pre_norm=model.cfg.pre_norm)
    stem = f"head-{sel.kind}-{sel.layer + 1}-{sel.head + 1}-q{sel.query + 1}-"
    tag = selection_text(tr, sel)
    return {
        name: (v, stem + PLOT_STEMS[name], tag) if name in PLOT_STEMS else v
        for name, v in step_figures(steps, model, width, panels).items()
    }


def fold_panels(folds) -> list[str]:
    """The panels of the open folds (FOLDS' names; others ignored)."""
    return [p for fold in folds or () for p in FOLDS.get(fold, ())]


def shown_of(sel: Head) -> dict:
    """What the steps show, as the tab keeps it (with the trace's key) to send only what changes."""
    return {"kind": sel.kind, "layer": sel.layer, "head": sel.head, "query": sel.query}


def ablate_note(names: str, result: dict) -> str:
    """What switching `names` off did to the translation `result` (capped_ablate's) says, in a line."""
    same = result["ablated_translation"] == result["translation"]
    return (
        f"Switched off: {names}. "
        + ("The translation did not change. " if same else "The translation changed. ")
        + f"Total Δ log p of the original translation: **{sum(result['delta_logprob']):+.3f}**. "
        "Below, Δ log p per output token."
    )


def now_text(sel: Head) -> str:
    """The line beside a map that chose a head."""
    return f"Now showing **{sel.name}**, query {sel.query + 1}, in the steps at the top of this tab."


def scores_note(steps: QuerySteps, width: int | None) -> str:
    """The line under ②'s heading: how many keys are masked and visible, and how the key axis is labelled."""
    n_open, n_shut = int((~steps.masked).sum()), int(steps.masked.sum())
    step = label_step(steps.keys, width)
    thinned = (
        f" {len(steps.keys)} keys: every {ordinal(step)} is labelled (hover a bar for its key)."
        if step > 1
        else ""
    )
    pieces = (
        " ␣ marks a piece that starts a word (SentencePiece's ▁)."
        if any(str(k).startswith("▁") for k in steps.keys)
        else ""
    )
    return (
        f"{n_shut} keys are masked (the future): −∞, weight exactly 0. " if n_shut else ""
    ) + f"{n_open} keys are visible.{thinned}{pieces}"


def ordinal(n: int) -> str:
    return {1: "", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def selection_text(tr: Trace, sel: Head, escape=str) -> str:
    """What the steps show, in one line: "cross-attention · layer 3 · head 2 · query 1: “<s> → 她”"."""
    query = query_labels(tr, sel.kind)[sel.query]
    where = f"{KINDS[sel.kind].label} · layer {sel.layer + 1} · head {sel.head + 1} · query {sel.query + 1}"
    return f"{where}: “{escape(query)}”"


def selection_title(tr: Trace, sel: Head) -> str:
    """The one line, at the top of the steps, that names what they show (Markdown)."""
    return "#### " + selection_text(tr, sel, md_text)


def md_text(text: str) -> str:
    """User text inside Markdown, shown literally."""
    return re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", html.escape(str(text), quote=False))


def terms_panel(translator, tr: Trace, sel: Head, cache: dict[str, dict]) -> tuple[str, go.Figure | None]:
    """Layer 1's scores split into content and position terms: (caption, figure or None).

    `cache` keeps each side's terms (kind → first_layer_terms), which depend on the trace only."""
    if sel.kind == "cross":
        return (
            "Cross-attention's keys are the encoder's output, not embeddings, so its scores do not split this "
            "way. **To see the split, pick *encoder self-attention* or *decoder self-attention* under "
            "Attention at the top of this tab** (it is shown for layer 1's heads, whichever layer is picked).",
            None,
        )
    if sel.kind not in cache:
        ids = (
            translator.src_vocab.encode(tr.source_tokens)
            if sel.kind == "encoder"
            else translator.tgt_vocab.encode(tr.target_tokens)
        )
        cache[sel.kind] = first_layer_terms(translator.model, ids, sel.kind)
    terms = {name: t[sel.head] for name, t in cache[sel.kind].items()}
    scores = first_layer_scores(tr, sel.kind, sel.head)
    masked = causal_mask(len(scores)) if sel.kind == "decoder" else None
    diff = np.abs(sum(terms.values()) - scores)
    if masked is not None:
        diff = diff[~masked]
    label = KINDS[sel.kind].label
    caption = (
        f"{label}, layer 1, head {sel.head + 1}: the five terms add up to the captured "
        f"scores q·k/√d to within **{float(diff.max()):.1e}**."
        + (" Grey: the masked future." if masked is not None else "")
    )
    fig = terms_figure(terms, scores, key_labels(tr, sel.kind), query_labels(tr, sel.kind), masked)
    return caption, fig


def corpus_note(corpus: dict | None) -> str:
    if corpus is None:
        return (
            f"This weights folder has no `{HEAD_STATS_FILE}`, so only this sentence's figures are shown "
            "(`training export --dev` writes it; so does `python -m explorer head-stats --data DEV.tsv`)."
        )
    return f"Corpus: the {corpus.get('sentences', '?'):,} sentences of `{corpus.get('data', '?')}` (from `{HEAD_STATS_FILE}`)."


def stats_view(tr: Trace | None, corpus: dict | None, source: str, stat: str) -> tuple[Any, go.Figure, str]:
    """(table rows as a DataFrame, sorted by `stat`, largest first; the layers × heads maps of `stat`; a
    caption saying what they are averaged over) for one source."""
    import pandas as pd

    if stat not in STATS:
        stat = "entropy_bits"
    if source == CORPUS and corpus is not None:
        stats, where = corpus_arrays(corpus), corpus_note(corpus)
    elif tr is not None:
        rows = len(tr.source_tokens) + len(tr.target_tokens)
        where = (
            f"This sentence: “{md_text(tr.text)}”, a mean over its query rows ({len(tr.source_tokens)} in the "
            f"encoder, {len(tr.target_tokens)} in the decoder; {rows} in all)."
            + ("" if corpus is not None else " " + corpus_note(None))
        )
        stats = sentence_head_stats(tr)
    else:
        return None, go.Figure(), corpus_note(corpus)
    headers, rows = stats_table(stats)
    column = headers.index(STAT_LABELS[stat])
    rows.sort(key=lambda r: (r[column] is None, -(r[column] or 0.0)))
    fig = head_grid_figure(
        {k: v[stat] for k, v in stats.items()},
        STAT_LABELS[stat],
        not_defined=NOT_DEFINED,
    )
    caption = (
        f"**{html.escape(STAT_LABELS[stat])} per head**, the table sorted by it (largest first; choose another "
        f"under *Map*). {where}"
    )
    return pd.DataFrame(rows, columns=headers), fig, caption


def importance_caption(drops: dict[str, np.ndarray], translation_md: str) -> str:
    best = max(
        ((k, *np.unravel_index(np.argmax(v), v.shape)) for k, v in drops.items()),
        key=lambda t: drops[t[0]][t[1], t[2]],
    )
    return (
        f"Drop in the log-probability of “{translation_md}” when each head alone is off "
        f"(positive = the head helps). Largest: **{best[0]}:{best[1] + 1}:{best[2] + 1}** "
        f"({drops[best[0]][best[1], best[2]]:+.3f})."
    )


def importance_figure(drops: dict[str, np.ndarray], selected: Head) -> go.Figure:
    return head_grid_figure(
        drops,
        "drop in log p (red: the head helps)",
        diverging=True,
        selected=(selected.kind, selected.layer, selected.head),
    )
