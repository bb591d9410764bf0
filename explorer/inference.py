"""One request = one Trace: the translation plus every attention map that produced it.

The translation comes from (KV-cached) greedy or beam decoding; the maps come
from one teacher-forced pass over the final output with `return_attention=True`,
the same code path that computes the logits, so what is shown is exact. Every
trace carries `checks` that say how exact (see `TraceChecks`).

Inside a head: `trace(..., internals=True)` adds each head's q, k, v and output
from that same pass; `head_mask` switches heads off (explorer/ablation.py measures
what that costs). Heads are named (kind, layer, head), kind one of "encoder",
"decoder", "cross", layers and heads from 0. What the visitor typed is made ready
in explorer/source_text.py.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from training.decoding import BeamStep, beam_search, max_target_lengths, next_token_logprobs
from training.kinds import KINDS, shape
from training.model import AttentionMaps, HeadMask, Internals
from training.text import PAD_ID, detokenize_zh
from training.translator import SourceInput, Translation, Translator

from .source_text import MAX_INPUT_CHARS, InputError, forced_ids, prepare

TOP_K = 5


@dataclass
class SublayerArrays:
    """The inside of one kind of attention sublayer, every layer stacked (see `AttentionInternals`)."""

    q: np.ndarray  # (L, H, Tq, d_head)
    k: np.ndarray  # (L, H, Tk, d_head)
    v: np.ndarray  # (L, H, Tk, d_head)
    head_output: np.ndarray  # (L, H, Tq, d_head): weights · v, before any ablation
    stream_in: np.ndarray  # (L, Tq, D): the residual stream entering the sublayer
    normed: np.ndarray  # (L, Tq, D): what the queries are projected from (LN(stream_in) pre-norm)
    attn_out: np.ndarray  # (L, Tq, D): Concat(heads, ablated ones zeroed) · W_O + b_O
    stream_out: np.ndarray  # (L, Tq, D): the residual stream after the sublayer

    # field → its JSON name: with the weights, enough to recompute every map, head output and
    # contribution (residual_in is the stream the sublayer adds to)
    JSON_KEYS = {"q": "q", "k": "k", "v": "v", "head_output": "head_output", "stream_in": "residual_in"}


@dataclass
class TraceChecks:
    """How far what is shown can be trusted, measured on the trace itself (all 0.0 would be exact)."""

    row_sum_error: float  # max |Σ_keys weight − 1| over every row of every map
    masked_weight: float  # largest weight on a future or padded key: exactly 0.0 when masking works
    capture_logit_diff: float  # max |logit| difference between the capturing pass and the fused kernel's
    cached_vs_teacher_forced: float  # max |Δ log p| of each chosen token: KV-cached search vs the maps' pass


@dataclass
class Trace:
    text: str  # the input as used (after any character cut)
    # S: exactly the encoder's input positions (</s> included): words or subword pieces
    source_tokens: list[str]
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
    # W: the NLTK words the pieces come from (</s> included)
    source_words: list[str] = field(default_factory=list)
    # S: each source token's word (index into source_words)
    source_word_index: list[int] = field(default_factory=list)
    predicted_prob: list[float] = field(default_factory=list)  # T: probability of the token decoding chose
    predicted_rank: list[int] = field(default_factory=list)  # T: its rank among all tokens (1 = likeliest)
    checks: TraceChecks | None = None
    # with internals=True: per kind, under its maps name (encoder_self, decoder_self, cross)
    internals: dict[str, SublayerArrays] | None = None
    # (kind, layer, head) switched off
    ablated_heads: list[tuple[str, int, int]] = field(default_factory=list)
    # The final </s> was forced by the length limit (the explorer's cap or the model's own), not
    # chosen by the model: the last row's "prediction" is the limit's, not the model's.
    end_forced: bool = False
    # The translation was given (`force`), not decoded: every token is teacher-forced, and
    # predicted_prob / predicted_rank say what the model thinks of it.
    forced: bool = False
    # With hypotheses=True: the finished hypotheses beam search weighed, best first (the first is the
    # model's translation, which with `force` may differ from `translation`): {"translation", "tokens",
    # "logprob" (sum, </s> included), "score" (normalized)}.
    hypotheses: list[dict] | None = None
    # With hypotheses=True and a beam over 1: the search step by step (see `beam_history_json`).
    beam_history: list[dict] | None = None
    # The Chinese given to explain, exactly as passed (`force`); None for the model's own. Tracing
    # (text, beam, force=this) again gives this trace's pass. Not part of `to_json`.
    force: str | None = None
    # What the model used (explorer/contributions.py), once a view has asked for it: kept with the trace
    # so that toggles re-render it without running the model. Not part of `to_json`.
    contributions: dict | None = None

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
        """Plain JSON: attention as nested lists [layer][head][query][key]; with internals, `internals`
        = {kind: {"q", "k", "v", "head_output": [layer][head][position][d_head], "residual_in":
        [layer][query][d_model]}}; `ablated_heads` only when heads were switched off."""
        converted = (
            "encoder_self",
            "decoder_self",
            "cross",
            "top_next",
            "checks",
            "internals",
            "ablated_heads",
            "end_forced",
            "contributions",
            "forced",
            "hypotheses",
            "beam_history",
            "force",
        )
        # Copies (not asdict: it would deep-copy the big arrays too), so editing the JSON leaves the trace alone.
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in converted}
        out["top_next"] = [[{"token": t, "prob": round(p, 6)} for t, p in row] for row in self.top_next]
        out["attention"] = {
            name: _rounded(getattr(self, name)) for name in ("encoder_self", "decoder_self", "cross")
        }
        out["checks"] = None if self.checks is None else asdict(self.checks)
        if self.internals is not None:
            out["internals"] = {
                name: {key: _rounded(getattr(sub, field)) for field, key in SublayerArrays.JSON_KEYS.items()}
                for name, sub in self.internals.items()
            }
        if self.ablated_heads:
            out["ablated_heads"] = [list(h) for h in self.ablated_heads]
        if self.end_forced:
            out["end_forced"] = True
        if self.forced:
            out["forced"] = True
        if self.hypotheses is not None:
            out["hypotheses"] = copy.deepcopy(self.hypotheses)
        if self.beam_history is not None:
            out["beam_history"] = copy.deepcopy(self.beam_history)
        return out


def _rounded(a: np.ndarray) -> list:
    return np.round(a.astype(np.float64), 6).tolist()


def translate_one(translator: Translator, text: str | None, beam: int | None = None) -> str:
    """Just the translation (no attention capture), with the same input checks as `trace`."""
    _, source, _ = prepare(translator, text)
    return translator.decode([source], beam=beam)[0].text


def mask_heads(translator: Translator, heads: Sequence[Sequence]) -> HeadMask:
    """(kind, layer, head) triples → a HeadMask with those heads off and every other on.
    Raises InputError naming the valid range."""
    cfg = translator.model.cfg
    mask = HeadMask.ones(cfg)
    for kind, layer, head in _checked_heads(translator, heads):
        getattr(mask, kind)[layer, head] = 0
    return mask


def _checked_heads(translator: Translator, heads: Sequence[Sequence]) -> list[tuple[str, int, int]]:
    cfg = translator.model.cfg
    layers = {kind: n for kind, (n, _) in shape(cfg).items()}
    if isinstance(heads, str) or not isinstance(heads, Sequence):
        raise InputError(
            f"heads must be a list of (kind, layer, head), kind one of {', '.join(KINDS)}; got {heads!r}"
        )
    out = []
    for item in heads:
        if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 3:
            raise InputError(
                f"a head is (kind, layer, head) with kind one of {', '.join(KINDS)}; got {item!r}"
            )
        kind, layer, head = item
        if kind not in layers:
            raise InputError(f"head kind must be one of {', '.join(KINDS)}; got {kind!r}")
        n = layers[kind]
        for what, value, size in (("layer", layer, n), ("head", head, cfg.n_heads)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
                raise InputError(
                    f"{kind} {what} must be an integer from 0 to {size - 1} "
                    f"({n} layers of {cfg.n_heads} heads); got {value!r}"
                )
        out.append((kind, int(layer), int(head)))
    return out


def _as_head_mask(translator: Translator, heads: HeadMask | Sequence[Sequence] | None) -> HeadMask | None:
    if heads is None or isinstance(heads, HeadMask):
        try:
            if heads is not None:
                heads.check(translator.model.cfg, batch=1)
                if any(m is not None and m.dim() != 2 for m in (heads.encoder, heads.decoder, heads.cross)):
                    raise ValueError("a trace takes one (layers, heads) mask per kind")
        except ValueError as e:
            raise InputError(str(e)) from None
        return heads
    return mask_heads(translator, heads)


def heads_off(mask: HeadMask | None) -> list[tuple[str, int, int]]:
    if mask is None:
        return []
    return [
        (kind, int(layer), int(head))
        for kind in KINDS
        if getattr(mask, kind) is not None
        for layer, head in (getattr(mask, kind) == 0).nonzero().tolist()
    ]


def trust_checks(
    translation: Translation,
    maps: AttentionMaps,
    logits: torch.Tensor,
    fused_logits: torch.Tensor,
    logp: torch.Tensor,
) -> TraceChecks:
    """Measure a trace against what must hold (see `TraceChecks`).

    logits (T, V) from the capturing pass that produced `maps`, fused_logits (T, V) from the fused kernel,
    logp (T, V) the capturing pass's next-token log-probabilities."""
    src_pad = torch.tensor(translation.source.ids) == PAD_ID  # (S,)
    t = len(translation.decoder_input)
    tgt_pad = torch.tensor(translation.decoder_input) == PAD_ID  # (T,)
    future = torch.ones(t, t, dtype=torch.bool).triu(1)  # (T, T): key after query
    row_error, masked = 0.0, 0.0
    for ws, forbidden in (
        (maps.encoder_self, src_pad[None, :]),
        (maps.cross, src_pad[None, :]),
        (maps.decoder_self, future | tgt_pad[None, :]),
    ):
        for w in ws:  # (1, H, Tq, Tk)
            w = w[0].double().cpu()  # (H, Tq, Tk)
            row_error = max(row_error, (w.sum(-1) - 1).abs().max().item())
            on_forbidden = w.masked_select(forbidden.expand_as(w))
            masked = max(masked, on_forbidden.max().item() if on_forbidden.numel() else 0.0)
    output_ids = torch.tensor(translation.decoder_output, device=logp.device)  # (T,)
    chosen = logp.gather(1, output_ids[:, None])[:, 0]  # (T,)
    cached = torch.tensor(translation.hypothesis.token_logprobs, dtype=torch.float64)  # (T,)
    if cached.numel() != chosen.numel():
        raise RuntimeError(
            f"decoding scored {cached.numel()} tokens but the translation has {chosen.numel()}"
        )
    return TraceChecks(
        row_sum_error=row_error,
        masked_weight=masked,
        capture_logit_diff=(logits - fused_logits).abs().max().item(),
        cached_vs_teacher_forced=(cached - chosen.double().cpu()).abs().max().item(),
    )


def _internals_arrays(internals: Internals) -> dict[str, SublayerArrays]:
    """The model's per-layer records of sentence 0 → numpy, layers stacked."""

    def stack(records, key):  # per layer (1, …) → (L, …)
        return torch.stack([getattr(r, key)[0] for r in records]).float().cpu().numpy()

    return {
        name: SublayerArrays(
            **{f.name: stack(getattr(internals, name), f.name) for f in fields(SublayerArrays)}
        )
        for name in (k.maps for k in KINDS.values())
    }


def length_cap(
    translator: Translator,
    source: SourceInput,
    beam: int | None,
    max_target_tokens: int | None,
    overrides: dict,
) -> tuple[dict, int | None]:
    """Decoding overrides that stop at `max_target_tokens` (</s> included), and the cap where it binds
    (None where the model's own limit is lower)."""
    if max_target_tokens is None:
        return overrides, None
    settings = translator.settings(beam=beam, **overrides)
    own = min(
        int(settings.max_len_a * len(source.ids) + settings.max_len_b), translator.model.cfg.max_len - 1
    )
    if max_target_tokens >= own:
        return overrides, None
    # A fixed length for this one sentence: a = 0, b = the cap.
    return {**overrides, "max_len_a": 0.0, "max_len_b": max_target_tokens}, max_target_tokens


def trace(
    translator: Translator,
    text: str,
    beam: int | None = None,
    model_id: str = "",
    internals: bool = False,
    head_mask: HeadMask | Sequence[Sequence] | None = None,
    *,
    max_words: int | None = None,
    max_chars: int = MAX_INPUT_CHARS,
    max_target_tokens: int | None = None,
    max_pieces: int | None = None,
    force: str | None = None,
    hypotheses: bool = False,
    **decode_overrides,
) -> Trace:
    """Translate `text` and capture every attention map. Raises InputError for unusable input.

    force: a Chinese translation to explain instead of the model's own (teacher-forced: the maps and
    each token's probability and rank are the model's on that text). hypotheses=True: the Trace also
    lists the finished hypotheses beam search weighed, and how it went step by step (`beam_history`);
    with `force` too, the search runs beside the given translation, so the two can be compared.

    internals=True: the Trace also carries each head's q, k, v and output, and the residual streams
    around each attention sublayer, from the same pass as the maps.
    head_mask: heads switched off for decoding and for the maps, as a HeadMask or (kind, layer, head)
    triples (see `mask_heads`).
    max_words / max_chars / max_pieces cut the input (with a notice); max_target_tokens stops decoding
    early (</s> included, with a notice). The app uses them to bound the size of a trace and its figures."""
    text, source, notices = prepare(translator, text, max_words, max_chars, max_pieces)
    mask = _as_head_mask(translator, head_mask)
    decode_overrides, max_target_tokens = length_cap(
        translator, source, beam, max_target_tokens, decode_overrides
    )
    search = None
    if hypotheses or force is None:
        search = _search(translator, source, beam, mask, hypotheses, decode_overrides)
    if force is None:
        translation = search
    else:
        ids = forced_ids(translator, force, max_target_tokens, notices)
        translation = translator.forced(source, ids, head_mask=mask, beam=beam, **decode_overrides)
    src = torch.tensor([source.ids])
    (limit,) = max_target_lengths(src, translation.settings, translator.model.cfg.max_len)
    # decoding forces </s> at the limit (a given translation has its own end)
    end_forced = force is None and len(translation.hypothesis.ids) + 1 >= limit
    if (
        force is None
        and max_target_tokens is not None
        and len(translation.hypothesis.ids) + 1 >= max_target_tokens
    ):
        notices.append(
            f"The translation reached the explorer's maximum of {max_target_tokens} tokens "
            "and may be cut short."
        )
    # logits (T, V)
    logits, maps = translator.forward_pass(translation, "internals" if internals else "weights", mask)
    fused, _ = translator.forward_pass(translation, "none", mask)  # what decoding computes: for the checks
    logp = next_token_logprobs(logits)  # (T, V), per layer (1, H, q, k)
    top_p, top_i = logp.exp().topk(min(TOP_K, logp.size(-1)), dim=-1)
    # Beam search may choose a token that was not the likeliest at its step: keep its rank and probability.
    chosen = logp.gather(1, torch.tensor(translation.decoder_output, device=logp.device)[:, None])  # (T, 1)
    rank = (logp > chosen).sum(-1) + 1  # (T,)
    vocab = translator.tgt_vocab
    stack = lambda ws: torch.stack([w[0] for w in ws]).float().cpu().numpy()  # (L, H, q, k)
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
        top_next=[
            [(vocab.itos[i], float(p)) for p, i in zip(ps, ids)]
            for ps, ids in zip(top_p.tolist(), top_i.tolist())
        ],
        score=translation.hypothesis.score,
        model_id=model_id,
        decoding=asdict(translation.settings),
        notices=notices,
        source_words=source.words,
        source_word_index=source.word_index,
        predicted_prob=chosen[:, 0].exp().tolist(),
        predicted_rank=rank.tolist(),
        checks=trust_checks(translation, maps, logits, fused, logp),
        internals=_internals_arrays(maps.internals) if internals else None,
        ablated_heads=heads_off(mask),
        end_forced=end_forced,
        forced=force is not None,
        hypotheses=hypotheses_json(search, vocab) if hypotheses else None,
        beam_history=beam_history_json(search.hypothesis.history, vocab) if hypotheses else None,
        force=force,
    )


def _search(
    translator: Translator, source: SourceInput, beam: int | None, mask: HeadMask | None, record: bool,
    overrides: dict,
) -> Translation:  # fmt: skip
    """The model's translation, as `Translator.decode` finds it; record=True: a beam search keeps its
    history on the hypothesis (`BeamStep`s), the same search otherwise."""
    settings = translator.settings(beam=beam, **overrides)
    if not record or settings.beam == 1 or len(source.ids) <= 1:
        return translator.decode([source], beam=beam, head_mask=mask, **overrides)[0]
    translator.model.eval()
    src = torch.tensor([source.ids], device=translator.device)
    (hyp,) = beam_search(translator.model, src, settings, head_mask=mask, record=True)
    tokens = translator.tgt_vocab.decode(hyp.ids)
    return Translation(source, hyp, tokens, detokenize_zh(tokens), settings)


def beam_history_json(history: list[BeamStep] | None, vocab) -> list[dict] | None:
    """Each step of the search: the live prefixes it extended {"tokens", "logprob"}, and the 2K best
    extensions it weighed, best first {"parent" (index into live), "token", "logprob" (the token's),
    "score" (the prefix's + the token's: what the search ranks by), "fate": "kept" | "finished" |
    "dropped"}; "last": the search stopped after it. None for greedy decoding (one hypothesis)."""
    if history is None:
        return None
    return [
        {
            "live": [{"tokens": vocab.decode(ids), "logprob": score} for ids, score in step.live],
            "candidates": [
                {
                    "parent": c.parent,
                    "token": vocab.itos[c.token],
                    "logprob": c.logprob,
                    "score": c.score,
                    "fate": c.fate,
                }
                for c in step.candidates
            ],
            "last": step.last,
        }
        for step in history
    ]


def hypotheses_json(translation: Translation, vocab) -> list[dict]:
    """The finished hypotheses of the search, best first: the chosen one, then its alternatives."""
    out = []
    for h in [translation.hypothesis, *translation.hypothesis.alternatives]:
        tokens = vocab.decode(h.ids)
        out.append(
            {
                "translation": detokenize_zh(tokens),
                "tokens": tokens + ["</s>"],
                "logprob": h.score,
                "score": h.normalized,
            }
        )
    return out
