"""The encoder–decoder Transformer of "Attention Is All You Need", from scratch.

Read top to bottom: positional encoding → attention → multi-head attention →
feed-forward → encoder/decoder layers → the Transformer with `encode`, `decode`
and `forward`.

Each layer is written as its equations, in both placements of the LayerNorm:
    pre-norm (the default, stabler to train):  x = x + drop(sublayer(norm(x)))
    post-norm (the 2017 paper):                x = norm(x + drop(sublayer(x)))

Masks are boolean and broadcastable to (B, H, Tq, Tk); True means "may attend".
Nothing a request asks for is stored on a module, so concurrent requests cannot
see each other's numbers:
  - `capture` ("none" | "weights" | "internals") asks a pass for what it computed:
    an attention sublayer returns (output, `AttentionInternals` or None), and
    `encode`/`decode` hand them up beside the hidden states;
  - `head_mask` (a `HeadMask`) switches heads off for one call, and is passed down
    the same way, into `decode_step` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .kinds import shape


def sinusoidal_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...). Returns (max_len, d_model)."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    # (⌈D/2⌉,)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * inv_freq)  # (L, ⌈D/2⌉)
    pe[:, 1::2] = torch.cos(pos * inv_freq[: d_model // 2])  # (L, ⌊D/2⌋): an odd D has one cosine fewer
    return pe


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) token ids → (B, 1, 1, T): True where the key is a real token."""
    return (ids != pad_id)[:, None, None, :]  # the same keys for every head and every query


def causal_mask(t: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, T, T): True on and below the diagonal (a position sees itself and the past)."""
    # the same for every sentence and head
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]


Capture = Literal["none", "weights", "internals"]
CAPTURES = ("none", "weights", "internals")


def check_capture(capture: str) -> None:
    if capture not in CAPTURES:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES)}; got {capture!r}")


@dataclass
class HeadMask:
    """Which heads run, for one call: per kind of attention sublayer, 1 keeps a head and 0 switches it
    off, i.e. its slice of Concat(head_1, …, head_H) is set to zero before W_O mixes the heads.

    Each field is None (every head on), (L, H) (one mask for the whole batch), or (B, L, H) (one per
    batch row: many ablations side by side in one pass). An argument, never module state.
    """

    encoder: torch.Tensor | None = None  # encoder self-attention
    decoder: torch.Tensor | None = None  # decoder (masked) self-attention
    cross: torch.Tensor | None = None  # decoder → encoder attention

    @classmethod
    def ones(cls, cfg: ModelConfig, batch: int | None = None) -> HeadMask:
        """Every head on: (L, H) per kind, or (batch, L, H). Switch heads off by writing 0s."""
        lead = () if batch is None else (batch,)
        return cls(*(torch.ones(*lead, n, h) for n, h in shape(cfg).values()))

    def gates(self, kind: str, layer: int) -> torch.Tensor | None:
        """The gates of one layer: (H,) or (B, H), or None when every head of the kind is on."""
        m = getattr(self, kind)
        return None if m is None else m[..., layer, :]

    def to(self, device: torch.device) -> HeadMask:
        move = lambda m: None if m is None else m.to(device)  # (no copy when already there)
        return HeadMask(move(self.encoder), move(self.decoder), move(self.cross))

    def rows(self, index: torch.Tensor) -> HeadMask:
        """Pick batch rows of per-row masks (beam search repeats each sentence); shared masks stay."""
        pick = lambda m: m.index_select(0, index.to(m.device)) if m is not None and m.dim() == 3 else m
        return HeadMask(pick(self.encoder), pick(self.decoder), pick(self.cross))

    def check(self, cfg: ModelConfig, batch: int | None = None) -> None:
        """Raise a one-line ValueError unless every field fits the model (and the batch, if given)."""
        for kind, (n, n_heads) in shape(cfg).items():
            m = getattr(self, kind)
            if m is None:
                continue
            if (
                not isinstance(m, torch.Tensor)
                or m.dim() not in (2, 3)
                or tuple(m.shape[-2:]) != (n, n_heads)
            ):
                got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(
                    f"head_mask.{kind} must be a tensor of shape ({n}, {n_heads}) or "
                    f"(batch, {n}, {n_heads}) (layers, heads); got {got}"
                )
            if m.dim() == 3 and batch is not None and m.size(0) != batch:
                raise ValueError(
                    f"head_mask.{kind} has {m.size(0)} rows but the batch has {batch}; "
                    f"give one row per sentence or a shared ({n}, {n_heads}) mask"
                )
            if not ((m == 0) | (m == 1)).all():
                raise ValueError(f"head_mask.{kind} must hold only 0 (head off) and 1 (head on)")


def checked_key_mask(keys: torch.Tensor, batch: int, n_src: int) -> torch.Tensor:
    """A (B, S) bool key mask (True = may attend) → (B, 1, 1, S), the shape of `padding_mask`."""
    if not isinstance(keys, torch.Tensor) or keys.dtype != torch.bool or tuple(keys.shape) != (batch, n_src):
        got = f"{keys.dtype} {tuple(keys.shape)}" if isinstance(keys, torch.Tensor) else type(keys).__name__
        raise ValueError(f"cross_key_mask must be a bool tensor of shape ({batch}, {n_src}); got {got}")
    return keys[:, None, None, :]


def layer_gates(head_mask: HeadMask | None, kind: str, layer: int) -> torch.Tensor | None:
    """One layer's gates, (H,) or (B, H); None when no mask is given (every head runs)."""
    return None if head_mask is None else head_mask.gates(kind, layer)


@dataclass
class AttentionInternals:
    """Inside one attention sublayer for one pass: each step of the chain below is computed from the
    one before, so the explorer can show (and a test can redo) every step.

        normed      = LN(stream_in) pre-norm, stream_in post-norm (what the queries are projected from)
        q, k, v     = split_heads(normed W_Q), split_heads(kv_input W_K), split_heads(kv_input W_V)
                      (kv_input: normed for self-attention, the encoder output for cross-attention)
        weights     = softmax(q kᵀ / √d_head + mask)
        head_output = weights · v
        attn_out    = Concat(head_1, …, head_H) W_O + b_O   (a masked-off head's slice zeroed first)
        stream_out  = stream_in + attn_out (pre-norm), LN(stream_in + attn_out) (post-norm)

    In training mode dropout sits on the weights and on attn_out; the record is meant for eval mode.
    """

    q: torch.Tensor  # (B, H, Tq, d_head)
    k: torch.Tensor  # (B, H, Tk, d_head)
    v: torch.Tensor  # (B, H, Tk, d_head)
    weights: torch.Tensor  # (B, H, Tq, Tk), before dropout
    head_output: torch.Tensor  # (B, H, Tq, d_head), before any head mask
    attn_out: torch.Tensor  # (B, Tq, D): W_O's output
    stream_in: torch.Tensor | None = None  # (B, Tq, D): the residual stream entering the sublayer
    normed: torch.Tensor | None = None  # (B, Tq, D)
    stream_out: torch.Tensor | None = None  # (B, Tq, D): the residual stream after it

    def around(
        self, stream_in: torch.Tensor, normed: torch.Tensor, stream_out: torch.Tensor
    ) -> AttentionInternals:
        """Add the residual-stream side, which only the layer sees."""
        self.stream_in, self.normed, self.stream_out = stream_in, normed, stream_out
        return self


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention: softmax(q kᵀ / √d) v.

    q: (B, H, Tq, d), k and v: (B, H, Tk, d), mask: bool, broadcastable to (B, H, Tq, Tk).
    Returns (output (B, H, Tq, d), weights (B, H, Tq, Tk) or None).

    With need_weights=False the fused kernel (F.scaled_dot_product_attention)
    is used and the (Tq, Tk) matrix is never materialized; tests check both
    paths agree.
    """
    if not need_weights:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out, None
    # √d keeps the scores' variance near 1 whatever the head width, so the softmax does not saturate.
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # masked keys get exactly 0
    # The maps show the weights before dropout: what the model computes, not one random draw of it.
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights


class MultiHeadAttention(nn.Module):
    """H attention heads side by side, each on its own d_head-wide projection of the inputs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # (B, T, D) → (B, T, H, d_head) → (B, H, T, d_head)
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Tk, D) → keys and values, each (B, H, Tk, d_head)."""
        return self.split_heads(self.k_proj(memory)), self.split_heads(self.v_proj(memory))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        capture: Capture = "none",
        cache: KVCache | None = None,
        gates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, AttentionInternals | None]:
        """Queries from x (B, Tq, D); keys and values from memory (B, Tk, D), or from x itself when
        memory is None (self-attention). Returns (output (B, Tq, D), internals or None).

        capture "none" takes the fused kernel and returns None; otherwise the weights are materialized
        and the internals returned (the layer adds the residual-stream side).
        cache: incremental decoding, where x is only the newest position (see `KVCache`).
        gates: (H,) or (B, H), 0 switches a head off (see `HeadMask`)."""
        q = self.split_heads(self.q_proj(x))  # (B, H, Tq, d_head)
        if cache is not None and not cache.grows:
            k, v = cache.k, cache.v  # cross-attention: the encoder output does not change between steps
        else:
            k, v = self.project_kv(x if memory is None else memory)  # (B, H, Tk, d_head) each
            if cache is not None:
                k, v = cache.append(k, v)  # self-attention: the newest position attends to the whole past
        p = self.dropout if self.training else 0.0
        # (B, H, Tq, d_head)
        heads, weights = attention(q, k, v, mask, dropout_p=p, need_weights=capture != "none")
        out = heads
        if gates is not None:
            # where(), not a product: an off head gives exactly 0 and an on head exactly itself.
            # (H,) | (B, H) → (1 | B, H, 1, 1)
            out = torch.where(gates.reshape(-1, self.n_heads, 1, 1) != 0, heads, 0.0)
        b, _, tq, _ = out.shape
        # Concat(head_1, …, head_H) of the paper, then W_O mixes the heads.
        # (B, Tq, H, d_head) → (B, Tq, D)
        out = out.transpose(1, 2).reshape(b, tq, self.n_heads * self.d_head)
        out = self.out_proj(out)  # (B, Tq, D)
        if capture == "none":
            return out, None
        return out, AttentionInternals(q, k, v, weights, heads, out)


class FeedForward(nn.Module):
    """FFN(x) = W2 relu(W1 x + b1) + b2, applied to every position alone."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class NormSlot(nn.Module):
    """Holds one sublayer's LayerNorm as `.norm`, only for its parameter names.

    Saved weights (weights/, the Hub repos) load by name, and name the norms after
    the residual-connection modules they once lived in: `encoder.0.res_attn.norm.weight`.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)


class EncoderLayer(nn.Module):
    """Self-attention over the source, then a feed-forward network, each with a residual connection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        # Registration order fixes the state dict's order and which random numbers initialize what.
        self.self_attn = MultiHeadAttention(cfg)
        self.ff = FeedForward(cfg)
        self.res_attn = NormSlot(cfg.d_model)  # norm1
        self.res_ff = NormSlot(cfg.d_model)  # norm2
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        src_mask: torch.Tensor,
        capture: Capture = "none",
        gates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, AttentionInternals | None]:
        """x: (B, S, D) → (x (B, S, D), the self-attention's internals, or None when capture is "none").

        gates: this layer's head mask, (H,) or (B, H)."""
        norm1, norm2, drop = self.res_attn.norm, self.res_ff.norm, self.dropout
        if self.pre_norm:
            h = norm1(x)
            a, seen = self.self_attn(h, mask=src_mask, capture=capture, gates=gates)
            x1 = x + drop(a)
            x2 = x1 + drop(self.ff(norm2(x1)))
        else:
            h = x
            a, seen = self.self_attn(h, mask=src_mask, capture=capture, gates=gates)
            x1 = norm1(x + drop(a))
            x2 = norm2(x1 + drop(self.ff(x1)))
        return x2, None if seen is None else seen.around(x, h, x1)


class DecoderLayer(nn.Module):
    """Masked self-attention over the target so far, cross-attention to the source, then a
    feed-forward network, each with a residual connection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.self_attn = MultiHeadAttention(cfg)
        self.cross_attn = MultiHeadAttention(cfg)
        self.ff = FeedForward(cfg)
        self.res_self = NormSlot(cfg.d_model)  # norm1
        self.res_cross = NormSlot(cfg.d_model)  # norm2
        self.res_ff = NormSlot(cfg.d_model)  # norm3
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor | None,
        tgt_mask: torch.Tensor | None,
        src_mask: torch.Tensor,
        capture: Capture = "none",
        cache: LayerCache | None = None,
        self_gates: torch.Tensor | None = None,
        cross_gates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, AttentionInternals | None, AttentionInternals | None]:
        """y: (B, T, D) target positions, memory: (B, S, D) encoder output → (y (B, T, D),
        self-attention internals, cross-attention internals; None when capture is "none").

        With a cache (see `step`) the keys and values come from it, and memory is not read.
        self_gates, cross_gates: this layer's head masks, (H,) or (B, H)."""
        norm1, norm2, norm3, drop = self.res_self.norm, self.res_cross.norm, self.res_ff.norm, self.dropout
        self_kv, cross_kv = (None, None) if cache is None else (cache.self_attn, cache.cross_attn)
        if self.pre_norm:
            h1 = norm1(y)
            a, seen_self = self.self_attn(h1, mask=tgt_mask, capture=capture, cache=self_kv, gates=self_gates)
            y1 = y + drop(a)
            h2 = norm2(y1)
            a, seen_cross = self.cross_attn(h2, memory, src_mask, capture, cache=cross_kv, gates=cross_gates)
            y2 = y1 + drop(a)
            y3 = y2 + drop(self.ff(norm3(y2)))
        else:
            h1 = y
            a, seen_self = self.self_attn(h1, mask=tgt_mask, capture=capture, cache=self_kv, gates=self_gates)
            y1 = norm1(y + drop(a))
            h2 = y1
            a, seen_cross = self.cross_attn(h2, memory, src_mask, capture, cache=cross_kv, gates=cross_gates)
            y2 = norm2(y1 + drop(a))
            y3 = norm3(y2 + drop(self.ff(y2)))
        if capture != "none":
            seen_self, seen_cross = seen_self.around(y, h1, y1), seen_cross.around(y1, h2, y2)
        return y3, seen_self, seen_cross

    def step(
        self,
        y: torch.Tensor,
        cache: LayerCache,
        src_mask: torch.Tensor,
        self_gates: torch.Tensor | None = None,
        cross_gates: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One new position, y: (B, 1, D) → (B, 1, D); the cache grows by its keys and values.

        No self-attention mask: the cached past is all there is, so causality holds by construction.
        """
        y, _, _ = self(y, None, None, src_mask, cache=cache, self_gates=self_gates, cross_gates=cross_gates)
        return y


@dataclass
class KVCache:
    """One attention sublayer's keys and values, each (N, H, T, d_head), kept between decoding steps."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    # Self-attention: each step's position joins the past. Cross-attention (False): the keys and
    # values of the encoder output, projected once per source by `Transformer.init_cache`.
    grows: bool = True

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the newest position's keys and values (N, H, 1, d_head); returns all of them (N, H, t, d_head)."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


@dataclass
class LayerCache:
    self_attn: KVCache  # (N, H, t, d_head), one more position per step
    cross_attn: KVCache  # (N, H, S, d_head), fixed


@dataclass
class DecoderCache:
    """Keys/values of every decoder layer for incremental decoding (the KV cache)."""

    layers: list[LayerCache]
    src_mask: torch.Tensor  # (N, 1, 1, S)
    length: int = 0  # positions decoded so far

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep/duplicate hypotheses (beam search). Rows only move within a sentence's
        beams, whose cross-attention keys are identical, so only self-attention moves."""
        for c in self.layers:
            c.self_attn.k, c.self_attn.v = (
                c.self_attn.k.index_select(0, rows),
                c.self_attn.v.index_select(0, rows),
            )


@dataclass
class AttentionMaps:
    """Every attention map of one forward pass, one tensor per layer, weights in [0, 1]."""

    encoder_self: list[torch.Tensor]  # per layer (B, H, S, S)
    decoder_self: list[torch.Tensor]  # per layer (B, H, T, T), zero above the diagonal
    cross: list[torch.Tensor]  # per layer (B, H, T, S)
    internals: Internals | None = None  # with capture="internals": q, k, v, head outputs, residual streams


@dataclass
class Internals:
    """Inside every attention sublayer of one forward pass, one record per layer (see `AttentionInternals`)."""

    encoder_self: list[AttentionInternals]  # q (B, H, S, d_head), k and v (B, H, S, d_head)
    decoder_self: list[AttentionInternals]  # q (B, H, T, d_head), k and v (B, H, T, d_head)
    cross: list[AttentionInternals]  # q (B, H, T, d_head), k and v (B, H, S, d_head)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        # The target embedding doubles as the output projection (weight tying): see `logits`.
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.register_buffer("pos_enc", sinusoidal_encoding(cfg.max_len, cfg.d_model), persistent=False)
        self.embed_dropout = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        # Pre-norm stacks end un-normalized, so each gets a final LayerNorm.
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.output_bias = nn.Parameter(torch.zeros(cfg.tgt_vocab_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name:
                nn.init.xavier_uniform_(p)
        # Embeddings are scaled by √d at the input, so start them at ~1/√d.
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=self.cfg.d_model**-0.5)
            with torch.no_grad():
                emb.weight[self.cfg.pad_id].zero_()

    def _checked(self, head_mask: HeadMask | None, batch: int) -> HeadMask | None:
        """Validate a call's head mask (one-line ValueError) and bring it to the model's device."""
        if head_mask is None:
            return None
        head_mask.check(self.cfg, batch)
        return head_mask.to(self.pos_enc.device)

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t = offset + ids.size(1)
        if t > self.cfg.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_len={self.cfg.max_len}")
        x = emb(ids) * math.sqrt(self.cfg.d_model) + self.pos_enc[offset:t]  # (B, T, D)
        return self.embed_dropout(x)

    def encode(
        self, src: torch.Tensor, capture: Capture = "none", head_mask: HeadMask | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[AttentionInternals]]:
        """src: (B, S) ids → (memory (B, S, D), src_mask (B, 1, 1, S), per-layer self-attention internals).

        capture "none" takes the fused attention kernel and returns no internals ([])."""
        check_capture(capture)
        head_mask = self._checked(head_mask, src.size(0))
        src_mask = padding_mask(src, self.cfg.pad_id)
        x = self._embed(self.src_embed, src)
        seen = []
        for i, layer in enumerate(self.encoder):
            x, s = layer(x, src_mask, capture, layer_gates(head_mask, "encoder", i))
            seen.append(s)
        return self.encoder_norm(x), src_mask, seen if capture != "none" else []

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        capture: Capture = "none",
        head_mask: HeadMask | None = None,
        cross_key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[AttentionInternals], list[AttentionInternals]]:
        """tgt: (B, T) decoder input ids (starting with <s>) → (hidden (B, T, D), per-layer self-attention
        internals, per-layer cross-attention internals); the lists are empty when capture is "none".

        cross_key_mask: (B, S) bool, False hides that source position from every cross-attention (all
        layers, every query row), on top of padding; the encoder output itself is unchanged."""
        check_capture(capture)
        head_mask = self._checked(head_mask, tgt.size(0))
        if cross_key_mask is not None:
            src_mask = src_mask & checked_key_mask(cross_key_mask, tgt.size(0), memory.size(1))
        t = tgt.size(1)
        tgt_mask = padding_mask(tgt, self.cfg.pad_id) & causal_mask(t, tgt.device)  # (B, 1, T, T)
        y = self._embed(self.tgt_embed, tgt)
        seen_self, seen_cross = [], []
        for i, layer in enumerate(self.decoder):
            y, s, c = layer(
                y,
                memory,
                tgt_mask,
                src_mask,
                capture,
                self_gates=layer_gates(head_mask, "decoder", i),
                cross_gates=layer_gates(head_mask, "cross", i),
            )
            seen_self.append(s)
            seen_cross.append(c)
        if capture == "none":
            seen_self, seen_cross = [], []
        return self.decoder_norm(y), seen_self, seen_cross

    def init_cache(self, memory: torch.Tensor, src_mask: torch.Tensor) -> DecoderCache:
        """Project the encoder output into every layer's cross-attention keys/values, once.
        (A head mask does not enter here: it acts after attention, on the heads' outputs.)"""
        return DecoderCache(
            [
                LayerCache(KVCache(), KVCache(*layer.cross_attn.project_kv(memory), grows=False))
                for layer in self.decoder
            ],
            src_mask,
        )

    def decode_step(
        self, tokens: torch.Tensor, cache: DecoderCache, head_mask: HeadMask | None = None
    ) -> torch.Tensor:
        """Incremental decoding: tokens (N, 1) at position cache.length → hidden (N, 1, D).
        Gives the same result as `decode` on the whole prefix, without recomputing it.

        head_mask must be the same at every step of one decoding (the cache holds the past it shaped)."""
        head_mask = self._checked(head_mask, tokens.size(0))
        y = self._embed(self.tgt_embed, tokens, offset=cache.length)
        for i, (layer, layer_cache) in enumerate(zip(self.decoder, cache.layers)):
            y = layer.step(
                y,
                layer_cache,
                cache.src_mask,
                layer_gates(head_mask, "decoder", i),
                layer_gates(head_mask, "cross", i),
            )
        cache.length += 1
        return self.decoder_norm(y)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) → (B, T, V) scores over the target vocabulary (softmax gives probabilities)."""
        return F.linear(hidden, self.tgt_embed.weight, self.output_bias)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        return_attention: bool = False,
        capture: Capture | None = None,
        head_mask: HeadMask | None = None,
        cross_key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, AttentionMaps | None]:
        """Teacher-forced pass. src (B, S), tgt (B, T) → (logits (B, T, V), AttentionMaps or None).

        capture: "none" (the fused kernel; no maps), "weights" (the explicit softmax path, which
        materializes the weights, and returns them), or "internals" (the weights, plus q, k, v, each
        head's output and the residual streams around every attention sublayer, as `maps.internals`).
        `return_attention=True` is short for capture="weights".
        head_mask: heads to switch off for this call (see `HeadMask`); None keeps every head.
        cross_key_mask: (B, S) bool, False hides a source position from the decoder's cross-attention
        only (see `decode`); None hides nothing.
        """
        capture = capture or ("weights" if return_attention else "none")
        memory, src_mask, enc = self.encode(src, capture, head_mask)
        hidden, dec, cross = self.decode(tgt, memory, src_mask, capture, head_mask, cross_key_mask)
        if capture == "none":
            return self.logits(hidden), None
        weights = lambda seen: [s.weights for s in seen]
        internals = Internals(enc, dec, cross) if capture == "internals" else None
        return self.logits(hidden), AttentionMaps(weights(enc), weights(dec), weights(cross), internals)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
