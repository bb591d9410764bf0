"""The "Inside a head" figures, checked against numbers computed here independently of them."""

import json
import math

import numpy as np
import plotly.io as pio
import pytest

from explorer.head_figures import (
    MASKED_TEXT,
    delta_figure,
    head_grid_figure,
    scores_figure,
    strips_figure,
    terms_figure,
    values_figure,
)
from explorer.head_view import softmax_unmasked

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
    fig = scores_figure(KEYS, k, raw, scaled, weights, masked, "t")
    (raw_bar,), (scaled_bar,), (weight_bar,) = bars(fig, "q·k"), bars(fig, "q·k/√d"), bars(fig, "weight")
    shown = dict(zip(scaled_bar.x, scaled_bar.y))
    expected = reference_softmax([shown.get(j, 0.0) for j in range(5)], masked)
    assert list(weight_bar.x) == [0, 1, 2]
    assert np.allclose(weight_bar.y, expected[:3], atol=1e-12)
    assert np.allclose(np.array(raw_bar.y) / math.sqrt(8), scaled_bar.y)  # the scaling step is exactly 1/√d
    assert sum(weight_bar.y) == pytest.approx(1.0, abs=1e-12)


def test_masked_keys_have_no_bar_and_no_number_only_the_word_masked(causal_row):
    k, raw, scaled, masked = causal_row
    fig = scores_figure(KEYS, k, raw, scaled, softmax_unmasked(scaled, masked), masked)
    for trace in fig.data:
        if trace.type == "bar":
            assert not set(trace.x) & {3, 4}
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == 3  # one row of marks per step: raw, scaled, weight
    for t in marks:
        assert list(t.x) == [3, 4] and set(t.text) == {"masked"} and MASKED_TEXT in t.hovertemplate
        assert "%{y" not in t.hovertemplate  # the hover names no value for a masked key
    # Both "我" keep their own column.
    assert list(fig.layout.xaxis4.ticktext) == ["&lt;s&gt;", "我", "爱", "我", "。"]


def test_key_strip_is_the_captured_k_one_column_per_key(causal_row):
    k, raw, scaled, masked = causal_row
    fig = scores_figure(KEYS, k, raw, scaled, softmax_unmasked(scaled, masked), masked)
    heat = fig.data[0]
    assert np.array_equal(np.array(heat.z), k.T)


def test_strips_show_the_vectors_exactly_and_outline_a_slice():
    q, h = RNG.normal(size=16), RNG.normal(size=64)
    fig = strips_figure([("h", h), ("q", q)], "x", highlight={"h": (16, 32)})
    assert np.array_equal(np.array(fig.data[0].z)[0], h) and np.array_equal(np.array(fig.data[1].z)[0], q)
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.xref) == (15.5, 31.5, "x")
    for t in fig.data:  # white = 0: the colour range is symmetric
        assert t.zmin == -t.zmax


def test_values_figure_sums_weighted_values_and_greys_masked_keys(causal_row):
    _, _, scaled, masked = causal_row
    v = RNG.normal(size=(5, 8))
    w = softmax_unmasked(scaled, masked)
    out = w @ v
    fig = values_figure(KEYS, v, w, out, masked)
    weighted = np.array(fig.data[1].z, dtype=float).T  # (keys, dims)
    assert np.allclose(weighted[:3], w[:3, None] * v[:3])
    assert np.isnan(weighted[3:]).all()  # masked: no computed zero shown
    assert np.allclose(np.nansum(weighted, axis=0), np.array(fig.data[2].z)[0])


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


def test_head_grid_cells_carry_their_head_names_and_nan_stays_empty():
    values = {"encoder": np.arange(8.0).reshape(2, 4), "cross": np.full((2, 4), np.nan)}
    fig = head_grid_figure(values, "t", "bits", selected=("encoder", 1, 2))
    enc, cross = fig.data
    assert enc.customdata[1][2] == "encoder:2:3" and enc.z[1][2] == 6.0
    assert np.isnan(np.array(cross.z, dtype=float)).all()
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.y0) == (2.5, 1.5)  # head 3, layer 2 (axes count from 1)
    json.loads(pio.to_json(fig))  # NaN serializes (as null)


def test_delta_bars_sign_and_values():
    fig = delta_figure(["我", "爱", "</s>"], [-1.5, 0.0, 0.25], "t")
    (bar,) = fig.data
    assert list(bar.y) == [-1.5, 0.0, 0.25] and bar.marker.color[0] != bar.marker.color[2]
    assert list(fig.layout.xaxis.ticktext)[-1] == "&lt;/s&gt;"
