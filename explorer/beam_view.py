"""What the "Beam search" tab shows, pure (no Gradio): a Trace's finished hypotheses as table rows, the
sentence that says how the search ranks them, and its steps (which prefixes it kept, which finished,
which it dropped) as an HTML table.

Everything comes from `Trace.hypotheses` and `Trace.beam_history` (inference.trace(..., hypotheses=True)):
the tab shows the search that produced the model's translation, never a second one.
"""

from __future__ import annotations

import html

from training.decoding import length_penalty
from training.text import detokenize_zh

from .inference import Trace

HEADERS = ["#", "Translation", "log p (sum)", "score (normalized)", "tokens", ""]
CHOICE = "★ the search's choice"
SHOWN = "◀ shown"
GIVEN = "given (not a hypothesis)"
DROPPED_SHOWN = 3  # per step, the best few of what the search dropped: the rest scored lower still


def shown_index(tr: Trace) -> int | None:
    """Which hypothesis the page is explaining: the model's own (0), the given one when it is among
    them, or None (a given translation the search did not finish)."""
    if not tr.hypotheses:
        return None
    if not tr.forced:
        return 0
    return next((i for i, h in enumerate(tr.hypotheses) if h["tokens"] == tr.predicted_tokens), None)


def given_score(tr: Trace) -> float:
    """A given translation's score as the search would rank it: log p / length_penalty(|Y|, α)."""
    return tr.score / length_penalty(len(tr.predicted_tokens), tr.decoding.get("length_penalty", 0.0))


def hypothesis_rows(tr: Trace) -> list[list]:
    """One row per finished hypothesis, best first (rank, translation, summed log-probability, the
    normalized score the search ranks by, the tokens, marks); a given translation the search did not
    finish comes last, unranked."""
    if not tr.hypotheses:
        return []
    shown = shown_index(tr)
    rows = []
    for i, h in enumerate(tr.hypotheses):
        marks = [CHOICE] if i == 0 else []
        marks += [SHOWN] if i == shown else []
        rows.append([i + 1, h["translation"], round(h["logprob"], 4), round(h["score"], 4),
                     " ".join(h["tokens"]), " · ".join(marks)])  # fmt: skip
    if tr.forced and shown is None:
        rows.append([None, tr.translation, round(tr.score, 4), round(given_score(tr), 4),
                     " ".join(tr.predicted_tokens), f"{GIVEN} · {SHOWN}"])  # fmt: skip
    return rows


def hypothesis_choice(tr: Trace, row: int) -> str | None:
    """The Chinese to explain for a clicked row: "" for the search's choice (the model's own, traced as
    decoded), a hypothesis's text for the others, None for a row that is no hypothesis."""
    if not tr.hypotheses or not 0 <= row < len(tr.hypotheses):
        return None
    return "" if row == 0 else tr.hypotheses[row]["translation"]


def summary_markdown(tr: Trace) -> str:
    """How the search ranked what it found, and which translation the page explains."""
    beam = tr.decoding.get("beam", 1)
    alpha = tr.decoding.get("length_penalty", 0.0)
    if tr.hypotheses is None:
        return "Translate a sentence to see the hypotheses beam search weighed."
    if beam == 1:
        head = (
            "**Greedy decoding (beam size 1)** takes the likeliest token at every step: it weighs one "
            "translation. Set the beam size above 1 to see a search weigh several."
        )
    else:
        head = (
            f"**Beam search with {beam} beams** finished {len(tr.hypotheses)} distinct translations. It "
            f"returns the one with the best **score** = log p ÷ ((5 + length) / 6)^{alpha:g}: the summed "
            "log-probability (`</s>` included), divided so that a longer sentence is not punished for "
            "every token it adds. Click a row to explain that translation: every tab then shows its "
            "teacher-forced pass."
        )
    shown = shown_index(tr)
    if not tr.forced:
        tail = "Shown: the model's own translation (★)."
    elif shown is not None:
        tail = (
            f"Shown: hypothesis {shown + 1}, given in the box under the English (clear the box, or click "
            "row 1, for the model's own)."
        )
    else:
        better = sum(h["score"] > given_score(tr) for h in tr.hypotheses)
        tail = (
            "Shown: the Chinese given in the box under the English, which the search did not finish; "
            f"scored like them it would rank {better + 1} of {len(tr.hypotheses) + 1}."
        )
    return f"{head}\n\n{tail}"


def _prefix(tokens: list[str], new: str, score: float, css: str) -> str:
    text = html.escape(detokenize_zh(tokens))
    return (
        f'<span class="beam-cand {css}">{text}<b>{html.escape(new)}</b>'
        f' <span class="beam-score">{score:.2f}</span></span>'
    )


def on_path(tr: Trace) -> list[str]:
    """The model's translation's tokens (</s> included): the path the table highlights."""
    return tr.hypotheses[0]["tokens"] if tr.hypotheses else []


def history_rows(tr: Trace) -> list[dict]:
    """Per step: {"step", "kept", "finished", "dropped", "last"}, each a list of (prefix tokens, new token,
    score, on the chosen path), best first; dropped cut to the best DROPPED_SHOWN."""
    path = on_path(tr)
    out = []
    for n, step in enumerate(tr.beam_history or []):
        groups = {"kept": [], "finished": [], "dropped": []}
        for c in step["candidates"]:
            prefix = step["live"][c["parent"]]["tokens"]
            full = prefix + [c["token"]]
            groups[c["fate"]].append((prefix, c["token"], c["score"], path[: len(full)] == full))
        groups["dropped"] = groups["dropped"][:DROPPED_SHOWN]
        out.append({"step": n + 1, **groups, "last": step["last"]})
    return out


def history_html(tr: Trace) -> str:
    """The search step by step as one table: what each step kept, finished and dropped, the model's
    translation's path outlined. Empty without a beam."""
    if not tr.beam_history:
        return ""
    cells = []
    for row in history_rows(tr):
        tds = []
        for fate in ("kept", "finished", "dropped"):
            items = [
                _prefix(p, tok, s, f"beam-{fate}" + (" beam-path" if on else ""))
                for p, tok, s, on in row[fate]
            ]
            tds.append(f"<td data-label='{fate}'>{' '.join(items) or '–'}</td>")
        note = " (then stopped)" if row["last"] else ""
        cells.append(f"<tr><th scope='row' data-label='step'>{row['step']}{note}</th>{''.join(tds)}</tr>")
    return (
        '<div class="beam-history"><p class="beam-legend">Each step extends every live prefix by one '
        "token and ranks the extensions by their summed log-probability (the number): the best "
        f"{tr.decoding.get('beam', 1)} stay live, an extension ending in &lt;/s&gt; among them is finished, "
        "the rest are dropped (the best few shown). <span class='beam-cand beam-path'>Outlined</span>: "
        "the path of the search's choice.</p><table><thead><tr><th>step</th><th>kept</th>"
        "<th>finished (&lt;/s&gt;)</th><th>dropped</th></tr></thead><tbody>"
        + "".join(cells)
        + "</tbody></table></div>"
    )
