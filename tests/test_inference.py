import json

import numpy as np
import pytest
import torch

from explorer.inference import MAX_INPUT_CHARS, InputError, trace
from training.translator import load_weights_dir


@pytest.fixture(scope="module")
def translator(zh_weights):
    return load_weights_dir(zh_weights)


def test_trace_tokens_follow_the_shift_by_one_convention(translator):
    tr = trace(translator, "I love you.", beam=1)
    assert tr.translation == "我爱你。"
    assert tr.source_tokens == ["i", "love", "you", ".", "</s>"]
    assert tr.target_tokens == ["<s>", "我", "爱", "你", "。"]
    assert tr.predicted_tokens == ["我", "爱", "你", "。", "</s>"]
    assert tr.target_tokens[1:] == tr.predicted_tokens[:-1]


def test_trace_shapes_and_attention_invariants(translator):
    tr = trace(translator, "Where is the book?", beam=4)
    layers, heads = translator.model.cfg.n_decoder_layers, translator.model.cfg.n_heads
    s, t = len(tr.source_tokens), len(tr.target_tokens)
    assert tr.encoder_self.shape == (layers, heads, s, s)
    assert tr.decoder_self.shape == (layers, heads, t, t)
    assert tr.cross.shape == (layers, heads, t, s)
    for maps in (tr.encoder_self, tr.decoder_self, tr.cross):
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert (tr.decoder_self[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]] == 0).all()


def test_trace_maps_are_those_of_the_model_on_the_final_output(translator):
    tr = trace(translator, "She is my sister.", beam=1)
    src = torch.tensor([translator.prepare("She is my sister.").ids])
    tgt = torch.tensor([translator.tgt_vocab.encode(tr.target_tokens)])
    logits, maps = translator.model(src, tgt, return_attention=True)
    np.testing.assert_allclose(tr.cross[1], maps.cross[1][0].detach().numpy(), atol=1e-7)
    # and greedy's choice at each row is the argmax the trace shows first
    assert [row[0][0] for row in tr.top_next] == translator.tgt_vocab.decode(logits[0].argmax(-1).tolist())
    assert all(len(row) == 5 and row[0][1] >= row[-1][1] for row in tr.top_next)


def test_trace_json_has_the_documented_fields(translator):
    tr = trace(translator, "Thank you.", beam=2, model_id="test-model")
    data = json.loads(json.dumps(tr.to_json()))
    for key in (
        "source_tokens",
        "target_tokens",
        "predicted_tokens",
        "translation",
        "attention",
        "model_id",
        "decoding",
    ):
        assert key in data
    assert data["model_id"] == "test-model" and data["decoding"]["beam"] == 2
    le, ld, h = tr.n_encoder_layers, tr.n_decoder_layers, tr.n_heads
    s, t = len(tr.source_tokens), len(tr.target_tokens)
    assert np.asarray(data["attention"]["encoder_self"]).shape == (le, h, s, s)
    assert np.asarray(data["attention"]["decoder_self"]).shape == (ld, h, t, t)
    assert np.asarray(data["attention"]["cross"]).shape == (ld, h, t, s)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None])
def test_empty_input_is_a_friendly_error(translator, text):
    with pytest.raises(InputError, match="Type an English sentence"):
        trace(translator, text)


def test_input_without_usable_tokens_is_a_friendly_error(translator):
    with pytest.raises(InputError, match="Nothing to translate"):
        trace(translator, "\u200b\u200b\x00")


def test_long_input_is_truncated_with_a_notice(translator):
    max_words = translator.model.cfg.max_len - 1
    tr = trace(translator, "tea " * (max_words + 10), beam=1)
    assert len(tr.source_tokens) == max_words + 1
    assert any("last 10 words were not translated" in n for n in tr.notices)
    tr = trace(translator, "a" * (MAX_INPUT_CHARS + 5), beam=1)
    assert any("first 2,000" in n for n in tr.notices)


def unknown_notices(tr) -> list[str]:
    return [n for n in tr.notices if "Not in the model's vocabulary" in n]


@pytest.mark.parametrize(
    "text", ["我爱你", "🙂🙂", "<script>alert(1)</script>", "I love\u202e you.", "%s {0} '; DROP TABLE x;--"]
)
def test_odd_input_is_translated_with_unknown_words_flagged(translator, text):
    tr = trace(translator, text, beam=2)
    assert isinstance(tr.translation, str)
    assert len(tr.source_unknown) == len(tr.source_tokens)
    # Flagged exactly where the vocabulary lacks the token (</s> is always known), and named in one notice.
    assert tr.source_unknown == [tok not in translator.src_vocab for tok in tr.source_tokens[:-1]] + [False]
    notices = unknown_notices(tr)
    assert len(notices) == (1 if any(tr.source_unknown) else 0)
    assert all(tok in notices[0] for tok, unknown in zip(tr.source_tokens, tr.source_unknown) if unknown)


def test_a_word_missing_from_the_vocabulary_is_flagged_and_named(translator):
    assert "zebras" not in translator.src_vocab and "love" in translator.src_vocab
    tr = trace(translator, "I love zebras.", beam=1)
    assert tr.source_tokens == ["i", "love", "zebras", ".", "</s>"]
    assert tr.source_unknown == [False, False, True, False, False]
    (notice,) = unknown_notices(tr)
    assert notice.endswith(": zebras")


def test_top_next_never_offers_tokens_decoding_cannot_pick(translator):
    tr = trace(translator, "zebra zebra zebra", beam=1)
    assert not any(tok in ("<pad>", "<s>") for row in tr.top_next for tok, _ in row)


def test_translate_one_matches_the_trace_and_checks_input_the_same_way(translator):
    from explorer.inference import translate_one

    for text in ("I love you.", "Where is the book?"):
        assert translate_one(translator, text, beam=3) == trace(translator, text, beam=3).translation
    with pytest.raises(InputError, match="Type an English sentence"):
        translate_one(translator, "  ")


def test_encoder_and_decoder_depths_may_differ(translator):
    import dataclasses

    from training.model import Transformer
    from training.translator import Translator

    torch.manual_seed(0)
    cfg = dataclasses.replace(translator.model.cfg, n_encoder_layers=3, n_decoder_layers=1)
    other = Translator(Transformer(cfg).eval(), translator.src_vocab, translator.tgt_vocab)
    tr = trace(other, "I love you.", beam=1)
    assert (tr.n_encoder_layers, tr.n_decoder_layers) == (3, 1)
    assert tr.encoder_self.shape[0] == 3 and tr.decoder_self.shape[0] == tr.cross.shape[0] == 1


def test_shown_next_token_probabilities_are_the_ones_decoding_scored(translator):
    tr = trace(translator, "I drink tea every day.", beam=1)
    # Greedy decoding takes the likeliest token at every step, and its score is their summed log-probability.
    assert [row[0][0] for row in tr.top_next] == tr.predicted_tokens
    assert sum(np.log(row[0][1]) for row in tr.top_next) == pytest.approx(tr.score, abs=1e-4)


@pytest.mark.parametrize(
    "text, why",
    [
        ("我爱你。", "not in the Latin alphabet"),
        ("Привет, как дела?", "not in the Latin alphabet"),
        ("<b>" * 20, "symbols, numbers or markup"),
        ("1 2 3 4 5", "symbols, numbers or markup"),
        ("Xyzzy plugh frobnicate quux.", "unknown"),
    ],
)
def test_input_that_is_not_english_is_called_meaningless(zh_weights, text, why):
    tr = trace(load_weights_dir(zh_weights), text, beam=1)
    assert "translates English" in tr.notices[0] and why in tr.notices[0] and "meaningless" in tr.notices[0]


@pytest.mark.parametrize(
    "text", ["I love you.", "Where is the book?", "I love xyzzy.", "I love you 42 times."]
)
def test_english_input_gets_no_such_warning(zh_weights, text):
    tr = trace(load_weights_dir(zh_weights), text, beam=1)
    assert not any("translates English" in n for n in tr.notices)


@pytest.mark.parametrize(
    "text",
    [
        "I love tea https://example.com/a/b?c=1 .",  # the toy model knows "I love tea"
        "I love tea and www.example.com .",
        "I love tea tom.smith@example.co.uk .",
    ],
)
def test_an_address_in_english_text_is_said_to_come_out_as_nonsense(zh_weights, text):
    tr = trace(load_weights_dir(zh_weights), text, beam=1)
    assert "web or e-mail address" in tr.notices[0] and "meaningless" in tr.notices[0]


@pytest.mark.parametrize(
    "text", ["I love you.", "He said www is old.", "Meet me @ noon.", "It costs 3.50 dollars."]
)
def test_no_address_no_address_notice(zh_weights, text):
    tr = trace(load_weights_dir(zh_weights), text, beam=1)
    assert not any("address" in n for n in tr.notices)
