"""English subword pieces: NLTK words split further by a SentencePiece BPE model.

The word tokenizer (and lower-casing) stays in `text.py`; this module only splits
each word into pieces learned on the training split. A piece that starts a word
carries SentencePiece's `▁` mark, so `sesquipedalian` reads `▁s es qu iped al ian`
and a frequent word stays whole (`▁happy`). Every letter, digit and ASCII
punctuation mark is in the model whatever the corpus holds, so such words are
never `<unk>`; only characters never seen in training (Chinese, emoji, …) are.

The piece ids are the source vocabulary's ids: the model is trained with the
four specials at 0..3, exactly as `Vocab` expects.
"""

from __future__ import annotations

import io
import string
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from .errors import ConfigError
from .text import BOS, EOS, PAD, UNK, UNK_ID, Vocab

WORD_START = "\u2581"  # ▁


@dataclass
class Pieces:
    pieces: list[str]  # surface of each piece (an unknown character keeps its own text)
    ids: list[int]
    word_index: list[int]  # piece → index of the NLTK word it came from


class Subwords:
    """A trained SentencePiece model over NLTK words (one word at a time, never across words)."""

    def __init__(self, proto: bytes, source: str = "subword model"):
        self.proto = proto
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as e:
            raise ValueError(f"{source}: not a SentencePiece model ({e})") from None
        specials = [self.processor.id_to_piece(i) for i in range(min(4, self.processor.get_piece_size()))]
        if specials != [PAD, UNK, BOS, EOS]:
            raise ValueError(f"{source}: ids 0..3 must be {PAD} {UNK} {BOS} {EOS}, got {specials}")

    @classmethod
    def train(cls, sentences: list[list[str]], vocab_size: int, lowercase: bool = True) -> Subwords:
        """Learn a BPE model of at most `vocab_size` pieces from word-tokenized sentences."""
        alphabet = string.ascii_lowercase + (string.ascii_uppercase if not lowercase else "")
        required = alphabet + string.digits + string.punctuation
        # One piece per character (and the 4 specials and the word mark) comes before any merge.
        smallest = len(set(required) | {ch for words in sentences for w in words for ch in w}) + 5
        if vocab_size < smallest:
            raise ConfigError(
                f"--subwords {vocab_size} is too small: the training split's English needs one piece "
                f"per character and the specials; use at least {smallest} (a few thousand is typical)"
            )
        out = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(" ".join(words) for words in sentences if words),
            model_writer=out,
            model_type="bpe",
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # a small corpus may not support the size asked for
            character_coverage=1.0,
            required_chars=required,
            normalization_rule_name="identity",  # text.clean() already normalized; keep words as NLTK made them
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            pad_piece=PAD,
            unk_piece=UNK,
            bos_piece=BOS,
            eos_piece=EOS,
            num_threads=1,  # deterministic, and training runs on one thread anyway
            minloglevel=2,
        )
        return cls(out.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Subwords:
        path = Path(path)
        try:
            proto = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: file not found") from None
        return cls(proto, str(path))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.proto)
        tmp.replace(path)

    def vocab(self) -> Vocab:
        return Vocab([self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())])

    def split(self, words: list[str]) -> Pieces:
        """Each word on its own, so a piece never spans two words."""
        pieces, ids, word_index = [], [], []
        if not words:
            return Pieces(pieces, ids, word_index)
        for w, (word_pieces, word_ids) in enumerate(
            zip(self.processor.encode(words, out_type=str), self.processor.encode(words, out_type=int))
        ):
            pieces += word_pieces
            ids += word_ids
            word_index += [w] * len(word_ids)
        return Pieces(pieces, ids, word_index)

    def pieces(self, words: list[str]) -> list[str]:
        return self.split(words).pieces


__all__ = ["Subwords", "Pieces", "WORD_START", "UNK_ID"]
