"""The HTTP API (gradio_client, or POST /gradio_api/call/NAME): plain values in, text or JSON out.

Every endpoint runs the model, so every one is in the model's concurrency group; beam defaults to
the model's own. `API_DEFAULTS` tells the HTTP guard each endpoint's arguments and defaults.
"""

from __future__ import annotations

from dataclasses import asdict

import gradio as gr

from training.head_stats import STATS
from training.kinds import KINDS, shape

from .compare_view import differences_json
from .contributions import contributions, contributions_json
from .head_view import checked, query_steps, sentence_head_stats, stats_json, steps_json
from .heads import Head, parse_head_names
from .inference import InputError, translate_one
from .loading import LoadedModel
from .policy import MODEL_GROUP, capped_ablate, capped_internals, capped_trace, check_beam, refusing

# What every endpoint that answers about one trace names first: the sentence and its tokens.
TOKENS = ("text", "translation", "source_tokens", "target_tokens", "predicted_tokens")
# /contributions rounds to 4 decimals (the command line: 6): at the caps (61 source, 64 target tokens)
# its ~200,000 numbers would be ~1.9 MB with 6, ~1.5 MB with 4, and a response stays under 2 MB.
CONTRIBUTION_DECIMALS = 4


def api_defaults(default_beam: int, required: object) -> dict[str, list]:
    """For http_guard: each endpoint's arguments, with their defaults (`required` where none)."""
    return {
        "translate": [required, default_beam],
        "trace": [required, default_beam, ""],
        "internals": [required, default_beam, "cross", 1, 1, 1],
        "ablate": [required, required, default_beam],
        "head_stats": [required, default_beam],
        "contributions": [required, default_beam],
        "compare": [required, required, default_beam],
    }


def _whole(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise InputError(f"{what} must be a whole number (from 1); got {value!r}")
    return int(value)


def register(loaded: LoadedModel) -> None:
    """Add the endpoints to the gr.Blocks being built."""
    default_beam = loaded.translator.decoding.beam

    @refusing("/translate")
    def translate_api(text: str, beam: int = default_beam) -> str:
        # no attention capture, so the model's own maximum input length
        return translate_one(loaded.translator, text, beam=check_beam(beam))

    @refusing("/trace")
    def trace_api(text: str, beam: int = default_beam, force: str = "") -> dict:
        """The trace JSON; `force`: a Chinese translation to explain instead of the model's own (empty: its own)."""
        return capped_trace(loaded, text, beam, force=force or None).to_json()

    @refusing("/internals")
    def internals_api(
        text: str,
        beam: int = default_beam,
        kind: str = "cross",
        layer: int = 1,
        head: int = 1,
        query: int = 1,
    ) -> dict:
        """One query of one head, step by step (1-based layer, head and query row; kind encoder, decoder or cross)."""
        if kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        sel = Head(kind, _whole(layer, "layer") - 1, _whole(head, "head") - 1, _whole(query, "query") - 1)
        check_beam(beam)  # before the model runs
        tr = capped_internals(loaded, text, beam)
        steps = query_steps(tr, checked(tr, sel), pre_norm=loaded.translator.model.cfg.pre_norm)
        out = {k: getattr(tr, k) for k in TOKENS}
        return {**out, **steps_json(steps), "checks": tr.to_json()["checks"], "notices": tr.notices}

    @refusing("/ablate")
    def ablate_api(text: str, heads: str, beam: int = default_beam) -> dict:
        """Switch heads off (\"cross:2:1,encoder:1:3\", 1-based) and re-translate; Δ log p per output token."""
        if not isinstance(heads, str):
            raise InputError(f"heads must be text like cross:2:1,encoder:1:3; got {heads!r}")
        chosen = parse_head_names(heads, shape(loaded.translator.model.cfg))
        return {**capped_ablate(loaded, text, chosen, beam), "heads": [s.name for s in chosen]}

    @refusing("/head_stats")
    def head_stats_api(text: str, beam: int = default_beam) -> dict:
        """Per-head statistics of this sentence's maps, and the corpus figures shipped with the weights (or null)."""
        tr = capped_trace(loaded, text, beam)
        return {
            "translation": tr.translation,
            "descriptions": STATS,
            "sentence": stats_json(sentence_head_stats(tr)),
            "corpus": loaded.head_stats,
        }

    @refusing("/contributions")
    def contributions_api(text: str, beam: int = default_beam) -> dict:
        """What each token contributed: attention × value norm per head and per layer, ALTI+ and rollout
        through the whole model ([layer][head][query][key]; source [T][S], target [T][T], …), 4 decimals."""
        tr = capped_internals(loaded, text, beam)
        out = {k: getattr(tr, k) for k in TOKENS}
        c = contributions_json(contributions(tr, loaded.translator), CONTRIBUTION_DECIMALS)
        checks = None if tr.checks is None else asdict(tr.checks)
        return {**out, "contributions": c, "checks": checks, "notices": tr.notices}

    @refusing("/compare")
    def compare_api(a: str, b: str, beam: int = default_beam) -> dict:
        """Two sentences traced alike: each one's tokens, translation and notices, and per kind the
        difference maps B − A [layer][head][row][key] where both rows and keys align (else null)."""
        traces = [capped_trace(loaded, text, beam) for text in (a, b)]
        fields = ("text", "translation", "source_tokens", "target_tokens", "predicted_tokens", "notices")
        one = {name: {k: getattr(tr, k) for k in fields} for name, tr in zip("ab", traces)}
        return {**one, "differences": differences_json(*traces, decimals=CONTRIBUTION_DECIMALS)}

    endpoints = (
        translate_api,
        trace_api,
        internals_api,
        ablate_api,
        head_stats_api,
        contributions_api,
        compare_api,
    )
    for fn in endpoints:
        gr.api(fn, api_name=fn.__name__.removesuffix("_api"), concurrency_id=MODEL_GROUP)
