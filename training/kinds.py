"""The three kinds of attention, once: their names, where their maps are kept, their labels, and
how many layers of heads each has in a model of a given config."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class Kind:
    name: str  # as head names and the API write it: "encoder", "decoder", "cross"
    maps: str  # the field of AttentionMaps, Internals and a Trace that holds this kind's maps
    label: str  # in a sentence: "decoder self-attention"
    title: str  # as a choice or a figure title: "Decoder self-attention (masked)"
    is_self: bool  # queries and keys from the same sequence
    in_encoder: bool


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("encoder", "encoder_self", "encoder self-attention", "Encoder self-attention", True, True),
        Kind(
            "decoder",
            "decoder_self",
            "decoder self-attention",
            "Decoder self-attention (masked)",
            True,
            False,
        ),
        Kind("cross", "cross", "cross-attention", "Cross-attention (decoder → encoder)", False, False),
    )
}


def shape(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    """{kind: (layers, heads per layer)}: the one place that knows how many heads each kind has."""
    return {
        name: (cfg.n_encoder_layers if k.in_encoder else cfg.n_decoder_layers, cfg.n_heads)
        for name, k in KINDS.items()
    }
