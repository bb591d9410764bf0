"""A small English sentence splitter, for translating multi-sentence input one sentence at a time.

A sentence ends at . ! or ? (and any closing quotes or brackets after it) when whitespace and
then a capital letter, an opening quote or a digit follow; a period that closes a known
abbreviation ("Mr. Smith") ends nothing. Good enough for Tatoeba-style text; not punkt.
"""

from __future__ import annotations

import re

from .text import _ABBREVIATIONS

_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
# "no." is "number" only before a figure ("No. 5"); before a word it is the answer "No."
_BEFORE_DIGITS_ONLY = {"no"}


def _is_abbreviation(text: str, end: re.Match) -> bool:
    if end.group() != ".":
        return False
    words = text[: end.start()].split()
    word = words[-1].lstrip("\"'“‘([").lower() if words else ""
    if word in _BEFORE_DIGITS_ONLY:
        return text[end.end() :].lstrip()[:1].isdigit()
    return word in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order; [] for blank text. Joined by spaces they give
    back `text` with its whitespace squeezed at the breaks."""
    out, start = [], 0
    for end in _END.finditer(text):
        if _is_abbreviation(text, end):
            continue
        out.append(text[start : end.end()].strip())
        start = end.end()
    out.append(text[start:].strip())
    return [s for s in out if s]
