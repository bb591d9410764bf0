"""Inside a head, inference side: the trace's internals and trust checks, `ablate`, `head_importance`,
and concurrent requests with different ablations, on the tiny trained English→Chinese model."""

import copy
import dataclasses
import json
import threading

import numpy as np
import pytest
import torch

from explorer.ablation import ablate, head_importance
from explorer.inference import InputError, TraceChecks, trace, trust_checks
from training.decoding import next_token_logprobs
from training.model import HeadMask
from training.translator import load_weights_dir

SENTENCES = ["I love you.", "Where is the book?", "I drink tea every day.", "My brother became an engineer."]
# Today's trace JSON, key for key; internals and ablated_heads only appear when asked for.
JSON_KEYS = [
    "text",
    "source_tokens",
    "source_unknown",
    "target_tokens",
    "predicted_tokens",
    "translation",
    "score",
    "model_id",
    "decoding",
    "notices",
    "source_words",
    "source_word_index",
    "predicted_prob",
    "predicted_rank",
    "top_next",
    "attention",
    "checks",
]


@pytest.fixture(scope="module")
def translator(zh_weights):
    return load_weights_dir(zh_weights)


def zeroed_w_o(model, heads):
    """The textbook ablation, independent of HeadMask: W_O's input columns of the heads set to zero."""
    ablated = copy.deepcopy(model)
    dh = model.cfg.d_head
    with torch.no_grad():
        for kind, layer, head in heads:
            block = (ablated.encoder if kind == "encoder" else ablated.decoder)[layer]
            attn = block.cross_attn if kind == "cross" else block.self_attn
            attn.out_proj.weight[:, head * dh : (head + 1) * dh] = 0
    return ablated


def output_logprobs(model, translator, text, tokens):
    """Teacher-forced log-probability of each output token (`tokens`: y1 … yn </s>) under `model`."""
    src = torch.tensor([translator.prepare(text).ids])
    out = translator.tgt_vocab.encode(tokens)
    tgt = torch.tensor([[2] + out[:-1]])  # <s> y1 … yn
    with torch.inference_mode():
        logits, _ = model(src, tgt)
    return logits.log_softmax(-1)[0].gather(1, torch.tensor(out)[:, None])[:, 0].double()


# ---- trust checks


@pytest.mark.parametrize("beam", [1, 4])
def test_trust_checks_hold_on_the_trained_model(translator, beam):
    for text in SENTENCES:
        for heads in ([], [("cross", 1, 2)]):
            c = trace(translator, text, beam=beam, head_mask=heads).checks
            assert c.row_sum_error < 1e-5
            assert c.masked_weight == 0.0
            assert c.capture_logit_diff <= 1e-5
            assert c.cached_vs_teacher_forced <= 1e-4


def test_trust_checks_measure_what_they_claim(translator):
    """Each check, fed a doctored input, reports exactly the damage done."""
    text = "I drink tea every day."
    source = translator.prepare(text)
    translation = translator.decode([source], beam=1)[0]
    logits, maps = translator.forward_pass(translation, "weights")
    fused, _ = translator.forward_pass(translation, "none")
    logp = next_token_logprobs(logits)
    clean = trust_checks(translation, maps, logits, fused, logp)
    assert clean.masked_weight == 0.0 and clean.row_sum_error < 1e-5

    bad = copy.deepcopy(maps)
    bad.decoder_self[1][0, 2, 1, 3] = 0.25  # query 1 looks at key 3, in its future
    assert trust_checks(translation, bad, logits, fused, logp).masked_weight == 0.25
    bad = copy.deepcopy(maps)
    bad.cross[0][0, 1, 2] *= 1.1  # one row of one head sums to 1.1
    assert trust_checks(translation, bad, logits, fused, logp).row_sum_error == pytest.approx(0.1, abs=1e-5)
    shifted = fused.clone()
    shifted[2, 7] += 0.5
    assert trust_checks(translation, maps, logits, shifted, logp).capture_logit_diff == pytest.approx(
        0.5, abs=1e-5
    )
    lps = list(translation.hypothesis.token_logprobs)
    lps[-1] -= 0.01
    off = dataclasses.replace(
        translation, hypothesis=dataclasses.replace(translation.hypothesis, token_logprobs=lps)
    )
    assert trust_checks(translation, maps, logits, fused, logp).cached_vs_teacher_forced < 1e-4
    assert trust_checks(off, maps, logits, fused, logp).cached_vs_teacher_forced == pytest.approx(
        0.01, abs=1e-4
    )


# ---- trace with internals


def test_trace_json_is_todays_plus_checks_and_internals_only_when_asked(translator):
    plain = trace(translator, "I love you.", beam=2)
    data = plain.to_json()
    assert list(data) == JSON_KEYS
    assert data["checks"] == dataclasses.asdict(plain.checks)
    assert set(data["checks"]) == {f.name for f in dataclasses.fields(TraceChecks)}

    inside = trace(translator, "I love you.", beam=2, internals=True)
    data = json.loads(json.dumps(inside.to_json()))
    assert list(data) == JSON_KEYS + ["internals"]
    le, ld, h, dh = (
        inside.n_encoder_layers,
        inside.n_decoder_layers,
        inside.n_heads,
        translator.model.cfg.d_head,
    )
    s, t = len(inside.source_tokens), len(inside.target_tokens)
    shapes = {
        "encoder_self": ((le, h, s, dh), (le, h, s, dh)),
        "decoder_self": ((ld, h, t, dh), (ld, h, t, dh)),
        "cross": ((ld, h, t, dh), (ld, h, s, dh)),
    }
    assert set(data["internals"]) == set(shapes)
    for name, (q_shape, kv_shape) in shapes.items():
        got = data["internals"][name]
        assert set(got) == {"q", "k", "v", "head_output", "residual_in"}
        assert np.asarray(got["q"]).shape == np.asarray(got["head_output"]).shape == q_shape
        assert np.asarray(got["k"]).shape == np.asarray(got["v"]).shape == kv_shape
        np.testing.assert_allclose(got["k"], inside.internals[name].k, atol=5e-7)
        # the residual stream entering the sublayer, (L, Tq, D): what contributions are computed against
        assert np.asarray(got["residual_in"]).shape == (q_shape[0], q_shape[2], translator.model.cfg.d_model)
        np.testing.assert_allclose(got["residual_in"], inside.internals[name].stream_in, atol=5e-7)
    # the rest of the trace is the plain one's
    assert inside.translation == plain.translation
    np.testing.assert_array_equal(inside.cross, plain.cross)


def test_trace_internals_are_those_of_the_model_on_the_final_output(translator):
    text = "She is my sister."
    tr = trace(translator, text, beam=1, internals=True, head_mask=[("decoder", 0, 1)])
    src = torch.tensor([translator.prepare(text).ids])
    tgt = torch.tensor([translator.tgt_vocab.encode(tr.target_tokens)])
    mask = HeadMask.ones(translator.model.cfg)
    mask.decoder[0, 1] = 0
    with torch.inference_mode():
        _, maps = translator.model(src, tgt, capture="internals", head_mask=mask)
    for name in ("encoder_self", "decoder_self", "cross"):
        for key in ("q", "k", "v", "head_output", "stream_in", "normed", "attn_out", "stream_out"):
            expected = torch.stack([getattr(r, key)[0] for r in getattr(maps.internals, name)]).numpy()
            np.testing.assert_array_equal(getattr(tr.internals[name], key), expected, err_msg=f"{name}.{key}")
        np.testing.assert_array_equal(
            getattr(tr, name), torch.stack([w[0] for w in getattr(maps, name)]).numpy()
        )
    assert tr.ablated_heads == [("decoder", 0, 1)]
    assert tr.to_json()["ablated_heads"] == [["decoder", 0, 1]]


# ---- ablate


def test_ablating_no_head_changes_nothing(translator):
    # The last sentence is one the model is unsure of: a path that changed the last bits of the logits
    # would show in its log-probabilities (on the memorized ones they round to the same float).
    for text in SENTENCES[:2] + ["The dog drinks tea at the station tomorrow."]:
        for beam in (1, 3):
            out = ablate(translator, text, [], beam=beam)
            assert (
                out["ablated_translation"]
                == out["translation"]
                == trace(translator, text, beam=beam).translation
            )
            assert out["target_tokens"] == trace(translator, text, beam=beam).predicted_tokens
            assert out["target_tokens"][-1] == "</s>"
            assert len(out["delta_logprob"]) == len(out["target_tokens"])
            assert all(d == 0.0 for d in out["delta_logprob"])
            assert out["heads"] == []


def test_ablate_deltas_are_the_textbook_ablations_log_probability_changes(translator):
    text = "My brother became an engineer."
    heads = [("cross", 0, h) for h in range(4)] + [("cross", 1, h) for h in range(4)]  # no look at the source
    out = ablate(translator, text, heads, beam=1)
    on = output_logprobs(translator.model, translator, text, out["target_tokens"])
    off = output_logprobs(zeroed_w_o(translator.model, heads), translator, text, out["target_tokens"])
    np.testing.assert_allclose(out["delta_logprob"], (off - on).numpy(), atol=1e-5)
    assert len(out["delta_logprob"]) == len(out["target_tokens"])
    assert (
        out["ablated_translation"] != out["translation"]
    )  # blind to the source, it translates something else
    assert sum(out["delta_logprob"]) < -1.0
    # and the ablated translation is what the textbook-ablated model decodes
    from training.translator import Translator

    blind = Translator(zeroed_w_o(translator.model, heads), translator.src_vocab, translator.tgt_vocab)
    assert out["ablated_translation"] == blind.decode([translator.prepare(text)], beam=1)[0].text


@pytest.mark.parametrize(
    "heads,message",
    [
        ([("encoder", 2, 0)], r"encoder layer must be an integer from 0 to 1 \(2 layers of 4 heads\); got 2"),
        ([("cross", 0, 4)], r"cross head must be an integer from 0 to 3 \(2 layers of 4 heads\); got 4"),
        ([("decoder", -1, 0)], "decoder layer must be an integer from 0 to 1"),
        ([("decoder", 0, 1.0)], "decoder head must be an integer from 0 to 3"),
        ([("encoder_self", 0, 0)], "head kind must be one of encoder, decoder, cross; got 'encoder_self'"),
        ([("cross", 0)], r"a head is \(kind, layer, head\)"),
        (["cross"], r"a head is \(kind, layer, head\)"),
        (
            "cross",
            r"heads must be a list of \(kind, layer, head\), kind one of encoder, decoder, cross; got 'cross'",
        ),
    ],
)
def test_bad_heads_are_one_line_input_errors_naming_the_valid_range(translator, heads, message):
    text = "I love you."
    for call in (lambda: ablate(translator, text, heads), lambda: trace(translator, text, head_mask=heads)):
        with pytest.raises(InputError, match=message) as e:
            call()
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="head_mask.cross must be a tensor of shape"):
        trace(translator, "I love you.", head_mask=HeadMask(cross=torch.ones(3, 4)))


# ---- head importance


def test_head_importance_is_each_single_head_ablations_total_drop(translator):
    text = "I drink tea every day."
    imp = head_importance(translator, text, beam=1)
    cfg = translator.model.cfg
    assert set(imp) == {"encoder", "decoder", "cross"}
    assert imp["encoder"].shape == (cfg.n_encoder_layers, cfg.n_heads)
    assert imp["decoder"].shape == imp["cross"].shape == (cfg.n_decoder_layers, cfg.n_heads)
    for kind, layer, head in [
        ("encoder", 0, 0),
        ("encoder", 1, 3),
        ("decoder", 1, 2),
        ("cross", 0, 1),
        ("cross", 1, 3),
    ]:
        deltas = ablate(translator, text, [(kind, layer, head)], beam=1)["delta_logprob"]
        assert imp[kind][layer, head] == pytest.approx(-sum(deltas), abs=1e-4), (kind, layer, head)
    # and against the textbook ablation, for one head
    tokens = trace(translator, text, beam=1).predicted_tokens
    on = output_logprobs(translator.model, translator, text, tokens).sum().item()
    off = (
        output_logprobs(zeroed_w_o(translator.model, [("cross", 1, 0)]), translator, text, tokens)
        .sum()
        .item()
    )
    assert imp["cross"][1, 0] == pytest.approx(on - off, abs=1e-4)
    assert np.abs(np.concatenate([m.ravel() for m in imp.values()])).max() > 0.1  # some head matters


def test_head_importance_in_small_batches_is_the_same(translator, monkeypatch):
    import explorer.ablation as ablation

    text = "Where is the book?"
    whole = head_importance(translator, text, beam=2)
    monkeypatch.setattr(ablation, "IMPORTANCE_ROWS", 5)  # 24 variants: 6 passes of 4 (+ the baseline row)
    chunked = head_importance(translator, text, beam=2)
    for kind in whole:
        np.testing.assert_allclose(chunked[kind], whole[kind], atol=1e-5)


# ---- concurrency


def test_concurrent_traces_with_different_ablations_each_get_their_own_result(translator):
    jobs = [
        ("I love you.", [], False),
        ("Where is the book?", [("cross", 0, 1), ("cross", 1, 1)], True),
        ("I love you.", [("decoder", 1, 2), ("encoder", 0, 0)], False),
        ("I drink tea every day.", [("cross", 1, 0), ("cross", 1, 1), ("cross", 1, 2)], True),
    ]
    run = lambda text, heads, internals: trace(
        translator,
        text,
        beam=2,
        internals=internals,
        head_mask=heads,
    ).to_json()
    alone = [run(*job) for job in jobs]
    assert len({json.dumps(a["attention"]) for a in alone}) == len(jobs)  # every job's answer differs
    results: dict[int, list] = {i: [] for i in range(len(jobs))}
    errors = []
    start = threading.Barrier(len(jobs))

    def worker(i):
        try:
            start.wait()
            for _ in range(5):
                results[i].append(run(*jobs[i]))
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in results.items():
        assert len(got) == 5
        for g in got:
            assert g == alone[i], f"job {i} got another request's numbers"


def test_the_capture_check_is_the_gap_between_the_capturing_and_the_fused_pass(translator):
    gaps = []
    for text in SENTENCES:
        tr = trace(translator, text, beam=2, head_mask=[("encoder", 1, 1)])
        src = torch.tensor([translator.prepare(text).ids])
        tgt = torch.tensor([translator.tgt_vocab.encode(tr.target_tokens)])
        mask = HeadMask.ones(translator.model.cfg)
        mask.encoder[1, 1] = 0
        with torch.inference_mode():
            explicit, _ = translator.model(src, tgt, capture="weights", head_mask=mask)
            fused, _ = translator.model(src, tgt, head_mask=mask)
        gaps.append((explicit - fused).abs().max().item())
        assert tr.checks.capture_logit_diff == gaps[-1]
    assert max(gaps) > 0  # the two kernels differ in their last bits here, so the check measures something
