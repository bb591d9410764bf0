"""Figure builders: arrays and labels in, `plotly.graph_objects.Figure` out. No Gradio here.

Axes are numeric with tick labels (a categorical axis would merge repeated
tokens such as the two "the" in a sentence). Labels are HTML-escaped because
Plotly renders a few tags inside text; a token like "<b>" must show as text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .text_fit import escape, heading_lines, ordinal, unique_labels

COLORSCALE = "Blues"  # white = no attention; masked cells are left empty and show the grey background
MASKED_BG = "#d9d9d9"
HIGHLIGHT = "#e4572e"
DIVERGING = "RdBu_r"  # the app's one diverging scale: red positive, blue negative, white 0
SEPARATOR = "#37474f"  # sentence boundaries: dark enough to see on white, thin enough not to hide a cell


FONT = "Noto Sans CJK SC, Noto Sans, sans-serif"
DEFAULT_WIDTH = 1100  # px of the plot's container when the client has not said
NARROW = 600  # px: below this (a phone) the maps stack one per row and the colour bar lies flat


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
    right: int  # px for the colour bar beside the maps
    bottom: int  # px for the x tick labels and title
    panel_h: float
    gap_y: float  # px between panel rows (room for the next row's title)
    height: int
    top: int  # px above the panels: the title, and the colour bar on a phone

    @property
    def plot_h(self) -> int:
        """px of the panels and the gaps between them: what paper coordinates (0 to 1) span."""
        return self.height - self.top - self.bottom


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
        cell_w,
        cell_h,
        x_font,
        y_font,
        x_angle,
        x_step,
        narrow,
        left,
        right,
        bottom,
        panel_h,
        gap_y,
        height,
        top,
    )


class Grid:
    """Panels laid out by hand (axis domains, one axis pair per panel, titles as annotations):
    make_subplots and per-panel update calls cost several times more, and figures are redrawn on
    every toggle and pick. Panel i (row-major, from 0) uses axes x{i+1} / y{i+1}.

    row_heights and the gaps are fractions of the plot area (paper coordinates, 0 to 1). Rows sized
    in whole px may add up to a little over 1: the last row is then cut at the bottom edge."""

    def __init__(
        self,
        row_heights: Sequence[float],
        n_cols: int = 1,
        v_gap: float = 0.08,
        h_gap: float = 0.06,
        shared_x: bool = False,
    ):
        self.n_rows, self.n_cols = len(row_heights), n_cols
        self.col_w = (1 - h_gap * (n_cols - 1)) / n_cols
        self.layout, self.annotations, self.shapes, self.domains = {}, [], [], []
        steps = [h + v_gap for h in row_heights]
        for r, h in enumerate(row_heights):
            top = 1 - math.fsum(steps[:r])  # one rounding, not one a row: the lowest rows do not drift
            for c in range(n_cols):
                x0 = c * (self.col_w + h_gap)
                self.domains.append(([x0, min(1.0, x0 + self.col_w)], [max(0.0, top - h), top]))
        # ticklabeloverflow: a numeric axis's default ("hide past div") measures every tick label on each
        # draw; margins here fit the labels (text_fit), so that is ~10 ms of the head tab's 55 for nothing.
        plain = dict(showgrid=False, zeroline=False, ticklabeloverflow="allow")
        for i, (xd, yd) in enumerate(self.domains):
            s = self.suffix(i)
            self.layout[f"xaxis{s}"] = dict(domain=xd, anchor=f"y{s}", **plain)
            self.layout[f"yaxis{s}"] = dict(domain=yd, anchor=f"x{s}", **plain)
            bottom = f"x{self.suffix(len(self.domains) - n_cols + i % n_cols)}"  # this column's last panel
            if shared_x and bottom != f"x{s}":
                self.layout[f"xaxis{s}"]["matches"] = bottom

    @classmethod
    def filled(
        cls, row_weights: Sequence[float], n_cols: int = 1, v_gap: float = 0.08, h_gap: float = 0.06, **kw
    ) -> Grid:
        """Rows in proportion to row_weights that, with the gaps between them, fill the plot area."""
        w = np.asarray(row_weights, np.float64)
        return cls(w / w.sum() * (1 - v_gap * (len(w) - 1)), n_cols, v_gap, h_gap, **kw)

    @staticmethod
    def suffix(i: int) -> str:
        return "" if i == 0 else str(i + 1)

    def axes(self, i: int) -> dict:
        return dict(xaxis=f"x{self.suffix(i)}", yaxis=f"y{self.suffix(i)}")

    def x(self, i: int, **kw) -> None:
        self.layout[f"xaxis{self.suffix(i)}"].update(kw)

    def y(self, i: int, **kw) -> None:
        self.layout[f"yaxis{self.suffix(i)}"].update(kw)

    def mid(self, i: int) -> float:
        """Panel i's horizontal centre in paper coordinates."""
        return self.domains[i][0][0] + self.col_w / 2

    def heatmap(self, i: int, z: np.ndarray, **style) -> dict:
        """A heatmap trace on panel i. Empty (NaN) cells show the background and say nothing on hover."""
        return dict(type="heatmap", z=z, hoverongaps=False, **self.axes(i), **style)

    def annotate(self, **kw) -> None:
        self.annotations.append(dict(xref="paper", yref="paper", showarrow=False, **kw))

    def title(self, i: int, text: str, centred: bool = False, **kw) -> None:
        xd, yd = self.domains[i]
        x, anchor = (self.mid(i), "center") if centred else (xd[0], "left")
        self.annotate(text=text, x=x, y=yd[1], xanchor=anchor, yanchor="bottom", font=dict(size=12), **kw)

    def outline(self, i: int, x0: float, x1: float, y0: float, y1: float, width: int) -> None:
        """A highlight-coloured rectangle in panel i's data coordinates."""
        self.shape(i, "rect", x0, x1, y0, y1, color=HIGHLIGHT, width=width)

    def line(self, i: int, x0: float, x1: float, y0: float, y1: float) -> None:
        """A thin dark separator in panel i's data coordinates (between sentences)."""
        self.shape(i, "line", x0, x1, y0, y1, color=SEPARATOR, width=1)

    def shape(self, i: int, kind: str, x0: float, x1: float, y0: float, y1: float, color: str, width: int):
        s = self.suffix(i)
        xy = dict(xref=f"x{s}", yref=f"y{s}", x0=x0, x1=x1, y0=y0, y1=y1)
        self.shapes.append(dict(type=kind, **xy, line=dict(color=color, width=width)))

    def figure(self, traces: list[dict], validate: bool = True, **layout) -> go.Figure:
        """validate=False skips plotly.py's validation (most of a small figure's server time): the traces
        and layout must be plain, valid Plotly; a named colour scale is written out as validation would
        (Plotly.js knows no "RdBu_r"), and no shapes means no key, as validation leaves it."""
        base = dict(font=dict(family=FONT, size=12), plot_bgcolor="white")
        full = {**self.layout, **base, "annotations": self.annotations, "shapes": self.shapes, **layout}
        if validate:
            return go.Figure(data=traces, layout=full)
        if not full["shapes"]:
            del full["shapes"]
        traces = [{**t, "colorscale": _scale(t["colorscale"])} if "colorscale" in t else t for t in traces]
        return go.Figure(data=traces, layout=full, _validate=False)


def _scale(scale) -> list:
    """A colour scale as plotly.py writes it out: [[0, colour], …, [1, colour]]."""
    return [list(step) for step in _named_scale(scale)] if isinstance(scale, str) else scale


@functools.cache
def _named_scale(name: str) -> tuple:
    return go.Heatmap(colorscale=name).colorscale


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
    x_breaks: Sequence[int] = (),
    y_breaks: Sequence[int] = (),
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
    x_breaks, y_breaks: a thin line after each of these key / query positions: where a sentence ends
        and the next begins, so that attention within and across sentences can be told apart.
    """
    weights = _checked(weights, x_labels, y_labels)
    width = width or DEFAULT_WIDTH
    if width < NARROW and weights.shape[1] > 1:  # a phone: one map per row, each titled in full
        weights, row_titles, col_titles = _one_map_per_row(weights, row_titles, col_titles)
    n_rows, n_cols, tq, tk = weights.shape
    heading = heading_lines(title if n_rows == 1 else f"{title} · rows: {y_title}", subtitle, width)
    geo = grid_geometry(n_rows, n_cols, x_labels, y_labels, width, shared_scale, heading.count("<br>") + 1)
    grid = Grid([geo.panel_h / geo.plot_h] * n_rows, n_cols, v_gap=geo.gap_y / geo.plot_h, h_gap=0.02)
    xs, ys = unique_labels(x_labels), unique_labels(y_labels)
    grey = np.where(masked, 1.0, np.nan) if masked is not None and masked.any() else None  # (Tq, Tk)
    grey_style = dict(showscale=False, colorscale=[[0, MASKED_BG], [1, MASKED_BG]])  # one flat colour
    scale_rows = np.ones(tq, bool) if forced_rows is None else ~np.asarray(forced_rows, bool)  # (Tq,)
    colorbar, traces = _colorbar(geo), []
    for i in range(n_rows * n_cols):
        r, c = divmod(i, n_cols)
        z = weights[r, c].copy()  # (Tq, Tk)
        if masked is not None:
            z[masked] = np.nan
        zmax = 1.0 if shared_scale else _darkest(z, scale_rows)
        keyed = shared_scale and i == n_cols - 1  # the top-right map carries the one colour bar
        style = dict(zmin=0.0, zmax=zmax, colorscale=COLORSCALE, showscale=keyed, colorbar=colorbar)
        traces.append(_map(grid, i, z, xs, ys, "weight: %{z:.4f}", **style))
        if grey is not None:
            traces.append(_map(grid, i, grey, xs, ys, "masked: a future position", **grey_style))
        darkest = "" if shared_scale else f"darkest = {zmax:.2f}"
        text = _joined(_nth(row_titles, r), _nth(col_titles, c), darkest)
        _label_panel(grid, i, geo, xs, ys, text, x_title, y_title)
        for b in x_breaks:
            grid.line(i, b + 0.5, b + 0.5, -0.5, tq - 0.5)
        for b in y_breaks:
            grid.line(i, -0.5, tk - 0.5, b + 0.5, b + 0.5)
        if highlight_row is not None and 0 <= highlight_row < tq:
            grid.outline(i, -0.5, tk - 0.5, highlight_row - 0.5, highlight_row + 0.5, width=2)
    _heading(grid, geo, heading, width)
    margin = dict(l=geo.left, r=geo.right, t=geo.top, b=geo.bottom)
    return grid.figure(traces, margin=margin, height=geo.height)


def _checked(weights: np.ndarray, x_labels: Sequence[str], y_labels: Sequence[str]) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4:
        raise ValueError(f"weights must be (rows, cols, queries, keys), got shape {weights.shape}")
    _, _, tq, tk = weights.shape
    if (tq, tk) != (len(y_labels), len(x_labels)):
        raise ValueError(
            f"weights are {tq}×{tk} but there are {len(y_labels)} row and {len(x_labels)} column labels"
        )
    return weights


def _nth(titles: Sequence[str], i: int) -> str:
    return titles[i] if i < len(titles) else ""


def _joined(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def _one_map_per_row(
    weights: np.ndarray, row_titles: Sequence[str], col_titles: Sequence[str]
) -> tuple[np.ndarray, list[str], list[str]]:
    """(R, C, Tq, Tk) → (R·C, 1, Tq, Tk), each map titled "row · column": a phone has no room for columns."""
    n_rows, n_cols, tq, tk = weights.shape
    titles = [_joined(_nth(row_titles, r), _nth(col_titles, c)) for r in range(n_rows) for c in range(n_cols)]
    return weights.reshape(n_rows * n_cols, 1, tq, tk), titles, []


def _darkest(z: np.ndarray, scale_rows: np.ndarray) -> float:
    """The top of a per-map colour scale: z's (Tq, Tk) largest weight outside the forced rows."""
    visible = z[scale_rows] if scale_rows.any() else z
    return max(float(np.nanmax(visible)) if np.isfinite(visible).any() else 1.0, 1e-9)


def _map(grid: Grid, i: int, z: np.ndarray, xs: list[str], ys: list[str], hover: str, **style) -> dict:
    """A (Tq, Tk) heatmap on panel i. Hover reads query and key from the axes, so no string per
    cell travels to the browser; `hover` says what the cell holds."""
    hovertemplate = f"query: %{{y}}<br>key: %{{x}}<br>{hover}<extra></extra>"
    return grid.heatmap(i, z, x=xs, y=ys, hovertemplate=hovertemplate, **style)


def _colorbar(geo: GridGeometry) -> dict:
    if geo.narrow:  # flat, above the first map's title, its tick labels below the bar
        flat = dict(orientation="h", x=0.5, xanchor="center", y=1 + 34 / geo.plot_h, yanchor="bottom")
        return dict(flat, thickness=10, len=0.6, title=dict(text="weight", side="right"))
    return dict(title=dict(text="weight"), thickness=12, len=min(1.0, 320 / geo.plot_h), y=1, yanchor="top")


def _label_panel(
    grid: Grid, i: int, geo: GridGeometry, xs: list[str], ys: list[str], text: str, x_title: str, y_title: str
) -> None:
    """Panel i's tick labels and titles: x ticks under the bottom row (under every map on a phone), y ticks
    left of the first column, the y title only beside a single row (with more, the heading names it)."""
    first_col, bottom_row = i % grid.n_cols == 0, i // grid.n_cols == grid.n_rows - 1
    ticks = xs[:: geo.x_step]
    grid.x(
        i,
        type="category",
        tickangle=geo.x_angle,
        tickmode="array",
        tickvals=ticks,
        ticktext=[x.replace("\u200b", "") for x in ticks],
        tickfont=dict(size=geo.x_font),
        range=[-0.5, len(xs) - 0.5],
        showticklabels=bottom_row or geo.narrow,
    )
    grid.y(
        i,
        type="category",
        tickfont=dict(size=geo.y_font),
        range=[len(ys) - 0.5, -0.5],
        showticklabels=first_col,
        title=dict(text=y_title, standoff=4) if first_col and grid.n_rows == 1 else None,
    )
    if geo.x_step > 1:  # said where it shows: a learner should not think the other keys are missing
        every = "other" if geo.x_step == 2 else ordinal(geo.x_step)
        # the full hint under a lone, wide map only: side by side or on a phone it ran over its room
        hint = " (hover names each; one map large labels all)" if grid.n_cols == 1 and not geo.narrow else ""
        x_title = f"{x_title} · every {every} labelled{hint}"
    if bottom_row:  # in the margin's last 24 px, under the labels: an axis title can land on them
        y = -(geo.bottom - 4) / geo.plot_h
        grid.annotate(
            name="axis-title",
            text=escape(x_title),
            x=grid.mid(i),
            y=y,
            xanchor="center",
            yanchor="bottom",
            font=dict(size=13),
        )
    grid.title(i, escape(text), centred=True, name="panel-title")


def _heading(grid: Grid, geo: GridGeometry, heading: str, width: int) -> None:
    """The heading is an annotation pinned to the figure's top-left corner: Plotly shifts a multi-line
    title upward, out of the figure, and a phone shows every line of it."""
    x, y = -geo.left / max(1.0, width - geo.left - geo.right), 1 + (geo.top - 6) / geo.plot_h
    grid.annotate(
        name="heading",
        text=heading,
        x=x,
        y=y,
        xanchor="left",
        yanchor="top",
        align="left",
        font=dict(size=15),
    )


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
            colorscale=DIVERGING,
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
