"""Text in, text out: tokenizers + vocabularies + model + decoding, loaded from a weights folder.

A weights folder (what `python -m training export` writes, and what the Hub
repo holds) contains:
    model.safetensors   parameters (fp16 or fp32; upcast to fp32 at load)
    config.json         {"model": ModelConfig, "tokenizer": {...}, "decoding": {...}, ...}
    vocab_src.json      English vocabulary  {"tokens": [...]}: words, or subword pieces
    vocab_tgt.json      Chinese vocabulary  {"tokens": [...]}
    subwords_src.model  the English SentencePiece model (subword models only; config.json names it)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .config import ModelConfig, read_json
from .data import encode_source, pad
from .decoding import DecodeSettings, decode
from .files import CONFIG_FILE, SRC_VOCAB_FILE, SUBWORDS_FILE, TGT_VOCAB_FILE, WEIGHT_FILES, WEIGHTS_FILE
from .model import Transformer
from .subwords import Subwords
from .text import EOS, UNK, UNK_ID, Vocab, detokenize_zh, tokenize_en


class WeightsError(ValueError):
    """A weights folder that cannot be used; the message names the file and the fix."""


@dataclass
class SourceInput:
    tokens: list[str]  # what the encoder sees (words or subword pieces), </s> included
    ids: list[int]
    truncated_words: int  # words cut because the input exceeded the model's maximum
    unknown: list[bool]  # per token: mapped to <unk>
    words: list[str] = field(default_factory=list)  # the NLTK words kept, </s> included
    word_index: list[int] = field(default_factory=list)  # per token: index into `words`


@dataclass
class Translator:
    model: Transformer
    src_vocab: Vocab
    tgt_vocab: Vocab
    lowercase: bool = True
    decoding: DecodeSettings = field(default_factory=DecodeSettings)
    info: dict[str, Any] = field(default_factory=dict)  # config.json extras (metrics, name)
    subwords: Subwords | None = None  # splits English words into pieces; None: the vocabulary holds words

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_source_tokens(self) -> int:
        # The encoder needs room for </s>.
        return self.model.cfg.max_len - 1

    def prepare(self, text: str) -> SourceInput:
        words = tokenize_en(text, self.lowercase)
        if self.subwords:
            split = self.subwords.split(words)
            tokens, word_index = split.pieces, split.word_index
        else:
            tokens, word_index = words, list(range(len(words)))
        if len(tokens) > self.max_source_tokens:  # cut at a word boundary: no half words
            keep = word_index.index(word_index[self.max_source_tokens])
            tokens, word_index = tokens[:keep], word_index[:keep]
        n_words = word_index[-1] + 1 if word_index else 0
        ids = encode_source(tokens, self.src_vocab)
        unknown = [i == UNK_ID for i in ids[:-1]] + [False]
        return SourceInput(tokens + [EOS], ids, len(words) - n_words, unknown,
                           words[:n_words] + [EOS], word_index + [n_words])

    def settings(self, **overrides: Any) -> DecodeSettings:
        return dataclasses.replace(self.decoding, **{k: v for k, v in overrides.items() if v is not None})

    @torch.no_grad()
    def translate(self, texts: list[str], batch_size: int = 64, **overrides: Any) -> list[str]:
        """Translate many sentences; empty input gives empty output; order is kept."""
        settings = self.settings(**overrides)
        self.model.eval()
        prepared = [self.prepare(t) for t in texts]
        out = [""] * len(texts)
        todo = [i for i, p in enumerate(prepared) if len(p.ids) > 1]  # not just </s>
        todo.sort(key=lambda i: len(prepared[i].ids))  # similar lengths share a batch
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            src = pad([prepared[i].ids for i in chunk]).to(self.device)
            for i, hyp in zip(chunk, decode(self.model, src, settings)):
                out[i] = detokenize_zh(self.tgt_vocab.decode(hyp.ids))
        return out


def _read(path: Path, what: str):
    if not path.is_file():
        raise WeightsError(f"{path}: missing ({what}); re-export the weights folder or download it again")
    try:
        return read_json(path)
    except ValueError as e:
        raise WeightsError(f"{e}; re-export the weights folder or download it again") from None


def load_weights_dir(path: str | Path, device: str | torch.device = "cpu") -> Translator:
    """Load and validate a weights folder. Every failure is a WeightsError naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise WeightsError(f"{path}: weights folder not found")
    config = _read(path / CONFIG_FILE, "model configuration")
    if not isinstance(config, dict):
        raise WeightsError(f"{path / CONFIG_FILE}: expected a JSON object")
    try:
        cfg = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path / CONFIG_FILE}: bad 'model' section ({e})") from None
    try:
        src_vocab = Vocab.load(path / SRC_VOCAB_FILE)
        tgt_vocab = Vocab.load(path / TGT_VOCAB_FILE)
    except FileNotFoundError as e:
        raise WeightsError(f"{e}; the weights folder is incomplete") from None
    except ValueError as e:
        raise WeightsError(str(e)) from None
    for name, vocab, size in (
        (SRC_VOCAB_FILE, src_vocab, cfg.src_vocab_size),
        (TGT_VOCAB_FILE, tgt_vocab, cfg.tgt_vocab_size),
    ):
        if len(vocab) != size:
            raise WeightsError(
                f"{path / name}: {len(vocab)} tokens, but config.json expects {size}; "
                "the vocabulary and the model come from different runs"
            )
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: missing; the weights folder is incomplete")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{weights_path}: unreadable or truncated safetensors file ({e}); download or export it again") from None
    model = Transformer(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{weights_path}: tensors do not match config.json "
            f"(missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''})"
        )
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsError(
                f"{weights_path}: tensor {k} has shape {tuple(state[k].shape)}, "
                f"config.json implies {tuple(v.shape)}; the config and the weights do not belong together"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    if not all(torch.isfinite(v).all() for v in model.state_dict().values()):
        raise WeightsError(f"{weights_path}: contains NaN or infinite values")
    model.to(device).eval()
    tok = config.get("tokenizer", {})
    dec = config.get("decoding", {})
    if not isinstance(tok, dict) or not isinstance(dec, dict):
        raise WeightsError(f"{path / CONFIG_FILE}: 'tokenizer' and 'decoding' must be JSON objects")
    try:
        settings = DecodeSettings(**dec)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path / CONFIG_FILE}: bad 'decoding' section ({e})") from None
    subwords = None
    if tok.get("subwords") is not None:
        subwords_path = path / str(tok["subwords"])
        if tok["subwords"] != SUBWORDS_FILE:
            raise WeightsError(f"{path / CONFIG_FILE}: tokenizer.subwords must be {SUBWORDS_FILE!r}, got {tok['subwords']!r}")
        if not subwords_path.is_file():
            raise WeightsError(f"{subwords_path}: missing (config.json says the model reads subword pieces); "
                               "the weights folder is incomplete")
        try:
            subwords = Subwords.load(subwords_path)
        except ValueError as e:
            raise WeightsError(f"{e}; download or export the weights folder again") from None
        if subwords.vocab().itos != src_vocab.itos:
            raise WeightsError(f"{subwords_path}: its pieces differ from {SRC_VOCAB_FILE}; "
                               "the two come from different runs")
    return Translator(model, src_vocab, tgt_vocab, bool(tok.get("lowercase", True)), settings, config, subwords)


__all__ = ["Translator", "WeightsError", "load_weights_dir", "WEIGHT_FILES", "UNK"]
