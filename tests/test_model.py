import math
import warnings

import pytest
import torch
import torch.nn as nn

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
    memory, src_mask, _ = model.encode(src, capture="weights")
    hidden, _, _ = model.decode(tgt, memory, src_mask, capture="weights")
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


def randomized(cfg: ModelConfig, seed: int = 0) -> Transformer:
    """Every parameter random, LayerNorm gains and biases included: at their initial (1, 0) a norm
    applied twice, or to an already normalized stream, changes nothing, so a misplaced norm would hide."""
    torch.manual_seed(seed)
    m = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("norm.weight") else 0.0) + 0.5 * torch.randn_like(p))
    return m


def torch_reference(model: Transformer) -> nn.Transformer:
    """torch.nn.Transformer holding our model's weights. Only the layer stacks are torch's; embeddings,
    positions, our final norms and the tied output projection are applied around it (`reference_forward`)."""
    cfg = model.cfg
    with warnings.catch_warnings():  # pre-norm: "enable_nested_tensor is True, but ... norm_first was True"
        warnings.simplefilter("ignore", UserWarning)
        ref = nn.Transformer(
            cfg.d_model,
            cfg.n_heads,
            cfg.n_encoder_layers,
            cfg.n_decoder_layers,
            cfg.d_ff,
            dropout=0.0,
            batch_first=True,
            norm_first=cfg.pre_norm,
        ).eval()
    ref.encoder.norm = ref.decoder.norm = (
        None  # ours (LayerNorm when pre-norm, none when post-norm) come after
    )

    def linear(theirs, ours):
        theirs.weight.copy_(ours.weight)
        theirs.bias.copy_(ours.bias)

    def attn(theirs: nn.MultiheadAttention, ours):
        qkv = (ours.q_proj, ours.k_proj, ours.v_proj)
        theirs.in_proj_weight.copy_(torch.cat([p.weight for p in qkv]))  # (3D, D): q, k, v stacked
        theirs.in_proj_bias.copy_(torch.cat([p.bias for p in qkv]))
        linear(theirs.out_proj, ours.out_proj)

    with torch.no_grad():
        for theirs, ours in zip(ref.encoder.layers, model.encoder, strict=True):
            attn(theirs.self_attn, ours.self_attn)
            linear(theirs.linear1, ours.ff.fc1)
            linear(theirs.linear2, ours.ff.fc2)
            linear(theirs.norm1, ours.res_attn.norm)
            linear(theirs.norm2, ours.res_ff.norm)
        for theirs, ours in zip(ref.decoder.layers, model.decoder, strict=True):
            attn(theirs.self_attn, ours.self_attn)
            attn(theirs.multihead_attn, ours.cross_attn)
            linear(theirs.linear1, ours.ff.fc1)
            linear(theirs.linear2, ours.ff.fc2)
            linear(theirs.norm1, ours.res_self.norm)
            linear(theirs.norm2, ours.res_cross.norm)
            linear(theirs.norm3, ours.res_ff.norm)
    return ref


def reference_forward(model: Transformer, ref: nn.Transformer, src, tgt):
    """(logits (B, T, V), attention maps per layer (B, H, Tq, Tk): encoder self, decoder self, cross),
    computed by torch.nn.Transformer's layers and attention."""
    d = model.cfg.d_model
    pe = sinusoidal_encoding(model.cfg.max_len, d)
    maps = {}

    def keep_weights(module, args, kwargs, output):
        # torch's layers ask for no weights; ask the same module again, with the same inputs and masks.
        _, maps[module] = module.forward(
            *args, **{**kwargs, "need_weights": True, "average_attn_weights": False}
        )

    attns = [m for m in ref.modules() if isinstance(m, nn.MultiheadAttention)]
    hooks = [m.register_forward_hook(keep_weights, with_kwargs=True) for m in attns]
    try:
        s = model.src_embed(src) * math.sqrt(d) + pe[: src.size(1)]  # (B, S, D)
        t = model.tgt_embed(tgt) * math.sqrt(d) + pe[: tgt.size(1)]  # (B, T, D)
        future = nn.Transformer.generate_square_subsequent_mask(
            tgt.size(1), dtype=torch.bool
        )  # True: may not attend
        memory = model.encoder_norm(ref.encoder(s, src_key_padding_mask=src == PAD))
        h = ref.decoder(
            t,
            memory,
            tgt_mask=future,
            tgt_is_causal=True,
            tgt_key_padding_mask=tgt == PAD,
            memory_key_padding_mask=src == PAD,
        )
        logits = (
            model.decoder_norm(h) @ model.tgt_embed.weight.T + model.output_bias
        )  # tied output projection
    finally:
        for hook in hooks:
            hook.remove()
    enc = [maps[layer.self_attn] for layer in ref.encoder.layers]
    dec = [maps[layer.self_attn] for layer in ref.decoder.layers]
    cross = [maps[layer.multihead_attn] for layer in ref.decoder.layers]
    return logits, (enc, dec, cross)


@pytest.mark.parametrize("pre_norm", [True, False], ids=["pre-norm", "post-norm"])
def test_model_matches_torch_nn_transformer_with_the_same_weights(tiny_config, pre_norm):
    # Stacks of different depths, so that a mix-up of encoder and decoder layers cannot match.
    cfg = ModelConfig(**{**tiny_config.to_dict(), "pre_norm": pre_norm, "n_encoder_layers": 3})
    model = randomized(cfg, seed=3)
    src, tgt = batch(cfg)
    expected, (enc, dec, cross) = reference_forward(model, torch_reference(model), src, tgt)
    close = dict(atol=1e-4, rtol=1e-4)
    fused, _ = model(src, tgt)
    torch.testing.assert_close(fused, expected, **close)
    explicit, maps = model(src, tgt, return_attention=True)
    torch.testing.assert_close(explicit, expected, **close)
    for ours, theirs in zip(
        maps.encoder_self + maps.decoder_self + maps.cross, enc + dec + cross, strict=True
    ):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # and the KV-cached decoder, one position at a time
    memory, src_mask, _ = model.encode(src)
    cache = model.init_cache(memory, src_mask)
    steps = torch.cat([model.decode_step(tgt[:, i : i + 1], cache) for i in range(tgt.size(1))], dim=1)
    real = tgt != PAD  # decoding never feeds <pad>, so the cache does not mask it
    torch.testing.assert_close(model.logits(steps)[real], expected[real], **close)


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
