"""One request = one Trace: the translation plus every attention map that produced it.

The translation comes from (KV-cached) greedy or beam decoding; the maps come
from one teacher-forced pass over the final output with `return_attention=True`,
the same code path that computes the logits, so what is shown is exact.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from training.translator import SourceInput, Translator

MAX_INPUT_CHARS = 2000  # longer input is cut before tokenizing; the model's own limit is in words
TOP_K = 5


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
    predicted_prob: list[float] = field(default_factory=list)  # T: probability of the token decoding chose
    predicted_rank: list[int] = field(default_factory=list)  # T: its rank among all tokens (1 = the likeliest)

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


def clean_input(text: str | None) -> tuple[str, list[str]]:
    if text is None or not str(text).strip():
        raise InputError("Type an English sentence to translate.")
    text, notices = str(text), []
    if len(text) > MAX_INPUT_CHARS:
        notices.append(f"Input cut to its first {MAX_INPUT_CHARS:,} of {len(text):,} characters.")
        text = text[:MAX_INPUT_CHARS]
    return text, notices


def prepare(translator: Translator, text: str | None) -> tuple[str, SourceInput, list[str]]:
    """Validate and tokenize one input: (text as used, encoder input, notices). Raises InputError."""
    text, notices = clean_input(text)
    source = translator.prepare(text)
    if len(source.ids) == 1:  # only </s>: nothing the tokenizer kept
        raise InputError("Nothing to translate: the input has no words the tokenizer could use.")
    if source.truncated_words:
        kept = len(source.tokens) - 1
        notices.append(f"Input cut to the model's maximum of {kept} words; the last {source.truncated_words} were not translated.")
    unknown = [t for t, u in zip(source.tokens, source.unknown) if u]
    if unknown:
        notices.append("Not in the model's vocabulary (read as <unk>): " + ", ".join(dict.fromkeys(unknown)))
    return text, source, notices


def translate_one(translator: Translator, text: str | None, beam: int | None = None) -> str:
    """Just the translation (no attention capture), with the same input checks as `trace`."""
    _, source, _ = prepare(translator, text)
    return translator.decode([source], beam=beam)[0].text


def trace(translator: Translator, text: str, beam: int | None = None, model_id: str = "", **decode_overrides) -> Trace:
    """Translate `text` and capture every attention map. Raises InputError for unusable input."""
    text, source, notices = prepare(translator, text)
    translation = translator.decode([source], beam=beam, **decode_overrides)[0]
    logp, maps = translator.teacher_forced(translation)  # (T, V), per layer (1, H, q, k)
    top_p, top_i = logp.exp().topk(min(TOP_K, logp.size(-1)), dim=-1)
    # Beam search may choose a token that was not the likeliest at its step: keep its rank and probability.
    chosen = logp.gather(1, torch.tensor(translation.decoder_output, device=logp.device)[:, None])  # (T, 1)
    rank = (logp > chosen).sum(-1) + 1  # (T,)
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
        predicted_prob=chosen[:, 0].exp().tolist(),
        predicted_rank=rank.tolist(),
    )
