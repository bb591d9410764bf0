"""Tokenizers and vocabularies for English → Chinese.

English: NLTK's Treebank-style word tokenizer (`NLTKWordTokenizer`, which is what
`nltk.word_tokenize` uses after sentence splitting, and needs no downloaded data),
lower-cased by default because Tatoeba is small and case mostly adds sparsity.
Chinese: converted to simplified with OpenCC `t2s` (the corpus mixes scripts), then
one token per character, whitespace dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nltk.tokenize import NLTKWordTokenizer

from .config import read_json, write_json

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

# Abbreviations whose final period belongs to the word (NLTK's punkt would keep them).
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "vs", "etc", "no", "mt"}
# Control characters and zero-width/bidi marks carry no meaning for the model.
_INVISIBLE = re.compile("[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


@lru_cache(maxsize=1)
def _word_tokenizer() -> NLTKWordTokenizer:
    return NLTKWordTokenizer()


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def clean(text: str) -> str:
    """Unicode-normalize (NFC), replace control/zero-width characters by spaces, squeeze spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub(" ", text)
    return " ".join(text.split())


def tokenize_en(text: str, lowercase: bool = True) -> list[str]:
    text = clean(text)
    if lowercase:
        text = text.lower()
    tokens = _word_tokenizer().tokenize(text)
    # NLTKWordTokenizer only splits the period at the very end of the string; inside
    # multi-sentence text "her." stays one token. Split it like word_tokenize would.
    out: list[str] = []
    for i, tok in enumerate(tokens):
        word = tok[:-1]
        if (
            i < len(tokens) - 1
            and tok.endswith(".")
            and word.isalpha()
            and word.lower() not in _ABBREVIATIONS
        ):
            out.extend([word, "."])
        else:
            out.append(tok)
    return out


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def tokenize_zh(text: str) -> list[str]:
    """Simplified Chinese characters, one token each; whitespace is dropped."""
    return [ch for ch in to_simplified(clean(text)) if not ch.isspace()]


def detokenize_zh(tokens: Iterable[str]) -> str:
    """Inverse of `tokenize_zh` up to whitespace: specials are dropped, characters joined."""
    return "".join(t for t in tokens if t not in SPECIALS)


@dataclass
class Vocab:
    """Token ↔ id map with the four specials at fixed ids 0..3."""

    itos: list[str]

    def __post_init__(self) -> None:
        if tuple(self.itos[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {self.itos[:4]}")
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate tokens")

    @classmethod
    def build(cls, sequences: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None) -> Vocab:
        counts = Counter(t for seq in sequences for t in seq)
        for s in SPECIALS:
            counts.pop(s, None)
        # Sort by frequency, then text, so the same corpus always gives the same ids.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] if 0 <= i < len(self.itos) else UNK for i in ids]

    def save(self, path: str | Path) -> None:
        write_json(path, {"tokens": self.itos})

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError(f"{path}: expected a JSON object with a 'tokens' list")
        return cls([str(t) for t in data["tokens"]])
