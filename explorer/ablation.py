"""Switching heads off: `ablate` re-translates with some heads off and measures what they
contributed; `head_importance` does it for every head alone, in a few batched passes. Both start
from the translation `trace` would make under the same caps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training.kinds import shape
from training.model import HeadMask
from training.translator import Translator

from .inference import heads_off, length_cap, mask_heads
from .source_text import MAX_INPUT_CHARS, prepare

IMPORTANCE_ROWS = 64  # ablation variants per forward pass in `head_importance` (bounds its memory)


def ablate(
    translator: Translator,
    text: str,
    heads: Sequence[Sequence],
    beam: int | None = None,
    *,
    max_words: int | None = None,
    max_chars: int = MAX_INPUT_CHARS,
    max_target_tokens: int | None = None,
    max_pieces: int | None = None,
    **decode_overrides,
) -> dict[str, Any]:
    """Switch heads off: re-translate, and measure what it costs the original translation.

    heads: (kind, layer, head) triples. Returns
        translation, ablated_translation: the text with every head on, and with `heads` off;
        target_tokens: the original translation's output tokens, y1 … yn </s>;
        delta_logprob: per target token, its teacher-forced log-probability with the heads off minus
            with them on (negative: the heads helped predict it);
        heads: the heads switched off, as [kind, layer, head].
    max_words, max_chars, max_pieces and max_target_tokens cut as in `trace`, so that with the same
    caps the original translation is the trace's. Raises InputError for unusable text or heads."""
    _, source, _ = prepare(translator, text, max_words, max_chars, max_pieces)
    mask = mask_heads(translator, heads)
    decode_overrides, _ = length_cap(translator, source, beam, max_target_tokens, decode_overrides)
    original = translator.decode([source], beam=beam, **decode_overrides)[0]
    ablated = translator.decode([source], beam=beam, head_mask=mask, **decode_overrides)[0]
    on = translator.output_logprobs(original)  # (T,)
    off = translator.output_logprobs(original, mask)  # (T,)
    return {
        "translation": original.text,
        "ablated_translation": ablated.text,
        "target_tokens": translator.tgt_vocab.decode(original.decoder_output),
        "delta_logprob": (off - on).tolist(),
        "heads": [list(h) for h in heads_off(mask)],
    }


def head_importance(
    translator: Translator,
    text: str,
    beam: int | None = None,
    *,
    max_words: int | None = None,
    max_chars: int = MAX_INPUT_CHARS,
    max_target_tokens: int | None = None,
    max_pieces: int | None = None,
    progress: Callable[[float], None] | None = None,
    **decode_overrides,
) -> dict[str, np.ndarray]:
    """For every head, the drop in the current translation's total log-probability (teacher-forced, </s>
    included) when that head alone is switched off: {kind: (L, H)}. Positive: the head helps this output.

    All L × H × 3 ablations run as rows of a few batched passes (`IMPORTANCE_ROWS` at a time), each
    with its own head mask; each batch also holds the unablated sentence, the baseline its rows are
    compared with. The caps are `trace`'s; `progress(fraction done)` is called after each batch."""
    _, source, _ = prepare(translator, text, max_words, max_chars, max_pieces)
    decode_overrides, _ = length_cap(translator, source, beam, max_target_tokens, decode_overrides)
    translation = translator.decode([source], beam=beam, **decode_overrides)[0]
    cfg = translator.model.cfg
    variants = [
        (kind, layer, head)
        for kind, (n_layers, n_heads) in shape(cfg).items()
        for layer in range(n_layers)
        for head in range(n_heads)
    ]
    drops = []
    for start in range(0, len(variants), IMPORTANCE_ROWS - 1):
        chunk = variants[start : start + IMPORTANCE_ROWS - 1]
        mask = HeadMask.ones(cfg, batch=1 + len(chunk))  # row 0: every head on
        for row, (kind, layer, head) in enumerate(chunk, start=1):
            getattr(mask, kind)[row, layer, head] = 0
        total = translator.output_logprobs(translation, mask).double().sum(-1)  # (1 + N,)
        drops += (total[0] - total[1:]).tolist()
        if progress is not None:
            progress(len(drops) / len(variants))
    out, i = {}, 0
    for kind, (n_layers, n_heads) in shape(cfg).items():
        out[kind] = np.array(drops[i : i + n_layers * n_heads]).reshape(n_layers, n_heads)  # (L, H)
        i += n_layers * n_heads
    return out
