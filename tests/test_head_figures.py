"""The "Inside a head" figures, checked against numbers computed here independently of them."""

import json
import math

import numpy as np
import plotly.io as pio
import pytest

from explorer.head_figures import (
    BLUE,
    MASKED_TEXT,
    RED,
    colour_key,
    delta_figure,
    head_grid_figure,
    heading,
    key_axis,
    keys_values_figure,
    scores_figure,
    strips_figure,
    terms_figure,
    tick_label,
    values_figure,
)
from explorer.head_view import softmax_unmasked
from explorer.text_fit import key_labels_px, number_labels, text_px

RNG = np.random.default_rng(0)
KEYS = ["<s>", "我", "爱", "我", "。"]  # a repeated token keeps its own column


def bars(fig, name):
    return [t for t in fig.data if t.type == "bar" and t.name == name]


def reference_softmax(scores, masked):
    """exp / Σ exp over the allowed keys only, written out term by term."""
    allowed = [s for s, m in zip(scores, masked) if not m]
    top = max(allowed)
    total = sum(math.exp(s - top) for s in allowed)
    return [0.0 if m else math.exp(s - top) / total for s, m in zip(scores, masked)]


@pytest.fixture
def causal_row():
    k = RNG.normal(size=(5, 8))
    q = RNG.normal(size=8)
    raw = k @ q
    scaled = raw / math.sqrt(8)
    masked = np.array([False, False, False, True, True])  # query 2 of a decoder: keys 3, 4 are the future
    return k, raw, scaled, masked


def test_weight_bars_are_the_softmax_of_the_shown_scaled_scores(causal_row):
    k, raw, scaled, masked = causal_row
    weights = softmax_unmasked(scaled, masked)
    fig = scores_figure(KEYS, raw, scaled, weights, masked, 8)
    (raw_bar,), (scaled_bar,), (weight_bar,) = bars(fig, "q·k"), bars(fig, "q·k/√d"), bars(fig, "weight")
    shown = dict(zip(scaled_bar.x, scaled_bar.y))
    expected = reference_softmax([shown.get(j, 0.0) for j in range(5)], masked)
    assert list(weight_bar.x) == [0, 1, 2]
    assert np.allclose(weight_bar.y, expected[:3], atol=1e-12)
    assert np.allclose(np.array(raw_bar.y) / math.sqrt(8), scaled_bar.y)  # the scaling step is exactly 1/√d
    assert sum(weight_bar.y) == pytest.approx(1.0, abs=1e-12)


def test_masked_keys_have_no_bar_and_no_number_only_the_word_masked(causal_row):
    k, raw, scaled, masked = causal_row
    fig = scores_figure(KEYS, raw, scaled, softmax_unmasked(scaled, masked), masked, 8)
    for trace in fig.data:
        if trace.type == "bar":
            assert not set(trace.x) & {3, 4}
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == 3  # one row of marks per step: raw, scaled, weight
    for t in marks:
        assert list(t.x) == [3, 4] and set(t.text) == {"masked"} and MASKED_TEXT in t.hovertemplate
        assert "%{y" not in t.hovertemplate  # the hover names no value for a masked key
    # Both "我" keep their own column.
    assert list(fig.layout.xaxis3.ticktext) == ["&lt;s&gt;", "我", "爱", "我", "。"]


def test_key_and_value_strips_are_the_captured_k_and_v_one_column_per_key(causal_row):
    k = causal_row[0]
    v = RNG.normal(size=k.shape)
    fig = keys_values_figure(KEYS, k, v)
    assert np.array_equal(np.array(fig.data[0].z), k.T) and np.array_equal(np.array(fig.data[1].z), v.T)
    for t, m in zip(fig.data, (k, v)):  # white = 0, and the heading's key names the range
        assert t.zmin == -t.zmax == -np.abs(m).max()
    headings = [a.text for a in fig.layout.annotations]
    assert all(f"+{np.abs(m).max():.3g}" in h for h, m in zip(headings, (k, v)))


def test_word_start_pieces_are_shown_with_a_visible_space_and_crowded_keys_are_thinned():
    keys = ["▁she", "▁is", "▁.", "</s>"]
    assert [tick_label(t) for t in keys] == ["␣she", "␣is", "␣.", "&lt;/s&gt;"]
    assert key_axis(keys, 1400) == (1, 0)  # four keys fit upright
    many = [f"▁w{i}" for i in range(28)]
    step, angle = key_axis(many, 390)
    assert step > 1 and angle == -90
    fig = scores_figure(many, *np.ones((3, 28)), np.zeros(28, bool), 8, width=390)
    assert list(fig.layout.xaxis3.tickvals) == list(range(0, 28, step))


def test_strips_show_the_vectors_exactly_and_outline_a_slice():
    q, h = RNG.normal(size=16), RNG.normal(size=64)
    fig = strips_figure([("h", h), ("q", q)], highlight={"h": (16, 32)})
    assert np.array_equal(np.array(fig.data[0].z)[0], h) and np.array_equal(np.array(fig.data[1].z)[0], q)
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.xref) == (15.5, 31.5, "x")
    for t in fig.data:  # white = 0: the colour range is symmetric
        assert t.zmin == -t.zmax
    assert f"+{np.abs(h).max():.3g}" in fig.layout.annotations[0].text  # every strip carries its key
    assert not fig.layout.title.text  # the tab's headings say the step: nothing under Plotly's toolbar


def test_values_figure_sums_weighted_values_and_greys_masked_keys(causal_row):
    _, _, scaled, masked = causal_row
    v = RNG.normal(size=(5, 8))
    w = softmax_unmasked(scaled, masked)
    out = w @ v
    fig = values_figure(KEYS, v, w, out, masked)
    weighted = np.array(fig.data[0].z, dtype=float).T  # (keys, dims)
    assert np.allclose(weighted[:3], w[:3, None] * v[:3])
    assert np.isnan(weighted[3:]).all()  # masked: no computed zero shown
    assert np.allclose(np.nansum(weighted, axis=0), np.array(fig.data[1].z)[0])


def test_terms_panels_add_up_to_the_total_panel():
    terms = {name: RNG.normal(size=(4, 4)) for name in ("a", "b", "c", "d", "e")}
    total = sum(terms.values())
    mask = np.triu(np.ones((4, 4), bool), 1)
    fig = terms_figure(terms, total, list("wxyz"), list("wxyz"), mask)
    zs = [np.array(t.z, dtype=float) for t in fig.data]
    assert len(zs) == 6
    assert np.allclose(sum(zs[:5])[~mask], zs[5][~mask])
    assert all(np.isnan(z[mask]).all() for z in zs)
    assert len({(t.zmin, t.zmax) for t in fig.data}) == 1  # one colour range: sizes compare


def test_head_grid_cells_carry_their_head_names_and_a_kind_without_the_statistic_says_so():
    values = {"encoder": np.arange(8.0).reshape(2, 4), "cross": np.full((2, 4), np.nan)}
    fig = head_grid_figure(values, "bits", selected=("encoder", 1, 2), not_defined="not defined here")
    (enc,) = fig.data  # no empty grey map for cross-attention: words instead
    assert enc.customdata[1][2] == "encoder:2:3" and enc.z[1][2] == 6.0
    assert enc.showscale and enc.colorbar.x == 0.5  # the scale is on a map that has values, centred
    assert "not defined here" in [a.text for a in fig.layout.annotations]
    last = {"decoder": np.full((2, 4), np.nan), "cross": np.arange(8.0).reshape(2, 4)}
    assert head_grid_figure(last, "bits").data[0].showscale  # also when the first kind has none
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.y0) == (2.5, 1.5)  # head 3, layer 2 (axes count from 1)
    json.loads(pio.to_json(fig))  # NaN serializes (as null)


def test_delta_bars_sign_and_values():
    fig = delta_figure(["我", "爱", "</s>"], [-1.5, 0.0, 0.25])
    (bar,) = fig.data
    assert list(bar.y) == [-1.5, 0.0, 0.25] and bar.marker.color[0] != bar.marker.color[2]
    assert bar.marker.color[2] == RED and bar.marker.color[0] == BLUE  # red positive, as every map here
    assert list(fig.layout.xaxis.ticktext)[-1] == "&lt;/s&gt;"


def test_headings_wrap_by_character_width_and_keep_their_colour_key():
    key = colour_key(np.array([-2.0, 1.0]))
    assert "<br>" not in heading("q = W_q·h + b_q", key, 1400)  # fits: one line
    phone = heading("weight_j · v_j (one column per key)", key, 340)
    assert phone.split("<br>")[-1] == key.strip()  # the key on its own line, whole
    chinese = heading("这是一个很长的中文标题" * 4, width=340)  # no spaces: broken between characters
    assert (
        all(len(line) <= 25 for line in chinese.split("<br>"))
        and chinese.replace("<br>", "") == "这是一个很长的中文标题" * 4
    )


@pytest.mark.parametrize("width", [1400, 390])
def test_margins_already_fit_the_labels_so_plotly_draws_once(width):
    """Plotly redraws a whole figure when a tick label or axis title pushes a margin out (automargin):
    the margins set here already hold the longest label, estimated at ≥ 7 px a character (CJK 14)."""
    keys = ["<s>", "▁extraordinarily", "我们", "。"] * 7  # 28 keys: thinned and on their side at 390 px
    raw = np.array([-123.456, 7.5, 0.25, 98.0] * 7)
    masked = np.zeros(28, bool)
    fig = scores_figure(keys, raw, raw / 8, softmax_unmasked(raw, masked), masked, 64, width=width)
    # every label Plotly's automatic ticks could write on these value axes fits on the left
    assert "\u2212100" in number_labels(-123.456, 98.0)
    longest = max(text_px(t) for lo, hi in [(-123.456, 98.0), (0, 1.05)] for t in number_labels(lo, hi))
    assert longest >= 7 * len("\u2212100") and fig.layout.margin.l >= 10 + longest
    # the key labels under the last row: upright (one line) or on their side (their length)
    assert text_px("我们") == 28 and key_labels_px(keys) == text_px("␣extraordinarily") >= 7 * 16
    upright = key_axis(keys, width)[1] == 0
    assert fig.layout.margin.b >= (26 if upright else 10 + key_labels_px(keys))
    # "dim" (12 px, on its side) needs ~22 px; strips: half a "0" under the first column
    k = RNG.normal(size=(28, 8))
    assert keys_values_figure(keys, k, k, width).layout.margin.l >= 22
    assert values_figure(keys, k, np.ones(28) / 28, k.sum(0), masked, width).layout.margin.l >= 22
    assert strips_figure([("q", k[0])], width=width).layout.margin.l >= 14
    # the terms' 9 px query labels
    terms = {name: RNG.normal(size=(3, 28)) for name in "abcde"}
    queries = ["▁extraordinarily", "我", "b"]
    t_fig = terms_figure(terms, sum(terms.values()), keys, queries)
    assert t_fig.layout.margin.l >= 10 + 0.75 * text_px("␣extraordinarily")
    # automargin stays on: a label estimated short still moves the margin rather than being cut
    assert all(ax.automargin is not False for ax in (fig.layout.yaxis, fig.layout.yaxis3, fig.layout.xaxis3))
