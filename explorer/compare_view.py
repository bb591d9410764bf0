"""Two sentences side by side: which tokens of one match which of the other, and how attention
differs where they match (B − A). Pure: Traces in, arrays and HTML out; no Gradio."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass

import numpy as np

from training.kinds import KINDS

from .inference import Trace


@dataclass
class Alignment:
    """Positions of equal tokens, in order: a[i] in the first sequence matches b[i] in the second."""

    a: list[int]
    b: list[int]


def align(a: list[str], b: list[str]) -> Alignment:
    """Same length and the same tokens: every position; otherwise the matching blocks of a
    token-level diff (difflib, the longest common runs), so "love" vs "lov ed" still lines up the rest."""
    blocks = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks()
    pairs = [(i + k, j + k) for i, j, n in blocks for k in range(n)]
    return Alignment([i for i, _ in pairs], [j for _, j in pairs])


def axes_of(tr: Trace, kind: str) -> tuple[list[str], list[str]]:
    """(row tokens, key tokens) of a kind's maps: encoder rows and keys are the source; decoder rows
    are matched by the token each row reads (target_tokens), keys by the source or the target."""
    rows = tr.source_tokens if kind == "encoder" else tr.target_tokens
    keys = tr.target_tokens if kind == "decoder" else tr.source_tokens
    return rows, keys


@dataclass
class Difference:
    rows: Alignment
    keys: Alignment
    row_labels: list[str]  # the matched rows, as the second sentence labels them
    key_labels: list[str]
    diff: np.ndarray  # (L, H, R, C): B − A on the matched rows and keys


def difference(a: Trace, b: Trace, kind: str) -> Difference | None:
    """B − A of a kind's maps where both rows and keys align; None where no row or no key does."""
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; choose from {list(KINDS)}")
    (rows_a, keys_a), (rows_b, keys_b) = axes_of(a, kind), axes_of(b, kind)
    rows, keys = align(rows_a, rows_b), align(keys_a, keys_b)
    if not rows.a or not keys.a:
        return None
    maps_a, maps_b = getattr(a, KINDS[kind].maps), getattr(b, KINDS[kind].maps)  # (L, H, Tq, Tk)
    diff = maps_b[:, :, rows.b][:, :, :, keys.b] - maps_a[:, :, rows.a][:, :, :, keys.a]  # (L, H, R, C)
    if kind == "encoder":
        row_labels = [b.source_tokens[j] for j in rows.b]
    else:
        row_labels = [f"{b.target_tokens[j]} → {b.predicted_tokens[j]}" for j in rows.b]
    return Difference(rows, keys, row_labels, [keys_b[j] for j in keys.b], diff)


def differences_json(a: Trace, b: Trace, decimals: int = 4) -> dict[str, dict | None]:
    """Per kind, the difference maps [layer][head][row][key] and which positions they compare (or null)."""
    out: dict[str, dict | None] = {}
    for kind in KINDS:
        d = difference(a, b, kind)
        out[kind] = (
            None
            if d is None
            else {
                "rows_a": d.rows.a,
                "rows_b": d.rows.b,
                "keys_a": d.keys.a,
                "keys_b": d.keys.b,
                "diff": np.round(d.diff.astype(np.float64), decimals).tolist(),
            }
        )
    return out


def marked_translations(a: str, b: str) -> tuple[str, str]:
    """The two translations as HTML, the characters one has and the other lacks marked (<del> in A,
    <ins> in B); everything escaped."""
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in ops:
        left, right = html.escape(a[i1:i2]), html.escape(b[j1:j2])
        if op == "equal":
            out_a.append(left)
            out_b.append(right)
            continue
        if left:
            out_a.append(f"<del>{left}</del>")
        if right:
            out_b.append(f"<ins>{right}</ins>")
    return "".join(out_a), "".join(out_b)
