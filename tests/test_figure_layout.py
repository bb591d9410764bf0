"""The panel grid that every figure of the explorer is laid out on."""

import numpy as np
import pytest

from explorer.figures import Grid, attention_figure


def test_filled_rows_fill_the_plot_in_proportion_with_equal_gaps():
    g = Grid.filled([0.34, 0.22, 0.22, 0.22], v_gap=0.07)
    ys = [yd for _, yd in g.domains]  # top to bottom: (bottom, top) of each row
    assert ys[0][1] == 1.0 and ys[-1][0] == pytest.approx(0.0, abs=1e-12)
    assert [lo - hi for (lo, _), (_, hi) in zip(ys, ys[1:])] == pytest.approx([0.07] * 3)
    heights = np.array([hi - lo for lo, hi in ys])
    assert heights / heights[1] == pytest.approx([0.34 / 0.22, 1, 1, 1])


def test_rows_of_one_height_sit_exactly_one_step_apart():
    h, gap = 0.1234567, 0.0314159
    g = Grid([h] * 40, v_gap=gap)
    assert [yd[1] for _, yd in g.domains] == [1 - r * (h + gap) for r in range(40)]


def test_shared_x_ties_each_panel_to_its_columns_bottom_axis():
    g = Grid.filled([1, 1, 1], n_cols=2, shared_x=True)
    matches = [g.layout[f"xaxis{g.suffix(i)}"].get("matches") for i in range(6)]
    assert matches == ["x5", "x6", "x5", "x6", None, None]


@pytest.mark.parametrize("width", [390, 1100])
@pytest.mark.parametrize("shared_scale", [True, False])
def test_the_heading_starts_at_the_figures_left_edge(width, shared_scale):
    w = np.full((2, 3, 4, 4), 0.25)
    fig = attention_figure(w, list("abcd"), list("wxyz"), shared_scale=shared_scale, width=width, title="t")
    m = fig.layout.margin
    heading = next(a for a in fig.layout.annotations if a.name == "heading")
    # Paper x spans the plot area between the margins: the heading's paper x is the left margin, in px.
    assert heading.x * (width - m.l - m.r) == pytest.approx(-m.l)
