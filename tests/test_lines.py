"""The Attention tab's lines view (explorer/lines_figures.py): queries left, keys right, opacity = weight."""

import json

import numpy as np
import pytest
from app_process import CHROMIUM, CHROMIUM_ARGS, E2E_WAIT_MS, FIRST_MAP, require_browser

from explorer.figures import HIGHLIGHT
from explorer.inference import trace
from explorer.lines_figures import HEAD_COLOURS, MEAN_COLOUR, MIN_WEIGHT, lines_figure
from explorer.views import View, attention_view, lines_caption, select
from training.translator import load_weights_dir


@pytest.fixture(scope="module")
def tr(zh_weights):
    return trace(load_weights_dir(zh_weights), "I love you.", beam=1)


def line_shapes(fig):
    """The lines: layout shapes named after their query (the other shapes are sentence separators)."""
    return [s for s in fig.to_dict()["layout"].get("shapes", []) if s.get("name", "").startswith("q")]


def panel_of(s) -> int:
    return int(s["xref"][1:] or 1) - 1


@pytest.mark.parametrize("kind", ["encoder", "cross", "decoder"])
@pytest.mark.parametrize("layer", [None, 1])
def test_every_line_has_its_weight_as_opacity_and_only_faint_pairs_are_left_out(tr, kind, layer):
    sel = select(tr, View(kind=kind, layer=layer))
    w = sel["weights"]  # (layers, heads, q, k)
    colour_head = {HEAD_COLOURS[h]: h for h in range(w.shape[1])}
    seen = {}
    for s in line_shapes(lines_figure(sel)):
        p, h, i, j = panel_of(s), colour_head[s["line"]["color"]], s["y0"], s["y1"]
        assert (s["type"], s["x0"], s["x1"], s["name"]) == ("line", 0, 1, f"q{i}") and s[
            "yref"
        ] == f"y{s['xref'][1:]}"
        assert s["opacity"] == pytest.approx(float(w[p, h, i, j]), rel=1e-7, abs=0)  # float32 rounding
        seen[p, h, i, j] = s["opacity"]
    masked = np.zeros(w.shape[2:], bool) if sel["masked"] is None else sel["masked"]
    want = {(p, h, i, j) for p, h, i, j in zip(*np.nonzero((w >= MIN_WEIGHT) & ~masked))}
    assert set(seen) == want  # every pair at or over the threshold has exactly one line, no other pair has
    assert len(seen) < w.size  # (and some pairs were faint enough to leave out: the caption says how many)


def test_averaged_heads_are_one_colour_and_layers_are_panels(tr):
    sel = select(tr, View(kind="cross", heads=[0, 2], average=True))
    fig = lines_figure(sel)
    assert {s["line"]["color"] for s in line_shapes(fig)} == {MEAN_COLOUR}
    assert {panel_of(s) for s in line_shapes(fig)} == set(range(tr.n_decoder_layers))
    domains = [fig.layout[f"xaxis{'' if p == 0 else p + 1}"].domain for p in range(tr.n_decoder_layers)]
    assert all(a[1] < b[0] for a, b in zip(domains, domains[1:]))  # side by side on a wide screen
    phone = lines_figure(select(tr, View(kind="cross", width=390)))
    ys = [phone.layout[f"yaxis{'' if p == 0 else p + 1}"].domain for p in range(tr.n_decoder_layers)]
    assert all(a[0] > b[1] for a, b in zip(ys, ys[1:]))  # stacked on a phone: it scrolls down, not sideways
    assert phone.layout.xaxis.domain[1] <= 1 and phone.layout.xaxis.domain[0] >= 0


def test_the_step_row_is_drawn_over_the_rest_and_marked(tr):
    sel = select(tr, View(kind="cross", layer=1, step=2))
    lines = line_shapes(lines_figure(sel))
    rows = [s["y0"] for s in lines]
    n = rows.count(2)
    assert n and rows[-n:] == [2] * n  # the step's lines come last: drawn on top
    assert all(t["line"]["width"] == 3 for t in lines[-n:]) and all(
        "width" not in t["line"] or t["line"]["width"] == 1.5 for t in lines[:-n]
    )
    dot = next(
        t for t in lines_figure(sel).to_dict()["data"] if t.get("mode") == "markers" and t.get("y") == [2]
    )
    assert dot["marker"]["color"] == HIGHLIGHT


def test_labels_specials_and_separators_follow_select(tr):
    sel = select(tr, View(kind="cross", layer=1, show_special=False))
    fig = lines_figure(sel)
    assert (
        list(fig.layout.yaxis.ticktext) == sel["y_labels"]
        and list(fig.layout.yaxis2.ticktext) == sel["x_labels"]
    )
    dots = [t for t in fig.to_dict()["data"] if t.get("legendgroup")]
    assert [t["name"] for t in dots] == sel["y_labels"]  # one dot per query: hovering it shows only its lines
    assert [t["legendgroup"] for t in dots] == [f"q{i}" for i in range(len(dots))]  # (lines_hover.js)
    assert fig.layout.showlegend is False  # no legend: the dots do its work
    fig = lines_figure({**sel, "x_breaks": [1], "y_breaks": [0]})
    assert len(fig.layout.shapes) - len(line_shapes(fig)) == 2  # a separator under each column of labels


def test_the_caption_counts_the_lines(tr):
    view = View(kind="decoder", layer=1)
    sel = select(tr, view)
    n = len(line_shapes(lines_figure(sel)))
    assert f"here {n:,} of {int((~sel['masked']).sum()) * sel['weights'].shape[1]:,} pairs" in lines_caption(
        tr, view
    )


def test_the_tab_draws_lines_on_request_and_the_map_unchanged_by_default(page_parts):
    from conftest import translate_values

    from explorer.live_plot import figure_json
    from explorer.page import run
    from explorer.tabs.attention import rerender, view_of
    from explorer.views import file_stem

    _, shared = page_parts
    t = shared.tabs["attention"]
    values = translate_values(shared, "I love you.", 1)
    out = run(shared, values)
    values[shared.trace_state] = out[shared.trace_state]
    tr = shared.store.get(values[shared.trace_state])
    view = view_of(t, values, step=values[t.step], width=None)
    as_map = rerender(shared, t, {**values, t.display: "map"})[t.plot]
    assert as_map == figure_json(attention_view(tr, view), file_stem(tr))  # the map, byte for byte
    shown = rerender(shared, t, {**values, t.display: "lines"})
    fig = json.loads(shown[t.plot])
    assert all(d["type"] == "scatter" for d in fig["data"]) and "opacity the weight" in shown[t.caption]


# The lines on the screen (explorer/js/lines_hover.js hides the paths of the other queries' lines).
SHOWN_LINES = """() => {
  const gd = document.querySelector('#attention-plot .js-plotly-plot'), shapes = gd.layout.shapes || [];
  return [...gd.querySelectorAll('.shapelayer path[data-index]')].filter(p => p.style.display !== 'none')
    .map(p => shapes[Number(p.dataset.index)].name).filter(n => /^q\\d+$/.test(n || ''));
}"""
# Where query i's dot is on the screen (page coordinates).
DOT = """i => {
  const gd = document.querySelector('#attention-plot .js-plotly-plot'), L = gd._fullLayout, box = gd.getBoundingClientRect();
  return {x: box.left + L.xaxis._offset + L.xaxis.l2p(0), y: box.top + L.yaxis._offset + L.yaxis.l2p(i)};
}"""


def test_in_chromium_hovering_a_query_shows_only_its_lines(app_url):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(app_url)
        pg.wait_for_selector(FIRST_MAP, timeout=2 * E2E_WAIT_MS)  # the first visit's example, as a map
        pg.locator("#display label", has_text="lines").first.click()
        pg.wait_for_function(f"({SHOWN_LINES})().length > 0", timeout=E2E_WAIT_MS)
        every = pg.evaluate(SHOWN_LINES)
        assert len(set(every)) > 2 and every.count("q2")
        pg.locator("#attention-plot").scroll_into_view_if_needed()
        dot = pg.evaluate(DOT, 2)
        pg.mouse.move(dot["x"], dot["y"])  # the third query's dot: only its lines
        pg.wait_for_function(f"({SHOWN_LINES})().every(q => q === 'q2')", timeout=E2E_WAIT_MS)
        assert pg.evaluate(SHOWN_LINES) == [q for q in every if q == "q2"]
        pg.mouse.move(5, 5)  # away: all of them
        pg.wait_for_function(f"({SHOWN_LINES})().length === {len(every)}", timeout=E2E_WAIT_MS)
        browser.close()
