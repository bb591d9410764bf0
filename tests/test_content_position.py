"""The five content/position terms of layer 1 add up to the scores the model actually used."""

import numpy as np
import pytest
import torch

from explorer.content_position import TERMS, first_layer_terms
from training.config import ModelConfig
from training.model import Transformer


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_terms_sum_to_the_scores_behind_the_captured_weights(pre_norm):
    torch.manual_seed(0)
    cfg = ModelConfig(
        src_vocab_size=30,
        tgt_vocab_size=25,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.0,
        max_len=40,
        pre_norm=pre_norm,
    )
    model = Transformer(cfg).eval()
    with torch.no_grad():  # LayerNorm starts as γ=1, β=0: make it matter
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.5)
    src, tgt = [5, 9, 7, 12, 3], [2, 6, 8, 4, 11, 10]
    with torch.no_grad():
        _, maps = model(torch.tensor([src]), torch.tensor([tgt]), return_attention=True)

    enc = first_layer_terms(model, src, "encoder")
    assert list(enc) == list(TERMS) and all(t.shape == (4, 5, 5) for t in enc.values())
    np.testing.assert_allclose(softmax(sum(enc.values())), maps.encoder_self[0][0].numpy(), atol=2e-6)

    dec = first_layer_terms(model, tgt, "decoder")
    causal = np.triu(np.ones((6, 6), dtype=bool), k=1)
    scores = np.where(causal, -np.inf, sum(dec.values()))
    np.testing.assert_allclose(softmax(scores), maps.decoder_self[0][0].numpy(), atol=2e-6)


def test_each_term_is_what_its_name_says():
    torch.manual_seed(1)
    cfg = ModelConfig(
        src_vocab_size=30,
        tgt_vocab_size=25,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        dropout=0.0,
        max_len=40,
    )
    model = Transformer(cfg).eval()
    same_token = first_layer_terms(model, [7, 7, 7, 7], "encoder")
    # Identical tokens: content·content depends on the token only... up to LayerNorm's per-position σ.
    # Without position the split is trivial: zero the positional table and only content and bias remain.
    model.pos_enc.zero_()
    no_position = first_layer_terms(model, [5, 9, 7], "encoder")
    for name in ("content·position", "position·content", "position·position"):
        assert np.abs(no_position[name]).max() == 0.0
    assert np.abs(same_token["position·position"]).max() > 0  # positions differ, so this term does too
