"""What each head does, in numbers: statistics of its attention rows.

Every statistic is a mean over query rows, giving one number per (layer, head). For a corpus
the per-sentence figures are averaged over sentences (`average`), so a long sentence
counts as much as a short one. The arithmetic is pure numpy; `corpus_head_stats` runs a
translator over sentences to feed it (export ships its result with the weights).
"""

from __future__ import annotations

import unicodedata

import numpy as np

from .kinds import KINDS
from .text import BOS, EOS

STATS = {  # name → what it measures (for table headers and hover text)
    "entropy_bits": "entropy of a row, in bits (0 = one key; log₂ n = uniform)",
    "max_weight": "the largest weight in a row",
    "distance": "expected |query − key| position distance (self-attention)",
    "same": "weight on the query's own position (self-attention)",
    "previous": "weight on the position just before the query (self-attention)",
    "special": "weight on <s> / </s>",
    "punctuation": "weight on punctuation keys",
}
SELF_ONLY = ("distance", "same", "previous")


def is_punctuation(token: str) -> bool:
    """A token made only of punctuation characters, in any script (。 and ？ count); SentencePiece's ▁ is ignored."""
    text = token.lstrip("\u2581")
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


def entropy_bits(weights: np.ndarray) -> np.ndarray:
    """(…, Tk) rows → (…) entropy in bits; a zero weight contributes 0 (the limit of w·log w)."""
    w = np.asarray(weights, dtype=np.float64)
    logs = np.log2(np.where(w > 0, w, 1.0))
    return -(w * logs).sum(-1)


def head_stats(weights: np.ndarray, key_tokens: list[str], self_attention: bool) -> dict[str, np.ndarray]:
    """weights (L, H, Tq, Tk), rows summing to 1 → {stat: (L, H)}.

    For self-attention Tq == Tk and query i sits at key position i; the positional
    statistics are NaN for cross-attention, where positions of the two sides do not align.
    """
    w = np.asarray(weights, dtype=np.float64)
    n_layers, n_heads, tq, tk = w.shape
    if len(key_tokens) != tk:
        raise ValueError(f"{len(key_tokens)} key tokens for {tk} keys")
    special = np.array([t in (BOS, EOS) for t in key_tokens])
    punct = np.array([is_punctuation(t) for t in key_tokens])
    out = {
        "entropy_bits": entropy_bits(w).mean(-1),
        "max_weight": w.max(-1).mean(-1),
        "special": w[..., special].sum(-1).mean(-1),
        "punctuation": w[..., punct].sum(-1).mean(-1),
    }
    if self_attention:
        if tq != tk:
            raise ValueError(f"self-attention needs as many queries as keys, got {tq} and {tk}")
        pos = np.arange(tq)
        out["distance"] = (w * np.abs(pos[:, None] - pos[None, :])).sum(-1).mean(-1)
        out["same"] = w[..., pos, pos].mean(-1)
        out["previous"] = w[..., pos[1:], pos[:-1]].mean(-1) if tq > 1 else np.zeros((n_layers, n_heads))
    else:
        for name in SELF_ONLY:
            out[name] = np.full((n_layers, n_heads), np.nan)
    return {name: out[name] for name in STATS}


def average(per_sentence: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean of per-sentence statistics, each sentence weighted equally."""
    if not per_sentence:
        raise ValueError("no sentences to average")
    return {name: np.mean([s[name] for s in per_sentence], axis=0) for name in STATS}


def maps_head_stats(
    maps, source_tokens: list[str], target_tokens: list[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of one sentence's maps, per kind: `maps` has encoder_self, decoder_self and cross
    as (L, H, Tq, Tk) arrays (a Trace) or as per-layer (1, H, Tq, Tk) tensors (AttentionMaps)."""
    out = {}
    for kind, k in KINDS.items():
        weights = getattr(maps, k.maps)
        if isinstance(weights, list):  # per layer (1, H, q, k) tensors → (L, H, q, k)
            weights = np.stack([w[0].float().cpu().numpy() for w in weights])
        keys = target_tokens if kind == "decoder" else source_tokens
        out[kind] = head_stats(weights, keys, k.is_self)
    return out


def corpus_head_stats(translator, texts: list[str], progress=None) -> dict:
    """Per-head statistics averaged over sentences, as the explorer reads them (`head_stats.json`).

    Each sentence is translated with the model's default decoding and its maps come from the
    teacher-forced pass over that translation, as in the explorer. `progress` wraps the loop (tqdm).
    """
    per_kind: dict[str, list] = {kind: [] for kind in KINDS}
    sources = [s for s in (translator.prepare(t) for t in texts) if len(s.ids) > 1]
    translations = translator.decode(sources)
    for translation in progress(translations) if progress else translations:
        _, maps = translator.teacher_forced(translation)
        tgt = translator.tgt_vocab.decode(translation.decoder_input)
        for kind, stats in maps_head_stats(maps, translation.source.tokens, tgt).items():
            per_kind[kind].append(stats)
    if not translations:
        raise ValueError("no sentence to compute head statistics on")
    return {
        "sentences": len(translations),
        "descriptions": STATS,
        "stats": {
            kind: {name: _jsonable(v) for name, v in average(stats).items()}
            for kind, stats in per_kind.items()
        },
    }


def _jsonable(values: np.ndarray) -> list:
    """(L, H) → nested lists, rounded; NaN (a statistic that does not apply) becomes null."""
    return [[None if np.isnan(x) else round(float(x), 6) for x in row] for row in values]
