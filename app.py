"""Entry point: `python app.py` serves the app (Hugging Face Spaces run this file too).

The attention explorer is not built yet: for now this serves a placeholder page
that says so. Train, evaluate and export with `python -m training --help`.
"""
import os

import gradio as gr

PLACEHOLDER = """
# English → Chinese attention explorer

**Not built yet.** The Transformer, its training pipeline and the evaluation CLI exist
(`python -m training --help`); the interactive attention heatmaps and the shipped
weights are the next steps of the project.
"""


def build() -> gr.Blocks:
    with gr.Blocks(title="Attention explorer (placeholder)") as demo:
        gr.Markdown(PLACEHOLDER)
    return demo


if __name__ == "__main__":
    build().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
