"""End to end in real headless Chromium: the app as `python app.py` serves it, driven like a person would.

Needs Debian's chromium, fonts-noto-cjk and Python Playwright (.ci/run installs them).
Screenshots go to $E2E_SCREENSHOTS (default: the test's tmp dir).
"""

import time

from app_process import CHROMIUM, CHROMIUM_ARGS, E2E_WAIT_MS, FIRST_MAP, require_browser

require_browser()
from playwright.sync_api import sync_playwright  # noqa: E402

PLOT_STATE = """sel => {
  const el = document.querySelector(sel + ' .js-plotly-plot');
  if (!el || !el.data) return null;
  const ax = el.layout;
  const full = el._fullData || [];  // plotly's decoded arrays (el.data may hold base64 "bdata")
  const z = full.length && full[0].z ? Array.from(full[0].z, row => Array.from(row, v => Number.isNaN(v) ? null : v)) : null;
  return {
    // Maps, not the grey layers that mark masked cells.
    n: el.data.filter(t => t.type === 'heatmap' && !String(t.hovertemplate).includes('masked')).length,
    z: z,
    // Labels are the heatmap's categories; zero-width spaces keep repeated tokens apart.
    x: full.length && full[0].x ? Array.from(full[0].x, v => String(v).replace(/\u200b/g, '')) : null,
    y: full.length && full[0].y ? Array.from(full[0].y, v => String(v).replace(/\u200b/g, '')) : null,
    shapes: (ax.shapes || []).length,
    shape_rows: (ax.shapes || []).map(s => s.y0 + 0.5),
    title: ((ax.annotations || []).find(a => a.name === 'heading') || ax.title || {}).text,
  };
}"""


def plot(page, sel="#attention-plot"):
    return page.evaluate(PLOT_STATE, sel)


def wait_plot_change(page, before, sel="#attention-plot", timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = plot(page, sel)
        if now and now != before:
            return now
        time.sleep(0.1)
    raise AssertionError(f"{sel} did not change")


def translate(page, text):
    """Type and press Translate; returns the plot as it was, for wait_plot_change."""
    before = plot(page)
    box = page.locator("#source-text textarea, #source-text input").first
    box.fill(text)
    page.click("#translate-btn")
    return before


def test_translate_and_explore_attention(page, shots):
    before = translate(page, "I love you.")
    page.wait_for_function(
        "() => document.querySelector('#translation textarea').value === '我爱你。'", timeout=90000
    )
    cross = wait_plot_change(page, before)
    assert cross["title"].startswith("Cross-attention")
    assert cross["n"] == 4  # one layer (the last) × all heads: the readable default
    assert cross["x"] == ["i", "love", "you", ".", "&lt;/s&gt;"]
    assert cross["y"][1] == "我 → 爱"
    page.screenshot(path=str(shots / "cross.png"), full_page=True)

    page.evaluate("() => { window.__mapDiv = document.querySelector('#attention-plot .js-plotly-plot'); }")
    page.locator("#kind label", has_text="Decoder self-attention").click()
    dec = wait_plot_change(page, cross)
    # redrawn in place (Plotly.react on the same <div>), not re-created: see explorer/live_plot.py
    assert page.evaluate(
        "() => document.querySelector('#attention-plot .js-plotly-plot') === window.__mapDiv"
    )
    assert dec["title"].startswith("Decoder self-attention")
    assert dec["z"][0][1] is None  # masked future: empty cell, not a zero
    assert dec["x"][1] == "我"

    page.locator("#layer label", has_text="all").click()
    all_layers = wait_plot_change(page, dec)
    assert all_layers["n"] == 2 * 4

    page.locator("#layer label", has_text="1").click()
    one_layer = wait_plot_change(page, all_layers)
    assert one_layer["n"] == 4

    page.locator("#heads label", has_text="1").first.click()
    three_heads = wait_plot_change(page, one_layer)
    assert three_heads["n"] == 3 and three_heads["z"] != one_layer["z"]

    page.locator("#average label", has_text="average").click()
    averaged = wait_plot_change(page, three_heads)
    assert averaged["n"] == 1

    page.locator("#kind label", has_text="Encoder self-attention").click()
    enc = wait_plot_change(page, averaged)
    assert enc["x"] == enc["y"] and len(enc["z"]) == 5
    page.screenshot(path=str(shots / "encoder.png"), full_page=True)


def test_step_slider_highlights_rows_and_shows_top5(page, shots):
    step_before = plot(page, "#step-plot")
    first = wait_plot_change(page, translate(page, "She is my sister."))
    step_plot = wait_plot_change(page, step_before, "#step-plot")
    number = page.locator("#step input[type=number]")
    number.fill("3")
    number.press("Enter")
    moved = wait_plot_change(page, step_plot, "#step-plot")
    assert moved["title"].startswith("step 3/")
    page.screenshot(path=str(shots / "step.png"), full_page=True)
    highlighted = wait_plot_change(page, first)
    assert set(first["shape_rows"]) == {0}  # step 1 outlines row 1 (0-based 0)
    assert highlighted["shapes"] == highlighted["n"] and set(highlighted["shape_rows"]) == {2}


def test_markup_in_the_input_is_shown_as_text(page, shots):
    state = wait_plot_change(page, translate(page, "I love <img src=x onerror=alert(1)> you."))
    page.wait_for_timeout(500)
    assert page.dialogs == []
    assert any("&lt;" in x for x in state["x"])  # escaped, rendered as literal text
    page.screenshot(path=str(shots / "markup.png"), full_page=True)
    assert page.locator("img[src='x']").count() == 0


def test_empty_input_shows_a_message(page):
    translate(page, "   ")
    page.wait_for_selector("#notices :text('Type an English sentence')", timeout=E2E_WAIT_MS)


def test_trace_json_download_and_png_button(page, tmp_path):
    wait_plot_change(page, translate(page, "Thank you."))
    page.get_by_role("tab", name="Export").click()
    page.click("#prepare-trace")  # the file is written only when asked for
    page.wait_for_selector("#download-status :text('Ready')", timeout=E2E_WAIT_MS)
    button = page.locator("#download-trace")
    page.wait_for_function(
        "() => { const b = document.querySelector('#download-trace');"
        " return b && !b.disabled && !b.querySelector('button[disabled]'); }",
        timeout=E2E_WAIT_MS,
    )
    with page.expect_download(timeout=E2E_WAIT_MS) as info:
        button.click()
    path = tmp_path / "trace.json"
    info.value.save_as(path)
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["text"] == "Thank you." and data["predicted_tokens"][-1] == "</s>"
    page.get_by_role("tab", name="Attention").click()
    page.hover("#attention-plot .js-plotly-plot")
    assert page.locator("#attention-plot [data-title='Download plot as a PNG']").count() == 1


def test_the_first_visit_shows_a_translated_example_and_an_example_click_translates(page, shots):
    # The fixture waited for FIRST_MAP without a click: the page opened on a drawn map.
    first = plot(page)
    assert first["n"] >= 1 and first["z"] and page.input_value("#translation textarea")
    page.get_by_role("button", name="I love you.").click()
    page.wait_for_function(
        "() => document.querySelector('#translation textarea').value === '我爱你。'", timeout=90000
    )
    assert page.input_value("#source-text textarea") == "I love you."
    clicked = wait_plot_change(page, first)
    assert clicked["x"] == ["i", "love", "you", ".", "&lt;/s&gt;"]


BOXES = """sel => {
  const root = document.querySelector(sel);
  const box = r => ({l: r.left, r: r.right, t: r.top, b: r.bottom});
  const ticks = [...root.querySelectorAll('.xtick text, .ytick text')]
    .filter(e => e.textContent.trim() !== '').map(e => box(e.getBoundingClientRect()));
  const titles = [...root.querySelectorAll('.annotation-text, .gtitle')]
    .filter(e => e.textContent.trim() !== '').map(e => ({text: e.textContent, ...box(e.getBoundingClientRect())}));
  return {plot: box(root.getBoundingClientRect()), ticks, titles};
}"""


def overlapping(boxes: list[dict]) -> list[tuple[dict, dict]]:
    return [
        (a, b)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if min(a["r"], b["r"]) - max(a["l"], b["l"]) > 0.5 and min(a["b"], b["b"]) - max(a["t"], b["t"]) > 0.5
    ]


def test_on_a_phone_nothing_overlaps_or_is_cut_and_the_page_never_scrolls_sideways(app_url, shots):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(app_url)
        page.wait_for_selector(FIRST_MAP, timeout=E2E_WAIT_MS)
        before = translate(page, "She reads a book every night before she goes to bed and sleeps.")
        wait_plot_change(page, before)
        page.wait_for_timeout(500)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for sel in ("#attention-plot", "#step-plot"):
            found = page.evaluate(BOXES, sel)
            assert found["ticks"], sel
            assert overlapping(found["ticks"]) == [], sel
            frame = found["plot"]
            for t in found["titles"]:
                assert frame["l"] - 1 <= t["l"] and t["r"] <= frame["r"] + 1 and frame["t"] - 1 <= t["t"], (
                    sel,
                    t,
                )
        page.screenshot(path=str(shots / "phone.png"), full_page=True)
        browser.close()


def test_under_beam_search_the_chosen_token_is_marked_in_the_step_chart(page):
    beam = page.locator("input[aria-label='number input for Beam size (1 = greedy)']")
    if beam.count() == 0:
        beam = page.locator("input[type=number]").first
    beam.fill("4")
    beam.press("Enter")
    step_before = plot(page, "#step-plot")
    wait_plot_change(page, translate(page, "She is my sister."))
    wait_plot_change(page, step_before, "#step-plot")
    bars = page.evaluate(
        """() => { const el = document.querySelector('#step-plot .js-plotly-plot');
        const d = el._fullData[0]; return {text: Array.from(d.text), colours: Array.from(d.marker.color)}; }"""
    )
    chosen = [i for i, t in enumerate(bars["text"]) if "chosen" in t]
    assert (
        len(chosen) == 1
        and bars["colours"][chosen[0]] != bars["colours"][(chosen[0] + 1) % len(bars["text"])]
    )


def test_picking_alti_draws_a_different_map_and_the_source_versus_target_bars(page, shots):
    weights = wait_plot_change(page, translate(page, "I love you."))
    assert page.locator("#share-plot .js-plotly-plot").count() == 0 or not page.is_visible("#share-plot")
    page.locator("#method label", has_text="ALTI+").click()
    alti = wait_plot_change(page, weights)
    assert alti["title"].startswith("ALTI+") and alti["n"] == 1  # one map from every layer and head
    assert alti["z"] != weights["z"] and alti["x"] == weights["x"]
    page.wait_for_selector("#share-plot .js-plotly-plot .barlayer", timeout=E2E_WAIT_MS)
    bars = page.evaluate(
        """() => { const el = document.querySelector('#share-plot .js-plotly-plot');
        return el._fullData.map(t => Array.from(t.x)); }"""
    )
    assert len(bars) == 2 and all(abs(s + t - 1) < 1e-6 for s, t in zip(*bars))  # source + target prefix
    assert page.locator("#layer input:disabled").count() > 0  # one matrix: the layer does not apply
    page.screenshot(path=str(shots / "alti.png"), full_page=True)
    page.locator("#method label", has_text="attention weights").click()
    back = wait_plot_change(page, alti)
    assert back["z"] == weights["z"] and back["title"] == weights["title"]
    page.wait_for_selector("#share-plot", state="hidden", timeout=E2E_WAIT_MS)


def test_lines_view_and_chinese_words(page, shots):
    before = translate(page, "I love you.")
    wait_plot_change(page, before)
    page.locator("#display label", has_text="lines").first.click()
    page.wait_for_selector(
        "#attention-plot .js-plotly-plot .scatterlayer .trace", state="attached", timeout=E2E_WAIT_MS
    )
    opacities = page.evaluate(  # the lines are layout shapes named after their query (lines_figures.py)
        """() => (document.querySelector('#attention-plot .js-plotly-plot').layout.shapes || [])
             .filter(s => /^q\\d+$/.test(s.name || '')).map(s => s.opacity)"""
    )
    assert opacities and all(0.01 <= o <= 1 for o in opacities)  # one line per pair over the threshold
    assert not page.query_selector("#attention-plot .heatmaplayer .hm")
    page.locator("#kind label", has_text="Decoder").first.click()
    page.locator("#words input").check()
    page.wait_for_function(
        """() => (document.querySelector('#attention-plot .js-plotly-plot').layout.yaxis2 || {}).ticktext
             ?.includes('我爱你')""",
        timeout=E2E_WAIT_MS,
    )
    page.screenshot(path=str(shots / "lines-decoder-words.png"), full_page=True)
    page.locator("#display label", has_text="map").first.click()
    page.wait_for_selector("#attention-plot .js-plotly-plot .heatmaplayer .hm", timeout=E2E_WAIT_MS)


def test_choosing_the_second_hypothesis_explains_it_in_every_map(page, shots):
    before = translate(page, "She is my sister.")
    page.wait_for_function(
        "() => document.querySelector('#translation textarea').value === '她是我的姐姐。'", timeout=90000
    )
    own = wait_plot_change(page, before)
    page.get_by_role("tab", name="Beam search").click()
    cells = page.locator("#beam-hypotheses [role=gridcell]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#beam-hypotheses [role=gridcell]')].some(c => c.innerText === '2')",
        timeout=E2E_WAIT_MS,
    )
    second = cells.nth(7)  # row 2, its translation (6 columns)
    chosen = second.inner_text()
    assert chosen and chosen != "她是我的姐姐。"
    second.click()
    page.wait_for_function(
        "t => document.querySelector('#translation textarea').value === t", arg=chosen, timeout=E2E_WAIT_MS
    )
    assert page.locator("#force-text textarea").input_value() == chosen
    page.wait_for_function(
        "() => document.querySelectorAll('#beam-hypotheses [role=gridcell]')[11]?.innerText === '◀ shown'",
        timeout=E2E_WAIT_MS,
    )
    page.screenshot(path=str(shots / "beam-chosen.png"), full_page=True)
    page.get_by_role("tab", name="Attention").click()
    forced = wait_plot_change(page, own)
    # the maps' rows are the chosen translation's, read and predicted one character at a time
    assert (
        [y.split(" → ")[1] for y in forced["y"]]
        == [*chosen, "&lt;/s&gt;"]
        != [y.split(" → ")[1] for y in own["y"]]
    )
    page.wait_for_function("() => document.body.innerText.includes('and is given')", timeout=E2E_WAIT_MS)
    page.screenshot(path=str(shots / "forced-attention.png"), full_page=True)


def test_a_link_restores_its_view_and_the_address_bar_follows_the_view(app_url, shots):
    # issue 27.1: a link sets the sentence and the view, translates, opens its tab; a hostile parameter
    # is named in a notice; a link taken from a changed view shows the same figure in a fresh page
    link = "?s=Where+is+the+book%3F&kind=decoder&layer=1&heads=2,3&evil=%3Cb%3Ex%3C%2Fb%3E"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def opened(url, width=1400, map_shown=True):
            pg = browser.new_page(viewport={"width": width, "height": 1000})
            pg.goto(url)
            pg.wait_for_selector("#translation textarea", timeout=E2E_WAIT_MS)
            pg.wait_for_function(
                "document.querySelector('#translation textarea').value.length > 0", timeout=E2E_WAIT_MS
            )
            if map_shown:  # a link that opens another tab leaves the map undrawn (hidden plots wait)
                pg.wait_for_selector(FIRST_MAP, timeout=E2E_WAIT_MS)
            return pg

        pg = opened(app_url + link)
        assert pg.input_value("#source-text textarea") == "Where is the book?"
        assert pg.input_value("#translation textarea") == "书在哪里？"
        checked = "() => document.querySelector('#kind input:checked').value"
        pg.wait_for_function(f"({checked})() === 'decoder'", timeout=E2E_WAIT_MS)
        titles = pg.evaluate(
            "() => document.querySelector('#attention-plot .js-plotly-plot').layout.annotations.map(a => a.text)"
        )
        assert (
            "layer 1 · head 2" in titles and "layer 1 · head 3" in titles and "layer 1 · head 1" not in titles
        )
        assert "“evil” means nothing" in pg.inner_text("#link-notices")
        assert not pg.locator("#link-notices b").count()  # markup in a link stays text
        before = plot(pg)
        pg.get_by_label("Encoder self-attention").check()
        wait_plot_change(pg, before)
        pg.wait_for_function("location.search.includes('kind=encoder')", timeout=E2E_WAIT_MS)
        z = "() => JSON.stringify(document.querySelector('#attention-plot .js-plotly-plot').data.map(d => d.z))"
        fresh = opened(pg.url, width=390)
        fresh.wait_for_function(f"({checked})() === 'encoder'", timeout=E2E_WAIT_MS)
        time.sleep(1.5)  # the restored view's own redraw
        assert fresh.evaluate(z) == pg.evaluate(z)
        fresh.screenshot(path=str(shots / "link-restored-390.png"), full_page=True)
        head = opened(app_url + "?s=I+love+you.&tab=head", map_shown=False)
        head.wait_for_function(
            "document.querySelector('.tabs [role=tab][aria-selected=true]').textContent.trim() === 'Inside a head'",
            timeout=E2E_WAIT_MS,
        )
        browser.close()
