"""The Attention tab's other views (attention × value norm, ALTI+, rollout), checked against the arrays
`training.contributions` computes from a trace with internals: what a map shows is that array, cut
by the same rows and columns as the weights; the share bars add up; the captions say what is shown."""

import dataclasses
import json

import numpy as np
import pytest

from explorer.contribution_view import (
    ALTI,
    METHODS,
    NO_FAITHFULNESS,
    ROLLOUT,
    VALUE_NORM,
    WEIGHTS,
    WEIGHTS_CAPTION,
    faithfulness_note,
    maps_caption,
    method_note,
    method_view,
    share_view,
    shares,
)
from explorer.inference import trace
from explorer.views import View, attention_view
from explorer.zh_words import groups, word_index
from training.config import read_json
from training.contributions import contributions
from training.translator import load_weights_dir

BUNDLED_FAITHFULNESS = "weights/faithfulness.json"


@pytest.fixture(scope="module")
def translator(zh_weights):
    return load_weights_dir(zh_weights)


@pytest.fixture(scope="module")
def tr(translator):
    """The trace of "I love you." with its contributions, as the tab keeps them (the trace without its internals)."""
    traced = trace(translator, "I love you.", beam=1, internals=True)
    c = contributions(traced, translator)
    return dataclasses.replace(traced, internals=None, contributions=c)


def maps(fig) -> list[np.ndarray]:
    """The figure's maps (not the grey layers of masked cells), as float arrays (None → NaN)."""
    return [
        np.asarray(t.z, dtype=float)
        for t in fig.data
        if t.type == "heatmap" and "masked" not in (t.hovertemplate or "")
    ]


def heading(fig) -> str:
    """The figure's title and subtitle, unwrapped."""
    return next(a.text for a in fig.layout.annotations if a.name == "heading").replace("<br>", " ")


ONE_MATRIX = {"encoder": "encoder", "cross": "source", "decoder": "target"}


@pytest.mark.parametrize("method", [ALTI, ROLLOUT])
@pytest.mark.parametrize("kind", ["encoder", "cross", "decoder"])
def test_a_one_matrix_view_draws_its_contributions_array_exactly(tr, method, kind):
    expected = tr.contributions[method][ONE_MATRIX[kind]]
    # Layer and heads do not apply: whatever they say, one map of the whole matrix
    fig = method_view(tr, View(kind=kind, layer=0, heads=[1, 2], average=True), method)
    (z,) = maps(fig)
    if kind == "decoder":  # the future is masked: empty cells, where the matrix is exactly 0
        future = np.triu(np.ones_like(expected, bool), 1)
        assert np.isnan(z[future]).all() and (expected[future] == 0).all()
        z, expected = np.where(future, 0.0, z), expected
    np.testing.assert_array_equal(z, expected)
    assert "Layer and Heads do not apply" in heading(fig) and heading(fig).startswith(METHODS[method].short)
    assert all("share: %{z:.4f}" in t.hovertemplate for t in fig.data if "masked" not in t.hovertemplate)


def test_value_norms_are_drawn_per_layer_and_head_with_a_scale_up_to_the_largest_shown(tr):
    fig = method_view(tr, View(kind="cross", layer=1, heads=[2, 0]), VALUE_NORM)
    z = maps(fig)
    expected = tr.contributions["value_norm"]["cross"]
    assert len(z) == 2
    np.testing.assert_array_equal(z[0], expected[1, 0])
    np.testing.assert_array_equal(z[1], expected[1, 2])
    top = max(expected[1, 0].max(), expected[1, 2].max())
    assert all(t.zmax == pytest.approx(top) and t.zmin == 0 for t in fig.data)
    assert top > 1  # lengths, not shares: a 0–1 scale would saturate
    keyed = [t for t in fig.data if t.showscale]
    assert len(keyed) == 1 and keyed[0].colorbar.title.text == METHODS[VALUE_NORM].colour
    assert heading(fig).startswith("Attention × value norm · Cross-attention")
    averaged = maps(method_view(tr, View(kind="encoder", layer=0, heads=[0, 1], average=True), VALUE_NORM))
    np.testing.assert_allclose(averaged[0], tr.contributions["value_norm"]["encoder_self"][0, :2].mean(0))


def test_hidden_specials_drop_the_same_rows_and_columns_as_in_the_weights(tr):
    view = View(kind="cross", show_special=False)
    (z,) = maps(method_view(tr, view, ALTI))
    rows, cols = [1, 2, 3], [0, 1, 2, 3]  # "我 → 爱" … "你 → 。"; i love you . (not </s>)
    np.testing.assert_array_equal(z, tr.contributions["alti"]["source"][np.ix_(rows, cols)])
    weights = attention_view(tr, view)
    assert list(method_view(tr, view, ALTI).data[0].y) == list(weights.data[0].y)
    assert list(method_view(tr, view, ALTI).data[0].x) == list(weights.data[0].x)
    norms = maps(method_view(tr, View(kind="decoder", layer=0, heads=[3], show_special=False), VALUE_NORM))
    np.testing.assert_array_equal(
        np.nan_to_num(norms[0]), np.tril(tr.contributions["value_norm"]["decoder_self"][0, 3])[1:4, 1:4]
    )


def test_whole_words_pool_a_contribution_as_the_weights_are_pooled(tr):
    # "i" and "love" as the two pieces of one word: keys summed, encoder query rows averaged
    pooled = dataclasses.replace(
        tr, source_words=["ilove", "you", ".", "</s>"], source_word_index=[0, 0, 1, 2, 3]
    )
    (z,) = maps(method_view(pooled, View(kind="cross", words=True), ALTI))
    src = tr.contributions["alti"]["source"]
    keys = np.column_stack([src[:, 0] + src[:, 1], src[:, 2:]])
    # Chinese rows pool by the jieba word of the token each row reads: averaged over the word's rows
    rows = groups(word_index(tr.target_tokens))
    np.testing.assert_allclose(z, np.vstack([keys[r].mean(0) for r in rows]))
    (enc,) = maps(method_view(pooled, View(kind="encoder", words=True), ROLLOUT))
    e = tr.contributions["rollout"]["encoder"]
    keys = np.column_stack([e[:, 0] + e[:, 1], e[:, 2:]])
    np.testing.assert_allclose(enc, np.vstack([keys[:2].mean(0), keys[2:]]))
    np.testing.assert_allclose(enc.sum(1), 1.0)


def test_the_step_row_is_outlined_and_sentence_separators_stay(translator):
    traced = trace(translator, "I love you. I love tea.", beam=1, internals=True)
    two = dataclasses.replace(traced, contributions=contributions(traced, translator))
    fig = method_view(two, View(kind="cross", step=2), ALTI)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 and rects[0].y0 == 1.5
    assert [s for s in fig.layout.shapes if s.type == "line"]  # between the sentences
    assert len(fig.layout.shapes) == len(
        attention_view(two, View(kind="cross", layer=0, heads=[0], step=2)).layout.shapes
    )


def test_the_share_bars_split_each_output_token_between_source_and_target_and_add_up_to_one(tr):
    s = shares(tr)
    alti = tr.contributions["alti"]
    np.testing.assert_allclose(s["source"], alti["source"].sum(1))
    np.testing.assert_allclose(s["source"], alti["source_share"])
    np.testing.assert_allclose(s["source"] + s["target"], 1.0, atol=1e-9)
    fig = share_view(tr, step=3)
    source, target = fig.data
    np.testing.assert_allclose(np.asarray(source.x) + np.asarray(target.x), 1.0, atol=1e-9)
    assert list(fig.layout.yaxis.ticktext) == [
        "&lt;s&gt; → 我",
        "我 → 爱",
        "爱 → 你",
        "你 → 。",
        "。 → &lt;/s&gt;",
    ]
    assert [(r.y0, r.y1) for r in fig.layout.shapes] == [(2.5, 3.5)]  # the step's bar, outlined
    assert shares(tr, show_special=False)["labels"] == ["我 → 爱", "爱 → 你", "你 → 。"]


def test_the_weights_view_is_unchanged(tr):
    view = View(kind="cross", layer=1, step=1, width=700)
    assert method_view(tr, view, WEIGHTS).to_json() == attention_view(tr, view).to_json()


def test_each_caption_says_what_a_cell_is_and_what_does_not_apply():
    assert maps_caption(WEIGHTS, "cross", subwords=False) == WEIGHTS_CAPTION
    assert "each row sums to 1" in WEIGHTS_CAPTION
    norm = maps_caption(VALUE_NORM, "cross", subwords=False)
    assert "not shares" in norm and "rows do not sum to 1" in norm and "largest value shown" in norm
    for method in (ALTI, ROLLOUT):
        text = maps_caption(method, "cross", subwords=True, n_layers=2)
        assert "do not apply" in text and "Whole words" in text
        assert "sums to 1" in maps_caption(method, "encoder", subwords=False)
    assert "1 − 1/8 = 0.875" in maps_caption(ROLLOUT, "cross", subwords=False, n_layers=3)
    assert "0.875" not in maps_caption(ALTI, "cross", subwords=False, n_layers=3)
    papers = {
        VALUE_NORM: "Attention is not only a weight",
        ALTI: "Towards opening the black box of NMT",
        ROLLOUT: "Quantifying attention flow in transformers",
    }
    for method, paper in papers.items():
        assert paper in method_note(method) and "aclanthology.org" in method_note(method)


def test_the_faithfulness_figures_are_the_weights_folders_own():
    faith = read_json(BUNDLED_FAITHFULNESS)
    text = faithfulness_note(faith)
    m = faith["methods"]
    for key in ("alti", "cross_last", "rollout", "random"):
        assert f"{m[key]['top1_drop']:.2f}" in text
    assert f"on {faith['sentences']} sentences" in text and "nats" in text
    assert faithfulness_note(None) == NO_FAITHFULNESS
    assert "python -m explorer faithfulness" in NO_FAITHFULNESS and "training export --dev" in NO_FAITHFULNESS


def test_a_figure_of_contributions_travels_as_plain_json(tr):
    from explorer.live_plot import figure_json

    sent = json.loads(figure_json(method_view(tr, View(kind="cross"), ALTI), "alti-i-love-you"))
    assert sent["config"]["toImageButtonOptions"]["filename"] == "alti-i-love-you"
