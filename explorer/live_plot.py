"""The Attention tab's plots (the maps, the large map, the step chart): one Plotly <div> each that
stays on the page and is redrawn with Plotly.react.

gr.Plot mounts a new <div> for every value, so each toggle paid for a full Plotly.newPlot plus
Svelte's remount. Here a gr.HTML holds the <div> (its template never changes, so Gradio leaves it
alone) and its value is the figure as JSON; a `watch` on the value hands it to Plotly.react, which
redraws only what differs. The page and the tests see the same `#attention-plot .js-plotly-plot`.
"""

from __future__ import annotations

import json

import gradio as gr
import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

# Plotly itself comes with Gradio's plot chunk (it sets window.Plotly), which Gradio loads when a
# gr.Plot is on the page: `plotly_loader` is one, hidden; until it has loaded, drawing waits for it.
DRAW_JS = """
const host = element.querySelector('.live-plot');
let waited = 0;
function draw() {
  const text = props.value;
  if (!window.Plotly) {
    if (text && waited++ < 600) setTimeout(draw, 50);
    return;
  }
  if (!text) { Plotly.purge(host); return; }
  const fig = JSON.parse(text);
  Plotly.react(host, fig.data, fig.layout, {...fig.config, responsive: true});
}
watch('value', draw);
draw();
"""


def live_plot(elem_id: str, **kwargs) -> gr.HTML:
    return gr.HTML(
        "",
        html_template='<div class="live-plot"></div>',
        js_on_load=DRAW_JS,
        elem_classes=["live-plot-block"],
        elem_id=elem_id,
        padding=False,
        **kwargs,
    )


def plotly_loader() -> gr.Plot:
    """An empty gr.Plot kept in the DOM but not shown: it makes Gradio load Plotly for the live plots."""
    return gr.Plot(go.Figure(), visible="hidden", elem_id="plotly-loader")


def figure_json(fig: go.Figure, stem: str) -> str:
    """The figure and Plotly's config as one JSON text: the camera button saves `<stem>.png` at 2×."""
    data = fig.to_plotly_json()
    data["config"] = {"toImageButtonOptions": {"filename": stem, "scale": 2}, "displaylogo": False}
    return json.dumps(data, cls=PlotlyJSONEncoder)
