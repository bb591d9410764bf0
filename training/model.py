"""The encoder–decoder Transformer of "Attention Is All You Need", from scratch.

Read top to bottom: positional encoding → attention → multi-head attention →
feed-forward → encoder/decoder layers → the Transformer with `encode`, `decode`
and `forward`.

Each layer is written as its equations, in both placements of the LayerNorm:
    pre-norm (the default, stabler to train):  x = x + drop(sublayer(norm(x)))
    post-norm (the 2017 paper):                x = norm(x + drop(sublayer(x)))

Masks are boolean and broadcastable to (B, H, Tq, Tk); True means "may attend".
Attention weights are never stored on a module: an attention sublayer returns
(output, weights), and `encode`/`decode` hand the weights up beside the hidden
states, so concurrent requests cannot see each other's maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig


def sinusoidal_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...). Returns (max_len, d_model)."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (⌈D/2⌉,)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * inv_freq)  # (L, ⌈D/2⌉)
    pe[:, 1::2] = torch.cos(pos * inv_freq[: d_model // 2])  # (L, ⌊D/2⌋): an odd D has one cosine fewer
    return pe


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) token ids → (B, 1, 1, T): True where the key is a real token."""
    return (ids != pad_id)[:, None, None, :]  # the same keys for every head and every query


def causal_mask(t: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, T, T): True on and below the diagonal (a position sees itself and the past)."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]  # the same for every sentence and head


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
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (B, T, D) → (B, T, H, d_head) → (B, H, T, d_head)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Tk, D) → keys and values, each (B, H, Tk, d_head)."""
        return self.split_heads(self.k_proj(memory)), self.split_heads(self.v_proj(memory))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Queries from x (B, Tq, D); keys and values from memory (B, Tk, D), or from x itself when
        memory is None (self-attention). Returns (output (B, Tq, D), weights (B, H, Tq, Tk) or None).

        cache: incremental decoding, where x is only the newest position (see `KVCache`)."""
        q = self.split_heads(self.q_proj(x))  # (B, H, Tq, d_head)
        if cache is not None and not cache.grows:
            k, v = cache.k, cache.v  # cross-attention: the encoder output does not change between steps
        else:
            k, v = self.project_kv(x if memory is None else memory)  # (B, H, Tk, d_head) each
            if cache is not None:
                k, v = cache.append(k, v)  # self-attention: the newest position attends to the whole past
        p = self.dropout if self.training else 0.0
        out, weights = attention(q, k, v, mask, dropout_p=p, need_weights=need_weights)  # (B, H, Tq, d_head)
        b, _, tq, _ = out.shape
        # Concat(head_1, …, head_H) of the paper, then W_O mixes the heads.
        out = out.transpose(1, 2).reshape(b, tq, self.n_heads * self.d_head)  # (B, Tq, H, d_head) → (B, Tq, D)
        return self.out_proj(out), weights


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
        self, x: torch.Tensor, src_mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, S, D) → (x (B, S, D), self-attention weights (B, H, S, S) or None)."""
        norm1, norm2, drop = self.res_attn.norm, self.res_ff.norm, self.dropout
        if self.pre_norm:
            a, w = self.self_attn(norm1(x), mask=src_mask, need_weights=need_weights)
            x = x + drop(a)
            x = x + drop(self.ff(norm2(x)))
        else:
            a, w = self.self_attn(x, mask=src_mask, need_weights=need_weights)
            x = norm1(x + drop(a))
            x = norm2(x + drop(self.ff(x)))
        return x, w


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
        need_weights: bool = False,
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """y: (B, T, D) target positions, memory: (B, S, D) encoder output → (y (B, T, D),
        self-attention weights (B, H, T, T), cross-attention weights (B, H, T, S); None without need_weights).

        With a cache (see `step`) the keys and values come from it, and memory is not read."""
        norm1, norm2, norm3, drop = self.res_self.norm, self.res_cross.norm, self.res_ff.norm, self.dropout
        self_kv, cross_kv = (None, None) if cache is None else (cache.self_attn, cache.cross_attn)
        if self.pre_norm:
            a, w_self = self.self_attn(norm1(y), mask=tgt_mask, need_weights=need_weights, cache=self_kv)
            y = y + drop(a)
            a, w_cross = self.cross_attn(norm2(y), memory, src_mask, need_weights, cache=cross_kv)
            y = y + drop(a)
            y = y + drop(self.ff(norm3(y)))
        else:
            a, w_self = self.self_attn(y, mask=tgt_mask, need_weights=need_weights, cache=self_kv)
            y = norm1(y + drop(a))
            a, w_cross = self.cross_attn(y, memory, src_mask, need_weights, cache=cross_kv)
            y = norm2(y + drop(a))
            y = norm3(y + drop(self.ff(y)))
        return y, w_self, w_cross

    def step(self, y: torch.Tensor, cache: LayerCache, src_mask: torch.Tensor) -> torch.Tensor:
        """One new position, y: (B, 1, D) → (B, 1, D); the cache grows by its keys and values.

        No self-attention mask: the cached past is all there is, so causality holds by construction.
        """
        y, _, _ = self(y, None, None, src_mask, cache=cache)
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
            c.self_attn.k, c.self_attn.v = c.self_attn.k.index_select(0, rows), c.self_attn.v.index_select(0, rows)


@dataclass
class AttentionMaps:
    """Every attention map of one forward pass, one tensor per layer, weights in [0, 1]."""

    encoder_self: list[torch.Tensor]  # per layer (B, H, S, S)
    decoder_self: list[torch.Tensor]  # per layer (B, H, T, T), zero above the diagonal
    cross: list[torch.Tensor]  # per layer (B, H, T, S)


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

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t = offset + ids.size(1)
        if t > self.cfg.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_len={self.cfg.max_len}")
        x = emb(ids) * math.sqrt(self.cfg.d_model) + self.pos_enc[offset:t]  # (B, T, D)
        return self.embed_dropout(x)

    def encode(
        self, src: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """src: (B, S) ids → (memory (B, S, D), src_mask (B, 1, 1, S), per-layer (B, H, S, S) weights).

        need_weights=False takes the fused attention kernel and returns no weights."""
        src_mask = padding_mask(src, self.cfg.pad_id)
        x = self._embed(self.src_embed, src)
        weights = []
        for layer in self.encoder:
            x, w = layer(x, src_mask, need_weights)
            weights.append(w)
        return self.encoder_norm(x), src_mask, weights if need_weights else []

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """tgt: (B, T) decoder input ids (starting with <s>) → (hidden (B, T, D), self weights, cross weights)."""
        t = tgt.size(1)
        tgt_mask = padding_mask(tgt, self.cfg.pad_id) & causal_mask(t, tgt.device)  # (B, 1, T, T)
        y = self._embed(self.tgt_embed, tgt)
        self_w, cross_w = [], []
        for layer in self.decoder:
            y, ws, wc = layer(y, memory, tgt_mask, src_mask, need_weights)
            self_w.append(ws)
            cross_w.append(wc)
        if not need_weights:
            self_w, cross_w = [], []
        return self.decoder_norm(y), self_w, cross_w

    def init_cache(self, memory: torch.Tensor, src_mask: torch.Tensor) -> DecoderCache:
        """Project the encoder output into every layer's cross-attention keys/values, once."""
        return DecoderCache(
            [LayerCache(KVCache(), KVCache(*layer.cross_attn.project_kv(memory), grows=False)) for layer in self.decoder],
            src_mask,
        )

    def decode_step(self, tokens: torch.Tensor, cache: DecoderCache) -> torch.Tensor:
        """Incremental decoding: tokens (N, 1) at position cache.length → hidden (N, 1, D).
        Gives the same result as `decode` on the whole prefix, without recomputing it."""
        y = self._embed(self.tgt_embed, tokens, offset=cache.length)
        for layer, layer_cache in zip(self.decoder, cache.layers):
            y = layer.step(y, layer_cache, cache.src_mask)
        cache.length += 1
        return self.decoder_norm(y)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) → (B, T, V) scores over the target vocabulary (softmax gives probabilities)."""
        return F.linear(hidden, self.tgt_embed.weight, self.output_bias)

    def forward(
        self, src: torch.Tensor, tgt: torch.Tensor, return_attention: bool = False
    ) -> tuple[torch.Tensor, AttentionMaps | None]:
        """Teacher-forced pass. src (B, S), tgt (B, T) → (logits (B, T, V), AttentionMaps or None).

        `return_attention=True` runs the explicit softmax path, which materializes
        the weights, and returns them; otherwise the fused kernel runs.
        """
        memory, src_mask, enc_w = self.encode(src, return_attention)
        hidden, dec_w, cross_w = self.decode(tgt, memory, src_mask, return_attention)
        maps = AttentionMaps(enc_w, dec_w, cross_w) if return_attention else None
        return self.logits(hidden), maps

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
