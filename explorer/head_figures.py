"""Figures of the "Inside a head" tab: arrays and labels in, go.Figure out. No Gradio here.

One colour language: vectors are colour strips, red positive, blue negative, white 0 (the
Attention tab's diverging scales read the same way); every strip's heading carries its key (the
values that the darkest blue and red stand for). The steps from scores to weights are bars over
the same key axis, one row per step, so a key's raw score, scaled score and weight line up. A
masked key has no bar and no number: it is written "masked (−∞)". Key axes are numeric with tick
labels, so repeated tokens keep their own position; where the keys are too many for their
width, every n-th is labelled (`label_step`) and the caption says so.

The figures carry no title: the tab's section headings say the step, and a title under Plotly's
toolbar would be hidden by it on a phone. Panel headings are Plotly HTML: callers escape what
came from the user.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import FONT, MASKED_BG, Grid, escape
from .text_fit import key_labels_px, shown_piece, value_axis_left

DIVERGING = "RdBu_r"  # red = positive, as everywhere in the app
RED, BLUE = "#b2182b", "#2166ac"  # the ends of RdBu_r
MASKED_TEXT = "masked (−∞)"
BAR = "#3b75af"
GREY = "#9a9a9a"
TOP = 44  # px above the first panel: Plotly's toolbar, then the first panel's heading
DEFAULT_WIDTH = 1100
# The left margin where a panel's y axis has a title but no tick labels ("dim"): its 12 px text on
# its side, its standoff and Plotly's padding. Margins that already fit the axes' labels spare
# Plotly a second full draw on every change: its automargin redraws when a label pushes a margin
# out (automargin stays on, so a label estimated short is still never cut).
TITLE_LEFT = 24


def tick_label(token: str) -> str:
    """A key as its tick label: escaped, a word-start piece marked with a visible space (␣.)."""
    return escape(shown_piece(token))


def key_axis(keys: Sequence[str], width: int | None) -> tuple[int, int]:
    """(label every n-th key, tick angle) so that labels never overlap on a plot `width` px wide: upright
    where every label fits its column, else vertical and thinned (hover still names every key)."""
    n = max(1, len(keys))
    per_key = max(1.0, ((width or DEFAULT_WIDTH) - 60) / n)
    longest = max((len(str(k)) for k in keys), default=1)
    if longest * 8 + 4 <= per_key:
        return 1, 0
    return max(1, math.ceil(16 / per_key)), -90


def label_step(keys: Sequence[str], width: int | None) -> int:
    return key_axis(keys, width)[0]


def colour_key(values: np.ndarray, lim: float | None = None) -> str:
    """The short key a strip's heading carries: what its darkest blue and red stand for."""
    lim = _limit(values) if lim is None else lim
    return (
        f"  <span style='color:{BLUE}'>■</span> −{lim:.3g} · □ 0 · "
        f"<span style='color:{RED}'>■</span> +{lim:.3g}"
    )


_PIECE = re.compile(r"[\u2e80-\u9fff\uff00-\uffef]|<[^>]*>|&\w+;|[^\s\u2e80-\u9fff\uff00-\uffef<&]+|\s+|.")


def _px(piece: str) -> float:
    """Approximate width in px at the headings' 12 px: a CJK character is ~2 Latin ones; a tag is none."""
    if piece.startswith("<") and piece.endswith(">"):
        return 0.0
    if piece.startswith("&") and piece.endswith(";"):
        return 6.6
    return sum(12.0 if "\u2e80" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" else 6.6 for c in piece)


def heading(text: str, key: str = "", width: int | None = None) -> str:
    """A panel heading that fits `width` px: wrapped by character width (Chinese has no spaces: it may
    break between any two characters), its colour key beside it when it fits, else on its own line."""
    room = (width or DEFAULT_WIDTH) - 40
    lines, line, used = [], "", 0.0
    for piece in _PIECE.findall(text):
        w = _px(piece)
        if used + w > room and line.strip():
            lines.append(line.rstrip())
            line, used = ("", 0.0) if piece.isspace() else (piece, w)
        else:
            line, used = line + piece, used + w
    lines.append(line)
    if key:
        if used + _px(re.sub(r"<[^>]*>", "", key)) > room:
            lines.append(key.strip())
        else:
            lines[-1] += key
    return "<br>".join(lines)


def _lines(*headings: str) -> int:
    """Extra lines of the tallest heading (0 when all fit one line)."""
    return max(h.count("<br>") for h in headings)


def _figure(g: Grid, traces: list[dict], height: int, **layout) -> go.Figure:
    """The tab's look: no title and no legend, thin side margins, room for the toolbar at the top.
    Unvalidated (Grid.figure): validation was most of a pick's server time."""
    margin = layout.pop("margin", dict(l=10, r=10, t=TOP, b=10))
    return g.figure(traces, validate=False, height=height, showlegend=False, margin=margin, **layout)


def _limit(a: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    finite = a[np.isfinite(a)]
    return max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-9)


def _strip(g: Grid, i: int, z: np.ndarray, lim: float | None = None, **style) -> dict:
    """A heatmap on panel i, white at 0 and red/blue up to ±lim (by default z's own largest |value|)."""
    lim = _limit(z) if lim is None else lim
    scale = dict(zmin=-lim, zmax=lim, colorscale=DIVERGING, showscale=False)
    return g.heatmap(i, z, **{**scale, **style})


def _key_matrix(g: Grid, i: int, m: np.ndarray, labels: list[str], name: str, heading: str) -> dict:
    """m (keys, d_head) as a strip matrix on panel i: one column per key, one row per dimension."""
    z = np.asarray(m, np.float64).T  # (d_head, keys)
    g.title(i, heading, align="left")
    g.y(i, title=dict(text="dim", standoff=2), autorange="reversed", showticklabels=False)
    hover = f"key %{{customdata}}<br>{name}[%{{y}}] = %{{z:.6f}}<extra></extra>"
    return _strip(g, i, z, x=list(range(z.shape[1])), customdata=[labels] * z.shape[0], hovertemplate=hover)


def strips_figure(
    vectors: Sequence[tuple[str, np.ndarray]],
    highlight: Mapping[str, tuple[int, int]] | None = None,
    width: int | None = None,
) -> go.Figure:
    """One colour strip per (name, vector), each on its own dimension axis and colour range, its key
    in its heading (hover gives name[i] and the exact value). highlight: {name: (start, stop)} outlines
    a slice."""
    n = len(vectors)
    headings = [heading(escape(name), colour_key(vec), width) for name, vec in vectors]
    extra = 15 * _lines(*headings)
    strip_px, gap_px = 34, 50 + extra  # the gap holds a strip's tick labels and the next strip's heading
    plot_px = n * strip_px + (n - 1) * gap_px
    g = Grid.filled([1] * n, v_gap=gap_px / plot_px)
    traces = []
    for i, (name, vec) in enumerate(vectors):
        v = np.asarray(vec, np.float64).reshape(1, -1)
        label = escape(name)
        traces.append(_strip(g, i, v, hovertemplate=f"{label}[%{{x}}] = %{{z:.6f}}<extra></extra>"))
        g.title(i, headings[i], align="left")
        g.y(i, showticklabels=False)
        g.x(i, range=[-0.5, v.shape[1] - 0.5])
        if highlight and name in highlight:
            start, stop = highlight[name]
            g.outline(i, start - 0.5, stop - 0.5, -0.5, 0.5, width=3)
    g.x(n - 1, title=dict(text="dimension", standoff=4))
    # l: room for half of the tick label "0" under the first column, however narrow (no automargin redraw)
    return _figure(g, traces, TOP + extra + 50 + plot_px, margin=dict(l=14, r=10, t=TOP + extra, b=50))


def _key_ticks(g: Grid, i: int, keys: Sequence[str], show: bool, width: int | None = None) -> None:
    ticks = [tick_label(k) for k in keys]
    step, angle = key_axis(keys, width)
    g.x(
        i,
        tickmode="array",
        tickvals=list(range(0, len(keys), step)),
        ticktext=ticks[::step],
        tickangle=angle,
        showticklabels=show,
        range=[-0.5, len(keys) - 0.5],
    )


def scores_figure(
    keys: Sequence[str],
    raw: np.ndarray,
    scaled: np.ndarray,
    weights: np.ndarray,
    masked: np.ndarray,
    d_head: int,
    width: int | None = None,
) -> go.Figure:
    """Aligned bars per key: q·k_j, q·k_j/√d, softmax weight (the keys k_j themselves: `keys_values_figure`).

    Masked keys get no bar in any row (their score is −∞ and their weight 0 by construction,
    not a learned value) and the text MASKED_TEXT instead."""
    masked = np.asarray(masked, bool)
    n = len(keys)
    g = Grid.filled([1, 1, 1.2], v_gap=0.1)  # one key range on every row: aligned without `matches`
    labels = [escape(t) for t in keys]
    open_ = [j for j in range(n) if not masked[j]]
    shut = [j for j in range(n) if masked[j]]
    rows = (
        (raw, "q·k", GREY, "q·k_j: raw score"),
        (scaled, "q·k/√d", GREY, f"÷ √{d_head}: scaled score"),
        (weights, "weight", BAR, "softmax → weight (the attention map's row; sums to 1)"),
    )
    traces = []
    for i, (values, what, colour, title) in enumerate(rows):
        values = np.asarray(values, np.float64)
        traces.append(
            dict(
                type="bar",
                x=open_,
                y=[float(values[j]) for j in open_],
                marker_color=colour,
                customdata=[labels[j] for j in open_],
                name=what,
                hovertemplate=f"key %{{customdata}}<br>{what} = %{{y:.6f}}<extra></extra>",
                **g.axes(i),
            )
        )
        if shut:
            traces.append(
                dict(
                    type="scatter",
                    x=shut,
                    y=[0.0] * len(shut),
                    mode="text",
                    text=["masked"] * len(shut),
                    textposition="top center",
                    textfont=dict(color="#777", size=10),
                    name=MASKED_TEXT,
                    customdata=[labels[j] for j in shut],
                    hovertemplate=f"key %{{customdata}}<br>{MASKED_TEXT}: a future position, weight 0<extra></extra>",
                    **g.axes(i),
                )
            )
        g.title(i, heading(title, width=width), align="left")
        g.y(i, zeroline=True, zerolinecolor="#bbb")
    g.y(2, range=[0, 1.05])
    for i in range(3):
        _key_ticks(g, i, keys, i == 2, width)
    # Margins that fit the labels (no automargin redraw): the key labels under the last row, upright
    # or on their side; the value axes' tick labels on the left.
    bottom = 28 if key_axis(keys, width)[1] == 0 else math.ceil(18 + key_labels_px(keys))
    spans = [_span(np.asarray(v, np.float64)[open_]) for v in (raw, scaled)] + [(0.0, 1.05)]
    left = value_axis_left(*spans)
    extra = 15 * _lines(*(a["text"] for a in g.annotations))
    return _figure(
        g, traces, TOP + 240 + 3 * extra + bottom, margin=dict(l=left, r=10, t=TOP + extra, b=bottom)
    )


def _span(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def keys_values_figure(
    keys: Sequence[str], k: np.ndarray, v: np.ndarray, width: int | None = None
) -> go.Figure:
    """Every key k_j and value v_j in full: two d_head × keys strip matrices, one column per key."""
    g = Grid.filled([1, 1], v_gap=0.2)
    labels = [escape(t) for t in keys]
    k_title = heading(f"k_j = W_k·h_j + b_k: each key's {k.shape[1]} values", colour_key(k), width)
    v_title = heading("v_j = W_v·h_j + b_v: each key's value vector", colour_key(v), width)
    traces = [_key_matrix(g, 0, k, labels, "k", k_title), _key_matrix(g, 1, v, labels, "v", v_title)]
    for i in range(2):
        _key_ticks(g, i, keys, True, width)
    extra = 15 * _lines(k_title, v_title)
    bottom = 28 if key_axis(keys, width)[1] == 0 else math.ceil(18 + key_labels_px(keys))
    margin = dict(l=TITLE_LEFT, r=10, t=TOP + extra, b=bottom)
    return _figure(g, traces, 520 + 2 * extra, margin=margin)


def values_figure(
    keys: Sequence[str],
    v: np.ndarray,
    weights: np.ndarray,
    output: np.ndarray,
    masked: np.ndarray,
    width: int | None = None,
) -> go.Figure:
    """Each v_j scaled by its weight (d_head × keys), and their sum, the head's output (a strip)."""
    masked = np.asarray(masked, bool)
    d = v.shape[1]
    weighted = np.asarray(weights, np.float64)[:, None] * np.asarray(v, np.float64)
    weighted[masked] = np.nan  # 0 · v_j by construction: shown as masked, not as a computed zero
    labels = [escape(t) for t in keys]
    out = np.asarray(output, np.float64).reshape(1, -1)
    w_title = heading("weight_j · v_j (one column per key)", colour_key(weighted), width)
    out_title = heading(f"Σ_j weight_j · v_j = this head's output ({d} values)", colour_key(out), width)
    extra = 15 * _lines(w_title, out_title)
    ticks = 7 * min(max((len(t) for t in keys), default=1), 14) if key_axis(keys, width)[1] else 0
    plot_px = 200 + 2 * extra + ticks
    g = Grid([120 / plot_px, 26 / plot_px], v_gap=1 - 146 / plot_px)  # the gap: the key labels, a heading
    traces = [_key_matrix(g, 0, weighted, labels, "weight·v", w_title)]
    _key_ticks(g, 0, keys, True, width)
    traces.append(_strip(g, 1, out, hovertemplate="output[%{x}] = %{z:.6f}<extra></extra>"))
    g.title(1, out_title, align="left")
    g.y(1, showticklabels=False)
    g.x(1, title=dict(text="dimension", standoff=4), range=[-0.5, d - 0.5])
    margin = dict(l=TITLE_LEFT, r=10, t=TOP + extra, b=45)
    return _figure(g, traces, TOP + extra + plot_px + 45, plot_bgcolor=MASKED_BG, margin=margin)


def terms_figure(
    terms: Mapping[str, np.ndarray],
    total: np.ndarray,
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    masked: np.ndarray | None = None,
) -> go.Figure:
    """The five content/position terms and their sum (the scores), one heatmap each, 2 per row,
    on one colour range so their sizes compare (its colour bar under the first row). Masked cells
    are left grey."""
    panels = [*terms.items(), ("= q·k/√d (the sum)", total)]
    n_rows = (len(panels) + 1) // 2
    g = Grid.filled([1] * n_rows, 2, v_gap=0.1, h_gap=0.04)
    stacked = np.stack([np.asarray(z, np.float64) for _, z in panels])
    if masked is not None:
        stacked[:, np.asarray(masked, bool)] = np.nan
    lim = _limit(stacked)
    xs, ys = [tick_label(t) for t in x_labels], [tick_label(t) for t in y_labels]
    cells = [[[yl, xl] for xl in xs] for yl in ys]
    # Rotated CJK characters are unreadable: short keys stay upright (a phone's panel has ~20 px a key).
    angle = 0 if len(x_labels) <= 12 and max((len(t) for t in x_labels), default=1) <= 4 else -90
    bar = dict(orientation="h", x=0.5, xanchor="center", y=1.0, yanchor="bottom", len=0.6, thickness=10)
    traces = []
    for i, ((name, _), z) in enumerate(zip(panels, stacked)):
        traces.append(
            _strip(
                g,
                i,
                z,
                lim,
                showscale=i == 0,
                # The title above the bar, not beside it: beside, it takes its width from the bar's,
                # which on a phone left the bar none (Plotly: "Something went wrong with axis scaling").
                colorbar=dict(**bar, ypad=22, title=dict(text="score (red +, blue −)", side="top")),
                customdata=cells,
                hovertemplate=f"{escape(name)}<br>query %{{customdata[0]}} · key %{{customdata[1]}}<br>%{{z:.4f}}<extra></extra>",
            )
        )
        g.title(i, escape(name))
        g.x(
            i,
            tickmode="array",
            tickvals=list(range(len(xs))),
            ticktext=xs,
            tickangle=angle,
            tickfont=dict(size=9),
        )
        g.y(
            i,
            tickmode="array",
            tickvals=list(range(len(ys))),
            ticktext=ys,
            tickfont=dict(size=9),
            autorange="reversed",
            showticklabels=i % 2 == 0,
        )
    longest = max((len(t) for t in x_labels), default=1)
    per_row = max(170, min(320, 14 * len(ys) + 40 + 6 * longest))
    top = TOP + 50
    # Margins that fit (no automargin redraw): the colour bar above the first row, the 9 px key and
    # query labels; the figure's height is as before, the rows give up that room.
    left = math.ceil(12 + 0.75 * key_labels_px(y_labels))
    bottom = 28 if angle == 0 else math.ceil(16 + 0.75 * key_labels_px(x_labels))
    margin = dict(l=left, r=14, t=top + 26, b=bottom)  # r: half the last key's upright label
    return _figure(g, traces, top + per_row * n_rows, plot_bgcolor=MASKED_BG, margin=margin)


def head_grid_figure(
    values: Mapping[str, np.ndarray],
    colorbar: str = "",
    diverging: bool = False,
    selected: tuple[str, int, int] | None = None,
    not_defined: str = "",
) -> go.Figure:
    """One layers × heads heatmap per kind, on one colour range with its colour bar centred under them;
    a click's point carries the head's name (customdata "kind:layer:head", 1-based). A kind where the
    statistic is all NaN (does not apply) gets no map: `not_defined` says so in words in its place."""
    kinds = list(values)
    g = Grid.filled([1], len(kinds), h_gap=0.07)
    stacked = np.concatenate([np.asarray(v, np.float64).ravel() for v in values.values()])
    finite = stacked[np.isfinite(stacked)]
    if diverging:
        lim = _limit(stacked)
        zmin, zmax, scale = -lim, lim, DIVERGING
    else:
        zmin = float(finite.min()) if finite.size else 0.0
        zmax = float(finite.max()) if finite.size else 1.0
        scale = "Blues"
    applies = [bool(np.isfinite(np.asarray(values[k], np.float64)).any()) for k in kinds]
    keyed = applies.index(True) if any(applies) else -1
    bar = dict(orientation="h", x=0.5, xanchor="center", y=-0.3, yanchor="top", len=0.9, thickness=10)
    traces = []
    for i, kind in enumerate(kinds):
        z = np.asarray(values[kind], np.float64)
        n_l, n_h = z.shape
        g.title(i, escape(kind))
        if not applies[i]:
            g.x(i, visible=False, range=[0, 1])
            g.y(i, visible=False, range=[0, 1])
            xd, yd = g.domains[i]
            g.annotate(
                text=not_defined or "does not apply here",
                x=(xd[0] + xd[1]) / 2,
                y=(yd[0] + yd[1]) / 2,
                xanchor="center",
                yanchor="middle",
                width=max(80, int(260 / len(kinds) * 1.1)),
                font=dict(size=11, color="#555"),
            )
            continue
        traces.append(
            g.heatmap(
                i,
                z,
                x=list(range(1, n_h + 1)),
                y=list(range(1, n_l + 1)),
                zmin=zmin,
                zmax=max(zmax, zmin + 1e-9),
                colorscale=scale,
                showscale=i == keyed,
                colorbar=dict(**bar, title=dict(text=escape(colorbar), side="top")),  # as terms_figure's
                customdata=[
                    [f"{kind}:{layer + 1}:{head + 1}" for head in range(n_h)] for layer in range(n_l)
                ],
                hovertemplate="%{customdata}<br>" + escape(colorbar) + " = %{z:.4f}<extra></extra>",
                xgap=2,
                ygap=2,
            )
        )
        g.x(i, title=dict(text="head", standoff=2), tickmode="array", tickvals=list(range(1, n_h + 1)))
        g.y(
            i,
            title=dict(text="layer", standoff=2) if i == 0 else None,
            tickmode="array",
            tickvals=list(range(1, n_l + 1)),
            autorange="reversed",
        )
        if selected and selected[0] == kind:
            g.outline(i, selected[2] + 0.5, selected[2] + 1.5, selected[1] + 0.5, selected[1] + 1.5, width=3)
    return _figure(g, traces, 330, plot_bgcolor=MASKED_BG, margin=dict(l=10, r=10, t=TOP, b=100))


def delta_figure(tokens: Sequence[str], delta: Sequence[float]) -> go.Figure:
    """Per output token, Δ log p (heads off − on), in the tab's colours: red where it rose (switching the
    heads off helped that token), blue where it fell (the heads had helped predict it)."""
    d = np.asarray(delta, np.float64)
    labels = [tick_label(t) for t in tokens]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(labels))),
            y=d.tolist(),
            marker_color=[BLUE if x < 0 else RED for x in d],
            customdata=labels,
            hovertemplate="%{customdata}<br>Δ log p = %{y:.6f}<extra></extra>",
        )
    )
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(labels))),
        ticktext=labels,
        title_text="output token (original translation)",
    )
    fig.update_yaxes(title_text="Δ log p", zeroline=True, zerolinecolor="#888")
    fig.update_layout(
        height=300,
        margin=dict(l=10, r=10, t=TOP, b=10),
        font=dict(family=FONT, size=12),
        plot_bgcolor="white",
    )
    return fig
