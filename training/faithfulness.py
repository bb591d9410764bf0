"""How far each view of "which source token did this output token use" can be trusted, measured.

For each sentence: translate it (the weights' own decoding), then run the model's own translation
teacher-forced, once as is and once per source position j with j hidden from EVERY cross-attention
(all layers, every query row; the encoder still sees it), all S + 1 variants in one batch:

    drop[t, j] = log p(output token t | nothing hidden) − log p(output token t | j hidden)

Each method gives source scores (T, S) for the same translation; per method we report
    top1_drop  the mean drop when hiding the source token the method ranks first, over every output token
               (</s> included) of every sentence; higher = the method points at tokens the model needs;
    spearman   the mean Spearman correlation, per output token, between the method's scores and
               drop[t, :] across source positions (rows with fewer than 3 ranked positions, or with
               constant scores or constant drops, are skipped: no rank correlation exists there).
References: `best_top1_drop` (always hiding the token with the largest drop: the ceiling),
`mean_drop` (what a token chosen uniformly at random gives on average) and `eos_drop` (hiding </s>).

The source </s> is left out of every ranking (`EOS_POLICY`): it is where attention parks when no word
is needed (an attention sink), so ranking it would mostly measure how each method treats the sink,
not which word an output token came from. It is still hidden in its own variant, for `eos_drop`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from .contributions import captured, contributions
from .decoding import next_token_logprobs
from .translator import Translation, Translator

FORMAT = "attention-explorer-faithfulness/1"
EOS_POLICY = "excluded: the source </s> is never ranked (it is hidden in its own variant, for eos_drop)"
METHODS = {
    "cross_last": "raw cross-attention, last layer, mean over heads",
    "cross_all": "raw cross-attention, mean over every layer and head",
    "value_norm": "attention × value norm, last layer: ‖Σ_h α_tj^h W_O^h v_j^h‖₂ (heads summed), rows sum to 1",
    "rollout": "attention rollout, source (T, S)",
    "alti": "ALTI+, source (T, S)",
    "random": "a random source token (numpy seed --seed)",
}
MIN_RANKED = 3  # a rank correlation over fewer positions is too coarse to mean anything
CHUNK = 32  # sentences decoded together


# ---- the measurement on one translation


@torch.inference_mode()
def masked_logprobs(translator: Translator, translation: Translation) -> torch.Tensor:
    """(S + 1, T): log p of each output token (y1 … yn </s>) of the translation, teacher-forced; row 0
    with nothing hidden, row j + 1 with source position j hidden from every cross-attention."""
    model = translator.model
    model.eval()
    src = torch.tensor([translation.source.ids], device=translator.device)  # (1, S)
    n_src = src.size(1)
    memory, src_mask, _ = model.encode(src)  # the encoder is never masked: encode once
    keys = torch.ones(n_src + 1, n_src, dtype=torch.bool, device=src.device)
    keys[torch.arange(1, n_src + 1), torch.arange(n_src)] = False  # row j + 1 hides position j
    tgt = torch.tensor([translation.decoder_input], device=src.device).expand(n_src + 1, -1)  # (S+1, T)
    out = torch.tensor([translation.decoder_output], device=src.device).expand(n_src + 1, -1)
    hidden, _, _ = model.decode(tgt, memory.expand(n_src + 1, -1, -1), src_mask, cross_key_mask=keys)
    return next_token_logprobs(model.logits(hidden)).gather(-1, out[..., None])[..., 0]


def drops(logp: torch.Tensor | np.ndarray) -> np.ndarray:
    """(S + 1, T) from `masked_logprobs` → drop (T, S) = log p(nothing hidden) − log p(j hidden)."""
    lp = np.asarray(logp.cpu() if isinstance(logp, torch.Tensor) else logp, dtype=np.float64)
    return (lp[0][None, :] - lp[1:]).T


def source_scores(translator: Translator, translation: Translation, rng: np.random.Generator) -> dict:
    """Every method's source scores (T, S) for the translation, from one teacher-forced pass."""
    _, maps = translator.forward_pass(translation, "internals")
    cap = captured(maps)
    c = contributions(cap, translator)
    norm = c["value_norm_layer"]["cross"][-1]  # (T, S): the last layer's heads summed, then the norm
    return {
        "cross_last": cap.cross[-1].mean(0),
        "cross_all": cap.cross.mean((0, 1)),
        "value_norm": norm / np.maximum(norm.sum(-1, keepdims=True), np.finfo(np.float64).tiny),
        "rollout": c["rollout"]["source"],
        "alti": c["alti"]["source"],
        "random": rng.random(norm.shape),
    }


# ---- rank statistics


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span (as Spearman's rho needs)."""
    x = np.asarray(x, dtype=np.float64)
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    _, group = np.unique(x, return_inverse=True)
    return (np.bincount(group, weights=ranks) / np.bincount(group))[group]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho (Pearson's r of the average ranks); None where it does not exist (n < MIN_RANKED,
    or either side constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < MIN_RANKED or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    ra, rb = average_ranks(a) - (len(a) + 1) / 2, average_ranks(b) - (len(b) + 1) / 2
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


# ---- over a corpus


def _mean_sem(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    a = np.asarray(xs, dtype=np.float64)
    sem = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else None
    return float(a.mean()), sem


def summarize(sentences: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> dict[str, Any]:
    """[(drop (T, S), {method: scores (T, S)})] → the figures (see the module docstring); the last
    source position is </s> and is never ranked."""
    top1: dict[str, list[float]] = {m: [] for m in METHODS}
    rho: dict[str, list[float]] = {m: [] for m in METHODS}
    best, mean, eos = [], [], []
    for drop, scores in sentences:
        ranked = drop[:, :-1]  # (T, S − 1): </s> left out
        best += ranked.max(1).tolist()
        mean += ranked.mean(1).tolist()
        eos += drop[:, -1].tolist()
        for method, s in scores.items():
            s = s[:, :-1]
            top1[method] += ranked[np.arange(len(ranked)), s.argmax(1)].tolist()  # ties: the first
            rho[method] += [r for r in map(spearman, s, ranked) if r is not None]
    methods = {}
    for m, description in METHODS.items():
        (d, d_sem), (r, r_sem) = _mean_sem(top1[m]), _mean_sem(rho[m])
        methods[m] = dict(
            description=description,
            top1_drop=d,
            top1_drop_sem=d_sem,
            spearman=r,
            spearman_sem=r_sem,
            spearman_rows=len(rho[m]),
        )
    return {
        "methods": methods,
        "reference": {
            "best_top1_drop": _mean_sem(best)[0],
            "mean_drop": _mean_sem(mean)[0],
            "eos_drop": _mean_sem(eos)[0],
        },
        "output_tokens": len(best),
    }


def faithfulness(
    translator: Translator,
    texts: list[str],
    progress: Callable[[Iterable], Iterable] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Translate each text with the weights' decoding and measure every method (see the module
    docstring). Sentences without a word to hide (nothing but </s>) are counted as skipped."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    sources = [translator.prepare(t) for t in texts]
    done, translations = [], []
    for i in (progress or iter)(range(len(sources))):
        if i == len(translations):  # decode a chunk at a time, so a progress bar moves as it goes
            translations += translator.decode(sources[i : i + CHUNK], batch_size=CHUNK)
        translation = translations[i]
        if len(translation.source.ids) < 2:
            continue
        done.append(
            (drops(masked_logprobs(translator, translation)), source_scores(translator, translation, rng))
        )
    return {
        "format": FORMAT,
        "sentences": len(done),
        "skipped_sentences": len(texts) - len(done),
        **summarize(done),
        "eos": EOS_POLICY,
        "seed": seed,
        "decoding": asdict(translator.decoding),
        "seconds": round(time.perf_counter() - start, 1),
    }


def is_result(data: Any) -> bool:
    """Whether `data` has the shape `faithfulness` returns (what a loader checks before showing it)."""
    number = lambda x: x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
    methods = data.get("methods") if isinstance(data, dict) else None
    return (
        isinstance(methods, dict)
        and bool(methods)
        and isinstance(data.get("sentences"), int)
        and isinstance(data.get("reference"), dict)
        and all(
            isinstance(m, dict) and all(number(m.get(k)) for k in ("top1_drop", "spearman"))
            for m in methods.values()
        )
    )


def table(result: dict[str, Any]) -> str:
    """The figures as a small plain-text table."""
    fmt = lambda x, sem=None: "—" if x is None else f"{x:+.3f}" + (f" ± {sem:.3f}" if sem else "")
    ref = result["reference"]
    lines = [
        f"{result['sentences']} sentences, {result['output_tokens']} output tokens; </s> {result['eos']}",
        f"{'method':<12} {'top-1 drop (nats)':>20} {'Spearman':>18} {'rows':>6}",
    ]
    for name, m in result["methods"].items():
        lines.append(
            f"{name:<12} {fmt(m['top1_drop'], m['top1_drop_sem']):>20} "
            f"{fmt(m['spearman'], m['spearman_sem']):>18} {m['spearman_rows']:>6}"
        )
    lines.append(
        f"reference: best possible top-1 drop {fmt(ref['best_top1_drop'])}, a uniformly random token "
        f"{fmt(ref['mean_drop'])}, hiding </s> {fmt(ref['eos_drop'])}"
    )
    lines += [f"  {name}: {m['description']}" for name, m in result["methods"].items()]
    return "\n".join(lines)
