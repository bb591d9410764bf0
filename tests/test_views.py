import dataclasses

import numpy as np
import pytest

from explorer.inference import trace
from explorer.views import View, attention_view, decoder_row_labels, maps_csv, pool_pieces, select, step_view
from training.translator import load_weights_dir


@pytest.fixture(scope="module")
def tr(zh_weights):
    return trace(load_weights_dir(zh_weights), "I love you.", beam=1)


def test_decoder_rows_are_labelled_input_then_prediction(tr):
    assert decoder_row_labels(tr) == ["<s> → 我", "我 → 爱", "爱 → 你", "你 → 。", "。 → </s>"]
    sel = select(tr, View(kind="cross"))
    assert sel["y_labels"] == decoder_row_labels(tr)
    assert sel["x_labels"] == tr.source_tokens


def test_single_layer_and_head_subset(tr):
    sel = select(tr, View(kind="encoder", layer=1, heads=[2, 0]))
    assert sel["weights"].shape == (1, 2, 5, 5)
    np.testing.assert_array_equal(sel["weights"][0, 0], tr.encoder_self[1, 0])
    np.testing.assert_array_equal(sel["weights"][0, 1], tr.encoder_self[1, 2])
    assert sel["row_titles"] == ["layer 2"] and sel["col_titles"] == ["head 1", "head 3"]


def test_head_average_is_the_mean_of_the_selected_heads(tr):
    sel = select(tr, View(kind="cross", heads=[1, 3], average=True))
    assert sel["weights"].shape == (tr.n_decoder_layers, 1, 5, 5)
    np.testing.assert_allclose(sel["weights"][:, 0], tr.cross[:, [1, 3]].mean(axis=1))
    np.testing.assert_allclose(sel["weights"].sum(-1), 1.0, atol=1e-5)


def test_decoder_view_marks_the_future_as_masked(tr):
    sel = select(tr, View(kind="decoder"))
    np.testing.assert_array_equal(sel["masked"], np.triu(np.ones((5, 5), bool), 1))
    fig = attention_view(tr, View(kind="decoder", layer=0, heads=[0]))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 1:]).all() and np.isfinite(np.diag(z)).all()


def test_hiding_specials_drops_their_rows_and_columns(tr):
    sel = select(tr, View(kind="cross", show_special=False))
    assert sel["x_labels"] == ["i", "love", "you", "."]
    # one rule for cross- and self-attention: rows that read <s> or predict </s> are hidden in both
    assert sel["y_labels"] == ["我 → 爱", "爱 → 你", "你 → 。"]
    dec = select(tr, View(kind="decoder", show_special=False))
    # "。" is seen only by the hidden "。 → </s>" row: no all-grey column.
    assert dec["y_labels"] == sel["y_labels"]
    assert dec["x_labels"] == ["我", "爱", "你"]
    np.testing.assert_array_equal(dec["weights"][0, 0], tr.decoder_self[0, 0][np.ix_([1, 2, 3], [1, 2, 3])])
    assert not dec["masked"].all(axis=1).any() and not dec["masked"].all(axis=0).any()


def test_no_ticked_head_shows_all_and_says_so(tr):
    sel = select(tr, View(kind="cross", layer=0, heads=[]))
    assert sel["weights"].shape[1] == tr.n_heads and "no head ticked" in sel["title"]
    assert "no head ticked" not in select(tr, View(kind="cross", layer=0))["title"]


def test_the_map_says_which_sentence_it_shows(tr):
    assert select(tr, View(kind="cross"))["subtitle"] == "“I love you.” → 我爱你。"


def test_per_map_scale_in_decoder_self_attention_ignores_the_forced_first_row(tr):
    sel = select(tr, View(kind="decoder", layer=0, heads=[0], shared_scale=False))
    assert list(sel["forced_rows"]) == [True, False, False, False, False]
    fig = attention_view(tr, View(kind="decoder", layer=0, heads=[0], shared_scale=False))
    w = tr.decoder_self[0, 0]
    assert fig.data[0].zmax == pytest.approx(float(w[1:].max()), rel=1e-6) and fig.data[0].zmax < 1.0


def test_step_highlights_that_row_and_shows_its_top_5(tr):
    assert select(tr, View(kind="cross", step=2))["highlight_row"] == 2
    assert select(tr, View(kind="encoder", step=2))["highlight_row"] is None
    assert select(tr, View(kind="cross", step=4, show_special=False))["highlight_row"] is None
    fig, caption = step_view(tr, 1)
    assert fig.data[0].y is not None and len(fig.data[0].x) == 5
    assert "`我`" in caption and "`爱`" in caption


def test_unknown_words_are_flagged_in_labels(zh_weights):
    t = trace(load_weights_dir(zh_weights), "I love zebras.", beam=1)
    assert "zebras (unk)" in select(t, View(kind="encoder"))["x_labels"]


def test_bad_view_is_an_error(tr):
    with pytest.raises(ValueError, match="layers"):
        select(tr, View(layer=9))
    with pytest.raises(ValueError, match="kind"):
        select(tr, View(kind="nope"))


def test_empty_translation_with_specials_hidden_draws_an_empty_map(tr):
    import dataclasses

    empty = dataclasses.replace(
        tr,
        target_tokens=["<s>"],
        predicted_tokens=["</s>"],
        translation="",
        decoder_self=tr.decoder_self[:, :, :1, :1],
        cross=tr.cross[:, :, :1, :],
        top_next=tr.top_next[:1],
    )
    for kind in ("decoder", "cross"):
        fig = attention_view(empty, View(kind=kind, show_special=False))
        assert np.asarray(fig.data[0].z).size == 0


def test_hiding_specials_keeps_unknown_tokens(zh_weights):
    t = trace(load_weights_dir(zh_weights), "I love zebras.", beam=1)
    t.target_tokens[1] = "<unk>"  # as if the model had generated one
    sel = select(t, View(kind="decoder", show_special=False))
    assert "<unk>" in sel["x_labels"]


def test_pooling_pieces_into_words_sums_keys_and_averages_queries():
    rng = np.random.default_rng(0)
    word_index = [0, 0, 1, 2, 2, 2, 3]
    raw = rng.random((2, 3, 7, 7))
    weights = raw / raw.sum(-1, keepdims=True)  # (L, H, S, S), rows sum to 1
    keys = pool_pieces(weights, word_index, axis=3, how="sum")
    both = pool_pieces(keys, word_index, axis=2, how="mean")
    assert keys.shape == (2, 3, 7, 4) and both.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(both.sum(-1), 1.0, rtol=1e-12)
    for w in range(4):  # against plain loops over the pieces of each word
        pieces = [i for i, x in enumerate(word_index) if x == w]
        np.testing.assert_allclose(keys[..., w], weights[..., pieces].sum(-1))
        for v in range(4):
            cols = [i for i, x in enumerate(word_index) if x == v]
            np.testing.assert_allclose(both[..., w, v], weights[..., pieces, :][..., cols].sum(-1).mean(-1))


def test_word_pooling_is_the_identity_on_the_english_axes_of_a_word_vocabulary(tr):
    assert tr.source_words == tr.source_tokens and tr.source_word_index == list(range(len(tr.source_tokens)))
    pooled, plain = select(tr, View(kind="encoder", words=True)), select(tr, View(kind="encoder"))
    np.testing.assert_array_equal(pooled["weights"], plain["weights"])
    assert pooled["x_labels"] == plain["x_labels"] == pooled["y_labels"]
    # cross-attention keeps its English keys; its Chinese rows are pooled (tests/test_zh_words.py)
    assert (
        select(tr, View(kind="cross", words=True))["x_labels"] == select(tr, View(kind="cross"))["x_labels"]
    )


def test_greedy_steps_mark_the_likeliest_token_as_chosen(tr):
    fig, caption = step_view(tr, 1)
    colours = list(fig.data[0].marker.color)
    assert colours[0] != colours[1] and len(set(colours[1:])) == 1  # the first bar, and only it
    assert "chosen" in fig.data[0].text[0] and "Beam search chose" not in caption


def test_beam_search_choice_that_was_not_the_likeliest_is_marked_and_explained(tr):
    import dataclasses

    # As if beam search had output the 3rd likeliest token at step 2 (the trace of a real beam run, where
    # that happened, is checked in the browser test); the chart and caption read rank and probability.
    top = tr.top_next[1]
    beam = dataclasses.replace(
        tr,
        predicted_tokens=[tr.predicted_tokens[0], top[2][0], *tr.predicted_tokens[2:]],
        predicted_rank=[1, 3, 1, 1, 1],
        predicted_prob=[tr.predicted_prob[0], top[2][1], *tr.predicted_prob[2:]],
        decoding={**tr.decoding, "beam": 5},
    )
    fig, caption = step_view(beam, 1)
    assert "chosen" in fig.data[0].text[2] and "chosen" not in fig.data[0].text[0]
    assert "ranked 3rd" in caption and f"{top[2][1]:.1%}" in caption and f"{top[0][1]:.1%}" in caption


def test_a_chosen_token_outside_the_top_5_gets_its_own_bar(tr):
    import dataclasses

    beam = dataclasses.replace(
        tr,
        predicted_tokens=[tr.predicted_tokens[0], "茶", *tr.predicted_tokens[2:]],
        predicted_rank=[1, 9, 1, 1, 1],
        predicted_prob=[0.9, 0.01, 0.9, 0.9, 0.9],
    )
    fig, caption = step_view(beam, 1)
    assert len(fig.data[0].x) == 6 and fig.data[0].x[5] == 0.01 and "chosen" in fig.data[0].text[5]
    assert "ranked 9th" in caption


def test_trace_records_the_rank_and_probability_of_each_output_token(zh_weights):
    t = trace(load_weights_dir(zh_weights), "She is my sister.", beam=1)
    assert t.predicted_rank == [1] * len(t.predicted_tokens)  # greedy: always the likeliest
    assert t.predicted_prob == pytest.approx([row[0][1] for row in t.top_next])


def test_the_csv_holds_every_visible_cell_with_its_weight(tr):
    import csv
    import io

    from explorer.views import maps_csv

    view = View(kind="decoder", layer=1, heads=[0, 2])
    rows = list(csv.DictReader(io.StringIO(maps_csv(tr, view))))
    t = len(tr.target_tokens)
    assert len(rows) == 2 * t * t
    got = np.zeros((2, t, t))
    for r in rows:
        h = ["1", "3"].index(r["head"])
        i, j = int(r["query_index"]), int(r["key_index"])
        assert r["layer"] == "2" and r["kind"] == "decoder"
        if j > i:  # the future: masked, no number
            assert r["masked"] == "1" and r["weight"] == ""
        else:
            assert r["masked"] == "0"
            got[h, i, j] = float(r["weight"])
    np.testing.assert_allclose(got, tr.decoder_self[1][[0, 2]], atol=1e-6)
    assert rows[0]["query"] == "<s> → 我" and rows[0]["key"] == "<s>"
    averaged = list(csv.DictReader(io.StringIO(maps_csv(tr, View(kind="cross", heads=[0, 1], average=True)))))
    assert {r["head"] for r in averaged} == {"mean of heads 1, 2"}
    assert len(averaged) == tr.n_decoder_layers * t * len(tr.source_tokens)


def test_download_names_come_from_the_sentence(tr):
    from explorer.views import file_stem

    assert file_stem(tr) == "attention-i-love-you"
    tr2 = type(tr)(**{**vars(tr), "text": "我爱你 <b>" * 20})
    assert file_stem(tr2, "trace") == "trace-" + "-".join(["b"] * 20)[:39]  # ASCII words only, ≤ 40 chars
    tr3 = type(tr)(**{**vars(tr), "text": "我爱你"})
    assert file_stem(tr3) == "attention"


def test_sentence_breaks_fall_between_sentences_only():
    from explorer.views import sentence_breaks

    tokens = ["▁i", "▁love", "▁you", "▁.", "▁he", "▁runs", "▁.", "</s>"]
    assert sentence_breaks(tokens, list(range(8))) == [3]  # not after the last ".": only </s> follows
    assert sentence_breaks(tokens, [0, 1, 3, 5, 6]) == [2]  # in shown positions
    assert sentence_breaks(["我", "爱", "你", "。", "他", "跑", "。", "</s>"], list(range(8))) == [3]
    assert sentence_breaks(["i", "love", "you", ".", "</s>"], list(range(5))) == []


def test_two_sentences_get_a_separator_line_in_both_axes_of_every_panel(zh_weights):
    tr2 = trace(load_weights_dir(zh_weights), "I love you. Where is the book?", beam=1)
    sel = select(tr2, View(kind="encoder", layer=0))
    assert sel["x_breaks"] == sel["y_breaks"] == [tr2.source_tokens.index(".")]
    fig = attention_view(tr2, View(kind="encoder", layer=0))
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 2 * len(fig.data)  # one vertical and one horizontal per panel
    b = tr2.source_tokens.index(".") + 0.5
    assert {(s.x0, s.x1) for s in lines if s.x0 == s.x1} == {(b, b)}
    # a decoder row belongs to the sentence of the token it predicts: the break follows the row
    # that predicts the first sentence's last token
    n = len(tr2.target_tokens)
    predicted = ["书"] * (n - 1) + ["</s>"]
    predicted[1] = "。"  # row 1 predicts the end of the first sentence
    cross = select(dataclasses.replace(tr2, predicted_tokens=predicted), View(kind="cross"))
    assert n >= 4 and cross["y_breaks"] == [1] and cross["x_breaks"] == sel["x_breaks"]


def test_a_translation_ended_by_the_length_cap_does_not_claim_the_model_chose_its_end(zh_weights):
    translator = load_weights_dir(zh_weights)
    capped = trace(translator, "I drink tea every day . " * 4, beam=2, max_target_tokens=6)
    assert capped.end_forced and len(capped.target_tokens) == 6 and capped.to_json()["end_forced"] is True
    fig, caption = step_view(capped, 5)
    (bars,) = fig.data
    assert not any("chosen" in t for t in bars.text)  # no bar is marked as the model's choice
    assert (
        "reached its maximum length" in caption
        and "did not choose" in caption
        and "Beam search" not in caption
    )
    # the bars are the model's own distribution at that row, and </s> is not added to them
    np.testing.assert_allclose(list(bars.x), [p for _, p in capped.top_next[5]])
    _, earlier = step_view(capped, 4)
    assert "maximum length" not in earlier
    free = trace(translator, "I love you.", beam=2)
    assert not free.end_forced and "end_forced" not in free.to_json()
    assert "maximum length" not in step_view(free, len(free.target_tokens) - 1)[1]


def test_word_start_pieces_show_a_visible_space_in_the_figure_and_stay_exact_in_the_csv(tr):
    # "▁." in a tick label reads as a bare underscore: figures show "␣.", exports keep the piece itself
    pieces = ["▁" + t if t != "</s>" else t for t in tr.source_tokens]
    sub = dataclasses.replace(tr, source_tokens=pieces)
    view = View(kind="cross", layer=0)
    fig = attention_view(sub, view)
    ticks = [t for axis in fig.layout if axis.startswith("xaxis") for t in fig.layout[axis].ticktext or ()]
    assert "␣." in ticks and not any("▁" in t for t in ticks)
    rows = maps_csv(sub, view).splitlines()[1:]
    assert {r.split(",")[7] for r in rows} == set(pieces)
