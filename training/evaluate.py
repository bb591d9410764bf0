"""BLEU and chrF with sacrebleu, Chinese-aware (tokenize="zh", both sides simplified)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sacrebleu

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

    def line(self) -> str:
        return (
            f"BLEU {self.bleu:.2f}  chrF {self.chrf:.2f}  ({self.sentences} sentences, {self.seconds:.1f}s)"
        )


def score(hypotheses: list[str], references: list[str]) -> tuple[float, float, str, str]:
    """Corpus BLEU and chrF; both sides normalized to simplified Chinese first."""
    hyps = [to_simplified(clean(h)) for h in hypotheses]
    refs = [to_simplified(clean(r)) for r in references]
    bleu = sacrebleu.metrics.BLEU(tokenize="zh")
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(hyps, [refs])
    c = chrf.corpus_score(hyps, [refs])
    return b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature())


def evaluate(
    translator: Translator, pairs: list[tuple[str, str]], batch_size: int = 64, **decode_overrides
) -> tuple[Scores, list[str]]:
    start = time.perf_counter()
    hyps = translator.translate([en for en, _ in pairs], batch_size=batch_size, **decode_overrides)
    bleu, chrf, bsig, csig = score(hyps, [zh for _, zh in pairs])
    return Scores(bleu, chrf, bsig, csig, len(pairs), time.perf_counter() - start), hyps
