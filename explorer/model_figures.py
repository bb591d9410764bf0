"""Figures about the model itself (the Model tab): its training curves. Arrays in, go.Figure out; no Gradio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import FONT


def training_curves_figure(history: Sequence[dict[str, Any]], shipped: Sequence[int] = ()) -> go.Figure:
    """Per-epoch training loss, learning rate and dev BLEU/chrF from a training log.

    `history` holds one record per epoch (`epoch`, `train_loss`, optional `lr`, `dev_bleu`,
    `dev_chrf`), as `training_log.json` stores it; `shipped`: the epoch whose weights were shipped,
    or the epochs averaged into them, marked.
    """
    epochs = [h["epoch"] for h in history]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            "training loss (label-smoothed cross-entropy)",
            "learning rate",
            "dev scores (greedy, during training)",
        ),
    )
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=[h.get("train_loss") for h in history],
            mode="lines+markers",
            name="loss",
            marker_size=4,
        ),
        row=1,
        col=1,
    )
    if any("lr" in h for h in history):
        fig.add_trace(
            go.Scatter(x=epochs, y=[h.get("lr") for h in history], mode="lines", name="learning rate"),
            row=2,
            col=1,
        )
    for key, name in (("dev_bleu", "BLEU"), ("dev_chrf", "chrF")):
        if any(key in h for h in history):
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=[h.get(key) for h in history], mode="lines+markers", name=name, marker_size=4
                ),
                row=3,
                col=1,
            )
    if shipped:
        first, last = min(shipped), max(shipped)
        if len(shipped) > 1:
            fig.add_vrect(x0=first, x1=last, fillcolor="#e4572e", opacity=0.12, line_width=0)
        fig.add_vline(x=first, line=dict(color="#e4572e", dash="dot", width=1.5))
        fig.add_annotation(
            x=first,
            y=1,
            yref="paper",
            text=f"shipped: epoch {first}"
            if len(shipped) == 1
            else f"shipped: epochs {first}–{last} averaged",
            showarrow=False,
            # Inside the loss plot, left of the line, under its title: a phone's title runs across the
            # whole width, and the loss at the last epochs is low, so the top right is free.
            xanchor="right",
            yanchor="top",
            xshift=-3,
            bgcolor="rgba(255,255,255,0.8)",
            font=dict(color="#e4572e", size=11),
        )
    fig.update_xaxes(title_text="epoch", row=3, col=1)
    fig.update_layout(
        height=620,
        margin=dict(l=10, r=10, t=50, b=10),
        font=dict(family=FONT, size=12),
        hovermode="x unified",
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.08, yanchor="top"),
    )
    for a in fig.layout.annotations[:3]:  # subplot titles: left-aligned so a phone never cuts them
        a.update(x=0, xanchor="left", font=dict(size=13))
    return fig


def model_summary_markdown(config: dict[str, Any], n_parameters: int, model_id: str) -> str:
    """What the model is, from its config.json: shape, size, tokenizer, data, decoding and dev scores."""
    m, tok = config.get("model", {}), config.get("tokenizer", {})
    dec, metrics, train = config.get("decoding", {}), config.get("metrics", {}), config.get("training", {})
    source = (
        f"NLTK words split into {m.get('src_vocab_size', '?'):,} SentencePiece subword pieces"
        if tok.get("subwords")
        else f"{m.get('src_vocab_size', '?'):,} NLTK words (rarer words read as `<unk>`)"
    )
    lines = [
        f"**{model_id}** · the encoder–decoder Transformer of *Attention Is All You Need*, trained from scratch.",
        "",
        f"- **layers**: {m.get('n_encoder_layers', '?')} encoder + {m.get('n_decoder_layers', '?')} decoder "
        f"({'pre' if m.get('pre_norm', True) else 'post'}-norm)",
        f"- **width**: d_model {m.get('d_model', '?')}, {m.get('n_heads', '?')} heads of "
        f"{m.get('d_model', 0) // max(1, m.get('n_heads', 1))}, feed-forward {m.get('d_ff', '?')}",
        f"- **parameters**: {n_parameters:,}",
        f"- **English input**: {source}, lower-cased",
        f"- **Chinese output**: {m.get('tgt_vocab_size', '?'):,} characters (simplified)",
        f"- **decoding**: beam {dec.get('beam', '?')}, length penalty {dec.get('length_penalty', '?')}",
    ]
    if metrics:
        lines.append(
            f"- **dev scores**: BLEU {metrics.get('dev_bleu', '?')} · chrF {metrics.get('dev_chrf', '?')} "
            f"on {metrics.get('dev_file', 'dev')} ({metrics.get('measured', '')})"
        )
    if train:
        hours = train.get("train_seconds", 0) / 3600
        lines.append(
            f"- **training**: {train.get('epochs', '?')} epochs, {train.get('steps', '?'):,} steps, "
            f"{hours:.1f} h on {train.get('hardware', '?')}"
        )
    lines.append(
        "- **data**: English–Mandarin sentence pairs from [Tatoeba](https://tatoeba.org) (CC-BY 2.0 FR)"
    )
    return "\n".join(lines)
