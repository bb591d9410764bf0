"""BLEU and chrF with sacrebleu, Chinese-aware (tokenize="zh", both sides simplified)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sacrebleu

from .sentences import split_sentences as sentences_of
from .text import clean, to_simplified
from .translator import Translator


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    sentences: int
    seconds: float
    # BLEU's brevity penalty, below 1 when the hypotheses are shorter than the references overall:
    # on multi-sentence input it tells dropped sentences apart from mistranslated ones.
    brevity_penalty: float = 1.0

    def line(self) -> str:
        return (
            f"BLEU {self.bleu:.2f}  chrF {self.chrf:.2f}  ({self.sentences} sentences, {self.seconds:.1f}s)"
        )


def _corpus_scores(hypotheses: list[str], references: list[str]):
    hyps = [to_simplified(clean(h)) for h in hypotheses]
    refs = [to_simplified(clean(r)) for r in references]
    bleu = sacrebleu.metrics.BLEU(tokenize="zh")
    chrf = sacrebleu.metrics.CHRF()
    return bleu, chrf, bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])


def score(hypotheses: list[str], references: list[str]) -> tuple[float, float, str, str]:
    """Corpus BLEU and chrF; both sides normalized to simplified Chinese first."""
    bleu, chrf, b, c = _corpus_scores(hypotheses, references)
    return b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature())


def translate_by_sentence(
    translator: Translator, texts: list[str], batch_size: int = 64, **decode_overrides
) -> list[str]:
    """Translate each text one sentence at a time and join each text's translations (Chinese needs no space).

    All sentences go to the translator in one call, so that batching by length works across texts.
    """
    parts = [sentences_of(t) for t in texts]
    flat = [s for p in parts for s in p]
    hyps = iter(translator.translate(flat, batch_size=batch_size, **decode_overrides))
    return ["".join(next(hyps) for _ in p) for p in parts]


def evaluate(
    translator: Translator,
    pairs: list[tuple[str, str]],
    batch_size: int = 64,
    split_sentences: bool = False,
    **decode_overrides,
) -> tuple[Scores, list[str]]:
    """Score `translator` on `pairs`; split_sentences: translate the English one sentence at a time."""
    start = time.perf_counter()
    sources = [en for en, _ in pairs]
    if split_sentences:
        hyps = translate_by_sentence(translator, sources, batch_size=batch_size, **decode_overrides)
    else:
        hyps = translator.translate(sources, batch_size=batch_size, **decode_overrides)
    bleu, chrf, b, c = _corpus_scores(hyps, [zh for _, zh in pairs])
    return (
        Scores(
            b.score,
            c.score,
            str(bleu.get_signature()),
            str(chrf.get_signature()),
            len(pairs),
            time.perf_counter() - start,
            b.bp,
        ),
        hyps,
    )
