"""Probes of multi-sentence and long input, built from a split we may tune on (never from dev).

joined: sentences taken three at a time in a seeded shuffle, English joined with a space and
Chinese joined as is, kept when the joined English has 15-30 words: what the model sees when a
user pastes a short paragraph. long: single pairs of 12 or more English words, which the
corpus has few of. Words are whitespace-separated tokens of the English side.
"""

from __future__ import annotations

import random

Pair = tuple[str, str]

JOINED_GROUP = 3
JOINED_MIN_WORDS = 15
JOINED_MAX_WORDS = 30
LONG_MIN_WORDS = 12


def words(text: str) -> int:
    return len(text.split())


def joined_probe(pairs: list[Pair], seed: int) -> list[Pair]:
    """Consecutive triples of the shuffled pairs, joined; the remainder short of a triple is dropped.

    Triples are disjoint, so every source sentence appears in at most one probe line.
    """
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    out = []
    for i in range(0, len(shuffled) - JOINED_GROUP + 1, JOINED_GROUP):
        group = shuffled[i : i + JOINED_GROUP]
        en = " ".join(en for en, _ in group)
        if JOINED_MIN_WORDS <= words(en) <= JOINED_MAX_WORDS:
            out.append((en, "".join(zh for _, zh in group)))
    return out


def long_probe(pairs: list[Pair]) -> list[Pair]:
    """The pairs whose English has at least LONG_MIN_WORDS words, in their original order."""
    return [(en, zh) for en, zh in pairs if words(en) >= LONG_MIN_WORDS]
