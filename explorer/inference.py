"""One request = one Trace: the translation plus every attention map that produced it.

The translation comes from (KV-cached) greedy or beam decoding; the maps come
from one teacher-forced pass over the final output with `return_attention=True`,
the same code path that computes the logits, so what is shown is exact.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from training.translator import SourceInput, Translator

MAX_INPUT_CHARS = 2000  # longer input is cut before tokenizing; the model's own limit is in words
TOP_K = 5
# A lone surrogate (e.g. "\ud800" from JSON) cannot be encoded as UTF-8: JSON files and responses would fail.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(ValueError):
    """Input the app should answer with a friendly message, not a traceback."""


@dataclass
class Trace:
    text: str  # the input as used (after any character cut)
    source_tokens: list[str]  # S: exactly the encoder's input positions (</s> included): words or subword pieces
    source_unknown: list[bool]  # S: True where the token is not in the vocabulary (<unk>)
    target_tokens: list[str]  # T: exactly the decoder's input positions (<s> y1 … yn)
    predicted_tokens: list[str]  # T: what each decoder row predicts (y1 … yn </s>)
    translation: str
    encoder_self: np.ndarray  # (L, H, S, S)
    decoder_self: np.ndarray  # (L, H, T, T), zero above the diagonal
    cross: np.ndarray  # (L, H, T, S)
    top_next: list[list[tuple[str, float]]]  # T rows of the 5 likeliest next tokens
    score: float  # sum of log-probabilities of the output (</s> included)
    model_id: str
    decoding: dict[str, Any]
    notices: list[str] = field(default_factory=list)  # what was cut or ignored, for the user
    source_words: list[str] = field(default_factory=list)  # W: the NLTK words the pieces come from (</s> included)
    source_word_index: list[int] = field(default_factory=list)  # S: each source token's word (index into source_words)

    @property
    def n_encoder_layers(self) -> int:
        return self.encoder_self.shape[0]

    @property
    def n_decoder_layers(self) -> int:
        return self.decoder_self.shape[0]

    @property
    def n_heads(self) -> int:
        return self.encoder_self.shape[1]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: attention as nested lists [layer][head][query][key]."""
        out = {k: v for k, v in asdict(self).items() if k not in ("encoder_self", "decoder_self", "cross", "top_next")}
        out["top_next"] = [[{"token": t, "prob": round(p, 6)} for t, p in row] for row in self.top_next]
        out["attention"] = {
            name: np.round(getattr(self, name).astype(np.float64), 6).tolist()
            for name in ("encoder_self", "decoder_self", "cross")
        }
        return out


def clean_input(text: str | None, max_chars: int = MAX_INPUT_CHARS) -> tuple[str, list[str]]:
    if text is None or not str(text).strip():
        raise InputError("Type an English sentence to translate.")
    text, notices = LONE_SURROGATE.sub("\ufffd", str(text)), []
    if len(text) > max_chars:
        notices.append(f"Input cut to its first {max_chars:,} of {len(text):,} characters.")
        text = text[:max_chars]
    return text, notices


def first_words(source: SourceInput, n: int) -> SourceInput:
    """The encoder input of the first `n` words only (all their pieces, then </s>)."""
    keep = next((i for i, w in enumerate(source.word_index) if w >= n), len(source.word_index))
    n_words = len(source.words) - 1  # </s> is not a word
    return SourceInput(source.tokens[:keep] + source.tokens[-1:], source.ids[:keep] + source.ids[-1:],
                       source.truncated_words + n_words - n, source.unknown[:keep] + [False],
                       source.words[:n] + source.words[-1:], source.word_index[:keep] + [n])


def prepare(translator: Translator, text: str | None, max_words: int | None = None,
            max_chars: int = MAX_INPUT_CHARS) -> tuple[str, SourceInput, list[str]]:
    """Validate and tokenize one input: (text as used, encoder input, notices). Raises InputError.

    `max_words` (NLTK words, punctuation included; not subword pieces) cuts below the model's own maximum.
    """
    text, notices = clean_input(text, max_chars)
    source = translator.prepare(text)
    if len(source.ids) == 1:  # only </s>: nothing the tokenizer kept
        raise InputError("Nothing to translate: the input has no words the tokenizer could use.")
    if max_words is not None and len(source.words) - 1 > max_words:
        source = first_words(source, max_words)
        notices.append(f"Input cut to the explorer's maximum of {max_words} words; "
                       f"the last {source.truncated_words} were not translated.")
    elif source.truncated_words:
        kept = len(source.words) - 1  # words, not the subword pieces the model's maximum counts
        notices.append(f"Input cut to the model's maximum of {kept} words; the last {source.truncated_words} were not translated.")
    unknown = [t for t, u in zip(source.tokens, source.unknown) if u]
    if unknown:
        notices.append("Not in the model's vocabulary (read as <unk>): " + ", ".join(dict.fromkeys(unknown)))
    return text, source, notices


def translate_one(translator: Translator, text: str | None, beam: int | None = None) -> str:
    """Just the translation (no attention capture), with the same input checks as `trace`."""
    _, source, _ = prepare(translator, text)
    return translator.decode([source], beam=beam)[0].text


def trace(translator: Translator, text: str, beam: int | None = None, model_id: str = "", *,
          max_words: int | None = None, max_chars: int = MAX_INPUT_CHARS, max_target_tokens: int | None = None,
          **decode_overrides) -> Trace:
    """Translate `text` and capture every attention map. Raises InputError for unusable input.

    max_words / max_chars cut the input (with a notice); max_target_tokens stops decoding early
    (</s> included, with a notice). The app uses them to bound the size of a trace and its figures.
    """
    text, source, notices = prepare(translator, text, max_words, max_chars)
    if max_target_tokens is not None:
        settings = translator.settings(beam=beam, **decode_overrides)
        own = min(int(settings.max_len_a * len(source.ids) + settings.max_len_b), translator.model.cfg.max_len - 1)
        if max_target_tokens < own:  # a fixed length for this one sentence: a = 0, b = the cap
            decode_overrides = {**decode_overrides, "max_len_a": 0.0, "max_len_b": max_target_tokens}
        else:
            max_target_tokens = None
    translation = translator.decode([source], beam=beam, **decode_overrides)[0]
    if max_target_tokens is not None and len(translation.hypothesis.ids) + 1 >= max_target_tokens:
        notices.append(f"The translation reached the explorer's maximum of {max_target_tokens} tokens "
                       "and may be cut short.")
    logp, maps = translator.teacher_forced(translation)  # (T, V), per layer (1, H, q, k)
    top_p, top_i = logp.exp().topk(min(TOP_K, logp.size(-1)), dim=-1)
    vocab = translator.tgt_vocab
    stack = lambda ws: torch.stack([w[0] for w in ws]).float().cpu().numpy()  # noqa: E731  (L, H, q, k)
    return Trace(
        text=text,
        source_tokens=source.tokens,
        source_unknown=source.unknown,
        target_tokens=vocab.decode(translation.decoder_input),
        predicted_tokens=vocab.decode(translation.decoder_output),
        translation=translation.text,
        encoder_self=stack(maps.encoder_self),
        decoder_self=stack(maps.decoder_self),
        cross=stack(maps.cross),
        top_next=[[(vocab.itos[i], float(p)) for p, i in zip(ps, ids)] for ps, ids in zip(top_p.tolist(), top_i.tolist())],
        score=translation.hypothesis.score,
        model_id=model_id,
        decoding=asdict(translation.settings),
        notices=notices,
        source_words=source.words,
        source_word_index=source.word_index,
    )
