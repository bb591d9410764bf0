"""What the model used, for a Trace: attention × value norm, ALTI+ and rollout.

The math lives in `training.contributions` (plain numpy, so that training's faithfulness measurement
can use it too); a Trace with internals already has every field it reads, so this module only adds
what the trace's JSON needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from training.contributions import contributions, contributions_json

from .inference import Trace

__all__ = ["contributions", "contributions_json", "trace_json_with_contributions"]


def trace_json_with_contributions(
    tr: Trace, model_or_weights: Any, internals: bool = False
) -> dict[str, Any]:
    """A trace with internals → its JSON plus `contributions` (6 decimals); `internals` only if asked,
    since they were only needed to compute the contributions."""
    extra = {"contributions": contributions_json(contributions(tr, model_or_weights))}
    if not internals:
        tr = dataclasses.replace(tr, internals=None)  # not converted at all: the JSON is the slow part
    return {**tr.to_json(), **extra}
