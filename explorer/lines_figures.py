"""The Attention tab's "lines" view, as in bertviz's head view: queries in a column on the left, keys on the
right, one line per (query, key) pair whose opacity is the weight, a colour per head. Pure: `views.select`'s
result in, `go.Figure` out. No Gradio.

Plotly gives a scatter trace one opacity, so each line is a layout shape of its own (its `opacity` is the
weight exactly): hundreds of two-point traces cost the page twice the time of the map they replace (each
trace is defaulted, calculated and drawn on its own), shapes about as much as the map. Lines under
`MIN_WEIGHT` are not drawn (at most 1/MIN_WEIGHT per row and head, whatever the sentence's length): that
keeps the figure small, and a line that faint cannot be seen anyway.

Showing one query's lines: each query has a dot (a trace in legend group "q<i>") and each line is named
after its query ("q<i>"); hovering a dot lists the query's strongest keys per head, and
explorer/js/lines_hover.js hides the other queries' lines meanwhile. That costs no data per query (a
dropdown would carry one visibility flag per line for every query), and no legend: Plotly's legend, one
entry per query, cost ~15-25 ms of each draw and a phone screen of its own.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .figures import FONT, HIGHLIGHT, NARROW, SEPARATOR
from .text_fit import char_width, escape, heading_lines

MIN_WEIGHT = 0.01  # lines fainter than this are left out (and the caption says how many)
# One colour per head, by the head's number (head 3 has the same colour whichever heads are ticked);
# averaged heads are one map, in one colour.
HEAD_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
MEAN_COLOUR = "#1f4e79"
ROW_PX = 22  # px per token row: room for a 12 px label
LABEL_FONT = 12


def drawn(weights: np.ndarray, masked: np.ndarray | None) -> np.ndarray:
    """(R, C, Tq, Tk) bool: the pairs that get a line (weight ≥ MIN_WEIGHT, not the masked future)."""
    keep = np.asarray(weights) >= MIN_WEIGHT
    return keep & ~np.asarray(masked, bool) if masked is not None else keep


def head_colour(col_title: str) -> str:
    """ "head 3" → head 3's colour; "mean of heads 1, 2" → the one colour of averaged heads."""
    if col_title.startswith("head "):
        return HEAD_COLOURS[(int(col_title.split()[1]) - 1) % len(HEAD_COLOURS)]
    return MEAN_COLOUR


def _text_px(label: str) -> float:
    return 0.62 * LABEL_FONT * sum(char_width(c) for c in label)


def lines_figure(sel: dict) -> go.Figure:
    """`views.select`'s result as lines: one panel per row of its weights (R, C, Tq, Tk) (a layer), the C heads
    drawn over each other. Its colour-scale options (shared_scale, forced_rows) do not apply to lines."""
    weights, x_labels, y_labels = sel["weights"], sel["x_labels"], sel["y_labels"]
    row_titles, col_titles = sel.get("row_titles", ()), sel.get("col_titles", ())
    masked, highlight_row = sel.get("masked"), sel.get("highlight_row")
    x_breaks, y_breaks = sel.get("x_breaks", ()), sel.get("y_breaks", ())
    x_title, y_title = sel.get("x_title", "key"), sel.get("y_title", "query")
    title, subtitle, width = sel.get("title", ""), sel.get("subtitle", ""), sel.get("width")
    weights = np.asarray(weights, dtype=np.float64)
    n_panels, n_heads, tq, tk = weights.shape
    if (tq, tk) != (len(y_labels), len(x_labels)):
        raise ValueError(f"weights are {tq}×{tk} but there are {len(y_labels)} rows and {len(x_labels)} keys")
    width = width or 1100
    narrow = width < NARROW
    n_cols = 1 if narrow else n_panels  # a phone stacks the layers: it scrolls down, never sideways
    n_rows = n_panels if narrow else 1
    ys, xs = [escape(t) for t in y_labels], [escape(t) for t in x_labels]
    colours = [head_colour(col_titles[c] if c < len(col_titles) else "") for c in range(n_heads)]
    key = " ".join(
        f'<span style="color:{colour}">━ {escape(col_titles[c] if c < len(col_titles) else "")}</span>'
        for c, colour in enumerate(colours)
    )
    heading = heading_lines(title, subtitle, width)
    n_heading = heading.count("<br>") + 1
    sides = escape(f"left: {y_title}") + ("<br>" if narrow else " · ") + escape(f"right: {x_title}")
    top, gap_y, margin_x = 48 + 18 * n_heading + 16 * (sides.count("<br>") + 2), 40, 8
    panel_h = max(tq, tk, 1) * ROW_PX
    plot_w, plot_h = width - 2 * margin_x, n_rows * panel_h + (n_rows - 1) * gap_y
    # Each panel: its query labels, the lines, its key labels, all inside the panel's share of the width.
    left = min(max((_text_px(t) for t in y_labels), default=10) + 14, 0.4 * plot_w / n_cols)
    right = min(max((_text_px(t) for t in x_labels), default=10) + 14, 0.3 * plot_w / n_cols)
    panel_w, gap_x = (plot_w - (n_cols - 1) * 16) / n_cols, 16
    layout: dict = {}
    annotations, shapes, lines, traces, queries = [], [], [], [], []
    for p in range(n_panels):
        r, c = (p, 0) if narrow else (0, p)
        x0 = (c * (panel_w + gap_x) + left) / plot_w
        x1 = (c * (panel_w + gap_x) + panel_w - right) / plot_w
        y1 = 1 - r * (panel_h + gap_y) / plot_h
        y0 = y1 - panel_h / plot_h
        s, s_keys = ("" if p == 0 else str(p + 1)), str(n_panels + p + 1)
        span = [max(tq, tk) - 0.5, -0.5]
        layout[f"xaxis{s}"] = dict(domain=[x0, x1], range=[-0.06, 1.06], visible=False, fixedrange=True)
        # ticklabeloverflow: see figures.Grid (the labels fit the panel's side by construction: `left`, `right`)
        ticks = dict(
            tickmode="array",
            tickfont=dict(size=LABEL_FONT),
            showgrid=False,
            zeroline=False,
            ticklabeloverflow="allow",
        )
        layout[f"yaxis{s}"] = dict(
            domain=[y0, y1], anchor=f"x{s}", range=span, fixedrange=True, tickvals=list(range(tq)), ticktext=ys,
            **ticks,
        )  # fmt: skip
        layout[f"yaxis{s_keys}"] = dict(
            overlaying=f"y{s}", anchor=f"x{s}", side="right", range=span, fixedrange=True,
            tickvals=list(range(tk)), ticktext=xs, **ticks,
        )  # fmt: skip
        axes = dict(xaxis=f"x{s}", yaxis=f"y{s}") if s else {}
        panel_title = row_titles[p] if p < len(row_titles) else ""
        annotations.append(
            dict(
                xref="paper", yref="paper", x=(x0 + x1) / 2, y=y1, xanchor="center", yanchor="bottom",
                showarrow=False, text=escape(panel_title), font=dict(size=12), name="panel-title",
            )
        )  # fmt: skip
        for b in y_breaks:  # sentence separators, under each column of labels
            shapes.append(_separator(s, -0.06, 0.1, b + 0.5))
        for b in x_breaks:
            shapes.append(_separator(s, 0.9, 1.06, b + 0.5))
        order = [i for i in range(tq) if i != highlight_row] + (
            [highlight_row] if highlight_row in range(tq) else []
        )
        keep = drawn(weights[p], None if masked is None else np.broadcast_to(masked, weights[p].shape[1:]))
        for i in order:  # the highlighted query last: its lines are drawn over the rest
            for h in range(n_heads):
                line = dict(color=colours[h], width=3 if i == highlight_row else 1.5)
                for j in np.flatnonzero(keep[h, i]):
                    w = float(np.float32(weights[p, h, i, j]))  # the shortest text of the float32 weight
                    lines.append(dict(type="line", xref=f"x{s}", yref=f"y{s}", x0=0, x1=1, y0=i, y1=int(j),
                                      opacity=w, line=line, layer="below", name=f"q{i}"))  # fmt: skip
        for i in range(tq):  # a dot per query: its hover, and what shows only its lines
            top_keys = [
                f"{escape(col_titles[h]) if h < len(col_titles) else ''}: "
                + ", ".join(f"{xs[j]} {weights[p, h, i, j]:.3f}" for j in np.argsort(-weights[p, h, i])[:3])
                for h in range(n_heads)
            ]
            hi = i == highlight_row
            queries.append(
                dict(
                    type="scatter", mode="markers", x=[0], y=[i], name=ys[i], legendgroup=f"q{i}", hoverinfo="all",
                    showlegend=False, marker=dict(size=10 if hi else 6, color=HIGHLIGHT if hi else "#555"),
                    hovertemplate=f"{ys[i]}<br>" + "<br>".join(top_keys) + "<extra></extra>", **axes,
                )
            )  # fmt: skip
        traces.append(
            dict(
                type="scatter", mode="markers", x=[1] * tk, y=list(range(tk)), showlegend=False,
                marker=dict(size=6, color="#555"), hoverinfo="skip", xaxis=f"x{s}", yaxis=f"y{s_keys}",
            )
        )  # fmt: skip
    annotations.append(
        dict(
            xref="paper", yref="paper", x=-margin_x / plot_w, y=1 + (top - 6) / plot_h, xanchor="left",
            yanchor="top", align="left", showarrow=False, name="heading", font=dict(size=15),
            text=f"{heading}<br><span style='font-size:12px'>{sides}<br>{key}</span>",
        )
    )  # fmt: skip
    bottom = 16  # the last row's labels reach half a row below its line
    layout.update(
        annotations=annotations, shapes=shapes + lines, showlegend=False, hovermode="closest",
        height=int(top + plot_h + bottom), margin=dict(l=margin_x, r=margin_x, t=top, b=bottom),
        font=dict(family=FONT, size=12), plot_bgcolor="white",
    )  # fmt: skip
    return go.Figure(data=traces + queries, layout=layout, _validate=False)


def _separator(s: str, x0: float, x1: float, y: float) -> dict:
    line = dict(color=SEPARATOR, width=1, dash="dot")
    return dict(type="line", xref=f"x{s}", yref=f"y{s}", x0=x0, x1=x1, y0=y, y1=y, line=line)
