"""Content versus position in the first attention layer: the scores split exactly into five terms.

Layer 1 reads x = content + position, where content = embedding·√d and position = PE[pos].
A pre-norm layer normalizes first; LayerNorm is linear once its mean and standard deviation
are fixed (taken from the sum x), so

    LN(x) = γ⊙(c − mean c)/σ + γ⊙(p − mean p)/σ + β = h_c + h_p + h_b,

and each projection splits the same way (q = h W_qᵀ + b_q, with the bias joining β's part).
The scaled scores q·k/√d_head are then the sum of

    content·content + content·position + position·content + position·position + bias,

where "bias" gathers every product that involves β or b_q / b_k. A post-norm layer
reads x itself, so h_c = c, h_p = p and only b_q / b_k make the bias term.
Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

TERMS = {
    "content·content": "what the query token is · what the key token is",
    "content·position": "what the query token is · where the key is",
    "position·content": "where the query is · what the key token is",
    "position·position": "where the query is · where the key is",
    "bias": "every product with a LayerNorm shift or a projection bias",
}


def split_scores(
    content_q: np.ndarray,
    position_q: np.ndarray,
    content_k: np.ndarray,
    position_k: np.ndarray,
    *,
    w_q: np.ndarray,
    b_q: np.ndarray,
    w_k: np.ndarray,
    b_k: np.ndarray,
    n_heads: int,
    norm: tuple[np.ndarray, np.ndarray, float] | None,
) -> dict[str, np.ndarray]:
    """The five terms of layer 1's scaled scores, each (H, Tq, Tk); their sum is q·kᵀ/√d_head.

    content_* and position_* are (T, D) for the query and key sides (the same tokens in
    self-attention); w_* (D, D) and b_* (D,) are the projections as nn.Linear stores them;
    `norm` is the pre-norm LayerNorm's (γ, β, eps), or None for a post-norm layer.
    """

    def parts(content: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c, p = content.astype(np.float64), position.astype(np.float64)
        if norm is None:
            return c, p, np.zeros(c.shape[-1])
        gamma, beta, eps = (np.asarray(norm[0], np.float64), np.asarray(norm[1], np.float64), norm[2])
        x = c + p
        sigma = np.sqrt(x.var(-1, keepdims=True) + eps)  # (T, 1): LayerNorm's, from the sum
        return (
            gamma * (c - c.mean(-1, keepdims=True)) / sigma,
            gamma * (p - p.mean(-1, keepdims=True)) / sigma,
            beta,
        )

    def project(h_c, h_p, h_b, w, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        t, d = h_c.shape
        split = lambda y: y.reshape(y.shape[0], n_heads, d // n_heads).transpose(1, 0, 2)  # (H, T, d_head)
        bias = np.broadcast_to(h_b @ w.T + b, (t, d))  # constant over positions
        return split(h_c @ w.T), split(h_p @ w.T), split(bias)

    qc, qp, qb = project(*parts(content_q, position_q), w_q, b_q)
    kc, kp, kb = project(*parts(content_k, position_k), w_k, b_k)
    scale = 1.0 / np.sqrt(qc.shape[-1])
    dot = lambda a, b: a @ b.transpose(0, 2, 1) * scale  # (H, Tq, Tk)
    return {
        "content·content": dot(qc, kc),
        "content·position": dot(qc, kp),
        "position·content": dot(qp, kc),
        "position·position": dot(qp, kp),
        "bias": dot(qb, kc) + dot(qb, kp) + dot(qb, kb) + dot(qc, kb) + dot(qp, kb),
    }


def first_layer_terms(model, ids: list[int], side: str) -> dict[str, np.ndarray]:
    """`split_scores` for the first self-attention layer of a `training.model.Transformer`.

    side "encoder" reads source ids, "decoder" the decoder input (<s> y1 …); the decoder's
    causal mask is applied after these scores, as in the model.
    """
    if side not in ("encoder", "decoder"):
        raise ValueError(f"side must be 'encoder' or 'decoder', got {side!r}")
    cfg, state = model.cfg, {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    prefix, embed, norm_name = (
        ("encoder.0", "src_embed", "res_attn")
        if side == "encoder"
        else ("decoder.0", "tgt_embed", "res_self")
    )
    content = state[f"{embed}.weight"][ids] * np.sqrt(cfg.d_model)  # (T, D)
    position = model.pos_enc[: len(ids)].detach().cpu().double().numpy()  # (T, D)
    norm = (
        (state[f"{prefix}.{norm_name}.norm.weight"], state[f"{prefix}.{norm_name}.norm.bias"], 1e-5)
        if cfg.pre_norm
        else None
    )
    attn = f"{prefix}.self_attn"
    return split_scores(
        content,
        position,
        content,
        position,
        w_q=state[f"{attn}.q_proj.weight"],
        b_q=state[f"{attn}.q_proj.bias"],
        w_k=state[f"{attn}.k_proj.weight"],
        b_k=state[f"{attn}.k_proj.bias"],
        n_heads=cfg.n_heads,
        norm=norm,
    )
