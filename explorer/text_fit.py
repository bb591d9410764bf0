"""Text that fits a figure: labels escaped and told apart, headings wrapped to the figure's width
(Chinese by its width: it has no spaces to break at), ordinals. Pure functions, no Plotly."""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Sequence

from training.subwords import WORD_START  # SentencePiece's mark of a word's first piece


def escape(label: str) -> str:
    return html.escape(str(label), quote=False)


SHOWN_WORD_START = "␣"  # …as labels show it: "▁." would read as a bare underscore


def shown_piece(token: str) -> str:
    """A subword piece as a label shows it: a word-start piece marked with a visible space (␣.)."""
    text = str(token)
    return SHOWN_WORD_START + text[len(WORD_START) :] if text.startswith(WORD_START) else text


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Escaped labels made unique with zero-width spaces, so repeated tokens (two "the") keep their own
    category on the axis, and hover can read the label from the axis instead of a string per cell."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        text = escape(label)
        seen[text] = seen.get(text, -1) + 1
        out.append(text + "\u200b" * seen[text])
    return out


def heading_lines(title: str, subtitle: str, width: int) -> str:
    """The figure's title and subtitle, wrapped to the width (Plotly never wraps, and a phone cuts)."""
    lines = [escape(t) for t in wrap_by_width(title, max(20, int((width - 20) / 8.5)))]
    lines += [f"<sup>{escape(t)}</sup>" for t in wrap_by_width(subtitle, max(24, int((width - 20) / 6.5)))]
    return "<br>".join(lines)


def char_width(c: str) -> int:
    """A character's width in units of a Latin letter: 2 for Chinese (wide and full-width) characters."""
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def wrap_by_width(text: str, units: int) -> list[str]:
    """Lines of at most `units` Latin-letter widths. Breaks at spaces, and between any two Chinese
    characters (Chinese has no spaces: textwrap would leave a whole sentence on one cut-off line);
    a longer unbroken run is split where it fills the line."""
    atoms = re.findall(
        r"[^\s\u2e80-\u9fff\uff00-\uffef]+\s*|[\u2e80-\u9fff\uff00-\uffef]\s*|\s+", text.strip()
    )
    lines, line, used = [], "", 0
    for atom in atoms:
        for piece in _split_to_fit(atom, units):
            w = sum(char_width(c) for c in piece.rstrip())
            if line and used + w > units:
                lines.append(line.rstrip())
                line, used = "", 0
            line += piece
            used += sum(char_width(c) for c in piece)
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _split_to_fit(atom: str, units: int) -> list[str]:
    pieces, cur, used = [], "", 0
    for c in atom:
        if used + char_width(c) > units and cur.strip():
            pieces.append(cur)
            cur, used = "", 0
        cur += c
        used += char_width(c)
    return pieces + [cur] if cur else pieces


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


# ---- room for labels: margins that already fit them spare Plotly an automargin redraw -------------

CHAR_PX = 7.0  # a Latin letter or digit at the figures' 12 px, a little over (a Chinese one: two)


def text_px(text: str) -> float:
    """Width in px at 12 px, a little over: CJK characters count double, a point or comma half."""
    return CHAR_PX * sum(0.5 if c in ".,:;!|'" else char_width(c) for c in str(text))


def _number(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".replace("-", "−")  # Plotly writes a minus sign


def number_labels(lo: float, hi: float) -> list[str]:
    """The longest tick labels Plotly's automatic ticks could give a value axis spanning lo..hi (and 0,
    as a bar axis does, padded 5%): the end ticks at every 1-2-5 spacing from 3 to 10 ticks."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    span = hi - lo if math.isfinite(hi - lo) and hi > lo else 1.0
    lo, hi = lo - span / 20, hi + span / 20
    out = []
    for n in range(3, 11):
        rough = span / n
        power = 10.0 ** math.floor(math.log10(rough))
        dtick = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
        decimals = max(0, -math.floor(math.log10(dtick) + 1e-9))
        out += [
            _number(math.ceil(lo / dtick) * dtick, decimals),
            _number(math.floor(hi / dtick) * dtick, decimals),
        ]
    return out


def value_axis_left(*ranges: tuple[float, float]) -> int:
    """A left margin that holds the tick labels of value axes spanning these ranges (+ Plotly's padding)."""
    longest = max((text_px(t) for lo, hi in ranges for t in number_labels(lo, hi)), default=CHAR_PX)
    return math.ceil(12 + longest)


def key_labels_px(keys: Sequence[str]) -> float:
    """The longest key label's width in px at 12 px (as the key axis writes it)."""
    return max((text_px(shown_piece(k)) for k in keys), default=CHAR_PX)
