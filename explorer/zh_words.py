"""Chinese words for the decoder's tokens: jieba's segmentation of the translation, mapped back onto the
model's tokens (one per character), so that "Whole words" can pool the Chinese side as it pools English
pieces. No Gradio, no Plotly.

jieba loads its dictionary (about 0.9 s from its cache file, a few seconds the first time it builds that
file) on first use: `segmenter()` does it once per process, behind a lock, and jieba is imported there,
not when this module is, so building the page never waits for it.
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_tokenizer = None


def segmenter():
    """jieba's default tokenizer, its dictionary loaded (once per process) and its log quiet."""
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict…" lines on the server's log
            jieba.dt.initialize()
            _tokenizer = jieba.dt
    return _tokenizer


def is_special(token: str) -> bool:
    """<s>, </s>, <pad>, <unk>: each is a word of its own, and ends the run jieba segments."""
    return len(token) > 2 and token.startswith("<") and token.endswith(">")


def word_index(tokens: list[str]) -> list[int]:
    """Each token's word, 0, 1, 2… in order: every token in exactly one word, words contiguous.

    Runs of ordinary tokens between specials are joined and cut by jieba (`jieba.cut`, accurate mode, its
    dictionary only: HMM=False, so no guessed new words that change with the sentence around them);
    a token starts a new word where jieba starts one at its first character (a token is never split: a
    word boundary inside a multi-character token is ignored)."""
    index: list[int] = []
    word = -1
    run: list[str] = []

    def flush():
        nonlocal word
        if not run:
            return
        starts, offset = set(), 0
        for piece in segmenter().cut("".join(run), HMM=False):
            starts.add(offset)
            offset += len(piece)
        offset = 0
        for token in run:
            if offset in starts or offset == 0:
                word += 1
            index.append(word)
            offset += len(token)
        run.clear()

    for token in tokens:
        if is_special(token):
            flush()
            word += 1
            index.append(word)
        else:
            run.append(token)
    flush()
    return index


def groups(index: list[int]) -> list[list[int]]:
    """Positions grouped by consecutive equal indices: [0, 0, 1, 2, 2] → [[0, 1], [2], [3, 4]]."""
    out: list[list[int]] = []
    for pos, w in enumerate(index):
        if out and index[out[-1][-1]] == w:
            out[-1].append(pos)
        else:
            out.append([pos])
    return out


def joined(tokens: list[str]) -> str:
    """A word's tokens as one label: characters joined, a special set apart by a space ("里 </s>")."""
    out = ""
    for token in tokens:
        gap = out and (is_special(token) or is_special(out.split(" ")[-1]))
        out += (" " if gap else "") + token
    return out
