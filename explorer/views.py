"""What the attention panel shows: a Trace plus the user's toggles → figure inputs. No Gradio here."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from training.kinds import KINDS
from training.text import BOS, EOS, PAD

from .figures import attention_figure, top_k_figure
from .inference import Trace
from .lines_figures import MIN_WEIGHT, drawn, lines_figure
from .text_fit import ordinal, shown_piece
from .zh_words import groups, joined, word_index

HIDEABLE = {BOS, EOS, PAD}  # <unk> stays: an unknown word is content, not structure


@dataclass
class View:
    kind: str = "cross"  # one of KINDS
    layer: int | None = None  # 0-based; None = all layers side by side
    heads: list[int] | None = None  # 0-based; None = all heads; [] (none ticked) also shows all, and says so
    average: bool = False  # average the selected heads into one map
    show_special: bool = True  # show <s> / </s> positions
    shared_scale: bool = True  # one 0–1 colour scale; False = each map scaled to its max
    step: int | None = None  # decoder row to highlight (step-through)
    words: bool = (
        False  # whole words: English pieces pooled (NLTK words), Chinese tokens pooled (jieba words)
    )
    width: int | None = None  # the plot's width in px on the client (sizes and fonts follow it)


def pool_pieces(weights: np.ndarray, word_index: list[int], axis: int, how: str) -> np.ndarray:
    """Pool one axis of `weights` from pieces to words: "sum" for keys, "mean" for queries.

    Summing a row's keys over each word's pieces keeps the row a distribution (it still
    sums to 1); averaging a word's query rows keeps that too, since each row sums to 1.
    """
    n_words = max(word_index) + 1
    onehot = np.zeros((n_words, len(word_index)), dtype=weights.dtype)  # (W, S)
    onehot[word_index, np.arange(len(word_index))] = 1.0
    if how == "mean":
        onehot /= onehot.sum(axis=1, keepdims=True)
    elif how != "sum":
        raise ValueError(f"how must be 'sum' or 'mean', got {how!r}")
    moved = np.moveaxis(weights, axis, -1)  # (..., S)
    return np.moveaxis(moved @ onehot.T, -1, axis)  # (..., W) back in place


def word_labels(trace: Trace) -> list[str]:
    """One label per word; a word with an unknown piece is flagged like an unknown token."""
    unknown = [False] * len(trace.source_words)
    for w, unk in zip(trace.source_word_index, trace.source_unknown):
        unknown[w] |= unk
    return [f"{t} (unk)" if unk else t for t, unk in zip(trace.source_words, unknown)]


def source_labels(trace: Trace) -> list[str]:
    return [f"{t} (unk)" if unk else t for t, unk in zip(trace.source_tokens, trace.source_unknown)]


def decoder_row_labels(trace: Trace) -> list[str]:
    """Row t reads input token t and predicts token t+1: label both, e.g. "我 → 爱"."""
    return [f"{inp} → {pred}" for inp, pred in zip(trace.target_tokens, trace.predicted_tokens)]


# Tokens that end a sentence, as the encoder reads them (word or subword piece) or the decoder writes them.
SENTENCE_ENDS = {".", "!", "?", "▁.", "▁!", "▁?", "。", "！", "？", "…"}


def sentence_breaks(tokens: list[str], shown: list[int]) -> list[int]:
    """Where a new sentence starts among the shown positions: p such that a separator goes between
    shown[p] and shown[p + 1]. Only between sentences: a final "." before </s> starts none."""
    ends = [p for p, i in enumerate(shown) if tokens[i] in SENTENCE_ENDS]
    words_after = [any(tokens[j] not in HIDEABLE | SENTENCE_ENDS for j in shown[p + 1 :]) for p in ends]
    return [p for p, more in zip(ends, words_after) if more]


def _keep(tokens: list[str], show_special: bool) -> list[int]:
    return [i for i, t in enumerate(tokens) if show_special or t not in HIDEABLE]


def decoder_rows(trace: Trace, show_special: bool) -> list[int]:
    """The decoder rows a view shows. One rule for every decoder view: with specials hidden, a row
    shows when it reads and predicts real tokens ("<s> → 我" and "。 → </s>" go)."""
    reads, predicts = _keep(trace.target_tokens, show_special), _keep(trace.predicted_tokens, show_special)
    return sorted(set(reads) & set(predicts))


def select(trace: Trace, view: View, maps: np.ndarray | None = None) -> dict:
    """Slice the trace for a view; returns the keyword arguments of `attention_figure`.

    maps: (L, H, Tq, Tk) shaped like the view kind's attention weights (the default), e.g. attention ×
    value norms; the same rows, columns, pooling, separators and step highlight apply to it."""
    if view.kind not in KINDS:
        raise ValueError(f"unknown attention kind {view.kind!r}; choose from {list(KINDS)}")
    if maps is None:
        maps = {"encoder": trace.encoder_self, "decoder": trace.decoder_self, "cross": trace.cross}[view.kind]
    pool = view.words and view.kind != "decoder" and trace.source_word_index
    if pool:
        maps = pool_pieces(maps, trace.source_word_index, axis=3, how="sum")
        if view.kind == "encoder":
            maps = pool_pieces(maps, trace.source_word_index, axis=2, how="mean")
    n_layers, n_heads = maps.shape[:2]
    layers = list(range(n_layers)) if view.layer is None else [view.layer]
    heads = sorted(set(view.heads or [])) or list(range(n_heads))
    if any(not 0 <= layer < n_layers for layer in layers) or any(not 0 <= h < n_heads for h in heads):
        raise ValueError(f"the model has {n_layers} layers and {n_heads} heads")

    src = word_labels(trace) if pool else source_labels(trace)
    rows_dec = decoder_rows(trace, view.show_special)
    keys_dec = _keep(trace.target_tokens, view.show_special)
    keys_src = _keep(trace.source_words if pool else trace.source_tokens, view.show_special)
    if view.kind == "decoder" and not view.show_special:
        # A key that no visible row may see (the last token, seen only by the hidden "。 → </s>" row)
        # would be an all-grey column: drop it.
        allowed = np.tril(np.ones((len(trace.target_tokens),) * 2, dtype=bool))
        rows_dec = [i for i in rows_dec if allowed[i, keys_dec].any()]
        keys_dec = [j for j in keys_dec if allowed[rows_dec, j].any()]
    if view.kind == "encoder":
        q_idx, k_idx = keys_src, keys_src
        y_labels, x_labels = [src[i] for i in q_idx], [src[i] for i in k_idx]
        x_title, y_title = "key (English)", "query (English)"
    else:
        q_idx = rows_dec
        k_idx = keys_dec if view.kind == "decoder" else keys_src
        row_labels = decoder_row_labels(trace)
        y_labels = [row_labels[i] for i in q_idx]
        x_labels = (
            [trace.target_tokens[i] for i in k_idx] if view.kind == "decoder" else [src[i] for i in k_idx]
        )
        x_title = "key: decoder input" if view.kind == "decoder" else "key (English)"
        y_title = "decoder row: input → predicted"

    sub = maps[np.ix_(layers, heads, q_idx, k_idx)]  # (layers, heads, q, k)
    col_titles = [f"head {h + 1}" for h in heads]
    if view.average:
        sub = sub.mean(axis=1, keepdims=True)
        col_titles = ["mean of heads " + ", ".join(str(h + 1) for h in heads)]
    masked = forced = None
    if view.kind == "decoder":
        full = np.triu(np.ones((maps.shape[2], maps.shape[3]), dtype=bool), k=1)
        masked = full[np.ix_(q_idx, k_idx)]
        forced = (~full[q_idx]).sum(1) == 1  # a row with one allowed key puts all its weight there
    title = KINDS[view.kind].title + (" · no head ticked, so all are shown" if view.heads == [] else "")
    highlight = None
    if view.step is not None and view.kind != "encoder" and view.step in q_idx:
        highlight = q_idx.index(view.step)
    # Sentence boundaries: keys and encoder queries by their own token; a decoder row by the token it
    # predicts (the row after "。" begins the next sentence).
    src_tokens = trace.source_words if pool else trace.source_tokens
    keys = trace.target_tokens if view.kind == "decoder" else src_tokens
    rows = src_tokens if view.kind == "encoder" else trace.predicted_tokens
    sel = dict(
        weights=sub,
        x_labels=x_labels,
        y_labels=y_labels,
        x_breaks=sentence_breaks(keys, k_idx),
        y_breaks=sentence_breaks(rows, q_idx),
        row_titles=[f"layer {layer + 1}" for layer in layers],
        col_titles=col_titles,
        masked=masked,
        highlight_row=highlight,
        shared_scale=view.shared_scale,
        forced_rows=forced,
        x_title=x_title,
        y_title=y_title,
        title=title,
        width=view.width,
        subtitle=f"“{_clip(trace.text)}” → {_clip(trace.translation)}",
    )
    if view.words and view.kind != "encoder":
        _chinese_words(trace, view, sel, q_idx, k_idx)
    return sel


def _positions(grouped: list[list[int]]) -> list[int]:
    """Groups of positions → each position's group (pool_pieces' `word_index`)."""
    return [g for g, members in enumerate(grouped) for _ in members]


def _chinese_words(trace: Trace, view: View, sel: dict, q_idx: list[int], k_idx: list[int]) -> None:
    """Pool the Chinese axes of `select`'s result into jieba words, in place: the rows shown (decoder rows,
    each belonging to the word of the token it *reads*) averaged per word, and in the decoder
    self-attention the keys shown summed per word, as `pool_pieces` pools English pieces. Only shown
    positions are pooled, so a label names exactly the tokens behind it: "哪里 → 里。" is the mean of the
    rows reading 哪 and 里, which predict 里 and 。. <s> and </s> are words of their own."""
    words = word_index(trace.target_tokens)
    rows = [[q_idx[p] for p in g] for g in groups([words[i] for i in q_idx])]  # token rows per word row
    w = pool_pieces(sel["weights"], _positions(rows), axis=2, how="mean")
    reads, predicts = trace.target_tokens, trace.predicted_tokens
    sel["y_labels"] = [f"{joined([reads[i] for i in r])} → {joined([predicts[i] for i in r])}" for r in rows]
    sel["y_breaks"] = sentence_breaks([predicts[r[-1]] for r in rows], list(range(len(rows))))
    sel["y_title"] = "decoder row: input word → predicted"
    if sel["highlight_row"] is not None:  # the step's row is shown: its word's row is outlined
        sel["highlight_row"] = next(n for n, r in enumerate(rows) if view.step in r)
    if view.kind == "decoder":
        keys = [[k_idx[p] for p in g] for g in groups([words[j] for j in k_idx])]
        w = pool_pieces(w, _positions(keys), axis=3, how="sum")
        sel["x_labels"] = [joined([reads[j] for j in k]) for k in keys]
        sel["x_breaks"] = sentence_breaks([reads[k[-1]] for k in keys], list(range(len(keys))))
        sel["x_title"] = "key: decoder input word"
        future = np.triu(np.ones((len(reads),) * 2, dtype=bool), k=1)
        sel["masked"] = np.array([[future[np.ix_(r, k)].all() for k in keys] for r in rows], dtype=bool)
        every_word = groups(words)  # a word row puts all its weight on one word when it may see no other
        sel["forced_rows"] = np.array(
            [sum(bool((~future[np.ix_(r, k)]).any()) for k in every_word) == 1 for r in rows], dtype=bool
        )
    sel["weights"] = w


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def shown(sel: dict) -> dict:
    """`select`'s result with its pieces labelled as a figure shows them (␣.), not as exports write them (▁.)."""
    return {
        **sel,
        "x_labels": [shown_piece(t) for t in sel["x_labels"]],
        "y_labels": [shown_piece(t) for t in sel["y_labels"]],
    }


def attention_view(trace: Trace, view: View) -> go.Figure:
    return attention_figure(**shown(select(trace, view)))


def lines_view(trace: Trace, view: View) -> go.Figure:
    """The same selection as `attention_view`, drawn as lines between a query column and a key column."""
    return lines_figure(shown(select(trace, view)))


def lines_caption(trace: Trace, view: View) -> str:
    """Under the lines view: how to read it, and how many faint pairs were left out."""
    sel = select(trace, view)
    shown = drawn(sel["weights"], sel["masked"])
    pairs = (
        sel["weights"].size
        if sel["masked"] is None
        else int((~np.broadcast_to(sel["masked"], sel["weights"].shape)).sum())
    )
    return (
        "Queries on the left, keys on the right: one line per (query, key) pair, its opacity the weight (a "
        "weight of 0.5 is a half-transparent line), one colour per head (averaged heads: one colour); one "
        "panel per layer (stacked on a phone). "
        f"Pairs under {MIN_WEIGHT} are not drawn: here {int(shown.sum()):,} of {pairs:,} pairs have a line"
        + (", the masked future none" if sel["masked"] is not None else "")
        + ". Hover a query's dot to see only its lines (in every panel) and its three strongest keys per head; "
        "move away to see them all. "
        "The step's row is drawn over the others, thicker, its dot orange; dotted marks between labels are "
        "sentence boundaries."
    )


def words_note(view: View, subwords: bool) -> str:
    """What *Whole words* pools on each axis of this kind (empty when it is off)."""
    if not view.words:
        return ""
    english = "English subword pieces pooled into NLTK words" if subwords else "English words as read"
    chinese = (
        "Chinese characters pooled into jieba words (`<s>` and `</s>` stay words of their own). A decoder row "
        "belongs to the word of the token it *reads*: a word's row is the mean of its characters' rows, "
        'labelled with the characters read and those predicted ("图书馆 → 书馆读" averages the rows reading '
        "图, 书 and 馆), so it still sums to 1"
    )
    return (
        "**Whole words**: "
        + {
            "encoder": f"queries and keys: {english} (a key's weight summed over its pieces, a query row averaged).",
            "cross": f"rows: {chinese}; keys: {english}, a key's weight summed over its pieces.",
            "decoder": f"rows: {chinese}; keys: the same jieba words, a key's weight summed over its characters.",
        }[view.kind]
    )


def step_view(trace: Trace, step: int) -> tuple[go.Figure, str]:
    """Top-5 next-token probabilities at decoder row `step`, the chosen token marked, and a caption
    saying what the row does (and why beam search chose a token that was not the likeliest)."""
    step = max(0, min(step, len(trace.target_tokens) - 1))
    tokens, probs = (list(x) for x in zip(*trace.top_next[step]))
    inp, pred = trace.target_tokens[step], trace.predicted_tokens[step]
    rank = trace.predicted_rank[step] if trace.predicted_rank else None
    prob = trace.predicted_prob[step] if trace.predicted_prob else None
    forced = trace.end_forced and step == len(trace.target_tokens) - 1
    if rank is not None and rank > len(tokens) and not forced:  # chosen outside the top 5: a sixth bar
        tokens, probs = tokens + [pred], probs + [prob]
    chosen = None if forced else tokens.index(pred) if rank is None else min(rank, len(tokens)) - 1
    title = f"step {step + 1}/{len(trace.target_tokens)}: next-token probabilities after “{inp}”"
    caption = (
        f"Step {step + 1}: the decoder reads **{_md(inp)}** (and everything before it) "
        f"and outputs **{_md(pred)}**. Its row is outlined in the decoder and cross-attention maps."
    )
    if forced:
        caption = (
            f"Step {step + 1}: the decoder reads **{_md(inp)}**, and here the translation reached its maximum "
            f"length ({len(trace.target_tokens)} tokens), so decoding ended it with **{_md(pred)}**: the "
            f"model did not choose it (it gave {_md(pred)} {prob:.1%}). The bars are what the model would "
            "have written next. Its row is outlined in the decoder and cross-attention maps."
        )
    elif trace.forced:  # a given translation: nothing was chosen, the token was given
        caption = (
            f"Step {step + 1}: the decoder reads **{_md(inp)}** (and everything before it) and is **given** "
            f"**{_md(pred)}** (the translation was given, not decoded): the model gave it {prob:.1%}, "
            f"ranked {ordinal(rank)} at this step. Its row is outlined in the decoder and cross-attention maps."
        )
    elif rank is not None and rank > 1:
        caption += (
            f"\n\n**Beam search chose {_md(pred)} although it ranked {ordinal(rank)} at this step** "
            f"({prob:.1%}, against {probs[0]:.1%} for {_md(tokens[0])}): it keeps "
            f"{trace.decoding.get('beam', '?')} candidate translations and returns the one whose whole "
            "sentence scores best, so a less likely token here can lead to a better translation."
        )
    fig = top_k_figure(tokens, probs, title, chosen=chosen)
    if trace.forced:  # the marked bar was given, not chosen
        fig.data[0].text = [t.replace("· chosen", "· given") for t in fig.data[0].text]
    return fig, caption


def _md(token: str) -> str:
    """A token shown inside Markdown as literal text (no markup, no HTML)."""
    return "`" + token.replace("`", "ˋ") + "`"


def file_stem(trace: Trace, what: str = "attention") -> str:
    """A download's name from its sentence: "attention-she-reads-a-book", ASCII only, at most ~50 chars."""
    words = re.findall(r"[a-z0-9]+", trace.text.lower())
    stem = "-".join(words)[:40].rstrip("-")
    return f"{what}-{stem}" if stem else what


def maps_csv(trace: Trace, view: View) -> str:
    """The maps the view shows, one row per cell: map, layer, head, query, key, weight, masked.

    Masked cells (the decoder's future) have an empty weight and masked = 1; averaged heads are
    named "mean of 1, 2…" in the head column.
    """
    sel = select(trace, view)
    weights, masked = sel["weights"], sel["masked"]
    n_layers = weights.shape[0]
    layers = [view.layer + 1] if view.layer is not None else list(range(1, n_layers + 1))
    heads = [t.removeprefix("head ") for t in sel["col_titles"]]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        ["map", "kind", "layer", "head", "query_index", "query", "key_index", "key", "weight", "masked"]
    )
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            name = f"{view.kind} layer {layer} head {head}"
            for i, q in enumerate(sel["y_labels"]):
                for j, k in enumerate(sel["x_labels"]):
                    off = masked is not None and bool(masked[i, j])
                    weight = "" if off else f"{weights[r, c, i, j]:.6f}"
                    w.writerow([name, view.kind, layer, head, i, q, j, k, weight, int(off)])
    return out.getvalue()
