import math

import pytest
import torch

from training.config import ModelConfig
from training.model import Transformer, attention, causal_mask, sinusoidal_encoding

PAD = 0


def batch(cfg: ModelConfig, seed: int = 0):
    """A padded batch: sentence 1 is shorter on both sides, so padding masks matter."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, cfg.src_vocab_size, (3, 7), generator=g)
    tgt = torch.randint(4, cfg.tgt_vocab_size, (3, 6), generator=g)
    tgt[:, 0] = 2  # <s>
    src[1, 4:] = PAD
    tgt[1, 3:] = PAD
    src[2, 6:] = PAD
    return src, tgt


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return Transformer(tiny_config).eval()


def test_attention_maps_have_documented_shapes(model, tiny_config):
    src, tgt = batch(tiny_config)
    logits, maps = model(src, tgt, return_attention=True)
    b, s, t, h = 3, 7, 6, tiny_config.n_heads
    assert logits.shape == (b, t, tiny_config.tgt_vocab_size)
    assert len(maps.encoder_self) == tiny_config.n_encoder_layers
    assert len(maps.decoder_self) == len(maps.cross) == tiny_config.n_decoder_layers
    assert all(w.shape == (b, h, s, s) for w in maps.encoder_self)
    assert all(w.shape == (b, h, t, t) for w in maps.decoder_self)
    assert all(w.shape == (b, h, t, s) for w in maps.cross)


def test_attention_rows_sum_to_one(model, tiny_config):
    src, tgt = batch(tiny_config)
    _, maps = model(src, tgt, return_attention=True)
    for w in maps.encoder_self + maps.decoder_self + maps.cross:
        assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6)
        assert (w >= 0).all()


def test_decoder_self_attention_is_exactly_zero_above_the_diagonal(model, tiny_config):
    src, tgt = batch(tiny_config)
    _, maps = model(src, tgt, return_attention=True)
    future = ~causal_mask(tgt.size(1))[0, 0]
    for w in maps.decoder_self:
        assert (w[..., future] == 0).all()
        assert (w[..., ~future] > 0)[0].any()


def test_padded_keys_get_exactly_zero_attention(model, tiny_config):
    src, tgt = batch(tiny_config)
    _, maps = model(src, tgt, return_attention=True)
    src_pad = src == PAD  # (B, S)
    tgt_pad = tgt == PAD
    for w in maps.encoder_self + maps.cross:
        assert (w.transpose(1, -1)[src_pad] == 0).all()  # keys on the last axis
    for w in maps.decoder_self:
        assert (w.transpose(1, -1)[tgt_pad] == 0).all()
    # and the real keys of a padded sentence still share all the mass
    assert torch.allclose(maps.cross[0][1, :, :, :4].sum(-1), torch.ones(tiny_config.n_heads, 6), atol=1e-6)


def test_padding_does_not_change_a_sentences_output(model, tiny_config):
    src, tgt = batch(tiny_config)
    full, _ = model(src, tgt)
    alone, _ = model(src[1:2, :4], tgt[1:2, :3])
    assert torch.allclose(full[1, :3], alone[0], atol=1e-5)


def test_capturing_attention_does_not_change_the_logits(model, tiny_config):
    src, tgt = batch(tiny_config)
    # The explicit softmax path, its weights dropped: returning them must not change a bit of the logits.
    memory, src_mask, _ = model.encode(src, need_weights=True)
    hidden, _, _ = model.decode(tgt, memory, src_mask, need_weights=True)
    plain = model.logits(hidden)
    _, none = model(src, tgt)
    captured, maps = model(src, tgt, return_attention=True)
    assert none is None and maps is not None
    assert torch.equal(plain, captured)


def test_fast_path_matches_the_weight_returning_path(model, tiny_config):
    src, tgt = batch(tiny_config)
    fast, _ = model(src, tgt)
    explicit, _ = model(src, tgt, return_attention=True)
    assert torch.allclose(fast, explicit, atol=1e-5, rtol=1e-5)


def test_attention_function_matches_a_hand_computed_example():
    q = torch.tensor([[[[1.0, 0.0]]]])  # (1, 1, 1, 2)
    k = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]])
    v = torch.tensor([[[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]]])
    mask = torch.tensor([True, True, False])[None, None, None]  # (1, 1, 1, 3)
    out, w = attention(q, k, v, mask)
    e = math.exp(1 / math.sqrt(2))
    expected_w = torch.tensor([e / (e + 1), 1 / (e + 1), 0.0])
    assert torch.allclose(w[0, 0, 0], expected_w, atol=1e-6)
    assert torch.allclose(out[0, 0, 0], expected_w[0] * v[0, 0, 0] + expected_w[1] * v[0, 0, 1], atol=1e-5)
    fast, none = attention(q, k, v, mask, need_weights=False)
    assert none is None and torch.allclose(fast, out, atol=1e-6)


def test_output_projection_is_tied_to_the_target_embedding(model, tiny_config):
    # No separate (V, D) output matrix exists: the logits are hidden · target embeddingᵀ + bias.
    shapes = [p.shape for n, p in model.named_parameters() if n != "tgt_embed.weight"]
    assert (tiny_config.tgt_vocab_size, tiny_config.d_model) not in shapes
    h = torch.randn(2, 3, tiny_config.d_model)
    expected = h @ model.tgt_embed.weight.T + model.output_bias
    assert torch.allclose(model.logits(h), expected, atol=1e-6)
    with torch.no_grad():
        model.tgt_embed.weight[5] += 1.0
    assert torch.allclose(model.logits(h)[..., 5], expected[..., 5] + h.sum(-1), atol=1e-5)


def test_sinusoidal_encoding_follows_the_paper():
    pe = sinusoidal_encoding(50, 16)
    pos, i = 7, 3
    assert pe[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert torch.equal(pe[0, 1::2], torch.ones(8))


def test_dropout_is_active_only_in_training(model, tiny_config):
    src, tgt = batch(tiny_config)
    a, _ = model(src, tgt)
    b, _ = model(src, tgt)
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(1)
    c, _ = model(src, tgt)
    assert not torch.allclose(a, c)


def test_post_norm_normalizes_after_each_residual(tiny_config):
    cfg = ModelConfig(**{**tiny_config.to_dict(), "pre_norm": False})
    m = Transformer(cfg).eval()
    assert isinstance(m.encoder_norm, torch.nn.Identity) and isinstance(m.decoder_norm, torch.nn.Identity)
    src, tgt = batch(cfg)
    memory, _, _ = m.encode(src)  # the last op of a post-norm stack is a LayerNorm (weight 1, bias 0 at init)
    assert torch.allclose(memory.mean(-1), torch.zeros(memory.shape[:-1]), atol=1e-5)
    assert torch.allclose(memory.std(-1, unbiased=False), torch.ones(memory.shape[:-1]), atol=1e-3)
    pre = Transformer(tiny_config).eval()
    assert isinstance(pre.encoder_norm, torch.nn.LayerNorm)
    logits, maps = m(src, tgt, return_attention=True)
    assert torch.isfinite(logits).all() and len(maps.cross) == cfg.n_decoder_layers


def test_too_long_input_is_a_clear_error(model, tiny_config):
    src = torch.full((1, tiny_config.max_len + 1), 5)
    with pytest.raises(ValueError, match="max_len"):
        model.encode(src)


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(src_vocab_size=10, tgt_vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"src_vocab_size": 10, "tgt_vocab_size": 10, "bogus": 1})
    with pytest.raises(ValueError, match="n_heads must be positive"):
        ModelConfig(src_vocab_size=10, tgt_vocab_size=10, n_heads=0)
    with pytest.raises(ValueError, match="d_model must be int"):
        ModelConfig(src_vocab_size=10, tgt_vocab_size=10, d_model=256.0)
