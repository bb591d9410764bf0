"""Contribution methods (explorer/contributions.py) against references written here from the formulas,
one slow Python loop per method, that take from the trace only the attention weights and the residual
streams, and redo the value vectors themselves from the model's W_V, b_V and LayerNorms (the encoder
output for cross-attention). On the tiny trained model, a randomized copy of it (every bias and norm
gain random, so that a dropped b_V or b_O cannot hide) and the shipped weights."""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model import randomized

from explorer.contributions import contributions, contributions_json
from explorer.inference import trace
from training.contributions import attention_terms, head_slices, out_projections, written_values
from training.model import HeadMask
from training.translator import load_weights_dir

SHIPPED = Path(__file__).resolve().parent.parent / "weights"
KINDS = ("encoder_self", "decoder_self", "cross")
SHORT = "I love you."
TWELVE_WORDS = "My brother and I went to the old market near the river ."  # 12 words and the stop


@pytest.fixture(scope="module")
def tiny(zh_weights):
    return load_weights_dir(zh_weights)


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "config.json").is_file():
        pytest.skip("no model shipped in weights/")
    return load_weights_dir(SHIPPED)


@pytest.fixture(scope="module", params=["tiny", "random", "shipped"])
def case(request):
    """(translator, trace with internals) of one short sentence."""
    if request.param == "shipped":
        translator = request.getfixturevalue("shipped")
    else:
        translator = request.getfixturevalue("tiny")
        if request.param == "random":
            translator = dataclasses.replace(translator, model=randomized(translator.model.cfg, seed=3))
    return translator, trace(translator, SHORT, beam=1, internals=True, max_target_tokens=8)


# ---- the references: the formulas, one number at a time


def f64(t) -> np.ndarray:
    return t.detach().double().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float64)


def layer_norm(x: np.ndarray, norm: torch.nn.LayerNorm) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + norm.eps) * f64(norm.weight) + f64(norm.bias)


def sublayers(translator, tr):
    """Per kind, per layer: (attention module, x (Tq, D) entering the sublayer, v (Tk, D) = W_V kv + b_V)."""
    model = translator.model
    src = torch.tensor([translator.prepare(tr.text).ids])
    mask = HeadMask.ones(model.cfg) if tr.ablated_heads else None  # the encoder ran without the trace's
    for kind, layer, head in tr.ablated_heads:  # switched-off heads
        getattr(mask, kind)[layer, head] = 0
    with torch.inference_mode():
        memory = f64(
            model.encode(src, head_mask=mask)[0][0]
        )  # (S, D): the encoder output cross-attention reads
    out = {kind: [] for kind in KINDS}
    for kind in KINDS:
        stack = model.encoder if kind == "encoder_self" else model.decoder
        for layer, block in enumerate(stack):
            attn, norm = {
                "encoder_self": (block.self_attn, getattr(block, "res_attn", None)),
                "decoder_self": (block.self_attn, getattr(block, "res_self", None)),
                "cross": (getattr(block, "cross_attn", None), getattr(block, "res_cross", None)),
            }[kind]
            x = f64(tr.internals[kind].stream_in[layer])  # (Tq, D)
            kv = memory if kind == "cross" else layer_norm(x, norm.norm)
            v = kv @ f64(attn.v_proj.weight).T + f64(attn.v_proj.bias)  # (Tk, D): every head side by side
            out[kind].append((attn, x, v))
    return out


def off_heads(tr, kind):
    short = {"encoder_self": "encoder", "decoder_self": "decoder", "cross": "cross"}[kind]
    return {(layer, head) for k, layer, head in tr.ablated_heads if k == short}


def head_vector(attn, v, alpha, j, h, dh):
    """α_ij^h · W_O^h v_j^h."""
    w_o_h = f64(attn.out_proj.weight)[:, h * dh : (h + 1) * dh]  # (D, d_head)
    return alpha * (w_o_h @ v[j, h * dh : (h + 1) * dh])


def reference_value_norm(translator, tr, kind):
    a = f64(getattr(tr, kind))  # (L, H, Tq, Tk)
    n_layers, n_heads, tq, tk = a.shape
    dh = translator.model.cfg.d_head
    per_head, per_layer = np.zeros(a.shape), np.zeros((n_layers, tq, tk))
    for layer, (attn, _, v) in enumerate(sublayers(translator, tr)[kind]):
        for i in range(tq):
            for j in range(tk):
                total = np.zeros(v.shape[1])
                for h in range(n_heads):
                    if (layer, h) in off_heads(tr, kind):
                        continue
                    vec = head_vector(attn, v, a[layer, h, i, j], j, h, dh)
                    per_head[layer, h, i, j] = np.linalg.norm(vec)
                    total += vec
                per_layer[layer, i, j] = np.linalg.norm(total)
    return per_head, per_layer


def reference_alti_layers(translator, tr, kind):
    """Per layer: C (Tq, Tk [+1 for cross]) and y (Tq, D) = Σ_j T_i(x_j) + b_O."""
    a = f64(getattr(tr, kind))
    n_layers, n_heads, tq, tk = a.shape
    dh = translator.model.cfg.d_head
    cs, ys = [], []
    for layer, (attn, x, v) in enumerate(sublayers(translator, tr)[kind]):
        c, y_rows = np.zeros((tq, tk + (kind == "cross"))), []
        for i in range(tq):
            terms = []
            for j in range(tk):
                t = np.zeros(x.shape[1])
                for h in range(n_heads):
                    if (layer, h) not in off_heads(tr, kind):
                        t += head_vector(attn, v, a[layer, h, i, j], j, h, dh)
                if kind != "cross" and i == j:
                    t += x[i]  # δ_ij x_i
                terms.append(t)
            if kind == "cross":
                terms.append(x[i])  # T_i(res)
            y = sum(terms) + f64(attn.out_proj.bias)
            y_norm = np.abs(y).sum()
            s = [max(0.0, y_norm - np.abs(y - t).sum()) for t in terms]
            c[i] = [sj / sum(s) for sj in s]
            y_rows.append(y)
        cs.append(c)
        ys.append(np.array(y_rows))
    return cs, ys


def reference_rollout_layers(tr, kind):
    a = f64(getattr(tr, kind))
    n_layers, n_heads, tq, tk = a.shape
    cs = []
    for layer in range(n_layers):
        live = [h for h in range(n_heads) if (layer, h) not in off_heads(tr, kind)]
        c = np.zeros((tq, tk + (kind == "cross")))
        for i in range(tq):
            for j in range(tk):
                c[i, j] = 0.5 * sum(a[layer, h, i, j] for h in live) / len(live)
            c[i, i if kind != "cross" else tk] += 0.5
        cs.append(c)
    return cs


def reference_rollout(c_enc, c_self, c_cross):
    """The issue's recurrence, layer 1 apart."""
    r_enc = c_enc[0]
    for c in c_enc[1:]:
        r_enc = c @ r_enc
    s = r_enc.shape[0]
    for layer, (c_s, c_c) in enumerate(zip(c_self, c_cross)):
        c_x, c_y = c_c[:, :s], np.diag(c_c[:, s]) @ c_s
        if layer == 0:
            r_x, r_y = c_x @ r_enc, c_y
        else:
            r_x, r_y = c_y @ r_x + c_x @ r_enc, c_y @ r_y
    return {"encoder": r_enc, "source": r_x, "target": r_y, "source_share": r_x.sum(1)}


def relative(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


# ---- against the references


def test_value_norm_is_the_formula_per_head_and_per_layer(case):
    translator, tr = case
    got = contributions(tr, translator)
    for kind in KINDS:
        per_head, per_layer = reference_value_norm(translator, tr, kind)
        assert got["value_norm"][kind].shape == getattr(tr, kind).shape
        np.testing.assert_allclose(got["value_norm"][kind], per_head, rtol=1e-4, atol=1e-5 * per_head.max())
        np.testing.assert_allclose(
            got["value_norm_layer"][kind], per_layer, rtol=1e-4, atol=1e-5 * per_layer.max()
        )


def test_alti_is_the_formula_and_its_terms_rebuild_the_residual_stream(case):
    translator, tr = case
    layers = {}
    for kind in KINDS:
        layers[kind], ys = reference_alti_layers(translator, tr, kind)
        for layer, y in enumerate(ys):
            # y_i = Σ_j T_i(x_j) + b_O is x_i + the attention output: the stream after the sublayer.
            assert relative(y, f64(tr.internals[kind].stream_out[layer])) <= 1e-4, (kind, layer)
    expected = reference_rollout(layers["encoder_self"], layers["decoder_self"], layers["cross"])
    got = contributions(tr, translator)["alti"]
    for name, e in expected.items():
        np.testing.assert_allclose(got[name], e, atol=1e-6, err_msg=name)


def test_rollout_is_the_formula(case):
    translator, tr = case
    layers = {kind: reference_rollout_layers(tr, kind) for kind in KINDS}
    expected = reference_rollout(layers["encoder_self"], layers["decoder_self"], layers["cross"])
    got = contributions(tr, translator)["rollout"]
    for name, e in expected.items():
        np.testing.assert_allclose(got[name], e, atol=1e-9, err_msg=name)


def test_the_modules_terms_rebuild_every_sublayers_output(case):
    """The implementation's own T_i terms: Σ_j Σ_h α W_O^h v_j^h + x_i + b_O = the stream after the sublayer
    (for decoder self-attention, also the stream cross-attention reads)."""
    translator, tr = case
    for kind in KINDS:
        sub = tr.internals[kind]
        n_layers, n_heads = getattr(tr, kind).shape[:2]
        w_o, b_o = out_projections(translator, kind, n_layers)
        gates = np.ones((n_layers, n_heads))
        terms = attention_terms(
            f64(getattr(tr, kind)), written_values(f64(sub.v), head_slices(w_o, n_heads)), gates
        )
        y = terms.sum(2) + f64(sub.stream_in) + b_o[:, None, :]  # (L, Tq, D)
        assert relative(y, f64(sub.stream_out)) <= 1e-4, kind
        if kind == "decoder_self":
            assert relative(y, f64(tr.internals["cross"].stream_in)) <= 1e-4


def test_invariants(case):
    translator, tr = case
    got = contributions(tr, translator)
    s, t = len(tr.source_tokens), len(tr.target_tokens)
    for kind in KINDS:
        assert (got["value_norm"][kind] >= 0).all() and (got["value_norm_layer"][kind] >= 0).all()
    for method in ("alti", "rollout"):
        c = got[method]
        assert {k: v.shape for k, v in c.items()} == {
            "encoder": (s, s),
            "source": (t, s),
            "target": (t, t),
            "source_share": (t,),
        }
        for name, a in c.items():
            assert (a >= 0).all(), (method, name)
        np.testing.assert_allclose(c["encoder"].sum(1), 1.0, atol=1e-9)
        np.testing.assert_allclose(c["source_share"], c["source"].sum(1), atol=1e-12)
        np.testing.assert_allclose(c["source_share"] + c["target"].sum(1), 1.0, atol=1e-9)
        assert (np.triu(c["target"], 1) == 0).all()  # no position draws on the future


# ---- ablated heads, inputs, output format


def test_a_switched_off_head_contributes_nothing(tiny):
    off = [("encoder", 1, 2), ("decoder", 0, 1), ("cross", 1, 0), ("cross", 1, 3)]
    tr = trace(tiny, SHORT, beam=1, internals=True, head_mask=off)
    got = contributions(tr, tiny)
    for kind in KINDS:
        per_head, per_layer = reference_value_norm(tiny, tr, kind)
        np.testing.assert_allclose(got["value_norm"][kind], per_head, rtol=1e-4, atol=1e-5 * per_head.max())
        np.testing.assert_allclose(
            got["value_norm_layer"][kind], per_layer, rtol=1e-4, atol=1e-5 * per_layer.max()
        )
        for layer, head in off_heads(tr, kind):
            assert (got["value_norm"][kind][layer, head] == 0).all()
    alti, roll = {}, {}
    for kind in KINDS:
        alti[kind], ys = reference_alti_layers(tiny, tr, kind)
        for layer, y in enumerate(ys):  # the stream the model computed without those heads
            assert relative(y, f64(tr.internals[kind].stream_out[layer])) <= 1e-4, (kind, layer)
        roll[kind] = reference_rollout_layers(tr, kind)
    for method, layers in (("alti", alti), ("rollout", roll)):
        expected = reference_rollout(layers["encoder_self"], layers["decoder_self"], layers["cross"])
        for name, e in expected.items():
            np.testing.assert_allclose(got[method][name], e, atol=1e-6, err_msg=f"{method}.{name}")


def test_every_head_of_a_layer_off_leaves_only_the_residual(tiny):
    tr = trace(tiny, SHORT, beam=1, internals=True, head_mask=[("cross", 0, h) for h in range(4)])
    roll = contributions(tr, tiny)["rollout"]
    np.testing.assert_allclose(roll["source_share"] + roll["target"].sum(1), 1.0, atol=1e-9)


def test_the_model_can_be_given_as_translator_transformer_or_state_dict(tiny):
    tr = trace(tiny, SHORT, beam=1, internals=True)
    expected = contributions(tr, tiny)
    state = tiny.model.state_dict()
    for weights in (tiny.model, state, {k: v.numpy() for k, v in state.items()}):
        got = contributions(tr, weights)
        for method, arrays in expected.items():
            for name, a in arrays.items():
                np.testing.assert_array_equal(got[method][name], a, err_msg=f"{method}.{name}")


def test_json_is_nested_lists_in_the_documented_layout(tiny):
    tr = trace(tiny, SHORT, beam=1, internals=True)
    got = contributions(tr, tiny)
    data = json.loads(json.dumps(contributions_json(got)))
    assert set(data) == {"value_norm", "value_norm_layer", "alti", "rollout"}
    for kind in KINDS:
        assert (
            np.asarray(data["value_norm"][kind]).shape == getattr(tr, kind).shape
        )  # [layer][head][query][key]
        np.testing.assert_allclose(data["value_norm"][kind], got["value_norm"][kind], atol=5e-7)
    assert set(data["alti"]) == set(data["rollout"]) == {"encoder", "source", "target", "source_share"}
    assert len(data["alti"]["source"]) == len(tr.predicted_tokens)


def test_a_trace_without_internals_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="internals=True"):
        contributions(trace(tiny, SHORT, beam=1), tiny)


def test_time_on_twelve_words_is_reported_not_asserted(shipped, capsys):
    """A measurement, not a pass/fail: the goal is ≤ 30 ms with one torch thread."""
    tr = trace(shipped, TWELVE_WORDS, beam=1, internals=True)
    contributions(tr, shipped)  # warm-up
    times = []
    for _ in range(20):
        start = time.perf_counter()
        contributions(tr, shipped)
        times.append(time.perf_counter() - start)
    with capsys.disabled():
        print(
            f"\ncontributions(): {1000 * np.median(times):.1f} ms median, {1000 * min(times):.1f} ms best, "
            f"S={len(tr.source_tokens)} T={len(tr.target_tokens)}, torch threads={torch.get_num_threads()}"
        )


# ---- the HTTP endpoint /contributions


def test_contributions_endpoint_through_gradio_client(served, tiny):
    from gradio_client import Client

    from explorer.api import CONTRIBUTION_DECIMALS
    from explorer.policy import CAPS

    data = Client(served, verbose=False).predict("Where is the book?", 1, api_name="/contributions")
    tr = trace(tiny, "Where is the book?", beam=1, internals=True, **CAPS)
    expected = contributions_json(contributions(tr, tiny), CONTRIBUTION_DECIMALS)
    assert data["contributions"] == json.loads(json.dumps(expected))
    assert data["translation"] == tr.translation and data["predicted_tokens"] == tr.predicted_tokens
    assert data["source_tokens"] == tr.source_tokens and data["target_tokens"] == tr.target_tokens
    assert data["checks"]["masked_weight"] == 0.0 and data["notices"] == []


@pytest.mark.parametrize(
    "text,beam,message",
    [("   ", 1, "Type an English sentence"), ("I love you.", 9, "beam must be a whole number from 1 to 8")],
)
def test_contributions_endpoint_refuses_clearly(served, text, beam, message):
    from gradio_client import Client

    with pytest.raises(Exception, match=message):
        Client(served, verbose=False).predict(text, beam, api_name="/contributions")


def test_contributions_endpoint_is_public_in_the_model_group_and_the_guard_knows_its_default(
    page_parts, loaded, served
):
    import httpx

    from explorer.api import api_defaults
    from explorer.http_guard import REQUIRED

    demo, _ = page_parts
    (f,) = [f for f in demo.fns.values() if f.api_name == "contributions"]
    assert f.api_visibility == "public" and f.concurrency_id == "model"
    beam = loaded.translator.decoding.beam
    assert api_defaults(beam, REQUIRED)["contributions"] == [REQUIRED, beam]
    base = served.rstrip("/") + "/gradio_api/call/contributions"
    r = httpx.post(base, json={"data": ["I love you."]}, timeout=60)  # the beam left out
    assert r.status_code == 200
    with httpx.stream("GET", f"{base}/{r.json()['event_id']}", timeout=60) as s:
        body = "".join(s.iter_text())
    assert "event: complete" in body and '"source_share"' in body


def test_contributions_response_stays_small_at_the_caps(page_parts):
    demo, _ = page_parts
    (f,) = [f for f in demo.fns.values() if f.name == "contributions_api"]
    data = f.fn(" ".join(["I drink tea every day ."] * 8), 8)
    assert data["notices"]  # the input was cut to the caps
    assert len(json.dumps(data)) < 2 * 2**20


def test_contributions_at_the_largest_shapes_the_caps_allow_stay_under_two_megabytes(shipped):
    """The tiny model cannot reach the caps' shapes, so the figures of the largest are built here: every
    number non-zero with as many digits as the shipped model's usual ones (most are below 10)."""
    from explorer.api import CONTRIBUTION_DECIMALS
    from explorer.policy import MAX_PIECES, MAX_TARGET_TOKENS

    cfg = shipped.model.cfg
    s, t = MAX_PIECES + 1, MAX_TARGET_TOKENS  # + </s>; the target cap counts </s> already
    full = lambda *shape: np.full(shape, 1.23456789)
    shapes = {"encoder_self": (s, s), "decoder_self": (t, t), "cross": (t, s)}
    layers = {
        "encoder_self": cfg.n_encoder_layers,
        "decoder_self": cfg.n_decoder_layers,
        "cross": cfg.n_decoder_layers,
    }
    roll = {"encoder": full(s, s), "source": full(t, s), "target": full(t, t), "source_share": full(t)}
    c = {
        "value_norm": {k: full(layers[k], cfg.n_heads, *shape) for k, shape in shapes.items()},
        "value_norm_layer": {k: full(layers[k], *shape) for k, shape in shapes.items()},
        "alti": roll,
        "rollout": roll,
    }
    size = len(json.dumps(contributions_json(c, CONTRIBUTION_DECIMALS))) / 2**20
    print(f"\n/contributions at the caps (S={s}, T={t}): {size:.2f} MB of contributions")
    assert size < 1.8  # the tokens, checks and notices are a few KB
