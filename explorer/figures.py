"""Figure builders: arrays and labels in, `plotly.graph_objects.Figure` out. No Gradio here.

Axes are numeric with tick labels (a categorical axis would merge repeated
tokens such as the two "the" in a sentence). Labels are HTML-escaped because
Plotly renders a few tags inside text; a token like "<b>" must show as text.
"""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORSCALE = "Blues"  # white = no attention; masked cells are left empty and show the grey background
MASKED_BG = "#d9d9d9"
HIGHLIGHT = "#e4572e"


def escape(label: str) -> str:
    return html.escape(str(label), quote=False)


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
) -> go.Figure:
    """A grid of attention heatmaps.

    weights: (R, C, Tq, Tk) in [0, 1], one panel per (row, column), e.g. layers × heads.
    masked: optional (Tq, Tk) bool, True where attention is forbidden (causal mask):
        those cells are left empty (grey background, "masked" on hover) so they
        cannot be mistaken for a learned near-zero weight.
    shared_scale: one 0–1 colour scale for every panel; False scales each panel to its own max.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4:
        raise ValueError(f"weights must be (rows, cols, queries, keys), got shape {weights.shape}")
    n_rows, n_cols, tq, tk = weights.shape
    if (tq, tk) != (len(y_labels), len(x_labels)):
        raise ValueError(f"weights are {tq}×{tk} but there are {len(y_labels)} row and {len(x_labels)} column labels")
    xs, ys = [escape(x) for x in x_labels], [escape(y) for y in y_labels]
    # The grid is laid out by hand (axis domains, one axis pair per panel): make_subplots
    # plus per-panel update_xaxes calls cost several times more, and this runs on every toggle.
    # Panels share their rows and columns: tick labels only on the left column and bottom row.
    gap_x = 0.025 if n_cols > 1 else 0.0
    gap_y = min(0.08, 0.3 / max(1, n_rows - 1)) if n_rows > 1 else 0.0
    width = (1 - gap_x * (n_cols - 1)) / n_cols
    height = (1 - gap_y * (n_rows - 1)) / n_rows
    hover = np.empty((tq, tk), dtype=object)  # explicit shape: stays 2-D when a side is empty
    for i in range(tq):
        for j in range(tk):
            hover[i, j] = f"query: {ys[i]}<br>key: {xs[j]}"
    if masked is not None:
        hover[masked] = [h + "<br>masked (future position)" for h in hover[masked]]
    traces, shapes, annotations, layout = [], [], [], {}
    for r in range(n_rows):
        for c in range(n_cols):
            n = r * n_cols + c + 1
            suffix = "" if n == 1 else str(n)
            x0, y1 = c * (width + gap_x), 1 - r * (height + gap_y)
            x_dom = [max(0.0, x0), min(1.0, x0 + width)]
            y_dom = [max(0.0, y1 - height), min(1.0, y1)]
            z = weights[r, c].copy()
            if masked is not None:
                z[masked] = np.nan
            zmax = 1.0 if shared_scale else max(float(np.nanmax(z)) if np.isfinite(z).any() else 1.0, 1e-9)
            traces.append(go.Heatmap(
                z=z, text=hover, xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                zmin=0.0, zmax=zmax, colorscale=COLORSCALE, hoverongaps=True,
                hovertemplate="%{text}<br>weight: %{z:.4f}<extra></extra>",
                showscale=shared_scale and r == 0 and c == n_cols - 1,
                colorbar=dict(title=dict(text="weight"), thickness=12),
            ))
            layout[f"xaxis{suffix}"] = dict(
                domain=x_dom, anchor=f"y{suffix}", tickvals=list(range(tk)), ticktext=xs,
                tickangle=-60, showgrid=False, zeroline=False, range=[-0.5, tk - 0.5],
                showticklabels=r == n_rows - 1, title=dict(text=x_title) if r == n_rows - 1 else None)
            layout[f"yaxis{suffix}"] = dict(
                domain=y_dom, anchor=f"x{suffix}", tickvals=list(range(tq)), ticktext=ys,
                showgrid=False, zeroline=False, range=[tq - 0.5, -0.5], showticklabels=c == 0,
                title=dict(text=y_title) if c == 0 and n_rows == 1 else None)
            parts = [row_titles[r] if r < len(row_titles) else "", col_titles[c] if c < len(col_titles) else ""]
            annotations.append(dict(text=escape(" · ".join(p for p in parts if p)), x=x0 + width / 2, y=y1,
                                    xref="paper", yref="paper", xanchor="center", yanchor="bottom",
                                    showarrow=False, font=dict(size=13)))
            if highlight_row is not None and 0 <= highlight_row < tq:
                shapes.append(dict(type="rect", xref=f"x{suffix}", yref=f"y{suffix}", x0=-0.5, x1=tk - 0.5,
                                   y0=highlight_row - 0.5, y1=highlight_row + 0.5,
                                   line=dict(color=HIGHLIGHT, width=2)))
    panel = max(220, 26 * max(tq, tk) + 80)
    layout.update(
        title=dict(text=escape(title if n_rows == 1 else f"{title} · rows: {y_title}")), plot_bgcolor=MASKED_BG, margin=dict(l=10, r=10, t=70, b=10),
        height=min(2400, panel * n_rows + 80), font=dict(family="Noto Sans CJK SC, Noto Sans, sans-serif", size=12),
        annotations=annotations, shapes=shapes,
    )
    return go.Figure(data=traces, layout=layout)


def top_k_figure(tokens: Sequence[str], probs: Sequence[float], title: str = "") -> go.Figure:
    """Horizontal bars of next-token probabilities, likeliest on top."""
    labels = [escape(t) for t in tokens]
    fig = go.Figure(go.Bar(
        x=list(probs), y=list(range(len(labels))), orientation="h", marker_color="#3b75af",
        text=[f"{p:.1%}" for p in probs], textposition="auto",
        customdata=labels, hovertemplate="%{customdata}: %{x:.4f}<extra></extra>",
    ))
    fig.update_yaxes(tickvals=list(range(len(labels))), ticktext=labels, autorange="reversed")
    fig.update_xaxes(range=[0, 1], title_text="probability")
    fig.update_layout(title=dict(text=escape(title)), height=260, margin=dict(l=10, r=10, t=50, b=10),
                      font=dict(family="Noto Sans CJK SC, Noto Sans, sans-serif", size=13))
    return fig


def positional_encoding_figure(pe: np.ndarray, dims: Sequence[int] = (0, 1, 4, 5, 16, 17)) -> go.Figure:
    """The sinusoidal table (positions × dimensions) as a heatmap, and a few dimensions as curves."""
    pe = np.asarray(pe, dtype=np.float64)
    n_pos, d = pe.shape
    dims = [k for k in dims if k < d]
    fig = make_subplots(rows=2, cols=1, row_heights=[0.55, 0.45], vertical_spacing=0.12,
                        subplot_titles=("PE[position, dimension]", "selected dimensions across positions"))
    fig.add_trace(go.Heatmap(z=pe, colorscale="RdBu", zmin=-1, zmax=1, colorbar=dict(len=0.5, y=0.78),
                             hovertemplate="position %{y}<br>dimension %{x}<br>value %{z:.3f}<extra></extra>"),
                  row=1, col=1)
    for k in dims:
        wave = "sin" if k % 2 == 0 else "cos"
        fig.add_trace(go.Scatter(x=list(range(n_pos)), y=pe[:, k], mode="lines", name=f"dim {k} ({wave})"),
                      row=2, col=1)
    fig.update_yaxes(title_text="position", autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text="dimension", row=1, col=1)
    fig.update_xaxes(title_text="position", row=2, col=1)
    fig.update_layout(height=640, margin=dict(l=10, r=10, t=40, b=10))
    return fig
