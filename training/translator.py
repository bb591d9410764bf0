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
from .decoding import DecodeSettings, Hypothesis, decode, length_penalty, next_token_logprobs
from .files import CONFIG_FILE, SRC_VOCAB_FILE, SUBWORDS_FILE, TGT_VOCAB_FILE, WEIGHT_FILES, WEIGHTS_FILE
from .model import AttentionMaps, HeadMask, Transformer
from .subwords import Subwords
from .text import BOS_ID, EOS, EOS_ID, UNK, UNK_ID, Vocab, detokenize_zh, tokenize_en


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

    def first_tokens(self, keep: int) -> SourceInput:
        """Its first `keep` tokens only, then </s>; the words wholly cut are added to `truncated_words`."""
        n = self.word_index[keep - 1] + 1 if keep else 0  # words kept, the last perhaps in part
        return SourceInput(
            self.tokens[:keep] + self.tokens[-1:],
            self.ids[:keep] + self.ids[-1:],
            self.truncated_words + len(self.words) - 1 - n,  # </s> is not a word
            self.unknown[:keep] + [False],
            self.words[:n] + self.words[-1:],
            self.word_index[:keep] + [n],
        )

    def within(self, max_tokens: int) -> SourceInput:
        """At most `max_tokens` tokens before </s>: cut at the last word boundary that fits, or inside
        the first word when it alone is longer."""
        if len(self.ids) - 1 <= max_tokens:
            return self
        starts = [i for i in range(1, max_tokens + 1) if self.word_index[i] != self.word_index[i - 1]]
        return self.first_tokens(starts[-1] if starts else max_tokens)


@dataclass
class Translation:
    """One decoded sentence: its source, the generated ids and tokens, and how it was decoded."""

    source: SourceInput
    hypothesis: Hypothesis  # generated ids (no <s>/</s>) and their summed log-probability
    tokens: list[str]  # the generated target tokens
    text: str
    settings: DecodeSettings

    @property
    def decoder_input(self) -> list[int]:
        """What the decoder reads to produce this output: <s> y1 … yn."""
        return [BOS_ID] + self.hypothesis.ids

    @property
    def decoder_output(self) -> list[int]:
        """What each decoder position predicts: y1 … yn </s>."""
        return self.hypothesis.ids + [EOS_ID]


@dataclass
class Translator:
    model: Transformer
    src_vocab: Vocab
    tgt_vocab: Vocab
    lowercase: bool = True
    decoding: DecodeSettings = field(default_factory=DecodeSettings)
    info: dict[str, Any] = field(default_factory=dict)  # config.json extras (metrics, name)
    subwords: Subwords | None = None  # splits English words into pieces; None: the vocabulary holds words
    folder: Path | None = None  # the weights folder it was loaded from (its optional files: the Model tab)

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
        ids = encode_source(tokens, self.src_vocab)
        unknown = [i == UNK_ID for i in ids[:-1]] + [False]
        source = SourceInput(tokens + [EOS], ids, 0, unknown, words + [EOS], word_index + [len(words)])
        return source.within(self.max_source_tokens)

    def settings(self, **overrides: Any) -> DecodeSettings:
        return dataclasses.replace(self.decoding, **{k: v for k, v in overrides.items() if v is not None})

    @torch.inference_mode()
    def decode(
        self,
        sources: list[SourceInput],
        batch_size: int = 64,
        head_mask: HeadMask | None = None,
        **overrides: Any,
    ) -> list[Translation]:
        """The one way sentences are decoded: prepared sources in, translations out, order kept.

        Sentences of similar length share a batch; a source with no words (only </s>)
        gives an empty translation without running the model.
        head_mask: heads switched off for every sentence, an (L, H) mask per kind (see `HeadMask`).
        """
        if head_mask is not None:
            head_mask.check(self.model.cfg)
            if any(
                m is not None and m.dim() != 2
                for m in (head_mask.encoder, head_mask.decoder, head_mask.cross)
            ):
                raise ValueError(
                    "Translator.decode takes one (layers, heads) mask per kind, shared by every sentence"
                )
        settings = self.settings(**overrides)
        self.model.eval()
        hyps = [Hypothesis([], 0.0, 0.0) for _ in sources]
        todo = sorted((i for i, s in enumerate(sources) if len(s.ids) > 1), key=lambda i: len(sources[i].ids))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            src = pad([sources[i].ids for i in chunk]).to(self.device)
            for i, hyp in zip(chunk, decode(self.model, src, settings, head_mask=head_mask)):
                hyps[i] = hyp
        out = []
        for source, hyp in zip(sources, hyps):
            tokens = self.tgt_vocab.decode(hyp.ids)
            out.append(Translation(source, hyp, tokens, detokenize_zh(tokens), settings))
        return out

    def forced(
        self, source: SourceInput, ids: list[int], head_mask: HeadMask | None = None, **overrides: Any
    ) -> Translation:
        """A given target (ids without <s>/</s>) as if decoded: each token scored by a teacher-forced
        pass, so a teacher can see what the model thinks of a reference or of a wrong translation."""
        settings = self.settings(**overrides)
        self.model.eval()
        draft = Translation(source, Hypothesis(list(ids), 0.0, 0.0), [], "", settings)
        lps = self.output_logprobs(draft, head_mask).double().tolist()  # (T,): y1 … yn </s>
        score = sum(lps)
        hyp = Hypothesis(list(ids), score, score / length_penalty(len(ids) + 1, settings.length_penalty), lps)
        tokens = self.tgt_vocab.decode(ids)
        return Translation(source, hyp, tokens, detokenize_zh(tokens), settings)

    def translate(self, texts: list[str], batch_size: int = 64, **overrides: Any) -> list[str]:
        """Translate many sentences; empty input gives empty output; order is kept."""
        return [t.text for t in self.decode([self.prepare(t) for t in texts], batch_size, **overrides)]

    @torch.inference_mode()
    def forward_pass(
        self, translation: Translation, capture: str = "weights", head_mask: HeadMask | None = None
    ) -> tuple[torch.Tensor, AttentionMaps | None]:
        """One teacher-forced pass over a translation: (logits (T, V), maps or None), see `Transformer.forward`."""
        src = torch.tensor([translation.source.ids], device=self.device)  # (1, S)
        tgt = torch.tensor([translation.decoder_input], device=self.device)  # (1, T)
        logits, maps = self.model(src, tgt, capture=capture, head_mask=head_mask)
        return logits[0], maps

    @torch.inference_mode()
    def teacher_forced(
        self, translation: Translation, head_mask: HeadMask | None = None, internals: bool = False
    ) -> tuple[torch.Tensor, AttentionMaps]:
        """Re-run a translation in one pass with attention capture.

        Returns the next-token log-probabilities of every decoder position (T, V), as
        decoding scores them, and every attention map: the numbers behind the output.
        head_mask: heads switched off (see `HeadMask`); internals=True adds q, k, v, the heads'
        outputs and the residual streams around each attention sublayer as `maps.internals`.
        """
        logits, maps = self.forward_pass(translation, "internals" if internals else "weights", head_mask)
        return next_token_logprobs(logits), maps

    @torch.inference_mode()
    def output_logprobs(self, translation: Translation, head_mask: HeadMask | None = None) -> torch.Tensor:
        """Teacher-forced log-probability of each output token (y1 … yn </s>) of a translation.

        head_mask None or (L, H) per kind: returns (T,). (N, L, H) per kind: the sentence is run N times
        in one batch, row i under mask row i (many ablations in one pass); returns (N, T).
        """
        masks = [head_mask.encoder, head_mask.decoder, head_mask.cross] if head_mask is not None else []
        rows = next((m.size(0) for m in masks if m is not None and m.dim() == 3), None)  # N, or None: one row
        src = torch.tensor([translation.source.ids], device=self.device).expand(rows or 1, -1)  # (N, S)
        tgt = torch.tensor([translation.decoder_input], device=self.device).expand(rows or 1, -1)  # (N, T)
        out = torch.tensor(translation.decoder_output, device=self.device).expand(rows or 1, -1)  # (N, T)
        logits, _ = self.model(src, tgt, head_mask=head_mask)
        chosen = next_token_logprobs(logits).gather(-1, out[..., None])[..., 0]  # (N, T)
        return chosen if rows else chosen[0]


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
        raise WeightsError(
            f"{weights_path}: unreadable or truncated safetensors file ({e}); download or export it again"
        ) from None
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
            raise WeightsError(
                f"{path / CONFIG_FILE}: tokenizer.subwords must be {SUBWORDS_FILE!r}, got {tok['subwords']!r}"
            )
        if not subwords_path.is_file():
            raise WeightsError(
                f"{subwords_path}: missing (config.json says the model reads subword pieces); "
                "the weights folder is incomplete"
            )
        try:
            subwords = Subwords.load(subwords_path)
        except ValueError as e:
            raise WeightsError(f"{e}; download or export the weights folder again") from None
        if subwords.vocab().itos != src_vocab.itos:
            raise WeightsError(
                f"{subwords_path}: its pieces differ from {SRC_VOCAB_FILE}; the two come from different runs"
            )
    return Translator(
        model, src_vocab, tgt_vocab, bool(tok.get("lowercase", True)), settings, config, subwords, path
    )


__all__ = ["Translation", "Translator", "WeightsError", "load_weights_dir", "WEIGHT_FILES", "UNK"]
