"""The Positional encoding tab: the sinusoids added to every token embedding."""

from __future__ import annotations

import gradio as gr

from ..figures import positional_encoding_figure
from .base import Shared

TITLE = "Positional encoding"


def build(shared: Shared) -> None:
    with gr.Tab(TITLE):
        gr.Markdown(
            "The sinusoidal encoding added to every token embedding: "
            "PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."
        )
        pe = shared.loaded.translator.model.pos_enc[:64].cpu().numpy()
        gr.Plot(positional_encoding_figure(pe), label="Positional encoding", elem_id="pe-plot")


def wire(shared: Shared, components: None) -> None:
    """Nothing to wire: the figure depends on the model only."""
