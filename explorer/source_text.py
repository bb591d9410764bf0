"""What the visitor typed, made ready for the model: cleaned, tokenized, cut to the caps, and
what to tell them (cut, not English, unknown words, an address); a given Chinese translation
as target ids. Raises InputError, the error a visitor can fix."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from training.text import UNK_ID, tokenize_zh
from training.translator import SourceInput, Translator

MAX_INPUT_CHARS = 2000  # longer input is cut before tokenizing; the model's own limit is in words
# A lone surrogate (e.g. "\ud800" from JSON) cannot be encoded as UTF-8: JSON files and responses would fail.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(ValueError):
    """Input the app should answer with a friendly message, not a traceback."""


NOT_ENGLISH = (
    "This model translates English, and {why}: the translation will be meaningless. Try an English sentence."
)


# Web and e-mail addresses: never in the training sentences, spelled out in one-letter pieces.
ADDRESS = re.compile(r"(?i)\b(?:https?://|www\.)\S+|\b[\w.+-]+@[\w-]+\.[\w.]+")
ADDRESS_NOTICE = (
    "The input holds a web or e-mail address, which this model never saw in training: it comes out as "
    "meaningless characters, and the rest of the translation may suffer too."
)


def not_english_reason(source: SourceInput) -> str | None:
    """Why the input does not look like English (None when it does), judged on the words the model reads.

    Most letters outside the Latin script (Chinese, Cyrillic…), most words without a letter (markup,
    numbers, symbols), or most words unknown to the vocabulary: the model will still answer, confidently.
    """
    words = source.words[:-1] if source.words else source.tokens[:-1]  # </s> is not a word
    letters = [ch for w in words for ch in w if ch.isalpha()]
    if letters and sum(not unicodedata.name(ch, "").startswith("LATIN") for ch in letters) > len(letters) / 2:
        return "most of this input is not in the Latin alphabet"
    worded = [i for i, w in enumerate(words) if any(ch.isalpha() for ch in w)]
    if len(worded) < len(words) / 2:
        return "most of this input is symbols, numbers or markup rather than words"
    unknown = unfamiliar_words(source) if source.word_index else set()
    if sum(i in unknown for i in worded) > len(worded) / 2:
        return "most of its words are unknown to it"
    return None


def unfamiliar_words(source: SourceInput) -> set[int]:
    """Indices of the words the model does not know: read as <unk>, or, with subwords, spelled out
    in 4 or more pieces averaging under 2 characters, as gibberish splits (no dev.tsv sentence has
    a majority of such words)."""
    pieces = Counter(source.word_index[:-1])
    return {w for w, unk in zip(source.word_index, source.unknown) if unk} | {
        w for w, n in pieces.items() if n >= 4 and len(source.words[w]) < 2 * n
    }


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
    return source.first_tokens(
        next((i for i, w in enumerate(source.word_index) if w >= n), len(source.word_index))
    )


def _not_translated(words: int) -> str:
    return (
        "the last word was not translated." if words == 1 else f"the last {words} words were not translated."
    )


def prepare(
    translator: Translator,
    text: str | None,
    max_words: int | None = None,
    max_chars: int = MAX_INPUT_CHARS,
    max_pieces: int | None = None,
) -> tuple[str, SourceInput, list[str]]:
    """Validate and tokenize one input: (text as used, encoder input, notices). Raises InputError.

    `max_words` (NLTK words, punctuation included; not subword pieces) cuts below the model's own
    maximum; `max_pieces` then bounds the encoder tokens (a word of junk can be many subword pieces).
    """
    text, notices = clean_input(text, max_chars)
    source = translator.prepare(text)
    if len(source.ids) == 1:  # only </s>: nothing the tokenizer kept
        raise InputError("Nothing to translate: the input has no words the tokenizer could use.")
    if max_words is not None and len(source.words) - 1 > max_words:
        source = first_words(source, max_words)
        notices.append(
            f"Input cut to the explorer's maximum of {max_words} words; {_not_translated(source.truncated_words)}"
        )
    elif source.truncated_words:
        kept = len(source.words) - 1  # words, not the subword pieces the model's maximum counts
        notices.append(
            f"Input cut to the model's maximum of {kept} words; {_not_translated(source.truncated_words)}"
        )
    if max_pieces is not None and len(source.ids) - 1 > max_pieces:
        before = source.truncated_words
        source = source.within(max_pieces)
        notices.append(
            f"Input cut to the explorer's maximum of {max_pieces} subword pieces; "
            + (
                _not_translated(source.truncated_words - before)
                if source.truncated_words > before
                else f"only the first {max_pieces} pieces of “{source.words[0]}” were translated."
            )
        )
    if why := not_english_reason(source):
        notices.insert(0, NOT_ENGLISH.format(why=why))
    elif ADDRESS.search(text):  # mostly English around it: the address itself still comes out as nonsense
        notices.insert(0, ADDRESS_NOTICE)
    unknown = [t for t, u in zip(source.tokens, source.unknown) if u]
    if unknown:
        notices.append("Not in the model's vocabulary (read as <unk>): " + ", ".join(dict.fromkeys(unknown)))
    return text, source, notices


def forced_ids(
    translator: Translator, chinese: str | list[str], max_target_tokens: int | None, notices: list[str]
) -> list[int]:
    """A given Chinese translation as target ids (without <s>/</s>), cut to what a trace may hold;
    what was cut or is unknown to the model goes to `notices`. A list is taken as the target tokens
    themselves (a trace's own, <unk> included: the same pass again)."""
    if isinstance(chinese, list) and all(isinstance(t, str) for t in chinese):
        tokens = list(chinese)
    elif isinstance(chinese, str):
        tokens = tokenize_zh(LONE_SURROGATE.sub("\ufffd", chinese[:MAX_INPUT_CHARS]))
    else:
        raise InputError(f"the Chinese to explain must be text; got {type(chinese).__name__}")
    if not tokens:
        raise InputError("The Chinese to explain is empty: leave it out for the model's own translation.")
    limit = translator.model.cfg.max_len - 2  # <s> and </s> take a position each
    if max_target_tokens is not None:
        limit = min(limit, max_target_tokens - 1)
    if len(tokens) > limit:
        notices.append(f"The given Chinese was cut to its first {limit} characters (the explorer's maximum).")
        tokens = tokens[:limit]
    ids = translator.tgt_vocab.encode(tokens)
    unknown = [t for t, i in zip(tokens, ids) if i == UNK_ID]
    if unknown:
        notices.append(
            "Not in the model's Chinese vocabulary (read as <unk>): " + ", ".join(dict.fromkeys(unknown))
        )
    return ids
