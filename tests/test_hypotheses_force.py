"""What beam search weighed (`hypotheses`), and a given translation explained (`force`)."""

import math

import numpy as np
import pytest

from explorer.inference import InputError, trace
from training.decoding import length_penalty
from training.translator import load_weights_dir


@pytest.fixture(scope="module")
def translator(zh_weights):
    return load_weights_dir(zh_weights)


@pytest.mark.parametrize("text", ["I love you.", "She is my sister.", "Do you want to drink some tea?"])
def test_hypotheses_are_the_finished_beam_best_first_scored_like_a_teacher_forced_pass(translator, text):
    tr = trace(translator, text, beam=4, hypotheses=True)
    hyps = tr.hypotheses
    assert hyps[0]["translation"] == tr.translation and hyps[0]["tokens"] == tr.predicted_tokens
    assert [h["score"] for h in hyps] == sorted((h["score"] for h in hyps), reverse=True)
    assert len({tuple(h["tokens"]) for h in hyps}) == len(hyps) >= 2  # distinct; beam 4 finishes several
    alpha = tr.decoding["length_penalty"]
    for h in hyps:
        # independent of the search: score the hypothesis's own tokens in one teacher-forced pass
        forced = trace(translator, text, beam=4, force=h["translation"])
        logprob = float(np.log(forced.predicted_prob).sum())
        assert forced.predicted_tokens == h["tokens"]
        assert h["logprob"] == pytest.approx(logprob, abs=1e-4)
        assert h["score"] == pytest.approx(h["logprob"] / length_penalty(len(h["tokens"]), alpha), abs=1e-9)
    assert "hypotheses" in tr.to_json() and "hypotheses" not in trace(translator, text, beam=4).to_json()


def test_greedy_has_one_hypothesis(translator):
    tr = trace(translator, "I love you.", beam=1, hypotheses=True)
    assert [h["translation"] for h in tr.hypotheses] == [tr.translation]


@pytest.mark.parametrize("text", ["I love you.", "Where is the book?", "My brother became an engineer."])
def test_forcing_the_models_own_translation_reproduces_the_trace(translator, text):
    own = trace(translator, text, beam=2)
    forced = trace(translator, text, beam=2, force=own.translation)
    assert forced.forced and not own.forced and forced.to_json()["forced"] is True
    for name in ("source_tokens", "target_tokens", "predicted_tokens", "translation", "top_next"):
        assert getattr(forced, name) == getattr(own, name), name
    for name in ("encoder_self", "decoder_self", "cross"):
        np.testing.assert_array_equal(getattr(forced, name), getattr(own, name))
    assert forced.predicted_prob == own.predicted_prob and forced.predicted_rank == own.predicted_rank
    assert forced.score == pytest.approx(own.score, abs=1e-4)


def test_a_wrong_translation_is_traced_with_what_the_model_thinks_of_each_character(translator):
    own = trace(translator, "I love you.", beam=2)
    wrong = trace(translator, "I love you.", beam=2, force="我爱茶。")
    assert wrong.target_tokens == ["<s>", "我", "爱", "茶", "。"] and wrong.translation == "我爱茶。"
    assert wrong.predicted_tokens == ["我", "爱", "茶", "。", "</s>"]
    assert wrong.predicted_rank[2] > 1 and wrong.predicted_prob[2] < own.predicted_prob[2]  # 茶 where 你 fits
    assert all(0 < p <= 1 for p in wrong.predicted_prob) and wrong.hypotheses is None
    assert wrong.score == pytest.approx(sum(math.log(p) for p in wrong.predicted_prob), abs=1e-4)
    np.testing.assert_allclose(wrong.cross.sum(-1), 1.0, atol=1e-5)


def test_a_given_translation_in_traditional_characters_or_with_unknown_ones_says_what_it_read(translator):
    tr = trace(translator, "I love you.", beam=1, force="我愛你。")  # traditional 愛: read as simplified 爱
    assert tr.target_tokens == ["<s>", "我", "爱", "你", "。"]
    odd = trace(translator, "I love you.", beam=1, force="我爱龘。")
    assert "<unk>" in odd.target_tokens and any("龘" in n for n in odd.notices)


@pytest.mark.parametrize("bad", ["", "   ", 42])
def test_an_empty_or_odd_given_translation_is_one_clear_line(translator, bad):
    with pytest.raises(InputError) as info:
        trace(translator, "I love you.", beam=1, force=bad)
    assert "\n" not in str(info.value)


def test_a_given_translation_longer_than_the_cap_is_cut_with_a_notice(translator):
    tr = trace(translator, "I love you.", beam=1, force="我爱你。" * 20, max_target_tokens=10)
    assert len(tr.target_tokens) == 10 and any("cut to its first 9 characters" in n for n in tr.notices)


def test_the_search_step_by_step_is_in_the_trace_only_when_hypotheses_are_asked(translator):
    tr = trace(translator, "She is my sister.", beam=4, hypotheses=True)
    steps = tr.beam_history
    # the steps' finished candidates are the hypotheses the search finished (all but, maybe, the greedy row's)
    finished = [
        step["live"][c["parent"]]["tokens"] + ["</s>"]
        for step in steps
        for c in step["candidates"]
        if c["fate"] == "finished"
    ]
    assert len([h for h in tr.hypotheses if h["tokens"] in finished]) >= len(tr.hypotheses) - 1
    assert tr.to_json()["beam_history"] == steps and steps[-1]["last"]
    plain = trace(translator, "She is my sister.", beam=4)
    assert plain.beam_history is None and plain.force is None
    assert set(tr.to_json()) - set(plain.to_json()) == {"hypotheses", "beam_history"}
    assert trace(translator, "She is my sister.", beam=1, hypotheses=True).beam_history is None


def test_a_given_translation_with_hypotheses_lists_the_search_beside_it(translator):
    own = trace(translator, "She is my sister.", beam=4, hypotheses=True)
    given = own.hypotheses[1]["translation"]
    forced = trace(translator, "She is my sister.", beam=4, force=given, hypotheses=True)
    assert forced.forced and forced.translation == given and forced.force == given
    assert forced.hypotheses == own.hypotheses and forced.beam_history == own.beam_history
    assert "force" not in forced.to_json()
    # the trace carries the text as given, so tracing it again explains the same pass (Inside a head)
    again = trace(translator, forced.text, beam=4, force=forced.force, internals=True)
    np.testing.assert_array_equal(again.cross, forced.cross)
