"""Figure builders: arrays and labels in, `plotly.graph_objects.Figure` out. No Gradio here.

Axes are numeric with tick labels (a categorical axis would merge repeated
tokens such as the two "the" in a sentence). Labels are HTML-escaped because
Plotly renders a few tags inside text; a token like "<b>" must show as text.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORSCALE = "Blues"  # white = no attention; masked cells are left empty and show the grey background
MASKED_BG = "#d9d9d9"
HIGHLIGHT = "#e4572e"


def escape(label: str) -> str:
    return html.escape(str(label), quote=False)


FONT = "Noto Sans CJK SC, Noto Sans, sans-serif"
DEFAULT_WIDTH = 1100  # px of the plot's container when the client has not said
NARROW = 600  # px: below this (a phone) the maps stack one per row and the colour bar lies flat


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Escaped labels made unique with zero-width spaces, so repeated tokens (two "the") keep their own
    category on the axis, and hover can read the label from the axis instead of a string per cell."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        text = escape(label)
        seen[text] = seen.get(text, -1) + 1
        out.append(text + "\u200b" * seen[text])
    return out


@dataclass
class GridGeometry:
    """Pixel sizes of a grid of heatmaps: what keeps every label readable at any length and width."""

    cell_w: float
    cell_h: float
    x_font: int
    y_font: int
    x_angle: int
    x_step: int  # label every x_step-th column (1 = all); hover still names every cell
    narrow: bool  # a phone: the colour bar lies flat under the title
    left: int  # px for the y tick labels and title
    bottom: int  # px for the x tick labels and title
    panel_h: float
    gap_y: float  # px between panel rows (room for the next row's title)
    height: int
    top: int  # px above the panels: the title, and the colour bar on a phone


def grid_geometry(
    n_rows: int,
    n_cols: int,
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    width: int,
    show_scale: bool,
    n_heading_lines: int = 2,
) -> GridGeometry:
    tq, tk = max(1, len(y_labels)), max(1, len(x_labels))
    longest_y = max((len(t) for t in y_labels), default=1)
    longest_x = max((len(t) for t in x_labels), default=1)
    y_font = 12 if tq <= 20 else 11 if tq <= 32 else 10 if tq <= 45 else 9
    narrow = width < NARROW
    left = int(min(width * 0.35, 30 + 0.62 * y_font * longest_y))
    right = 70 if show_scale and not narrow else 12
    gap_x = 14
    panel_w = max(60.0, (width - left - right - gap_x * (n_cols - 1)) / n_cols)
    cell_w = panel_w / tk
    # Horizontal x labels only when every label fits its column; otherwise vertical, one line per
    # column, and where even that does not fit, every x_step-th column: never overlapping.
    # A vertical label's line box is ~1.4 × its font size wide (measured in Chromium with Noto).
    x_font = int(max(8, min(12, cell_w / 1.4)))
    x_step = max(1, math.ceil(1.4 * x_font / cell_w))
    horizontal = longest_x * 0.62 * x_font <= cell_w - 2
    x_angle = 0 if horizontal else -90
    bottom = 40 + (x_font + 4 if horizontal else int(0.62 * x_font * longest_x) + 8)
    # Square-ish cells, never shorter than a label line; a single map may grow taller (the large view).
    cell_h = max(y_font + 5.0, min(30.0 if n_rows * n_cols > 1 else 48.0, cell_w))
    panel_h = cell_h * tq
    # On a phone the maps stack, one per row, and each keeps its own key labels (no scrolling back to read them).
    gap_y = 34.0 + (bottom - 40 if narrow else 0)
    top = 34 + 18 * n_heading_lines + (50 if narrow and show_scale else 0)
    height = int(top + n_rows * panel_h + (n_rows - 1) * gap_y + bottom)
    return GridGeometry(
        cell_w, cell_h, x_font, y_font, x_angle, x_step, narrow, left, bottom, panel_h, gap_y, height, top
    )


def heading_lines(title: str, subtitle: str, width: int) -> str:
    """The figure's title and subtitle, wrapped to the width (Plotly never wraps, and a phone cuts)."""
    lines = [escape(t) for t in textwrap.wrap(title, max(20, int((width - 20) / 8.5)))]
    lines += [f"<sup>{escape(t)}</sup>" for t in textwrap.wrap(subtitle, max(24, int((width - 20) / 6.5)))]
    return "<br>".join(lines)


def attention_figure(
    weights: np.ndarray,
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    *,
    row_titles: Sequence[str] = (),
    col_titles: Sequence[str] = (),
    masked: np.ndarray | None = None,
    highlight_row: int | None = None,
    shared_scale: bool = True,
    x_title: str = "key",
    y_title: str = "query",
    title: str = "",
    subtitle: str = "",
    width: int | None = None,
    forced_rows: np.ndarray | None = None,
) -> go.Figure:
    """A grid of attention heatmaps.

    weights: (R, C, Tq, Tk) in [0, 1], one panel per (row, column), e.g. layers × heads.
    masked: optional (Tq, Tk) bool, True where attention is forbidden (causal mask):
        those cells are drawn grey by a layer of their own that says "masked" on hover,
        so they cannot be mistaken for a learned near-zero weight.
    shared_scale: one 0–1 colour scale for every panel; False scales each panel to its own
        maximum, written in the panel's title. Rows in `forced_rows` (Tq bool: a row with a
        single visible key, whose weight is 1 by construction) do not set that maximum.
    width: the container's width in px; fonts, label angles and sizes follow from it.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4:
        raise ValueError(f"weights must be (rows, cols, queries, keys), got shape {weights.shape}")
    n_rows, n_cols, tq, tk = weights.shape
    if (tq, tk) != (len(y_labels), len(x_labels)):
        raise ValueError(
            f"weights are {tq}×{tk} but there are {len(y_labels)} row and {len(x_labels)} column labels"
        )
    if (width or DEFAULT_WIDTH) < NARROW and n_cols > 1:  # a phone: one map per row, each titled in full
        row_titles = [
            " · ".join(p for p in (row_titles[r] if r < len(row_titles) else "", col) if p)
            for r in range(n_rows)
            for col in (list(col_titles) + [""] * n_cols)[:n_cols]
        ]
        col_titles, weights = [], weights.reshape(n_rows * n_cols, 1, tq, tk)
        n_rows, n_cols = n_rows * n_cols, 1
    xs, ys = unique_labels(x_labels), unique_labels(y_labels)
    heading = heading_lines(
        title if n_rows == 1 else f"{title} · rows: {y_title}", subtitle, width or DEFAULT_WIDTH
    )
    geo = grid_geometry(
        n_rows, n_cols, x_labels, y_labels, width or DEFAULT_WIDTH, shared_scale, heading.count("<br>") + 1
    )
    plot_h = geo.height - geo.top - geo.bottom  # the panels and the gaps between them, in px
    # The grid is laid out by hand (axis domains, one axis pair per panel): make_subplots
    # plus per-panel update_xaxes calls cost several times more, and this runs on every toggle.
    gap_x = 0.02 if n_cols > 1 else 0.0
    panel_w = (1 - gap_x * (n_cols - 1)) / n_cols
    panel_h, gap_y = geo.panel_h / plot_h, geo.gap_y / plot_h
    hover = "query: %{y}<br>key: %{x}<br>weight: %{z:.4f}<extra></extra>"
    mask_z = None
    if masked is not None and masked.any():
        mask_z = np.where(masked, 1.0, np.nan)
    scale_rows = np.ones(tq, bool) if forced_rows is None else ~np.asarray(forced_rows, bool)
    traces, shapes, annotations, layout = [], [], [], {}
    for r in range(n_rows):
        for c in range(n_cols):
            n = r * n_cols + c + 1
            suffix = "" if n == 1 else str(n)
            x0, y1 = c * (panel_w + gap_x), 1 - r * (panel_h + gap_y)
            x_dom = [max(0.0, x0), min(1.0, x0 + panel_w)]
            y_dom = [max(0.0, y1 - panel_h), min(1.0, y1)]
            z = weights[r, c].copy()
            if masked is not None:
                z[masked] = np.nan
            zmax = 1.0
            if not shared_scale:
                visible = z[scale_rows] if scale_rows.any() else z
                zmax = max(float(np.nanmax(visible)) if np.isfinite(visible).any() else 1.0, 1e-9)
            traces.append(
                go.Heatmap(
                    z=z,
                    x=xs,
                    y=ys,
                    xaxis=f"x{suffix}",
                    yaxis=f"y{suffix}",
                    zmin=0.0,
                    zmax=zmax,
                    colorscale=COLORSCALE,
                    hoverongaps=False,
                    hovertemplate=hover,
                    showscale=shared_scale and r == 0 and c == n_cols - 1,
                    colorbar=(
                        dict(  # above the first map's title, its tick labels below the bar
                            orientation="h",
                            x=0.5,
                            xanchor="center",
                            y=1 + 34 / plot_h,
                            yanchor="bottom",
                            thickness=10,
                            len=0.6,
                            title=dict(text="weight", side="right"),
                        )
                        if geo.narrow
                        else dict(
                            title=dict(text="weight"),
                            thickness=12,
                            len=min(1.0, 320 / plot_h),
                            y=1,
                            yanchor="top",
                        )
                    ),
                )
            )
            if mask_z is not None:
                traces.append(
                    go.Heatmap(
                        z=mask_z,
                        x=xs,
                        y=ys,
                        xaxis=f"x{suffix}",
                        yaxis=f"y{suffix}",
                        showscale=False,
                        colorscale=[[0, MASKED_BG], [1, MASKED_BG]],
                        hoverongaps=False,
                        hovertemplate="query: %{y}<br>key: %{x}<br>masked: a future position<extra></extra>",
                    )
                )
            bottom_row = r == n_rows - 1
            layout[f"xaxis{suffix}"] = dict(
                domain=x_dom,
                anchor=f"y{suffix}",
                type="category",
                tickangle=geo.x_angle,
                tickmode="array",
                tickvals=xs[:: geo.x_step],
                ticktext=[x.replace("\u200b", "") for x in xs[:: geo.x_step]],
                tickfont=dict(size=geo.x_font),
                showgrid=False,
                zeroline=False,
                range=[-0.5, tk - 0.5],
                showticklabels=bottom_row or geo.narrow,
            )
            layout[f"yaxis{suffix}"] = dict(
                domain=y_dom,
                anchor=f"x{suffix}",
                type="category",
                tickfont=dict(size=geo.y_font),
                showgrid=False,
                zeroline=False,
                range=[tq - 0.5, -0.5],
                showticklabels=c == 0,
                title=dict(text=y_title, standoff=4) if c == 0 and n_rows == 1 else None,
            )
            if bottom_row:  # in the margin's last 24 px, under the labels: an axis title can land on them
                annotations.append(
                    dict(
                        name="axis-title",
                        text=escape(x_title),
                        x=x0 + panel_w / 2,
                        y=-(geo.bottom - 4) / plot_h,
                        xref="paper",
                        yref="paper",
                        xanchor="center",
                        yanchor="bottom",
                        showarrow=False,
                        font=dict(size=13),
                    )
                )
            parts = [
                row_titles[r] if r < len(row_titles) else "",
                col_titles[c] if c < len(col_titles) else "",
            ]
            if not shared_scale:
                parts.append(f"darkest = {zmax:.2f}")
            annotations.append(
                dict(
                    name="panel-title",
                    text=escape(" · ".join(p for p in parts if p)),
                    x=x0 + panel_w / 2,
                    y=y1,
                    xref="paper",
                    yref="paper",
                    xanchor="center",
                    yanchor="bottom",
                    showarrow=False,
                    font=dict(size=12),
                )
            )
            if highlight_row is not None and 0 <= highlight_row < tq:
                shapes.append(
                    dict(
                        type="rect",
                        xref=f"x{suffix}",
                        yref=f"y{suffix}",
                        x0=-0.5,
                        x1=tk - 0.5,
                        y0=highlight_row - 0.5,
                        y1=highlight_row + 0.5,
                        line=dict(color=HIGHLIGHT, width=2),
                    )
                )
    right = 70 if shared_scale and not geo.narrow else 12
    # The heading is an annotation pinned to the top-left corner: Plotly shifts a multi-line title upward,
    # out of the figure, and a phone shows every line of it.
    annotations.append(
        dict(
            name="heading",
            text=heading,
            xref="paper",
            yref="paper",
            x=-geo.left / max(1.0, (width or DEFAULT_WIDTH) - geo.left - right),
            y=1 + (geo.top - 6) / plot_h,
            xanchor="left",
            yanchor="top",
            align="left",
            showarrow=False,
            font=dict(size=15),
        )
    )
    layout.update(
        plot_bgcolor="white",
        margin=dict(l=geo.left, r=right, t=geo.top, b=geo.bottom),
        height=geo.height,
        font=dict(family=FONT, size=12),
        annotations=annotations,
        shapes=shapes,
    )
    return go.Figure(data=traces, layout=layout)


def top_k_figure(
    tokens: Sequence[str], probs: Sequence[float], title: str = "", chosen: int | None = None
) -> go.Figure:
    """Horizontal bars of next-token probabilities, likeliest on top; bar `chosen` (the token decoding
    actually output) is drawn in the highlight colour and labelled "chosen"."""
    labels = [escape(t) for t in tokens]
    colours = [HIGHLIGHT if i == chosen else "#3b75af" for i in range(len(labels))]
    text = [f"{p:.1%}" + (" · chosen" if i == chosen else "") for i, p in enumerate(probs)]
    fig = go.Figure(
        go.Bar(
            x=list(probs),
            y=list(range(len(labels))),
            orientation="h",
            marker_color=colours,
            text=text,
            textposition="auto",
            customdata=labels,
            hovertemplate="%{customdata}: %{x:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(tickvals=list(range(len(labels))), ticktext=labels, autorange="reversed")
    fig.update_xaxes(range=[0, 1], title_text="probability")
    fig.update_layout(
        title=dict(text=escape(title), x=0, xanchor="left", font=dict(size=13)),
        height=60 + 40 * max(5, len(labels)),
        margin=dict(l=10, r=10, t=50, b=10),
        font=dict(family=FONT, size=13),
    )
    return fig


def positional_encoding_figure(pe: np.ndarray, dims: Sequence[int] = (0, 1, 4, 5, 16, 17)) -> go.Figure:
    """The sinusoidal table (positions × dimensions) as a heatmap, and a few dimensions as curves."""
    pe = np.asarray(pe, dtype=np.float64)
    n_pos, d = pe.shape
    dims = [k for k in dims if k < d]
    fig = make_subplots(
        rows=2,
        cols=1,
        row_heights=[0.55, 0.45],
        vertical_spacing=0.14,
        subplot_titles=("PE[position, dimension]", "a few dimensions by position"),
    )
    # The colour bar stays beside the table and the legend goes under the curves: they never overlap.
    fig.add_trace(
        go.Heatmap(
            z=pe,
            colorscale="RdBu",
            zmin=-1,
            zmax=1,
            colorbar=dict(len=0.5, y=1, yanchor="top", thickness=12),
            hovertemplate="position %{y}<br>dimension %{x}<br>value %{z:.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    for k in dims:
        wave = "sin" if k % 2 == 0 else "cos"
        fig.add_trace(
            go.Scatter(x=list(range(n_pos)), y=pe[:, k], mode="lines", name=f"dim {k} ({wave})"), row=2, col=1
        )
    fig.update_yaxes(title_text="position", autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text="dimension", row=1, col=1)
    fig.update_xaxes(title_text="position", row=2, col=1)
    fig.update_layout(
        height=700,
        margin=dict(l=10, r=10, t=40, b=10),
        font=dict(family=FONT, size=12),
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.1, yanchor="top"),
    )
    fig.update_annotations(font_size=13, x=0, xanchor="left")  # subplot titles: left-aligned, never cut
    return fig
