"""Links restore the view they name: the server side (which controls a URL sets) and in Chromium (every
parameter the link lists, seen in the controls and the figures; a link copied from a changed view shows
the same figure in a fresh page)."""

import json
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from app_process import CHROMIUM, CHROMIUM_ARGS, E2E_WAIT_MS, FIRST_MAP, require_browser

from explorer.share_link import restore


def by_id(out: dict) -> dict:
    return {getattr(c, "elem_id", None) or type(c).__name__: v for c, v in out.items()}


def test_a_link_sets_the_controls_it_names_and_leaves_the_rest(page_parts):
    _, shared = page_parts
    params = {"s": "I love you.", "beam": "2", "kind": "decoder", "layer": "1", "heads": "1,3", "avg": "1",
              "tab": "head", "step": "3", "hkind": "cross", "hhead": "2", "hquery": "4"}  # fmt: skip
    v = by_id(restore(shared, params))
    assert v["source-text"] == "I love you." and v["beam"] == 2
    assert (v["kind"], v["layer"], v["heads"], v["average"]) == ("decoder", "1", ["1", "3"], "average")
    assert (
        v["head-kind"] == "cross" and v["head-head"] == "2" and v["head-query"] == 3 and "head-layer" not in v
    )
    assert v["link-notices"] == "" and "per-map" not in v
    out = restore(shared, params)
    assert out[shared.link_tab] == "Inside a head" and out[shared.link_step] == 3


@pytest.mark.parametrize(
    "params, notice",
    [
        ({"layer": "99"}, "clamped"),
        ({"kind": "<img src=x>"}, "encoder, decoder, cross"),
        ({"x": "1"}, "means nothing"),
    ],
)
def test_a_hostile_link_is_clamped_or_ignored_with_a_notice(page_parts, params, notice):
    _, shared = page_parts
    v = by_id(restore(shared, params))
    assert notice in v["link-notices"] and "<img" not in v["link-notices"]
    assert "kind" not in v or v["kind"] in ("encoder", "decoder", "cross")


# Every parameter the issue lists, none at the page's default (the toy model: 2 layers, 4 heads, beam 4).
LINK = {"s": "She is my sister.", "beam": "2", "tab": "head", "kind": "decoder", "layer": "2", "heads": "1,3",
        "avg": "1", "words": "1", "specials": "0", "step": "3", "hkind": "encoder", "hlayer": "2", "hhead": "3",
        "hquery": "3"}  # fmt: skip
HEAD = "encoder self-attention · layer 2 · head 3 · query 3: “my”"  # hquery counts from 1, as the tab does
CONTROLS = """() => {
  const q = s => document.querySelector(s), on = id => (q('#' + id + ' input:checked') || {}).value;
  // (the pickers of a tab never opened are not on the page: undefined)
  return {s: q('#source-text textarea').value, beam: q('#beam input[type=number]').value, kind: on('kind'),
    layer: on('layer'), heads: [...document.querySelectorAll('#heads input:checked')].map(e => e.name).join(','),
    avg: on('average'), words: q('#words input').checked, specials: q('#show-special input').checked,
    step: q('#step input[type=range]').value, hkind: on('head-kind'), hlayer: on('head-layer'),
    hhead: on('head-head'), hquery: q('#head-query input')?.value,
    tab: q('.tabs [role=tab][aria-selected=true]').textContent.trim()};
}"""
FIGURE = """sel => {
  const el = document.querySelector(sel + ' .js-plotly-plot');
  if (!el || !el.data) return null;
  const maps = el.data.filter(t => t.type === 'heatmap' && !String(t.hovertemplate).includes('masked'));
  return {maps: maps.length, x: maps.length ? maps[0].x : null, y: maps.length ? maps[0].y : null,
    titles: (el.layout.annotations || []).map(a => a.text), rows: (el.layout.shapes || []).map(s => s.y0 + 0.5),
    meta: el.layout.meta || null, json: JSON.stringify({data: el.data, layout: el.layout})};
}"""


URL_REFS = """() => {
  const bases = new Set();
  for (const el of document.querySelectorAll('.js-plotly-plot [style*="url("], .js-plotly-plot [clip-path]')) {
    for (const v of [el.style.fill, el.style.stroke, el.getAttribute('clip-path')]) {
      const m = v && v.match(/url\\(["']?([^#"')]*)#/);
      if (m) bases.add(m[1]);
    }
  }
  return {here: location.href.split('#')[0], bases: [...bases]};
}"""


def test_in_chromium_a_link_restores_every_parameter_and_a_copied_link_shows_the_same_figure(app_url, shots):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def opened(url, width=1400):
            context = browser.new_context(
                viewport={"width": width, "height": 1000}, permissions=["clipboard-read", "clipboard-write"]
            )
            pg = context.new_page()
            pg.goto(url)
            pg.wait_for_function(
                "document.querySelector('#translation textarea')?.value.length > 0", timeout=E2E_WAIT_MS
            )
            return pg

        def figure(pg, sel="#attention-plot"):
            return pg.evaluate(FIGURE, sel)

        pg = opened(app_url + "?" + urlencode(LINK))
        # Inside a head, the tab the link names: its kind, layer, head and query, in the pickers and the figures
        pg.wait_for_function(f"document.querySelector('#head-title')?.innerText.includes({json.dumps(HEAD)})",
                             timeout=E2E_WAIT_MS)  # fmt: skip
        pg.wait_for_function(
            "sel => document.querySelector(sel + ' .js-plotly-plot')?.layout?.meta", arg="#head-values-plot"
        )
        assert figure(pg, "#head-values-plot")["meta"] == HEAD
        assert pg.evaluate(CONTROLS) == {
            "s": "She is my sister.", "beam": "2", "kind": "decoder", "layer": "2", "heads": "1,3", "avg": "average",
            "words": True, "specials": False, "step": "3", "hkind": "encoder", "hlayer": "2", "hhead": "3",
            "hquery": "my", "tab": "Inside a head",
        }  # fmt: skip
        pg.screenshot(path=str(shots / "link-restored-head-1400.png"), full_page=True)
        # the address bar names the same view (what "Copy link" would copy)
        assert LINK.items() <= dict(parse_qsl(urlsplit(pg.url).query)).items()
        # the beam: the translation is the one a 2-beam search chose
        pg.get_by_role("tab", name="Beam search").click()
        pg.wait_for_function(
            "document.querySelector('#beam-summary')?.innerText.includes('with 2 beams')", timeout=E2E_WAIT_MS
        )
        # the Attention tab's map: decoder self-attention, layer 2, heads 1 and 3 averaged into one map, whole
        # words (姐姐 is one), no <s> or </s>, and step 3's row (the one reading 是) outlined
        pg.get_by_role("tab", name="Attention").click()
        pg.wait_for_selector(FIRST_MAP, timeout=E2E_WAIT_MS)
        fig = figure(pg)
        assert fig["maps"] == 1 and "layer 2 · mean of heads 1, 3" in fig["titles"]
        assert any(t.startswith("Decoder self-attention") for t in fig["titles"])
        assert fig["x"] == ["她", "是", "我", "的", "姐姐"] and not any("s&gt;" in y for y in fig["y"])
        assert [fig["y"][int(r)] for r in fig["rows"]] == ["是 → 我"]
        pg.screenshot(path=str(shots / "link-restored-attention-1400.png"), full_page=True)

        # A changed view, copied with the button: a fresh page shows the same figure, byte for byte
        pg.locator("#average label", has_text="grid").click()
        pg.wait_for_function("location.search.includes('avg=0')", timeout=E2E_WAIT_MS)
        pg.wait_for_function(
            "() => document.querySelector('#attention-plot .js-plotly-plot').data.filter(t => t.type === 'heatmap'"
            " && !String(t.hovertemplate).includes('masked')).length === 2",
            timeout=E2E_WAIT_MS,
        )
        time.sleep(0.5)  # no other redraw on its way
        # The address bar moved with every change: the plots' colour bars and clip paths (which Plotly names by
        # the page's full URL, since Gradio's page has a <base>) still refer to this document, so they draw.
        refs = pg.evaluate(URL_REFS)
        assert refs["bases"] == [refs["here"]] and "avg=0" in refs["here"], refs
        pg.click("#copy-link")
        copied = pg.evaluate("navigator.clipboard.readText()")
        assert (
            "tab=attention" in copied and "avg=0" in copied
        )  # the tab on screen, not the one the link named
        want = figure(pg)
        fresh = opened(copied)
        fresh.wait_for_function(
            "([sel, want]) => (window.__f = document.querySelector(sel + ' .js-plotly-plot')) && "
            "JSON.stringify({data: __f.data, layout: __f.layout}) === want",
            arg=["#attention-plot", want["json"]],
            timeout=E2E_WAIT_MS,
        )
        head_tab = {"hkind", "hlayer", "hhead", "hquery"}  # that tab was not opened in the fresh page
        attention = lambda c: {k: v for k, v in c.items() if k not in head_tab}  # noqa: E731
        assert attention(fresh.evaluate(CONTROLS)) == {**attention(pg.evaluate(CONTROLS)), "tab": "Attention"}
        phone = opened(copied, width=390)
        phone.wait_for_selector(FIRST_MAP, timeout=E2E_WAIT_MS)
        time.sleep(1)
        assert figure(phone)["x"] == want["x"] and figure(phone)["maps"] == 2
        phone.screenshot(path=str(shots / "link-restored-390.png"), full_page=True)
        browser.close()
