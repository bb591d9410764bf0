"""What the page shows, top to bottom: one gr.Blocks layout and the components the events use.

No events here: explorer/ui.py wires them. The elem_ids are what the tests and the browser
test find the page by.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from training.config import read_json
from training.files import TRAINING_LOG_FILE

from .figures import positional_encoding_figure
from .head_tab import HeadComponents, build_head_tab
from .live_plot import live_plot, plotly_loader
from .loading import LoadedModel
from .model_figures import model_summary_markdown, training_curves_figure
from .views import KINDS

# Translated on the first visit: the time phrase moves before the verb in Chinese, which the
# cross-attention maps show, and greedy and beam agree, so the step-through tells the same story.
FIRST_EXAMPLE = "My brother reads the newspaper every morning."
EXAMPLES = [
    FIRST_EXAMPLE,
    "I love you.",
    "Where is the train station?",
    "It is going to rain tomorrow.",
    "Do you want to drink some tea?",
    "She reads a book every night before she goes to bed.",  # long enough to go wrong: see why
]
NO_LARGE = "none"


@dataclass
class Components:
    """The components that events read or write (static text and the PE plot are left out)."""

    # input
    text: gr.Textbox
    beam: gr.Slider
    translate_btn: gr.Button
    examples: gr.Examples
    client_width: gr.Number  # the plot's width in px, set by the browser before each render
    # output of a translation
    translation: gr.Textbox
    notices: gr.Markdown
    trace_state: (
        gr.State
    )  # the key of the last Trace in the server's TraceStore; every view re-renders from it
    # Attention tab: the view controls, in the order `make_view` takes them
    kind: gr.Radio
    layer: gr.Radio
    heads: gr.CheckboxGroup
    average: gr.Radio
    show_special: gr.Checkbox
    per_map: gr.Checkbox
    words: gr.Checkbox
    specials_note: gr.Markdown
    attention_plot: gr.HTML
    large: gr.Dropdown
    large_plot: gr.HTML
    step: gr.Slider
    step_caption: gr.Markdown
    step_plot: gr.HTML
    # Export tab: the JSON file is written only when asked for
    prepare_download: gr.Button
    download_status: gr.Markdown
    download: gr.DownloadButton
    prepare_csv: gr.Button
    csv_download: gr.DownloadButton
    head: HeadComponents | None = None  # the "Inside a head" tab (explorer/head_tab.py)

    @property
    def view_controls(self) -> list[gr.components.Component]:
        """The toggles that choose which attention maps are shown, in `make_view`'s order."""
        return [self.kind, self.layer, self.heads, self.average, self.show_special, self.per_map, self.words]


def _training_log(loaded: LoadedModel) -> dict | None:
    folder = loaded.translator.folder
    path = folder / TRAINING_LOG_FILE if folder else None
    try:
        log = read_json(path) if path and path.is_file() else None
    except (OSError, ValueError):  # optional file: a broken one only loses the curves
        return None
    return log if isinstance(log, dict) and isinstance(log.get("history"), list) and log["history"] else None


def build_layout(loaded: LoadedModel, max_beam: int, max_words: int) -> Components:
    """Lay the page out inside the current gr.Blocks; returns the components events need."""
    translator, model_id = loaded.translator, loaded.model_id
    cfg = translator.model.cfg
    n_layers, n_heads = max(cfg.n_encoder_layers, cfg.n_decoder_layers), cfg.n_heads

    gr.Markdown(
        "# English → Chinese attention explorer\n"
        "Type an English sentence, get a Chinese translation from a small Transformer trained from scratch, "
        "and look at every attention map that produced it."
    )
    if loaded.notice:
        gr.Markdown(f"⚠️ {loaded.notice}", elem_id="model-notice")
    trace_state = gr.State(None)
    client_width = gr.Number(None, visible=False)
    with gr.Row(equal_height=False):
        # The cap is said where the text is typed, so a cut is no surprise.
        text = gr.Textbox(
            value=FIRST_EXAMPLE,
            label="English",
            placeholder="I love you.",
            scale=5,
            min_width=280,
            max_length=20000,
            info=f"Up to {max_words} words (punctuation counts); longer input is cut, with a notice.",
            elem_id="source-text",
            autofocus=True,
        )
        with gr.Column(scale=2, min_width=200):
            beam = gr.Slider(
                1, max_beam, value=translator.decoding.beam, step=1, label="Beam size (1 = greedy)"
            )
            translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
    examples = gr.Examples(EXAMPLES, inputs=text, label="Examples (click one to translate it)")
    translation = gr.Textbox(label="Chinese", interactive=False, elem_id="translation", buttons=["copy"])
    notices = gr.Markdown(elem_id="notices")

    with gr.Tab("Attention"):
        with gr.Row():
            kind = gr.Radio(
                [(label, key) for key, label in KINDS.items()],
                value="cross",
                label="Attention",
                elem_id="kind",
            )
            # One layer by default: its heads fit side by side at a readable size. The last, because
            # its cross-attention is the sharpest (mean row entropy 1.2 bits against 1.6 for layer 1).
            layer = gr.Radio(
                ["all"] + [str(i + 1) for i in range(n_layers)],
                value=str(n_layers),
                label="Layer",
                elem_id="layer",
            )
        with gr.Row():
            heads = gr.CheckboxGroup(
                [str(h + 1) for h in range(n_heads)],
                value=[str(h + 1) for h in range(n_heads)],
                label="Heads",
                elem_id="heads",
            )
            average = gr.Radio(
                ["grid", "average"], value="grid", label="Selected heads as", elem_id="average"
            )
            with gr.Column(min_width=200):
                show_special = gr.Checkbox(True, label="Show <s> and </s>", elem_id="show-special")
                per_map = gr.Checkbox(False, label="Scale each map to its own maximum", elem_id="per-map")
                words = gr.Checkbox(
                    False,
                    label="Whole words (pool subword pieces)",
                    visible=translator.subwords is not None,
                    elem_id="words",
                )
        specials_note = gr.Markdown()
        attention_plot = live_plot("attention-plot")
        plotly_loader()
        gr.Markdown(
            "Rows are queries, columns are keys; each row sums to 1. Decoder row *t* reads the token on the "
            "left of the arrow and predicts the one on its right. Grey cells in the decoder self-attention are "
            "the masked future (not a learned zero). Hover a cell for the exact weight."
            + (
                " English words are read as subword pieces; a word's first piece carries SentencePiece's "
                "`▁` mark (`▁s es qu ip ed al ian`), so a piece without it continues the word before. "
                "*Whole words* pools the pieces back: a key's weight is summed over its pieces, an "
                "English query row averaged over them, so every row still sums to 1."
                if translator.subwords is not None
                else ""
            )
        )
        large = gr.Dropdown(
            [NO_LARGE] + [f"layer {la + 1} · head {h + 1}" for la in range(n_layers) for h in range(n_heads)],
            value=NO_LARGE,
            label="Open one map large",
            elem_id="large",
        )
        large_plot = live_plot("large-plot", visible=False)
        with gr.Row():
            with gr.Column(scale=2, min_width=280):
                step = gr.Slider(
                    1, 2, value=1, step=1, label="Step through decoding", interactive=False, elem_id="step"
                )
                step_caption = gr.Markdown()
            with gr.Column(scale=3, min_width=280):
                step_plot = live_plot("step-plot")
    with gr.Tab("Inside a head", elem_id="head-tab") as head_tab:
        head = build_head_tab(loaded, head_tab)
    with gr.Tab("Positional encoding"):
        gr.Markdown(
            "The sinusoidal encoding added to every token embedding: "
            "PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."
        )
        gr.Plot(
            positional_encoding_figure(translator.model.pos_enc[:64].cpu().numpy()),
            label="Positional encoding",
            elem_id="pe-plot",
        )
    with gr.Tab("Model"):
        n_params = sum(p.numel() for p in translator.model.parameters())
        gr.Markdown(model_summary_markdown(translator.info, n_params, model_id), elem_id="model-summary")
        log = _training_log(loaded)
        if log:
            gr.Plot(
                training_curves_figure(log["history"], log.get("shipped_epoch")),
                label="Training curves",
                elem_id="training-curves",
            )
        else:
            gr.Markdown(
                f"No `{TRAINING_LOG_FILE}` in this weights folder, so no training curves: "
                "`python -m training export` writes one."
            )
    with gr.Tab("Export"):
        gr.Markdown(
            "The whole trace (tokens, translation, every attention map as "
            "`[layer][head][query][key]`) as JSON; the maps shown on the Attention tab as CSV (one row per "
            "cell: map, layer, head, query, key, weight). Each plot's camera button saves a PNG named "
            "after the sentence."
        )
        with gr.Row():
            prepare_download = gr.Button("Prepare trace JSON", interactive=False, elem_id="prepare-trace")
            download = gr.DownloadButton("Download trace JSON", interactive=False, elem_id="download-trace")
        with gr.Row():
            prepare_csv = gr.Button("Prepare visible maps as CSV", interactive=False, elem_id="prepare-csv")
            csv_download = gr.DownloadButton("Download CSV", interactive=False, elem_id="download-csv")
        download_status = gr.Markdown(elem_id="download-status")
    gr.Markdown(
        f"<small>Model: `{model_id}` · {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, {n_heads} heads, "
        f"d_model {cfg.d_model} · Training data: sentences from [Tatoeba](https://tatoeba.org) by the "
        "Tatoeba contributors (CC-BY 2.0 FR).</small>",
        elem_id="footer",
    )
    return Components(
        text=text,
        beam=beam,
        translate_btn=translate_btn,
        examples=examples,
        client_width=client_width,
        translation=translation,
        notices=notices,
        trace_state=trace_state,
        kind=kind,
        layer=layer,
        heads=heads,
        average=average,
        show_special=show_special,
        per_map=per_map,
        words=words,
        specials_note=specials_note,
        attention_plot=attention_plot,
        large=large,
        large_plot=large_plot,
        step=step,
        step_caption=step_caption,
        step_plot=step_plot,
        prepare_download=prepare_download,
        download_status=download_status,
        download=download,
        prepare_csv=prepare_csv,
        csv_download=csv_download,
        head=head,
    )
