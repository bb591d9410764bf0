"""The Export tab: the whole trace as JSON and the visible maps as CSV, written only when asked for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..inference import Trace
from ..policy import EXPIRED, VIEW_EVENT
from ..views import file_stem, maps_csv
from . import attention
from .base import Shared, TranslateHook, handler

log = logging.getLogger("explorer")

TITLE = "Export"
UNAVAILABLE = (
    "⚠️ The download is unavailable right now: the server could not write the file ({why}). "
    "Translating and the maps still work."
)


@dataclass
class ExportTab:
    prepare_download: gr.Button
    download_status: gr.Markdown
    download: gr.DownloadButton
    prepare_csv: gr.Button
    csv_download: gr.DownloadButton


def build(shared: Shared) -> ExportTab:
    with gr.Tab(TITLE):
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
        return ExportTab(prepare_download, download_status, download, prepare_csv, csv_download)


def on_translated(t: ExportTab) -> dict:
    """The old files belong to the old trace: offer to prepare new ones."""
    return {
        t.prepare_download: gr.update(interactive=True),
        t.prepare_csv: gr.update(interactive=True),
        t.download_status: "",
        t.download: gr.update(value=None, interactive=False),
        t.csv_download: gr.update(value=None, interactive=False),
    }


def offer(
    shared: Shared, t: ExportTab, key, button: gr.DownloadButton, write: Callable[[Trace], Any]
) -> dict:
    tr = shared.store.get(key)
    if tr is None:
        return {t.download_status: EXPIRED, button: gr.update(value=None, interactive=False)}
    try:
        path = write(tr)
    except OSError as e:  # e.g. a full disk: only the download is lost, translating still works
        log.warning("download file not written: %s", e)
        return {
            t.download_status: UNAVAILABLE.format(why=e.strerror or e),
            button: gr.update(value=None, interactive=False),
        }
    size_kb = max(1, path.stat().st_size // 1024)
    return {
        t.download_status: f"Ready: `{path.name}` ({size_kb:,} KB). Press **{button.label}**.",
        button: gr.update(value=str(path), interactive=True),
    }


def prepare_download(shared: Shared, t: ExportTab, values: dict) -> dict:
    write = lambda tr: shared.files.write(tr, file_stem(tr, "trace"))
    return offer(shared, t, values[shared.trace_state], t.download, write)


def prepare_csv(shared: Shared, t: ExportTab, values: dict) -> dict:
    view = attention.view_of(shared.tabs["attention"], values)
    write = lambda tr: shared.files.write_text(maps_csv(tr, view), file_stem(tr), "csv")
    return offer(shared, t, values[shared.trace_state], t.csv_download, write)


def wire(shared: Shared, t: ExportTab) -> None:
    shared.hooks.append(TranslateHook([], list(on_translated(t)), lambda tr, values: on_translated(t)))
    t.prepare_download.click(
        handler(prepare_download, [shared.trace_state], shared, t),
        shared.trace_state,
        [t.download_status, t.download],
        **VIEW_EVENT,
    )
    csv_inputs = [shared.trace_state, *shared.tabs["attention"].controls]
    t.prepare_csv.click(
        handler(prepare_csv, csv_inputs, shared, t),
        csv_inputs,
        [t.download_status, t.csv_download],
        **VIEW_EVENT,
    )
