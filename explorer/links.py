"""A link that restores a view: the page's state as URL query parameters, and back.

The parameters (all optional; anything else in the URL is ignored with a notice):

| name | what | values |
|---|---|---|
| `s` | the English sentence | text, cut at the page's character cap |
| `beam` | beam size | 1 … MAX_BEAM |
| `tab` | the tab shown | attention, head, compare, … (a tab module's name) |
| `kind` | attention kind | encoder, decoder, cross |
| `layer` | layer | all, or 1 … layers |
| `heads` | heads shown | 1,2,… (1-based) |
| `avg` | heads averaged | 0 or 1 |
| `words` | whole words | 0 or 1 |
| `specials` | show <s> and </s> | 0 or 1 |
| `step` | decoding step | 1 … (clamped to the translation once it is known) |
| `show` | what to show | weights, value_norm, alti, rollout |
| `hkind`, `hlayer`, `hhead`, `hquery` | Inside a head: kind, layer, head, query row (all 1-based, as the tab names them) | |

Parsing never fails: a bad value is dropped or clamped, and each such fix is a notice. Pure: no Gradio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from training.kinds import KINDS

MAX_PARAM_CHARS = 100  # any value but the sentence's
FLAGS = {"avg": "average", "words": "words", "specials": "show_special"}


@dataclass
class Link:
    """What a link asks for; None where it says nothing (the page keeps its own default)."""

    s: str | None = None
    beam: int | None = None
    tab: str | None = None
    kind: str | None = None
    layer: str | None = None  # "all" or "1"…
    heads: list[str] | None = None  # "1"…
    average: bool | None = None
    words: bool | None = None
    show_special: bool | None = None
    step: int | None = None
    show: str | None = None
    hkind: str | None = None
    hlayer: str | None = None
    hhead: str | None = None
    hquery: int | None = None
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    """What the page offers, to clamp a link to: the model's shape and the page's caps."""

    layers: int
    heads: int
    max_beam: int
    max_chars: int
    tabs: tuple[str, ...]
    shows: tuple[str, ...] = ("weights",)


def _whole(value: str, lo: int, hi: int) -> tuple[int | None, bool]:
    """(value clamped to lo…hi, whether it was clamped); None if not a whole number."""
    text = value.strip()
    if not (text.lstrip("-").isdigit() and len(text) < 10):
        return None, False
    n = int(text)
    return min(max(n, lo), hi), not lo <= n <= hi


def parse_link(params: dict[str, str], limits: Limits) -> Link:
    """URL query parameters (name → value, as the request holds them) → a Link and its notices."""
    link, notes = Link(), []

    def note(text: str) -> None:
        notes.append(text)

    for name, raw in params.items():
        value = str(raw)
        if name != "s" and len(value) > MAX_PARAM_CHARS:
            note(f"The link's “{name[:20]}” was too long and was ignored.")
            continue
        if name == "s":
            text = value.replace("\x00", "")
            if len(text) > limits.max_chars:
                note(f"The link's sentence was cut to its first {limits.max_chars:,} characters.")
                text = text[: limits.max_chars]
            link.s = text or None
        elif name == "beam":
            link.beam, clamped = _whole(value, 1, limits.max_beam)
            if link.beam is None or clamped:
                note(
                    f"The link's beam size must be 1 to {limits.max_beam}"
                    + ("; clamped." if clamped else "; ignored.")
                )
        elif name == "tab":
            link.tab = value if value in limits.tabs else None
            if link.tab is None:
                note("The link names a tab this page does not have; ignored.")
        elif name in ("kind", "hkind"):
            ok = value in KINDS
            setattr(link, name, value if ok else None)
            if not ok:
                note(f"The link's “{name}” must be one of {', '.join(KINDS)}; ignored.")
        elif name in ("layer", "hlayer"):
            if name == "layer" and value == "all":
                link.layer = "all"
                continue
            n, clamped = _whole(value, 1, limits.layers)
            setattr(link, name, None if n is None else str(n))
            if n is None or clamped:
                note(
                    f"The link's “{name}” must be 1 to {limits.layers}"
                    + ("; clamped." if clamped else "; ignored.")
                )
        elif name == "hhead":
            n, clamped = _whole(value, 1, limits.heads)
            link.hhead = None if n is None else str(n)
            if n is None or clamped:
                note(
                    f"The link's “hhead” must be 1 to {limits.heads}"
                    + ("; clamped." if clamped else "; ignored.")
                )
        elif name == "heads":
            picked = [p.strip() for p in value.split(",") if p.strip()]
            good = sorted({int(p) for p in picked if p.isdigit() and 1 <= int(p) <= limits.heads})
            link.heads = [str(h) for h in good] or None
            if len(good) != len(picked):
                note(f"The link's heads must be 1 to {limits.heads}; the others were dropped.")
        elif name in FLAGS:
            if value in ("0", "1"):
                setattr(link, FLAGS[name], value == "1")
            else:
                note(f"The link's “{name}” must be 0 or 1; ignored.")
        elif name in ("step", "hquery"):
            n, _ = _whole(value, 1, 10_000)
            # the URL counts query rows from 1, as the tab's "query 3" does; the Link holds the row index
            setattr(link, name, n if name == "step" or n is None else n - 1)
            if n is None:
                note(f"The link's “{name}” must be a whole number; ignored.")
        elif name == "show":
            link.show = value if value in limits.shows else None
            if link.show is None:
                note(f"The link's “show” must be one of {', '.join(limits.shows)}; ignored.")
        else:
            note(f"The link's “{name[:20]}” means nothing to this page; ignored.")
    link.notices = notes
    return link


def link_query(link: Link) -> str:
    """A Link → its query string (what it says only, in the table's order)."""
    flags = {short: getattr(link, name) for short, name in FLAGS.items()}
    pairs = {
        "s": link.s,
        "beam": link.beam,
        "tab": link.tab,
        "kind": link.kind,
        "layer": link.layer,
        "heads": ",".join(link.heads) if link.heads else None,
        **{k: (None if v is None else int(v)) for k, v in flags.items()},
        "step": link.step,
        "show": link.show,
        "hkind": link.hkind,
        "hlayer": link.hlayer,
        "hhead": link.hhead,
        "hquery": None if link.hquery is None else link.hquery + 1,
    }
    return urlencode({k: v for k, v in pairs.items() if v is not None})
