"""The encoder–decoder Transformer of "Attention Is All You Need", from scratch.

Read top to bottom: positional encoding → attention → multi-head attention →
feed-forward → encoder/decoder layers → the Transformer with `encode`, `decode`
and `forward`.

Masks are boolean and broadcastable to (B, H, Tq, Tk); True means "may attend".
Attention weights are never stored on a module: when asked for
(`return_attention=True`) they are returned by the same calls that compute the
logits, so concurrent requests cannot see each other's maps.
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
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq[: d_model // 2])
    return pe


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) token ids → (B, 1, 1, T): True where the key is a real token."""
    return (ids != pad_id)[:, None, None, :]


def causal_mask(t: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, T, T): True on and below the diagonal (a position sees itself and the past)."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]


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
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # masked keys get exactly 0
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights


class MultiHeadAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, D) → (B, H, T, d_head)
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Tk, D) → keys and values, each (B, H, Tk, d_head); cached during decoding."""
        return self._split(self.k_proj(memory)), self._split(self.v_proj(memory))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        mask: torch.Tensor | None,
        need_weights: bool = False,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, Tq, D) queries; memory: (B, Tk, D) keys/values (x itself for self-attention),
        or kv: keys and values already projected (the decoding cache)."""
        q = self._split(self.q_proj(x))
        k, v = kv if kv is not None else self.project_kv(memory)
        p = self.dropout if self.training else 0.0
        out, weights = attention(q, k, v, mask, dropout_p=p, need_weights=need_weights)
        b, _, tq, _ = out.shape
        out = out.transpose(1, 2).reshape(b, tq, self.n_heads * self.d_head)  # concat heads
        return self.out_proj(out), weights


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class Residual(nn.Module):
    """x + dropout(sublayer(norm(x))) when pre-norm; norm(x + dropout(sublayer(x))) when post-norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.pre_norm

    def forward(self, x: torch.Tensor, sublayer) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            out, weights = sublayer(self.norm(x))
            return x + self.dropout(out), weights
        out, weights = sublayer(x)
        return self.norm(x + self.dropout(out)), weights


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg)
        self.ff = FeedForward(cfg)
        self.res_attn = Residual(cfg)
        self.res_ff = Residual(cfg)

    def forward(self, x, src_mask, need_weights=False):
        x, w = self.res_attn(x, lambda h: self.self_attn(h, h, src_mask, need_weights))
        x, _ = self.res_ff(x, lambda h: (self.ff(h), None))
        return x, w


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg)
        self.cross_attn = MultiHeadAttention(cfg)
        self.ff = FeedForward(cfg)
        self.res_self = Residual(cfg)
        self.res_cross = Residual(cfg)
        self.res_ff = Residual(cfg)

    def forward(self, y, memory, tgt_mask, src_mask, need_weights=False):
        y, w_self = self.res_self(y, lambda h: self.self_attn(h, h, tgt_mask, need_weights))
        y, w_cross = self.res_cross(y, lambda h: self.cross_attn(h, memory, src_mask, need_weights))
        y, _ = self.res_ff(y, lambda h: (self.ff(h), None))
        return y, w_self, w_cross

    def step(self, y: torch.Tensor, cache: "LayerCache", src_mask: torch.Tensor) -> torch.Tensor:
        """One new position. y: (B, 1, D); the cache holds the past keys/values and grows by one."""

        def self_attn(h):
            k, v = self.self_attn.project_kv(h)  # (B, H, 1, d_head)
            cache.self_k = k if cache.self_k is None else torch.cat([cache.self_k, k], dim=2)
            cache.self_v = v if cache.self_v is None else torch.cat([cache.self_v, v], dim=2)
            # No mask: the past is all there is, so causality holds by construction.
            return self.self_attn(h, None, None, kv=(cache.self_k, cache.self_v))

        y, _ = self.res_self(y, self_attn)
        y, _ = self.res_cross(y, lambda h: self.cross_attn(h, None, src_mask, kv=(cache.cross_k, cache.cross_v)))
        y, _ = self.res_ff(y, lambda h: (self.ff(h), None))
        return y


@dataclass
class LayerCache:
    cross_k: torch.Tensor  # (N, H, S, d_head), computed once per source
    cross_v: torch.Tensor
    self_k: torch.Tensor | None = None  # (N, H, t, d_head), one more position per step
    self_v: torch.Tensor | None = None


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
            c.self_k, c.self_v = c.self_k.index_select(0, rows), c.self_v.index_select(0, rows)


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
        """src: (B, S) ids → (memory (B, S, D), src_mask (B, 1, 1, S), per-layer (B, H, S, S) weights)."""
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
        return DecoderCache([LayerCache(*layer.cross_attn.project_kv(memory)) for layer in self.decoder], src_mask)

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
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        return_attention: bool = False,
        fast: bool = True,
    ) -> tuple[torch.Tensor, AttentionMaps | None]:
        """Teacher-forced pass. src (B, S), tgt (B, T) → (logits (B, T, V), AttentionMaps or None).

        `return_attention=True` runs the explicit softmax path that materializes
        the weights and returns them; `fast=False` forces that path without
        returning them (tests use it to show capture changes nothing).
        """
        need = return_attention or not fast
        memory, src_mask, enc_w = self.encode(src, need)
        hidden, dec_w, cross_w = self.decode(tgt, memory, src_mask, need)
        maps = AttentionMaps(enc_w, dec_w, cross_w) if return_attention else None
        return self.logits(hidden), maps

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
