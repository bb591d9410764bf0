"""Inside a head, model side: every captured number is redone by hand from the ones before it, a head
mask switches a head off exactly as zeroing its slice of W_O would, decoding honours the mask step by
step, and with nothing captured or switched off the model computes what it always did."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from test_model import PAD, batch, randomized

from training.config import ModelConfig
from training.decoding import DecodeSettings, beam_search, decode, greedy
from training.model import HeadMask, Transformer, causal_mask, sinusoidal_encoding

KINDS = {"encoder": "encoder_self", "decoder": "decoder_self", "cross": "cross"}  # head-mask kind → maps name


@pytest.fixture(params=[True, False], ids=["pre-norm", "post-norm"])
def model(request, tiny_config) -> Transformer:
    # Random LayerNorm gains and biases (see `randomized`), and stacks of different depths, so that a
    # misplaced norm or a mixed-up layer cannot pass.
    cfg = ModelConfig(**{**tiny_config.to_dict(), "pre_norm": request.param, "n_encoder_layers": 3})
    return randomized(cfg, seed=5)


def split_heads(x: torch.Tensor, h: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, h, d // h).transpose(1, 2)  # (B, T, D) → (B, H, T, d_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)  # (B, H, T, d_head) → (B, T, D)


def key_masks(src: torch.Tensor, tgt: torch.Tensor) -> dict[str, torch.Tensor]:
    """True where a query may attend, broadcastable to (B, H, Tq, Tk)."""
    src_keys = (src != PAD)[:, None, None, :]
    return {
        "encoder_self": src_keys,
        "cross": src_keys,
        "decoder_self": (tgt != PAD)[:, None, None, :] & causal_mask(tgt.size(1)),
    }


def test_softmax_of_the_captured_q_and_k_is_the_captured_weights(model):
    src, tgt = batch(model.cfg)
    _, maps = model(src, tgt, capture="internals")
    masks = key_masks(src, tgt)
    for name, mask in masks.items():
        records = getattr(maps.internals, name)
        assert len(records) == len(getattr(maps, name))
        for layer, r in enumerate(records):
            scores = r.q @ r.k.transpose(-2, -1) / math.sqrt(model.cfg.d_head)  # (B, H, Tq, Tk)
            expected = scores.masked_fill(~mask, float("-inf")).softmax(-1)
            assert (expected - r.weights).abs().max().item() <= 1e-6, (name, layer)
            assert r.weights is getattr(maps, name)[layer]  # the maps shown are these very weights


def test_captured_internals_have_the_documented_shapes(model):
    src, tgt = batch(model.cfg)
    _, maps = model(src, tgt, capture="internals")
    b, s, t, h, dh, d = 3, src.size(1), tgt.size(1), model.cfg.n_heads, model.cfg.d_head, model.cfg.d_model
    for name, tq, tk in (("encoder_self", s, s), ("decoder_self", t, t), ("cross", t, s)):
        for r in getattr(maps.internals, name):
            assert r.q.shape == r.head_output.shape == (b, h, tq, dh)
            assert r.k.shape == r.v.shape == (b, h, tk, dh)
            assert r.weights.shape == (b, h, tq, tk)
            assert r.stream_in.shape == r.normed.shape == r.attn_out.shape == r.stream_out.shape == (b, tq, d)


def test_the_whole_pass_is_redone_by_hand_from_the_internals(model):
    """From the embeddings to the logits, every captured tensor is recomputed from the one before it
    with the layer's own weights: the projections, weights · v, W_O, the residual, the norms, and the
    feed-forward network between one attention sublayer and the next."""
    src, tgt = batch(model.cfg)
    logits, maps = model(src, tgt, capture="internals")
    cfg, h = model.cfg, model.cfg.n_heads
    close = dict(atol=1e-6, rtol=1e-6)
    pe = sinusoidal_encoding(cfg.max_len, cfg.d_model)

    def check_sublayer(r, attn, norm, kv_input):
        normed = norm(r.stream_in) if cfg.pre_norm else r.stream_in  # the queries' input
        torch.testing.assert_close(r.normed, normed, **close)
        torch.testing.assert_close(
            r.q, split_heads(F.linear(normed, attn.q_proj.weight, attn.q_proj.bias), h), **close
        )
        kv = normed if kv_input is None else kv_input
        torch.testing.assert_close(
            r.k, split_heads(F.linear(kv, attn.k_proj.weight, attn.k_proj.bias), h), **close
        )
        torch.testing.assert_close(
            r.v, split_heads(F.linear(kv, attn.v_proj.weight, attn.v_proj.bias), h), **close
        )
        torch.testing.assert_close(r.head_output, r.weights @ r.v, **close)  # (B, H, Tq, d_head)
        # Concat(head_1, …, head_H) W_O + b_O
        torch.testing.assert_close(
            r.attn_out, merge_heads(r.head_output) @ attn.out_proj.weight.T + attn.out_proj.bias, **close
        )
        summed = r.stream_in + r.attn_out
        torch.testing.assert_close(r.stream_out, summed if cfg.pre_norm else norm(summed), **close)

    def feed_forward(layer, x, norm):
        ff = lambda z: layer.ff.fc2(F.relu(layer.ff.fc1(z)))
        return x + ff(norm(x)) if cfg.pre_norm else norm(x + ff(x))

    x = model.src_embed(src) * math.sqrt(cfg.d_model) + pe[: src.size(1)]
    for layer, r in zip(model.encoder, maps.internals.encoder_self, strict=True):
        torch.testing.assert_close(r.stream_in, x, **close)  # the previous layer's output is this one's input
        check_sublayer(r, layer.self_attn, layer.res_attn.norm, None)
        x = feed_forward(layer, r.stream_out, layer.res_ff.norm)
    memory = model.encoder_norm(x)

    y = model.tgt_embed(tgt) * math.sqrt(cfg.d_model) + pe[: tgt.size(1)]
    for layer, r_self, r_cross in zip(
        model.decoder, maps.internals.decoder_self, maps.internals.cross, strict=True
    ):
        torch.testing.assert_close(r_self.stream_in, y, **close)
        check_sublayer(r_self, layer.self_attn, layer.res_self.norm, None)
        assert torch.equal(
            r_cross.stream_in, r_self.stream_out
        )  # self-attention's output stream feeds cross-attention
        check_sublayer(r_cross, layer.cross_attn, layer.res_cross.norm, memory)
        y = feed_forward(layer, r_cross.stream_out, layer.res_ff.norm)
    torch.testing.assert_close(
        logits, model.decoder_norm(y) @ model.tgt_embed.weight.T + model.output_bias, **close
    )


def test_capture_changes_no_logit_and_weights_capture_is_what_it_was(model):
    src, tgt = batch(model.cfg)
    weights, maps_w = model(src, tgt, return_attention=True)
    internals, maps_i = model(src, tgt, capture="internals")
    assert maps_w.internals is None and maps_i.internals is not None
    assert torch.equal(weights, internals)  # the same explicit path; holding the internals changes nothing
    for a, b in zip(
        maps_w.encoder_self + maps_w.decoder_self + maps_w.cross,
        maps_i.encoder_self + maps_i.decoder_self + maps_i.cross,
        strict=True,
    ):
        assert torch.equal(a, b)
    fused, none = model(src, tgt)
    assert none is None
    torch.testing.assert_close(fused, internals, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="capture must be one of none, weights, internals"):
        model(src, tgt, capture="everything")


def test_a_mask_that_switches_nothing_off_changes_no_bit(model):
    src, tgt = batch(model.cfg)
    for capture in ("none", "weights", "internals"):
        plain, _ = model(src, tgt, capture=capture)
        for mask in (HeadMask(), HeadMask.ones(model.cfg), HeadMask.ones(model.cfg, batch=src.size(0))):
            masked, _ = model(src, tgt, capture=capture, head_mask=mask)
            assert torch.equal(plain, masked), capture


def zeroed_w_o(model: Transformer, heads: list[tuple[str, int, int]]) -> Transformer:
    """The textbook ablation: a copy of the model whose W_O ignores the heads (their input columns zeroed)."""
    ablated = copy.deepcopy(model)
    dh = model.cfg.d_head
    with torch.no_grad():
        for kind, layer, head in heads:
            stack = ablated.encoder if kind == "encoder" else ablated.decoder
            attn = {"encoder": "self_attn", "decoder": "self_attn", "cross": "cross_attn"}[kind]
            getattr(stack[layer], attn).out_proj.weight[:, head * dh : (head + 1) * dh] = 0
    return ablated


def mask_of(cfg: ModelConfig, heads: list[tuple[str, int, int]]) -> HeadMask:
    mask = HeadMask.ones(cfg)
    for kind, layer, head in heads:
        getattr(mask, kind)[layer, head] = 0
    return mask


@pytest.mark.parametrize(
    "heads",
    [
        [("encoder", 0, 1)],
        [("encoder", 2, 3)],
        [("decoder", 1, 0)],
        [("cross", 0, 2)],
        [("cross", 1, 3)],
        [("encoder", 1, 0), ("decoder", 0, 3), ("cross", 1, 1), ("cross", 1, 2)],
    ],
    ids=lambda heads: "+".join(f"{kind}{layer}.{head}" for kind, layer, head in heads),
)
def test_switching_a_head_off_equals_zeroing_its_slice_of_w_o(model, heads):
    src, tgt = batch(model.cfg)
    expected, _ = zeroed_w_o(model, heads)(src, tgt)
    plain, _ = model(src, tgt)
    for capture in ("none", "internals"):
        got, maps = model(src, tgt, capture=capture, head_mask=mask_of(model.cfg, heads))
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-3)  # and the head did matter
    # The internals show each head's own output; W_O reads it with the switched-off heads zeroed.
    kind, layer, head = heads[0]
    r = getattr(maps.internals, KINDS[kind])[layer]
    gated = r.head_output.clone()
    gated[:, head] = 0
    attn = (
        model.encoder[layer].self_attn
        if kind == "encoder"
        else model.decoder[layer].self_attn
        if kind == "decoder"
        else model.decoder[layer].cross_attn
    )
    torch.testing.assert_close(r.attn_out, attn.out_proj(merge_heads(gated)), atol=1e-6, rtol=1e-6)
    assert r.head_output[:, head].abs().sum() > 0


def test_a_mask_per_row_ablates_each_row_as_if_it_ran_alone(model):
    src, tgt = batch(model.cfg)
    rows = [[("cross", 1, 2)], [], [("encoder", 0, 0), ("decoder", 1, 3)]]
    per_row = HeadMask.ones(model.cfg, batch=3)
    for row, heads in enumerate(rows):
        for kind, layer, head in heads:
            getattr(per_row, kind)[row, layer, head] = 0
    together, _ = model(src, tgt, head_mask=per_row)
    for row, heads in enumerate(rows):
        alone, _ = model(src, tgt, head_mask=mask_of(model.cfg, heads))
        torch.testing.assert_close(together[row], alone[row], atol=1e-6, rtol=1e-6)


def test_bad_head_masks_are_one_line_errors_naming_the_shape(model):
    src, tgt = batch(model.cfg)
    cases = [
        (HeadMask(encoder=torch.ones(2, 4)), r"head_mask.encoder must be a tensor of shape \(3, 4\)"),
        (HeadMask(cross=torch.ones(2, 5)), r"head_mask.cross must be a tensor of shape \(2, 4\)"),
        (HeadMask(decoder=torch.ones(2, 2, 4)), "has 2 rows but the batch has 3"),
        (HeadMask(decoder=torch.full((2, 4), 0.5)), "only 0 .head off. and 1"),
    ]
    for mask, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            model(src, tgt, head_mask=mask)
        assert "\n" not in str(e.value)


def test_kv_cached_decoding_switches_the_heads_off_at_every_step(model):
    src, tgt = batch(model.cfg)
    mask = mask_of(model.cfg, [("decoder", 0, 1), ("cross", 1, 0), ("encoder", 2, 2)])
    expected, _ = model(src, tgt, head_mask=mask)
    memory, src_mask, _ = model.encode(src, head_mask=mask)
    cache = model.init_cache(memory, src_mask)
    steps = torch.cat([model.decode_step(tgt[:, i : i + 1], cache, mask) for i in range(tgt.size(1))], dim=1)
    real = tgt != PAD  # decoding never feeds <pad>, so the cache does not mask it
    torch.testing.assert_close(model.logits(steps)[real], expected[real], atol=1e-5, rtol=1e-5)


def sharp(cfg: ModelConfig, seed: int) -> Transformer:
    m = randomized(cfg, seed)
    with torch.no_grad():  # sharpen the untrained distributions so hypotheses differ
        m.output_bias.normal_(0, 2.0)
    return m


@pytest.mark.parametrize("beam", [1, 3])
def test_an_ablated_cached_decode_equals_an_ablated_uncached_decode(tiny_config, beam):
    model = sharp(tiny_config, 11)
    src = torch.randint(4, tiny_config.src_vocab_size, (4, 6), generator=torch.Generator().manual_seed(2))
    src[1, 4:] = PAD
    settings = DecodeSettings(beam=beam, length_penalty=0.6, max_len_a=1.0, max_len_b=4)
    mask = mask_of(tiny_config, [("cross", 0, 0), ("cross", 0, 1), ("cross", 0, 2), ("decoder", 1, 1)])
    cached = decode(model, src, settings, use_cache=True, head_mask=mask)
    uncached = decode(model, src, settings, use_cache=False, head_mask=mask)
    assert [h.ids for h in cached] == [h.ids for h in uncached]
    assert [h.score for h in cached] == pytest.approx([h.score for h in uncached], abs=1e-4)
    plain = decode(model, src, settings)
    assert [h.score for h in plain] != pytest.approx(
        [h.score for h in cached], abs=1e-3
    )  # the mask did something
    same = decode(model, src, settings, head_mask=HeadMask.ones(tiny_config))
    assert [(h.ids, h.score, h.token_logprobs) for h in same] == [
        (h.ids, h.score, h.token_logprobs) for h in plain
    ]


def test_beam_search_gives_each_sentence_its_own_mask(tiny_config):
    model = sharp(tiny_config, 4)
    src = torch.randint(4, tiny_config.src_vocab_size, (3, 5), generator=torch.Generator().manual_seed(4))
    settings = DecodeSettings(beam=3, length_penalty=1.0, max_len_a=1.0, max_len_b=4)
    rows = [[("cross", 1, 0), ("cross", 1, 1)], [], [("decoder", 0, 2), ("encoder", 1, 3)]]
    per_row = HeadMask.ones(tiny_config, batch=3)
    for row, heads in enumerate(rows):
        for kind, layer, head in heads:
            getattr(per_row, kind)[row, layer, head] = 0
    for search in (beam_search, greedy):
        together = search(model, src, settings, head_mask=per_row)
        for row, heads in enumerate(rows):
            (alone,) = search(model, src[row : row + 1], settings, head_mask=mask_of(tiny_config, heads))
            assert together[row].ids == alone.ids
            assert together[row].score == pytest.approx(alone.score, abs=1e-4)
