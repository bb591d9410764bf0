"""Figures of the "Inside a head" tab: arrays and labels in, go.Figure out. No Gradio here.

Vectors are colour strips (red positive, blue negative, white 0; hover gives each value);
the steps from scores to weights are bars over the same key axis, one row per step, so a
key's raw score, scaled score and weight line up. A masked key has no bar and no number:
it is written "masked (−∞)". Key axes are numeric with tick labels, so repeated tokens keep
their own position. Titles are Plotly HTML: callers escape what came from the user and may
break lines with <br> (a phone shows ~45 characters a line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import FONT, MASKED_BG, Grid, escape

DIVERGING = "RdBu_r"
MASKED_TEXT = "masked (−∞)"
BAR = "#3b75af"
GREY = "#9a9a9a"


def _figure(g: Grid, traces: list[dict], title: str, height: int, **layout) -> go.Figure:
    """The tab's look: the title at the top left, no legend, thin side margins."""
    title = dict(text=title, x=0, xanchor="left", font=dict(size=14))
    margin = layout.pop("margin", dict(l=10, r=10, t=90, b=10))
    return g.figure(traces, title=title, height=height, showlegend=False, margin=margin, **layout)


def _limit(a: np.ndarray) -> float:
    finite = np.asarray(a, np.float64)[np.isfinite(a)]
    return max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-9)


def _strip(g: Grid, i: int, z: np.ndarray, lim: float | None = None, **style) -> dict:
    """A heatmap on panel i, white at 0 and red/blue up to ±lim (by default z's own largest |value|)."""
    lim = _limit(z) if lim is None else lim
    scale = dict(zmin=-lim, zmax=lim, colorscale=DIVERGING, showscale=False)
    return g.heatmap(i, z, **{**scale, **style})


def _key_matrix(g: Grid, i: int, m: np.ndarray, labels: list[str], name: str, heading: str) -> dict:
    """m (keys, d_head) as a strip matrix on panel i: one column per key, one row per dimension."""
    z = np.asarray(m, np.float64).T  # (d_head, keys)
    g.title(i, heading)
    g.y(i, title=dict(text="dim", standoff=2), autorange="reversed", showticklabels=False)
    hover = f"key %{{customdata}}<br>{name}[%{{y}}] = %{{z:.6f}}<extra></extra>"
    return _strip(g, i, z, x=list(range(z.shape[1])), customdata=[labels] * z.shape[0], hovertemplate=hover)


def strips_figure(
    vectors: Sequence[tuple[str, np.ndarray]],
    title: str = "",
    highlight: Mapping[str, tuple[int, int]] | None = None,
) -> go.Figure:
    """One colour strip per (name, vector), each on its own dimension axis and colour range
    (hover gives name[i] and the exact value). highlight: {name: (start, stop)} outlines a slice."""
    n = len(vectors)
    strip_px, gap_px = 40, 52  # the gap holds a strip's tick labels and the next strip's title
    plot_px = n * strip_px + (n - 1) * gap_px
    g = Grid.filled([1] * n, v_gap=gap_px / plot_px)
    traces = []
    for i, (name, vec) in enumerate(vectors):
        v = np.asarray(vec, np.float64).reshape(1, -1)
        label = escape(name)
        traces.append(_strip(g, i, v, hovertemplate=f"{label}[%{{x}}] = %{{z:.6f}}<extra></extra>"))
        g.title(i, label)
        g.y(i, showticklabels=False)
        g.x(i, range=[-0.5, v.shape[1] - 0.5])
        if highlight and name in highlight:
            start, stop = highlight[name]
            g.outline(i, start - 0.5, stop - 0.5, -0.5, 0.5, width=3)
    g.x(n - 1, title=dict(text="dimension", standoff=4))
    return _figure(g, traces, title, 90 + 55 + plot_px, margin=dict(l=10, r=10, t=90, b=55))


def _key_ticks(g: Grid, i: int, keys: Sequence[str], show: bool) -> None:
    ticks = [escape(k) for k in keys]
    angle = 0 if sum(len(t) + 1 for t in keys) <= 40 else -90
    g.x(
        i,
        tickmode="array",
        tickvals=list(range(len(keys))),
        ticktext=ticks,
        tickangle=angle,
        showticklabels=show,
        range=[-0.5, len(keys) - 0.5],
    )


def scores_figure(
    keys: Sequence[str],
    k: np.ndarray,
    raw: np.ndarray,
    scaled: np.ndarray,
    weights: np.ndarray,
    masked: np.ndarray,
    title: str = "",
) -> go.Figure:
    """Keys k_j (a d_head × keys strip matrix), then aligned bars per key: q·k_j, q·k_j/√d, softmax weight.

    Masked keys get no bar in any row (their score is −∞ and their weight 0 by construction,
    not a learned value) and the text MASKED_TEXT instead."""
    masked = np.asarray(masked, bool)
    n, d = len(keys), k.shape[1]
    g = Grid.filled([0.34, 0.22, 0.22, 0.22], v_gap=0.07, shared_x=True)
    labels = [escape(t) for t in keys]
    traces = [_key_matrix(g, 0, k, labels, "k", f"k_j: each key's {d} values (one column per key)")]
    open_ = [j for j in range(n) if not masked[j]]
    shut = [j for j in range(n) if masked[j]]
    rows = (
        (raw, "q·k", GREY, "q·k_j: raw score"),
        (scaled, "q·k/√d", GREY, f"q·k_j / √{d}: scaled score"),
        (weights, "weight", BAR, "softmax → weight (the heatmap's row)"),
    )
    for i, (values, what, colour, heading) in enumerate(rows, start=1):
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
        g.title(i, heading)
        g.y(i, zeroline=True, zerolinecolor="#bbb")
    g.y(3, range=[0, 1.05])
    for i in range(4):
        _key_ticks(g, i, keys, i == 3)
    return _figure(g, traces, title, 660)


def values_figure(
    keys: Sequence[str],
    v: np.ndarray,
    weights: np.ndarray,
    output: np.ndarray,
    masked: np.ndarray,
    title: str = "",
) -> go.Figure:
    """v_j (d_head × keys), each scaled by its weight, and their sum, the head's output (a strip)."""
    masked = np.asarray(masked, bool)
    n, d = v.shape
    weighted = np.asarray(weights, np.float64)[:, None] * np.asarray(v, np.float64)
    weighted[masked] = np.nan  # 0 · v_j by construction: shown as masked, not as a computed zero
    g = Grid.filled([0.4, 0.4, 0.2], v_gap=0.12)
    labels = [escape(t) for t in keys]
    traces = []
    for i, (m, heading) in enumerate(((v, "v_j: each key's value vector"), (weighted, "weight_j · v_j"))):
        traces.append(_key_matrix(g, i, m, labels, "", heading))
        _key_ticks(g, i, keys, True)
    out = np.asarray(output, np.float64).reshape(1, -1)
    traces.append(_strip(g, 2, out, hovertemplate="output[%{x}] = %{z:.6f}<extra></extra>"))
    g.title(2, "Σ_j weight_j · v_j: this head's output (d_head values)")
    g.y(2, showticklabels=False)
    g.x(2, title=dict(text="dimension", standoff=4), range=[-0.5, d - 0.5])
    return _figure(g, traces, title, 660, plot_bgcolor=MASKED_BG)


def terms_figure(
    terms: Mapping[str, np.ndarray],
    total: np.ndarray,
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    masked: np.ndarray | None = None,
    title: str = "",
) -> go.Figure:
    """The five content/position terms and their sum (the scores), one heatmap each, 2 per row,
    on one colour range so their sizes compare. Masked cells are left grey."""
    panels = [*terms.items(), ("= q·k/√d (the sum)", total)]
    n_rows = (len(panels) + 1) // 2
    g = Grid.filled([1] * n_rows, 2, v_gap=0.1, h_gap=0.04)
    stacked = np.stack([np.asarray(z, np.float64) for _, z in panels])
    if masked is not None:
        stacked[:, np.asarray(masked, bool)] = np.nan
    lim = _limit(stacked)
    xs, ys = [escape(t) for t in x_labels], [escape(t) for t in y_labels]
    cells = [[[yl, xl] for xl in xs] for yl in ys]
    # Rotated CJK characters are unreadable: short keys stay upright (a phone's panel has ~20 px a key).
    angle = 0 if len(x_labels) <= 12 and max((len(t) for t in x_labels), default=1) <= 4 else -90
    traces = []
    for i, ((name, _), z) in enumerate(zip(panels, stacked)):
        traces.append(
            _strip(
                g,
                i,
                z,
                lim,
                showscale=i == 0,
                colorbar=dict(
                    orientation="h",
                    y=-0.02,
                    yanchor="top",
                    len=0.8,
                    thickness=10,
                    title=dict(text="score", side="right"),
                ),
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
    return _figure(g, traces, title, 150 + per_row * n_rows, plot_bgcolor=MASKED_BG)


def head_grid_figure(
    values: Mapping[str, np.ndarray],
    title: str = "",
    colorbar: str = "",
    diverging: bool = False,
    selected: tuple[str, int, int] | None = None,
) -> go.Figure:
    """One layers × heads heatmap per kind, on one colour range; a click's point carries the head's
    name (customdata "kind:layer:head", 1-based). NaN (a statistic that does not apply) stays grey."""
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
    traces = []
    for i, kind in enumerate(kinds):
        z = np.asarray(values[kind], np.float64)
        n_l, n_h = z.shape
        traces.append(
            g.heatmap(
                i,
                z,
                x=list(range(1, n_h + 1)),
                y=list(range(1, n_l + 1)),
                zmin=zmin,
                zmax=max(zmax, zmin + 1e-9),
                colorscale=scale,
                showscale=i == len(kinds) - 1,
                colorbar=dict(
                    orientation="h",
                    x=0.5,
                    xanchor="center",
                    y=-0.28,
                    yanchor="top",
                    len=0.9,
                    thickness=10,
                    title=dict(text=escape(colorbar), side="right"),
                ),
                customdata=[
                    [f"{kind}:{layer + 1}:{head + 1}" for head in range(n_h)] for layer in range(n_l)
                ],
                hovertemplate="%{customdata}<br>" + escape(colorbar) + " = %{z:.4f}<extra></extra>",
                xgap=2,
                ygap=2,
            )
        )
        g.title(i, escape(kind))
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
    return _figure(g, traces, title, 360, plot_bgcolor=MASKED_BG, margin=dict(l=10, r=10, t=90, b=90))


def delta_figure(tokens: Sequence[str], delta: Sequence[float], title: str = "") -> go.Figure:
    """Per output token, Δ log p (heads off − on): red where switching off hurt, blue where it helped."""
    d = np.asarray(delta, np.float64)
    labels = [escape(t) for t in tokens]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(labels))),
            y=d.tolist(),
            marker_color=["#c0392b" if x < 0 else BAR for x in d],
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
        title=dict(text=escape(title), x=0, xanchor="left", font=dict(size=14)),
        height=330,
        margin=dict(l=10, r=10, t=60, b=10),
        font=dict(family=FONT, size=12),
        plot_bgcolor="white",
    )
    return fig
