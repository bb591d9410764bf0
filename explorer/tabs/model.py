"""The Model tab: what the model is, and how its training went."""

from __future__ import annotations

import gradio as gr

from training.files import TRAINING_LOG_FILE

from ..model_figures import model_summary_markdown, training_curves_figure
from .base import Shared

TITLE = "Model"


def build(shared: Shared) -> None:
    with gr.Tab(TITLE):
        loaded = shared.loaded
        n_params = sum(p.numel() for p in loaded.translator.model.parameters())
        gr.Markdown(
            model_summary_markdown(loaded.translator.info, n_params, loaded.model_id), elem_id="model-summary"
        )
        log = loaded.training_log
        if log:
            gr.Plot(
                training_curves_figure(log["history"], shipped_epochs(log)),
                label="Training curves",
                elem_id="training-curves",
            )
        else:
            gr.Markdown(
                f"No `{TRAINING_LOG_FILE}` in this weights folder, so no training curves: "
                "`python -m training export` writes one."
            )


def shipped_epochs(log: dict) -> list[int]:
    """The epochs behind the shipped weights: the averaged ones, else the one (an older log has only it)."""
    if log.get("averaged_epochs"):
        return list(log["averaged_epochs"])
    return [log["shipped_epoch"]] if log.get("shipped_epoch") is not None else []


def wire(shared: Shared, components: None) -> None:
    """Nothing to wire: the tab depends on the model only."""
