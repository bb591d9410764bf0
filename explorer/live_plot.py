"""The explorer's plots (the Attention tab's maps, large map and step chart; every plot of "Inside a head"):
one Plotly <div> each that stays on the page and is redrawn with Plotly.react.

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
# A plot in a closed accordion or a tab not shown has no width: it is drawn when it first gets one
# (and redrawn to its width when that changes), so a folded plot costs nothing until it is opened.
DRAW_JS = """
const host = element.querySelector('.live-plot');
let waited = 0, drawn = null, width = 0;
function draw() {
  const text = props.value;
  if (!window.Plotly) {
    if (text && waited++ < 600) setTimeout(draw, 50);
    return;
  }
  if (!text) { Plotly.purge(host); drawn = null; return; }
  if (host.clientWidth === 0) return;
  if (text === drawn) return;
  drawn = text;
  const fig = JSON.parse(text);
  Plotly.react(host, fig.data, fig.layout, {...fig.config, responsive: true});
}
new ResizeObserver(() => {
  const w = host.clientWidth;
  if (w === width) return;
  const was = width;
  width = w;
  if (w === 0) return;
  if (drawn !== props.value) draw();
  else if (was && window.Plotly && host._fullLayout) Plotly.Plots.resize(host);
}).observe(host);
watch('value', draw);
draw();
"""


def live_plot(elem_id: str, **kwargs) -> gr.HTML:
    """A plot that stays on the page; its value is `figure_json`'s text."""
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


def _rounded(obj, decimals: int):
    """Every float in a figure's lists rounded to `decimals` places (NumPy arrays travel as fixed-size
    binary, "bdata", and stay exact)."""
    if isinstance(obj, dict):
        return {k: _rounded(v, decimals) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, decimals) for v in obj]
    return round(obj, decimals) if isinstance(obj, float) else obj


def figure_json(fig: go.Figure, stem: str, decimals: int | None = None) -> str:
    """The figure and Plotly's config as one JSON text: the camera button saves `<stem>.png` at 2×.
    decimals: round the floats of its lists (17 digits cost the page parse time; hover shows 6)."""
    data = fig.to_plotly_json()
    if decimals is not None:
        data["data"] = _rounded(data["data"], decimals)
    data["config"] = {"toImageButtonOptions": {"filename": stem, "scale": 2}, "displaylogo": False}
    return json.dumps(data, cls=PlotlyJSONEncoder)
