"""Naming a head: `Head`, and the one parser of "kind:layer:head" names (1-based) that the command
line, the HTTP API and the page share. What kinds exist and how many heads each has is
`training.kinds`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from training.kinds import KINDS

from .inference import InputError

HEAD_NAME = re.compile(rf"^({'|'.join(KINDS)}):(\d+):(\d+)$")
FORMAT = "KIND:LAYER:HEAD (KIND encoder, decoder or cross; layer and head from 1), e.g. cross:2:1,encoder:1:3"


@dataclass(frozen=True)
class Head:
    kind: str  # "encoder" | "decoder" | "cross"
    layer: int  # 0-based
    head: int  # 0-based
    query: int = 0  # 0-based query row

    @property
    def name(self) -> str:
        """As the pickers and the ablation list write it: kind:layer:head, 1-based."""
        return f"{self.kind}:{self.layer + 1}:{self.head + 1}"


def parse_head_names(spec: str | Sequence[str] | None, shape: dict[str, tuple[int, int]]) -> list[Head]:
    """ "cross:2:1, encoder:1:3" (or a list of such names; 1-based) → Heads, duplicates dropped;
    "", "none" or None → [].

    shape: {kind: (layers, heads)}, as `training.kinds.shape` gives it. Raises InputError with one
    line naming what is wrong."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    heads = []
    for item in items:
        m = HEAD_NAME.match(item.strip()) if isinstance(item, str) else None
        if m is None:
            raise InputError(f"{str(item).strip()[:40]!r} is not {FORMAT}")
        kind, layer, head = m.group(1), int(m.group(2)), int(m.group(3))
        n_layers, n_heads = shape[kind]
        if not (1 <= layer <= n_layers and 1 <= head <= n_heads):
            raise InputError(
                f"{kind}:{layer}:{head}: this model has {n_layers} {kind} layers of {n_heads} heads (from 1)"
            )
        heads.append(Head(kind, layer - 1, head - 1))
    return list(dict.fromkeys(heads))


def all_head_names(shape: dict[str, tuple[int, int]]) -> list[str]:
    """Every head of a model of this shape, in kind, layer, head order."""
    return [
        f"{kind}:{layer + 1}:{head + 1}"
        for kind, (n_layers, n_heads) in shape.items()
        for layer in range(n_layers)
        for head in range(n_heads)
    ]
