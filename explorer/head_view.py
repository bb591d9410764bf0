"""What the "Inside a head" tab shows: a Trace with internals + a selection → figure inputs. No Gradio.

Every number comes from the trace's own forward pass (`trace(..., internals=True)`); what is
recomputed here (softmax of q·kᵀ/√d, weights · v, the residual add) is recomputed only to show
the arithmetic, and each recomputation is compared with what the model captured.
Selections are 0-based; messages a user reads say 1-based, as the pickers do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from training.head_stats import STATS, maps_head_stats
from training.kinds import KINDS
from training.text import PAD

from .figures import unique_labels
from .heads import Head, parse_head_names
from .inference import InputError, Trace
from .views import decoder_row_labels, source_labels, word_labels


def maps_of(trace: Trace, kind: str) -> np.ndarray:
    return getattr(trace, KINDS[kind].maps)  # (L, H, Tq, Tk)


def query_labels(trace: Trace, kind: str) -> list[str]:
    return source_labels(trace) if kind == "encoder" else decoder_row_labels(trace)


def key_labels(trace: Trace, kind: str) -> list[str]:
    return list(trace.target_tokens) if kind == "decoder" else source_labels(trace)


def n_layers(trace: Trace, kind: str) -> int:
    return maps_of(trace, kind).shape[0]


def checked(trace: Trace, sel: Head) -> Head:
    """`sel` if the trace has that head and query; else InputError naming the valid range (1-based)."""
    if sel.kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}; got {sel.kind!r}")
    maps = maps_of(trace, sel.kind)
    limits = (
        ("layer", sel.layer, maps.shape[0]),
        ("head", sel.head, maps.shape[1]),
        ("query", sel.query, maps.shape[2]),
    )
    for what, value, size in limits:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
            shown = (
                value + 1 if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
            )
            raise InputError(
                f"{what} must be a whole number from 1 to {size} for {KINDS[sel.kind].label}; got {shown!r}"
            )
    return sel


@dataclass
class QuerySteps:
    """One query of one head, step by step (every array float64; Tk keys, d = d_head, D = d_model)."""

    sel: Head
    query_label: str
    keys: list[str]
    h: np.ndarray  # (D,): the sublayer's normalized input at the query
    q: np.ndarray  # (d,): captured
    k: np.ndarray  # (Tk, d): captured
    raw: np.ndarray  # (Tk,): q·k_j
    scaled: np.ndarray  # (Tk,): q·k_j / √d
    masked: np.ndarray  # (Tk,) bool: a future or padded key (score −∞, weight exactly 0)
    weights: np.ndarray  # (Tk,): softmax over the unmasked scaled scores, recomputed here
    heatmap_row: np.ndarray  # (Tk,): the same row of the attention map the model returned
    v: np.ndarray  # (Tk, d)
    weighted: np.ndarray  # (Tk, d): weights_j · v_j
    output: np.ndarray  # (d,): Σ_j weights_j v_j, recomputed
    captured_output: np.ndarray  # (d,): the model's head output
    concat: np.ndarray  # (D,): every head's output at the query, side by side (ablated heads zeroed)
    head_slice: tuple[int, int]  # the selected head's columns in `concat`
    attn_out: np.ndarray  # (D,): Concat · W_Oᵀ + b_O, as captured
    stream_in: np.ndarray  # (D,)
    stream_out: np.ndarray  # (D,)
    pre_norm: bool

    @property
    def row_diff(self) -> float:
        """Largest |recomputed weight − the heatmap's|: how exactly the steps reproduce the map."""
        return float(np.abs(self.weights - self.heatmap_row).max())

    @property
    def output_diff(self) -> float:
        return float(np.abs(self.output - self.captured_output).max())

    @property
    def residual_diff(self) -> float | None:
        """|stream_in + attn_out − stream_out| (pre-norm; a post-norm layer normalizes the sum, so None)."""
        if not self.pre_norm:
            return None
        return float(np.abs(self.stream_in + self.attn_out - self.stream_out).max())

    def wo_diff(self, w_o: np.ndarray, b_o: np.ndarray) -> float:
        """|Concat · W_Oᵀ + b_O − captured attn_out|, W_O as nn.Linear stores it (D, D)."""
        return float(np.abs(self.concat @ np.asarray(w_o, np.float64).T + b_o - self.attn_out).max())


def masked_keys(trace: Trace, sel: Head) -> np.ndarray:
    """(Tk,) True where the query may not look: the future (decoder self-attention) and padding."""
    keys = trace.target_tokens if sel.kind == "decoder" else trace.source_tokens
    out = np.array([t == PAD for t in keys], dtype=bool)
    if sel.kind == "decoder":
        out |= np.arange(len(keys)) > sel.query
    return out


def softmax_unmasked(scaled: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """softmax(scores + mask) with the mask as −∞: masked keys get exactly 0."""
    z = np.where(masked, -np.inf, scaled)
    e = np.exp(z - z[~masked].max())
    return e / e.sum()


def query_steps(trace: Trace, sel: Head, pre_norm: bool = True) -> QuerySteps:
    """The arithmetic of one attention weight row, from the trace's captured q, k, v (needs internals)."""
    if trace.internals is None:
        raise ValueError("this trace has no internals: trace it with internals=True")
    sel = checked(trace, sel)
    sub = trace.internals[KINDS[sel.kind].maps]
    f64 = lambda a: np.asarray(a, dtype=np.float64)
    q = f64(sub.q[sel.layer, sel.head, sel.query])
    k = f64(sub.k[sel.layer, sel.head])
    v = f64(sub.v[sel.layer, sel.head])
    raw = k @ q
    scaled = raw / np.sqrt(q.shape[-1])
    masked = masked_keys(trace, sel)
    weights = softmax_unmasked(scaled, masked)
    n_heads, d = sub.head_output.shape[1], sub.head_output.shape[-1]
    concat = f64(sub.head_output[sel.layer, :, sel.query]).copy()  # (H, d)
    for kind, layer, head in trace.ablated_heads:  # W_O sees an ablated head's slice as zeros
        if kind == sel.kind and layer == sel.layer:
            concat[head] = 0.0
    return QuerySteps(
        sel=sel,
        query_label=query_labels(trace, sel.kind)[sel.query],
        keys=key_labels(trace, sel.kind),
        h=f64(sub.normed[sel.layer, sel.query]),
        q=q,
        k=k,
        raw=raw,
        scaled=scaled,
        masked=masked,
        weights=weights,
        heatmap_row=f64(maps_of(trace, sel.kind)[sel.layer, sel.head, sel.query]),
        v=v,
        weighted=weights[:, None] * v,
        output=weights @ v,
        captured_output=f64(sub.head_output[sel.layer, sel.head, sel.query]),
        concat=concat.reshape(n_heads * d),
        head_slice=(sel.head * d, (sel.head + 1) * d),
        attn_out=f64(sub.attn_out[sel.layer, sel.query]),
        stream_in=f64(sub.stream_in[sel.layer, sel.query]),
        stream_out=f64(sub.stream_out[sel.layer, sel.query]),
        pre_norm=pre_norm,
    )


def steps_json(steps: QuerySteps) -> dict:
    """The API's view of one query: plain lists; masked scores are null, never a number."""
    r = lambda a: np.round(np.asarray(a, np.float64), 6).tolist()
    nulls = lambda a: [None if m else x for x, m in zip(r(a), steps.masked)]
    s = steps.sel
    return {
        "kind": s.kind,
        "layer": s.layer + 1,
        "head": s.head + 1,
        "query": s.query + 1,
        "query_token": steps.query_label,
        "keys": steps.keys,
        "masked": steps.masked.tolist(),
        "h": r(steps.h),
        "q": r(steps.q),
        "k": r(steps.k),
        "scores": nulls(steps.raw),
        "scaled_scores": nulls(steps.scaled),
        "weights": r(steps.weights),
        "max_diff_to_attention_map": steps.row_diff,
        "v": r(steps.v),
        "head_output": r(steps.captured_output),
        "attn_out": r(steps.attn_out),
        "stream_in": r(steps.stream_in),
        "stream_out": r(steps.stream_out),
    }


def first_layer_scores(trace: Trace, kind: str, head: int) -> np.ndarray:
    """Layer 1's scaled scores q·kᵀ/√d of one head from the captured q and k: what the terms add up to."""
    sub = trace.internals[KINDS[kind].maps]
    q, k = (np.asarray(a[0, head], np.float64) for a in (sub.q, sub.k))
    return q @ k.T / np.sqrt(q.shape[-1])


def causal_mask(n: int) -> np.ndarray:
    return np.triu(np.ones((n, n), dtype=bool), k=1)


# ---- picking a head by clicking a plot -------------------------------------------------------------


def model_shape(trace: Trace) -> dict[str, tuple[int, int]]:
    return {kind: maps_of(trace, kind).shape[:2] for kind in KINDS}


def click_selection(
    trace: Trace, payload: str, current: Head, attention_kind: str, attention_layer: int | None
) -> Head:
    """Where a click on a plot points, as a Head (what the click does not say stays as `current`).

    payload (JSON, written by the page's click listener): "plot" (the plot's elem_id); for the
    attention heatmap "y" (the clicked row's label as the axis holds it), "row" (its index among
    the rows shown) and "panel" (the panel's title, e.g. "layer 2 · head 3"); for the head maps
    "head" (a kind:layer:head name). Raises InputError for a payload that is not one of these."""
    try:
        data = json.loads(payload)
        plot = str(data.get("plot", ""))
    except (ValueError, TypeError, AttributeError):
        raise InputError("the click could not be read; pick the head and query from the menus") from None
    if data.get("head"):
        (sel,) = parse_head_names([str(data["head"])], model_shape(trace))
        query = min(current.query, maps_of(trace, sel.kind).shape[2] - 1) if sel.kind == current.kind else 0
        return Head(sel.kind, sel.layer, sel.head, query)
    if plot != "attention-plot" or attention_kind not in KINDS:
        raise InputError("the click could not be read; pick the head and query from the menus")
    kind = attention_kind
    maps = maps_of(trace, kind)
    panel = str(data.get("panel", ""))
    layer_m, head_m = re.search(r"\blayer (\d+)", panel), re.search(r"\bhead (\d+)", panel)
    layer = int(layer_m.group(1)) - 1 if layer_m else attention_layer
    if layer is None:
        layer = current.layer if kind == current.kind else 0
    query = _row_from_label(trace, kind, str(data.get("y", "")))
    if query is None:
        row = data.get("row")
        query = row if isinstance(row, int) and 0 <= row < maps.shape[2] else current.query
    query = min(query, maps.shape[2] - 1)
    layer = min(layer, maps.shape[0] - 1)
    if head_m:
        head = int(head_m.group(1)) - 1
    else:  # an averaged panel: the averaged head with the largest weight on the clicked cell
        head = strongest_head(trace, kind, layer, averaged_heads(panel, maps.shape[1]), query, data)[0]
        head = current.head if head is None else head
    return checked(trace, Head(kind, layer, min(head, maps.shape[1] - 1), query))


def table_head(row: list, shape: dict[str, tuple[int, int]]) -> Head | None:
    """The head a row of the statistics table (kind, layer, head, …) names; None for none (an empty table)."""
    try:
        return parse_head_names([f"{row[0]}:{row[1]}:{row[2]}"], shape)[0]
    except (InputError, IndexError, TypeError):
        return None


def averaged_heads(panel: str, n_heads: int) -> list[int]:
    """The heads an averaged panel ("mean of heads 1, 2, 4") stands for, 0-based; all when it names none."""
    m = re.search(r"mean of heads ([\d, ]+)", panel)
    heads = [int(x) - 1 for x in re.findall(r"\d+", m.group(1))] if m else []
    return [h for h in heads if 0 <= h < n_heads] or list(range(n_heads))


def strongest_head(
    trace: Trace, kind: str, layer: int, heads: list[int], query: int, data: dict
) -> tuple[int | None, float, str]:
    """(head, its weight, the key's label) of the head among `heads` with the largest weight on the
    clicked cell (its key read from the click's "x" label); (None, nan, "") if the key is unknown."""
    key = _key_from_label(trace, kind, str(data.get("x", "")))
    if key is None:
        return None, float("nan"), ""
    weights = maps_of(trace, kind)[layer, heads, query][:, key].sum(axis=-1)  # a pooled word: its pieces
    best = int(np.argmax(weights))
    return heads[best], float(weights[best]), str(data.get("x", "")).replace("\u200b", "")


def click_note(trace: Trace, payload: str, sel: Head) -> str:
    """What a click on an averaged map chose, in words ("" for any other click)."""
    try:
        data = json.loads(payload)
        panel = str(data.get("panel", ""))
    except (ValueError, TypeError, AttributeError):
        return ""
    if data.get("plot") != "attention-plot" or re.search(r"\bhead \d+", panel):
        return ""
    heads = averaged_heads(panel, maps_of(trace, sel.kind).shape[1])
    head, weight, key = strongest_head(trace, sel.kind, sel.layer, heads, sel.query, data)
    names = ", ".join(str(h + 1) for h in heads)
    if head is None:
        return f"The clicked map averages heads {names}: showing head {sel.head + 1} (pick another above)."
    return (
        f"The clicked map averages heads {names}: showing head {head + 1}, the one with the largest weight "
        f"({weight:.2f}) on the clicked cell (key “{key}”)."
    )


def _key_from_label(trace: Trace, kind: str, label: str) -> list[int] | None:
    """The key positions a heatmap column label names: one, or a pooled word's pieces."""
    if not label:
        return None
    labels = unique_labels(key_labels(trace, kind))
    if label in labels:
        return [labels.index(label)]
    if kind != "decoder" and trace.source_word_index:
        words = unique_labels(word_labels(trace))
        if label in words:
            w = words.index(label)
            return [i for i, x in enumerate(trace.source_word_index) if x == w]
    return None


def _row_from_label(trace: Trace, kind: str, label: str) -> int | None:
    """The query row a heatmap row label names: exact (repeats told apart by the axis's zero-width
    spaces), or for a heatmap that pools subword pieces into words, the word's first piece."""
    if not label:
        return None
    labels = unique_labels(query_labels(trace, kind))
    if label in labels:
        return labels.index(label)
    if kind == "encoder" and trace.source_word_index:
        words = unique_labels(word_labels(trace))
        if label in words:
            return trace.source_word_index.index(words.index(label))
    return None


# ---- head statistics ---------------------------------------------------------------------------------

STAT_LABELS = {
    "entropy_bits": "entropy (bits)",
    "max_weight": "row max",
    "distance": "distance",
    "same": "same pos.",
    "previous": "previous pos.",
    "special": "on <s>/</s>",
    "punctuation": "on punct.",
}


def sentence_head_stats(trace: Trace) -> dict[str, dict[str, np.ndarray]]:
    """Per-head statistics of this sentence's maps ({kind: {stat: (L, H)}}), as the corpus file's."""
    return maps_head_stats(trace, trace.source_tokens, trace.target_tokens)


def corpus_arrays(corpus: dict) -> dict[str, dict[str, np.ndarray]]:
    """head_stats.json's "stats" → arrays, null (a statistic that does not apply) → NaN."""
    return {
        kind: {
            name: np.array([[np.nan if x is None else x for x in row] for row in values], dtype=np.float64)
            for name, values in stats.items()
            if name in STATS
        }
        for kind, stats in corpus["stats"].items()
        if kind in KINDS
    }


def stats_table(stats: dict[str, dict[str, np.ndarray]]) -> tuple[list[str], list[list]]:
    """One row per head: kind, layer, head (1-based), then each statistic (None where it does not apply)."""
    headers = ["kind", "layer", "head", *(STAT_LABELS[s] for s in STATS)]
    rows = []
    for kind in KINDS:
        if kind not in stats:
            continue
        n_l, n_h = next(iter(stats[kind].values())).shape
        for layer in range(n_l):
            for head in range(n_h):
                values = [float(stats[kind][s][layer, head]) for s in STATS]
                rows.append(
                    [kind, layer + 1, head + 1, *(None if np.isnan(x) else round(x, 3) for x in values)]
                )
    return headers, rows


def stats_json(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {
        kind: {
            name: [[None if np.isnan(x) else round(float(x), 6) for x in row] for row in values]
            for name, values in per.items()
        }
        for kind, per in stats.items()
    }
