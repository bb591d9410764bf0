"""The Compare tab's difference map: B − A on a diverging scale centred at 0 (the app's one
diverging language: red where B attends more, blue where it attends less). Pure: arrays in,
go.Figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import DIVERGING, FONT
from .text_fit import escape, heading_lines, unique_labels


def difference_figure(
    diff: np.ndarray,
    row_labels: Sequence[str],
    key_labels: Sequence[str],
    title: str,
    subtitle: str,
    width: int,
) -> go.Figure:
    """diff (R, C) in [−1, 1]: one map, its colour scale symmetric around 0 at the largest |difference|."""
    diff = np.asarray(diff, dtype=np.float64)
    if diff.shape != (len(row_labels), len(key_labels)):
        raise ValueError(
            f"diff is {diff.shape} but there are {len(row_labels)} rows and {len(key_labels)} keys"
        )
    lim = max(float(np.abs(diff).max()) if diff.size else 0.0, 1e-6)
    xs, ys = unique_labels(key_labels), unique_labels(row_labels)
    heading = heading_lines(title, subtitle, width)
    top = 40 + 18 * heading.count("<br>")
    fig = go.Figure(
        go.Heatmap(
            z=diff,
            x=xs,
            y=ys,
            zmin=-lim,
            zmax=lim,
            zmid=0,
            colorscale=DIVERGING,
            colorbar=dict(title=dict(text="B − A", side="right"), thickness=12),
            hovertemplate="query: %{y}<br>key: %{x}<br>B − A: %{z:+.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-90 if len(xs) > 6 else 0, tickfont=dict(size=11))
    fig.update_yaxes(type="category", autorange="reversed", tickfont=dict(size=11))
    fig.update_layout(
        title=dict(text=heading, x=0, xanchor="left", font=dict(size=13)),
        height=top + 90 + 22 * len(ys),
        margin=dict(l=10, r=10, t=top + 10, b=10),
        font=dict(family=FONT, size=12),
        plot_bgcolor="white",
    )
    return fig


def no_alignment_figure(message: str) -> go.Figure:
    """An empty figure that says why there is no difference map."""
    fig = go.Figure()
    fig.add_annotation(text=escape(message), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=120, margin=dict(l=10, r=10, t=10, b=10), font=dict(family=FONT, size=13))
    return fig
