"""Figures of what the model used (attention × value norm, ALTI+, rollout): arrays in, go.Figure out.
No Gradio. The maps are `figures.attention_figure`'s, with the colour bar and hover saying what a
cell holds; the share bars are ALTI+'s split of each output token between source and target prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import FONT, HIGHLIGHT, attention_figure
from .text_fit import escape

SOURCE_COLOUR = "#3b75af"  # the English source: the step chart's blue
TARGET_COLOUR = "#8cc084"  # the Chinese already written


def contribution_figure(sel: dict, colour: str, hover: str, zmax: float | None = None) -> go.Figure:
    """`attention_figure(**sel)` whose maps say what they hold: `colour` titles the colour bar, `hover`
    replaces "weight: %{z:.4f}" on hover, and `zmax` (if given) tops every map's colour scale instead of 1."""
    fig = attention_figure(**sel)
    for trace in fig.data:
        template = trace.hovertemplate or ""
        if trace.type != "heatmap" or "weight: %{z:.4f}" not in template:
            continue  # the grey layers of masked cells keep theirs
        trace.hovertemplate = template.replace("weight: %{z:.4f}", hover)
        if zmax is not None:
            trace.zmax = zmax
        if trace.showscale:
            trace.colorbar.title.text = colour
    return fig


def share_figure(
    labels: Sequence[str],
    source: Sequence[float],
    target: Sequence[float],
    highlight: int | None = None,
    title: str = "ALTI+: where each output token comes from",
) -> go.Figure:
    """One stacked horizontal bar per decoder row, first row on top: its share from the English source and
    from the Chinese already written (the two add up to 1). Row `highlight` (the step shown) is outlined."""
    n = len(labels)
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != (n,) or target.shape != (n,):
        raise ValueError(f"{n} labels but shares of shape {source.shape} and {target.shape}")
    ys, names = list(range(n)), [escape(t) for t in labels]

    def bar(x: np.ndarray, name: str, colour: str, where: str) -> dict:
        return dict(
            type="bar",
            orientation="h",
            x=x,
            y=ys,
            name=name,
            marker=dict(color=colour),
            text=[f"{v:.0%}" for v in x],
            textposition="inside",
            insidetextanchor="middle",
            customdata=names,
            hovertemplate=f"%{{customdata}}<br>{where}: %{{x:.1%}}<extra></extra>",
        )

    shapes = []
    if highlight is not None and 0 <= highlight < n:
        rect = dict(type="rect", xref="x", yref="y", x0=0, x1=1, y0=highlight - 0.5, y1=highlight + 0.5)
        shapes.append(dict(rect, line=dict(color=HIGHLIGHT, width=2)))
    layout = dict(
        barmode="stack",
        title=dict(text=escape(title), x=0, xanchor="left", font=dict(size=13)),
        xaxis=dict(range=[0, 1], tickformat=".0%", title=dict(text="share of the row's input")),
        yaxis=dict(tickvals=ys, ticktext=names, autorange="reversed", title=dict(text="")),
        # under the axis title, where a phone's two lines of it cannot run into the title
        legend=dict(
            orientation="h", traceorder="normal", x=0, xanchor="left", y=0, yanchor="bottom", yref="container"
        ),
        shapes=shapes,
        height=150 + 24 * max(3, n),
        margin=dict(l=10, r=10, t=44, b=100),
        font=dict(family=FONT, size=12),
        plot_bgcolor="white",
    )
    traces = [
        bar(source, "English source", SOURCE_COLOUR, "from the English source"),
        bar(target, "Chinese already written", TARGET_COLOUR, "from the Chinese already written"),
    ]
    return go.Figure(data=traces, layout=layout)
