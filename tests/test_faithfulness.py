"""Faithfulness (training/faithfulness.py): hiding a source key from cross-attention against a decoder
written here by hand in float64, with that key's score set to −inf one row at a time; the rank
statistics against slow loops from their definitions; the corpus figures on the tiny model."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from test_model import randomized

from training.config import ModelConfig
from training.data import pad
from training.faithfulness import (
    METHODS,
    average_ranks,
    drops,
    faithfulness,
    is_result,
    masked_logprobs,
    spearman,
    summarize,
    table,
)
from training.text import BOS_ID, PAD_ID
from training.translator import load_weights_dir

SENTENCES = ["I love you.", "Where is the book?", "I drink tea every day.", "My brother became an engineer."]


@pytest.fixture(scope="module")
def tiny(zh_weights):
    return load_weights_dir(zh_weights)


@pytest.fixture(scope="module", params=["trained", "random pre-norm", "random post-norm"])
def translator(request, tiny):
    """The trained tiny model, and random copies of its shape (every bias and norm gain random)."""
    if request.param == "trained":
        return tiny
    cfg = dataclasses.replace(tiny.model.cfg, pre_norm=request.param == "random pre-norm")
    return dataclasses.replace(tiny, model=randomized(cfg, seed=5))


# ---- the reference: one decoder, by hand


def f64(t) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def layer_norm(x, norm):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + norm.eps) * f64(norm.weight) + f64(
        norm.bias
    )


def linear(x, lin):
    return x @ f64(lin.weight).T + f64(lin.bias)


def attend(mod, xq, xkv, allowed, n_heads):
    """Multi-head attention one query row and one head at a time; a key not allowed scores −inf."""
    q, k, v = linear(xq, mod.q_proj), linear(xkv, mod.k_proj), linear(xkv, mod.v_proj)
    dh = q.shape[1] // n_heads
    heads = np.zeros((len(xq), q.shape[1]))
    for h in range(n_heads):
        sl = slice(h * dh, (h + 1) * dh)
        for i in range(len(xq)):
            scores = [
                q[i, sl] @ k[j, sl] / math.sqrt(dh) if allowed(i, j) else -math.inf for j in range(len(k))
            ]
            top = max(scores)
            e = [math.exp(s - top) for s in scores]  # exp(−inf) = 0: the hidden key gets nothing
            heads[i, sl] = sum(e[j] / sum(e) * v[j, sl] for j in range(len(k)))
    return linear(heads, mod.out_proj)


def reference_logprobs(translator, translation, hidden: int | None) -> np.ndarray:
    """log p of each output token, with source position `hidden` (or none) left out of every cross-attention."""
    model, cfg = translator.model, translator.model.cfg
    with torch.inference_mode():  # the encoder is not masked: its output is the model's own
        memory = f64(model.encode(torch.tensor([translation.source.ids]))[0][0])
    tgt, out = translation.decoder_input, translation.decoder_output
    y = f64(model.tgt_embed.weight)[tgt] * math.sqrt(cfg.d_model) + f64(model.pos_enc)[: len(tgt)]
    causal = lambda i, j: j <= i
    source = lambda i, j: j != hidden
    for layer in model.decoder:
        n1, n2, n3 = layer.res_self.norm, layer.res_cross.norm, layer.res_ff.norm
        ff = lambda x, layer=layer: linear(np.maximum(linear(x, layer.ff.fc1), 0), layer.ff.fc2)
        if cfg.pre_norm:
            y = y + attend(layer.self_attn, layer_norm(y, n1), layer_norm(y, n1), causal, cfg.n_heads)
            y = y + attend(layer.cross_attn, layer_norm(y, n2), memory, source, cfg.n_heads)
            y = y + ff(layer_norm(y, n3))
        else:
            y = layer_norm(y + attend(layer.self_attn, y, y, causal, cfg.n_heads), n1)
            y = layer_norm(y + attend(layer.cross_attn, y, memory, source, cfg.n_heads), n2)
            y = layer_norm(y + ff(y), n3)
    if cfg.pre_norm:
        y = layer_norm(y, model.decoder_norm)
    logits = y @ f64(model.tgt_embed.weight).T + f64(model.output_bias)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    assert PAD_ID not in out and BOS_ID not in out  # the two tokens decoding never scores
    return logp[np.arange(len(out)), out]


# ---- the masked pass


def test_hiding_nothing_changes_no_log_probability(translator):
    model = translator.model
    src = pad([translator.prepare(s).ids for s in SENTENCES])  # (4, S) with padding
    tgt = torch.tensor([[BOS_ID, 5, 6, 7, 8]] * len(SENTENCES))
    with torch.inference_mode():
        for capture in ("none", "weights"):
            plain, _ = model(src, tgt, capture=capture)
            kept, _ = model(src, tgt, capture=capture, cross_key_mask=torch.ones(src.shape, dtype=torch.bool))
            assert torch.equal(plain, kept), capture


def test_hiding_a_source_key_is_the_hand_written_decoder_with_its_score_at_minus_infinity(translator):
    for text in SENTENCES[1:3]:
        translation = translator.decode([translator.prepare(text)], beam=1)[0]
        got = masked_logprobs(translator, translation).double().numpy()  # (S + 1, T)
        n_src = len(translation.source.ids)
        assert got.shape == (n_src + 1, len(translation.decoder_output))
        for row, hidden in enumerate([None, *range(n_src)]):
            expected = reference_logprobs(translator, translation, hidden)
            np.testing.assert_allclose(got[row], expected, atol=1e-5, rtol=1e-5, err_msg=f"{text} {hidden}")
        d = drops(got)
        np.testing.assert_array_equal(d, (got[0][None, :] - got[1:]).T)


def test_a_hidden_key_gets_exactly_zero_weight_in_every_cross_attention_and_only_there(tiny):
    src = torch.tensor([tiny.prepare("Where is the book?").ids])
    tgt = torch.tensor([[BOS_ID, 5, 6, 7]])
    keys = torch.ones(src.shape, dtype=torch.bool)
    keys[0, 2] = False
    with torch.inference_mode():
        _, plain = tiny.model(src, tgt, capture="weights")
        _, hidden = tiny.model(src, tgt, capture="weights", cross_key_mask=keys)
    for layer in range(len(hidden.cross)):
        assert (hidden.cross[layer][..., 2] == 0).all()
        torch.testing.assert_close(hidden.cross[layer].sum(-1), torch.ones_like(hidden.cross[layer][..., 0]))
        assert torch.equal(hidden.encoder_self[layer], plain.encoder_self[layer])  # the encoder is untouched


def test_a_bad_key_mask_is_a_one_line_error(tiny):
    src, tgt = torch.tensor([[5, 6, 3]]), torch.tensor([[BOS_ID, 5]])
    for bad in (torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3), [[True, True, True]]):
        with pytest.raises(ValueError, match=r"cross_key_mask must be a bool tensor of shape \(1, 3\)"):
            tiny.model(src, tgt, cross_key_mask=bad)


# ---- rank statistics


def slow_spearman(a, b):
    """Pearson's r of ranks, each tie sharing the mean of the positions it spans, all by counting."""

    def ranks(x):
        return [sum(y < xi for y in x) + (sum(y == xi for y in x) + 1) / 2 for xi in x]

    ra, rb = ranks(list(a)), ranks(list(b))
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((p - ma) * (q - mb) for p, q in zip(ra, rb))
    return cov / math.sqrt(sum((p - ma) ** 2 for p in ra) * sum((q - mb) ** 2 for q in rb))


def test_spearman_is_the_definition_with_ties_and_none_where_it_does_not_exist():
    rng = np.random.default_rng(0)
    for n in (3, 4, 7, 12):
        for _ in range(20):
            a, b = rng.integers(0, 4, n).astype(float), rng.normal(size=n)  # a has ties
            if np.ptp(a) == 0:
                continue
            assert spearman(a, b) == pytest.approx(slow_spearman(a, b), abs=1e-12)
            assert average_ranks(a).tolist() == pytest.approx(
                [sum(y < x for y in a) + (sum(y == x for y in a) + 1) / 2 for x in a]
            )
    x = rng.normal(size=6)
    no_ties = 1 - 6 * sum((p - q) ** 2 for p, q in zip(average_ranks(x), average_ranks(-(x**3)))) / (6 * 35)
    assert spearman(x, -(x**3)) == pytest.approx(no_ties) == pytest.approx(-1.0)
    assert spearman([1.0, 2.0], [2.0, 1.0]) is None  # fewer than 3 positions
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # constant scores
    assert spearman([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]) is None  # constant drops


def test_summary_is_a_slow_loop_over_every_output_token_with_the_source_eos_never_ranked():
    rng = np.random.default_rng(1)
    sentences = []
    for t, s in ((3, 5), (4, 4), (2, 3)):  # the last: two words and </s>, too few for Spearman
        drop = rng.normal(size=(t, s))
        drop[:, -1] = 100.0  # </s> would win every ranking if it were ranked
        scores = {m: rng.random((t, s)) for m in METHODS}
        scores["cross_last"][:, -1] = 1e9
        sentences.append((drop, scores))
    got = summarize(sentences)
    for m in METHODS:
        top, rhos = [], []
        for drop, scores in sentences:
            for row in range(len(drop)):
                words = range(drop.shape[1] - 1)
                best = max(words, key=lambda j, row=row, s=scores[m]: (s[row, j], -j))
                top.append(drop[row, best])
                if len(words) >= 3:
                    rhos.append(slow_spearman(scores[m][row, :-1], drop[row, :-1]))
        assert got["methods"][m]["top1_drop"] == pytest.approx(np.mean(top))
        assert got["methods"][m]["spearman"] == pytest.approx(np.mean(rhos))
        assert got["methods"][m]["spearman_rows"] == len(rhos) == 7
    words = [d[r, :-1] for d, _ in sentences for r in range(len(d))]
    assert got["output_tokens"] == 9
    assert got["reference"]["best_top1_drop"] == pytest.approx(np.mean([w.max() for w in words]))
    assert got["reference"]["mean_drop"] == pytest.approx(np.mean([w.mean() for w in words]))
    assert got["reference"]["eos_drop"] == 100.0


# ---- over a corpus


def test_faithfulness_on_the_tiny_model(tiny):
    texts = [*SENTENCES, "...", "Thank you."]
    got = faithfulness(tiny, texts, seed=3)
    assert is_result(got) and set(got["methods"]) == set(METHODS)
    assert got["skipped_sentences"] == 0 and got["sentences"] == len(texts)
    translations = tiny.decode([tiny.prepare(t) for t in texts])  # the weights' own decoding
    assert got["output_tokens"] == sum(len(t.decoder_output) for t in translations)
    assert got["decoding"]["beam"] == tiny.decoding.beam
    for m in got["methods"].values():
        assert m["top1_drop"] <= got["reference"]["best_top1_drop"] + 1e-12
    again = faithfulness(tiny, texts, seed=3)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in got.items() if k != "seconds"
    }
    assert faithfulness(tiny, texts, seed=4)["methods"]["random"] != got["methods"]["random"]
    assert "alti" in table(got) and "</s> excluded" in table(got)


def test_a_sentence_with_nothing_to_hide_is_skipped(tiny):
    got = faithfulness(tiny, ["", "I love you."])
    assert got["sentences"] == 1 and got["skipped_sentences"] == 1


def test_is_result_refuses_what_a_loader_should_not_show():
    good = {"methods": {"alti": {"top1_drop": 1.0, "spearman": None}}, "sentences": 3, "reference": {}}
    assert is_result(good)
    for bad in ([], {}, {**good, "methods": {}}, {**good, "sentences": "3"},
                {**good, "methods": {"alti": {"top1_drop": "1", "spearman": 0.1}}}):  # fmt: skip
        assert not is_result(bad)


def test_padding_stays_hidden_whatever_the_key_mask_says(tiny_config: ModelConfig):
    """A (B, S) mask on a batch with padding: the padded keys stay hidden whatever the mask says."""
    model = randomized(tiny_config, seed=1)
    src = torch.tensor([[5, 6, 3, PAD_ID], [7, 8, 9, 3]])
    tgt = torch.tensor([[BOS_ID, 5], [BOS_ID, 6]])
    with torch.inference_mode():
        _, maps = model(src, tgt, capture="weights", cross_key_mask=torch.ones(2, 4, dtype=torch.bool))
    assert all((m[0, ..., 3] == 0).all() for m in maps.cross)
