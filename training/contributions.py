"""How much each input token contributes to each position: three methods, in numpy, from a trace's
internals (`trace(..., internals=True)`) and the model's attention output projections.

    value_norm  Attention × value norm (Kobayashi et al., EMNLP 2020): ‖α_ij^h · W_O^h v_j^h‖₂ per head,
                and ‖Σ_h α_ij^h W_O^h v_j^h‖₂ per layer.
    alti        ALTI+ (Ferrando et al., EMNLP 2022): each attention sublayer's output y_i is split into
                terms T_i(x_j), one per input (the residual included), scored by how close each is to
                y_i in L1, then the per-layer scores are rolled out through the whole model.
    rollout     Attention rollout (Abnar & Zuidema 2020): the same roll-out, fed with head-averaged raw
                weights and a residual of one half.

Plain numpy over plain arrays; `contributions` reads them from anything shaped like a Trace (the
explorer's, or `captured(maps)` of one forward pass here), so training code can use it without the app.
What the trace carries is enough, apart from W_O and b_O:
    v          (L, H, Tk, d_head) = split_heads(W_V · kv_input + b_V), kv_input = LN(stream_in) for
               self-attention, the encoder output (after its final LayerNorm) for cross-attention;
    weights    (L, H, Tq, Tk) = trace.encoder_self / decoder_self / cross;
    stream_in  (L, Tq, D), the residual stream entering each attention sublayer (x_i of ALTI).
Only attention mixes positions (LayerNorm and the feed-forward network act on each position alone),
so the roll-out composes one matrix per attention sublayer and nothing else.

Heads a trace switched off (`trace.ablated_heads`) write nothing into the stream, so they contribute 0.
Every matrix row is a query in the model's order: the decoder's row t reads target_tokens[t] and
predicts predicted_tokens[t].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("encoder_self", "decoder_self", "cross")
# trace.ablated_heads names kinds as head masks do: "encoder", "decoder", "cross".
ABLATION_KINDS = {"encoder": "encoder_self", "decoder": "decoder_self", "cross": "cross"}
# Where each kind's attention module sits in the state dict: (stack, module).
MODULES = {
    "encoder_self": ("encoder", "self_attn"),
    "decoder_self": ("decoder", "self_attn"),
    "cross": ("decoder", "cross_attn"),
}


# ---- the model's side: W_O and b_O


def _state_dict(model_or_weights: Any) -> Mapping[str, Any]:
    """A Translator, a Transformer, or a state dict (name → tensor or array) → a state dict."""
    model = getattr(model_or_weights, "model", model_or_weights)  # a Translator holds its Transformer
    return model.state_dict() if hasattr(model, "state_dict") else model


def _numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor (float16 shipped weights included)
        t = t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def out_projections(model_or_weights: Any, kind: str, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """W_O (L, D, D) as nn.Linear stores it (out × in), and b_O (L, D), of one kind's attention sublayers."""
    sd = _state_dict(model_or_weights)
    stack, module = MODULES[kind]
    names = [f"{stack}.{layer}.{module}.out_proj" for layer in range(n_layers)]
    w_o = np.stack([_numpy(sd[f"{n}.weight"]) for n in names])  # (L, D, D)
    b_o = np.stack([_numpy(sd[f"{n}.bias"]) for n in names])  # (L, D)
    return w_o, b_o


def head_slices(w_o: np.ndarray, n_heads: int) -> np.ndarray:
    """W_O (L, D, H·d_head) → (L, H, d_head, D): head h's input columns, transposed so that v @ W = W_O^h v."""
    n_layers, d_model, _ = w_o.shape
    return w_o.reshape(n_layers, d_model, n_heads, -1).transpose(0, 2, 3, 1)


def head_gates(trace: Any, kind: str) -> np.ndarray:
    """(L, H): 1 where the head ran, 0 where the trace switched it off (it wrote nothing into the stream)."""
    n_layers, n_heads = getattr(trace, kind).shape[:2]
    gates = np.ones((n_layers, n_heads))
    for off_kind, layer, head in getattr(trace, "ablated_heads", ()) or ():
        if ABLATION_KINDS[off_kind] == kind:
            gates[layer, head] = 0.0
    return gates


# ---- per sublayer: the vectors each input writes into the stream


def written_values(v: np.ndarray, w_o_heads: np.ndarray) -> np.ndarray:
    """W_O^h v_j^h: what key j would write through head h at full attention. (L, H, Tk, D)"""
    return v @ w_o_heads  # (L, H, Tk, d_head) @ (L, H, d_head, D)


def attention_terms(weights: np.ndarray, written: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """Σ_h α_ij^h W_O^h v_j^h: key j's share of query i's attention output, b_O excluded. (L, Tq, Tk, D)"""
    a = weights * gates[:, :, None, None]  # (L, H, Tq, Tk): a switched-off head writes nothing
    # Batched over (layer, key): (Tq, H) @ (H, D) sums the heads in one BLAS call per key.
    terms = a.transpose(0, 3, 2, 1) @ written.transpose(0, 2, 1, 3)  # (L, Tk, Tq, D)
    return terms.transpose(0, 2, 1, 3)  # (L, Tq, Tk, D)


def value_norms(weights: np.ndarray, written: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """‖α_ij^h W_O^h v_j^h‖₂ = α_ij^h ‖W_O^h v_j^h‖₂ (α ≥ 0). (L, H, Tq, Tk)"""
    return weights * gates[:, :, None, None] * np.linalg.norm(written, axis=-1)[:, :, None, :]


def self_terms(terms: np.ndarray, stream_in: np.ndarray) -> np.ndarray:
    """T_i(x_j) = Σ_h α_ij^h W_O^h v_j^h + δ_ij x_i: the residual joins the query's own term. (L, T, T, D)"""
    n = terms.shape[1]
    return terms + np.eye(n)[None, :, :, None] * stream_in[:, :, None, :]


def cross_terms(terms: np.ndarray, stream_in: np.ndarray) -> np.ndarray:
    """[T_i(e_1) … T_i(e_S) | T_i(res) = x_i]: the residual is one more column. (L, T, S+1, D)"""
    return np.concatenate([terms, stream_in[:, :, None, :]], axis=2)


def alti_weights(terms: np.ndarray, b_o: np.ndarray) -> np.ndarray:
    """terms (L, Tq, N, D) → c (L, Tq, N): y_i = Σ_j T_i(j) + b_O, d_ij = ‖y_i − T_i(j)‖₁,
    c_ij = max(0, ‖y_i‖₁ − d_ij) / Σ_k max(0, ‖y_i‖₁ − d_ik): a term close to y_i (small d) counts most."""
    y = terms.sum(axis=2) + b_o[:, None, :]  # (L, Tq, D)
    d = np.abs(y[:, :, None, :] - terms).sum(-1)  # (L, Tq, N)
    s = np.maximum(0.0, np.abs(y).sum(-1, keepdims=True) - d)  # (L, Tq, N)
    # Σ_k s_ik = 0 would need every term at least ‖y_i‖₁ away from y_i; never seen, but no NaN then.
    return s / np.maximum(s.sum(-1, keepdims=True), np.finfo(np.float64).tiny)


def rollout_self(weights: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """Â = ½·mean_h A + ½·I, the mean over the heads that ran (none: the residual is all). (L, T, T)"""
    mean, res = _head_mean(weights, gates)
    return (1 - res)[:, None, None] * mean + res[:, None, None] * np.eye(weights.shape[-1])


def rollout_cross(weights: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """[½·mean_h A_cross | ½]: the residual is one more column. (L, T, S+1)"""
    mean, res = _head_mean(weights, gates)
    n_layers, t, _ = mean.shape
    return np.concatenate(
        [(1 - res)[:, None, None] * mean, np.broadcast_to(res[:, None, None], (n_layers, t, 1))], axis=2
    )


def _head_mean(weights: np.ndarray, gates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean over live heads (L, Tq, Tk), residual share per layer (L,): ½, or 1 where no head ran)."""
    live = gates.sum(1)  # (L,)
    mean = np.einsum("lhqk,lh->lqk", weights, gates) / np.maximum(live, 1)[:, None, None]
    return mean, np.where(live > 0, 0.5, 1.0)


# ---- through the whole model


def encoder_rollout(c_enc: np.ndarray) -> np.ndarray:
    """R_enc = C^L ⋯ C^1: encoder output i's composition over source tokens. (L, S, S) → (S, S)"""
    r = np.eye(c_enc.shape[-1])
    for c in c_enc:
        r = c @ r
    return r


def decoder_rollout(
    c_self: np.ndarray, c_cross: np.ndarray, r_enc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """c_self (L, T, T), c_cross (L, T, S+1), r_enc (S, S) → (R_x (T, S) over the source, R_y (T, T) over
    the target prefix). Per layer, C_x = C_cross[:, :S], c_res = C_cross[:, S], C̃_y = diag(c_res)·C_self:
        R_x^l = C̃_y^l R_x^{l−1} + C_x^l R_enc,   R_y^l = C̃_y^l R_y^{l−1},
    from R_x^0 = 0 and R_y^0 = I (the embeddings are the tokens themselves), which gives layer 1's
    R_x^1 = C_x^1 R_enc and R_y^1 = C̃_y^1."""
    n_src = r_enc.shape[0]
    r_x, r_y = np.zeros((c_self.shape[1], n_src)), np.eye(c_self.shape[1])
    for cs, cc in zip(c_self, c_cross, strict=True):
        c_x, c_res = cc[:, :n_src], cc[:, n_src]  # (T, S), (T,)
        c_y = c_res[:, None] * cs  # diag(c_res)·C_self: what self-attention mixed, kept by cross's residual
        r_x, r_y = c_y @ r_x + c_x @ r_enc, c_y @ r_y
    return r_x, r_y


def rolled_out(c_enc: np.ndarray, c_self: np.ndarray, c_cross: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer matrices → {encoder (S, S), source (T, S), target (T, T), source_share (T,)}."""
    r_enc = encoder_rollout(c_enc)
    r_x, r_y = decoder_rollout(c_self, c_cross, r_enc)
    return {"encoder": r_enc, "source": r_x, "target": r_y, "source_share": r_x.sum(-1)}


def contributions(trace: Any, model_or_weights: Any) -> dict[str, dict[str, np.ndarray]]:
    """A trace with internals + the model (a Translator, a Transformer, or its state dict) →
        value_norm        {kind: (L, H, Tq, Tk)}   ‖α_ij^h W_O^h v_j^h‖₂
        value_norm_layer  {kind: (L, Tq, Tk)}      ‖Σ_h α_ij^h W_O^h v_j^h‖₂
        alti, rollout     {encoder (S, S), source (T, S), target (T, T), source_share (T,)}
    kind ∈ encoder_self, decoder_self, cross; float64 numpy arrays, rows and columns in the trace's order."""
    if getattr(trace, "internals", None) is None:
        raise ValueError("contributions need a trace with internals: trace it with internals=True")
    out: dict[str, dict[str, np.ndarray]] = {"value_norm": {}, "value_norm_layer": {}}
    alti, roll = {}, {}
    for kind in KINDS:
        sub, weights = trace.internals[kind], np.asarray(getattr(trace, kind), dtype=np.float64)
        n_layers, n_heads = weights.shape[:2]
        gates = head_gates(trace, kind)  # (L, H)
        w_o, b_o = out_projections(model_or_weights, kind, n_layers)
        # (L, H, Tk, D)
        written = written_values(np.asarray(sub.v, dtype=np.float64), head_slices(w_o, n_heads))
        terms = attention_terms(weights, written, gates)  # (L, Tq, Tk, D)
        out["value_norm"][kind] = value_norms(weights, written, gates)
        out["value_norm_layer"][kind] = np.linalg.norm(terms, axis=-1)
        stream_in = np.asarray(sub.stream_in, dtype=np.float64)  # (L, Tq, D)
        with_residual = cross_terms if kind == "cross" else self_terms
        alti[kind] = alti_weights(with_residual(terms, stream_in), b_o)
        roll[kind] = (rollout_cross if kind == "cross" else rollout_self)(weights, gates)
    out["alti"] = rolled_out(alti["encoder_self"], alti["decoder_self"], alti["cross"])
    out["rollout"] = rolled_out(roll["encoder_self"], roll["decoder_self"], roll["cross"])
    return out


def contributions_json(c: dict[str, dict[str, np.ndarray]], decimals: int = 6) -> dict[str, Any]:
    """`contributions(...)` → plain JSON: nested lists ([layer][head][query][key] for value_norm), rounded."""
    return {
        method: {
            name: np.round(np.asarray(a, dtype=np.float64), decimals).tolist() for name, a in arrays.items()
        }
        for method, arrays in c.items()
    }


# ---- one forward pass's maps, shaped like a Trace


@dataclass
class Sublayer:
    v: np.ndarray  # (L, H, Tk, d_head)
    stream_in: np.ndarray  # (L, Tq, D)


@dataclass
class Captured:
    """What `contributions` reads from a trace: the maps (L, H, Tq, Tk) per kind, each kind's v and
    stream_in, and the heads switched off as (kind, layer, head) with kind encoder, decoder or cross."""

    encoder_self: np.ndarray
    decoder_self: np.ndarray
    cross: np.ndarray
    internals: dict[str, Sublayer]
    ablated_heads: list[tuple[str, int, int]] = field(default_factory=list)


def captured(maps: Any, row: int = 0) -> Captured:
    """`AttentionMaps` of a pass with capture="internals" → one batch row as a `Captured`."""
    if getattr(maps, "internals", None) is None:
        raise ValueError("contributions need the internals: run the pass with capture='internals'")
    stack = lambda ts: np.stack([_numpy(t[row]) for t in ts])  # per layer (B, …) → (L, …)
    return Captured(
        *(stack(getattr(maps, kind)) for kind in KINDS),
        internals={
            kind: Sublayer(
                stack([s.v for s in getattr(maps.internals, kind)]),
                stack([s.stream_in for s in getattr(maps.internals, kind)]),
            )
            for kind in KINDS
        },
    )
