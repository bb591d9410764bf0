"""The "Inside a head" tab end to end in headless Chromium, against `python app.py` on 127.0.0.1.

A person translates, clicks a row of the attention map, reads that query step by step, switches a
head off and sees the re-translation. Needs Debian's chromium, fonts-noto-cjk and Python Playwright
(.ci/run installs them). Screenshots go to $E2E_SCREENSHOTS (default: the test's tmp dir).
"""

import re

import pytest
from app_process import E2E_WAIT_MS as WAIT_MS
from app_process import require_browser

require_browser()


# Where a heatmap cell is on screen: the panel titled `panel`, row `row` (0-based), key `col`.
CELL_XY = """([panel, row, col]) => {
  const gd = document.querySelector('#attention-plot .js-plotly-plot');
  if (!gd || !gd._fullLayout) return null;
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  const ann = (gd.layout.annotations || []).find(a => a.text === panel);
  if (!ann) return null;
  for (const name of Object.keys(fl).filter(k => /^xaxis\\d*$/.test(k))) {
    const xa = fl[name], ya = fl['y' + name.slice(1)];
    if (ann.x < xa.domain[0] - 1e-6 || ann.x > xa.domain[1] + 1e-6 || Math.abs(ann.y - ya.domain[1]) > 1e-3) continue;
    return {x: box.left + xa._offset + xa.l2p(col), y: box.top + ya._offset + ya.l2p(row),
            label: String(gd._fullData.find(t => t.yaxis === 'y' + name.slice(5)).y[row]).replace(/\\u200b/g, '')};
  }
  return null;
}"""

PLOT = """sel => {
  const gd = document.querySelector(sel + ' .js-plotly-plot');
  if (!gd || !gd.data || !gd.layout.meta) return null;
  return {title: gd.layout.meta,
          bars: gd.data.filter(t => t.type === 'bar').map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)})),
          masked: gd.data.filter(t => t.type === 'scatter').map(t => Array.from(t.x))};
}"""


def plot(page, sel):
    return page.evaluate(PLOT, sel)


def wait_plot(page, sel, contains, timeout=WAIT_MS):
    page.wait_for_function(
        "([sel, s]) => { const gd = document.querySelector(sel + ' .js-plotly-plot');"
        " return !!(gd && gd._fullLayout && gd.layout.meta && String(gd.layout.meta).includes(s)); }",
        arg=[sel, contains],
        timeout=timeout,
    )
    return plot(page, sel)


def translate(page, text):
    """Translate `text` and wait until the attention map shows it (the page opened on another sentence)."""
    page.locator("#source-text textarea, #source-text input").first.fill(text)
    page.click("#translate-btn")
    page.wait_for_function(
        "(s) => { const gd = document.querySelector('#attention-plot .js-plotly-plot');"
        " const h = gd && gd.layout && (gd.layout.annotations || []).find(a => a.name === 'heading');"
        " return !!(h && String(h.text).includes(s)); }",
        arg=text,
        timeout=WAIT_MS,
    )


def click_cell(page, panel, row, col):
    page.wait_for_function(f"() => ({CELL_XY})({[panel, row, col]!r}) !== null", timeout=WAIT_MS)
    cell = page.evaluate(CELL_XY, [panel, row, col])
    page.mouse.move(cell["x"], cell["y"])  # plotly finds the point on hover, then reports it on click
    page.mouse.click(cell["x"], cell["y"])
    return cell["label"]


def test_click_a_row_read_its_steps_and_switch_a_head_off(page, shots):
    translate(page, "She is my sister.")
    translation = page.input_value("#translation textarea")
    row_label = click_cell(page, "layer 2 · head 3", row=2, col=1)
    assert row_label == "是 → 我"

    # The click opens the tab on that query, layer and head.
    page.wait_for_selector("button[role=tab][aria-selected=true]:has-text('Inside a head')", timeout=WAIT_MS)
    scores = wait_plot(page, "#head-scores-plot", "“是 → 我”")
    assert "cross-attention · layer 2 · head 3" in scores["title"]
    weights = next(b for b in scores["bars"] if b["name"] == "weight")
    assert sum(weights["y"]) == pytest.approx(1.0, abs=1e-6) and scores["masked"] == []
    page.wait_for_selector("#head-summary :text('match the attention map')", timeout=WAIT_MS)
    # The title names the selection once; the trust checks fold out, closed until opened.
    assert "cross-attention · layer 2 · head 3" in page.inner_text("#head-title")
    assert not page.is_visible("#head-checks")  # folded: Gradio mounts it when it is opened
    page.click("#head-checks-fold button.label-wrap")
    page.wait_for_selector("#head-checks :text('Trust checks')", timeout=WAIT_MS)
    assert "是 → 我" in page.locator("#head-query input").input_value()
    page.screenshot(path=str(shots / "head-steps.png"), full_page=True)

    # Decoder self-attention from the picker: the future is masked, not numbered.
    page.locator("#head-kind label", has_text="decoder self-attention").click()
    dec = wait_plot(page, "#head-scores-plot", "decoder self-attention")
    visible = next(b for b in dec["bars"] if b["name"] == "weight")["x"]
    assert dec["masked"] and all(min(m) > max(visible) for m in dec["masked"])
    page.wait_for_selector("#head-terms-caption :text('add up to the captured scores')", timeout=WAIT_MS)

    # Switch a head off and re-translate.
    box = page.locator("#ablate-heads input").first
    box.click()
    box.fill("cross:2:3")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.click("#ablate-btn")
    page.wait_for_selector("#ablate-note :text('Switched off: cross:2:3')", timeout=WAIT_MS)
    assert page.input_value("#ablate-original textarea") == translation
    assert page.input_value("#ablate-translation textarea")
    delta = wait_plot(page, "#ablate-delta-plot", "cross:2:3")
    assert len(delta["bars"][0]["y"]) == len(translation) + 1  # one bar per output token, </s> included
    page.screenshot(path=str(shots / "head-ablated.png"), full_page=True)


# Where a layers × heads cell of a head map is on screen (its customdata names the head).
HEAD_CELL_XY = """([sel, name]) => {
  const gd = document.querySelector(sel + ' .js-plotly-plot');
  if (!gd || !gd._fullData) return null;
  const box = gd.getBoundingClientRect(), fl = gd._fullLayout;
  for (const t of gd._fullData) {
    if (!t.customdata) continue;
    for (let r = 0; r < t.customdata.length; r++) {
      const c = Array.from(t.customdata[r]).indexOf(name);
      if (c < 0) continue;
      const xa = fl['xaxis' + t.xaxis.slice(1)], ya = fl['yaxis' + t.yaxis.slice(1)];
      return {x: box.left + xa._offset + xa.l2p(t.x[c]), y: box.top + ya._offset + ya.l2p(t.y[r])};
    }
  }
  return null;
}"""


def test_importance_map_and_stats_table_select_a_head(page):
    translate(page, "I drink tea every day.")
    page.get_by_role("tab", name="Inside a head").click()
    wait_plot(page, "#head-scores-plot", "query")
    page.click("#importance-btn")
    wait_plot(page, "#head-importance-plot", "Head importance")
    page.wait_for_function(
        f"() => ({HEAD_CELL_XY})(['#head-importance-plot', 'cross:2:3']) !== null", timeout=WAIT_MS
    )
    # the page binds plotly_click to a newly drawn plot within 300 ms (explorer/js/install_clicks.js)
    page.wait_for_function(
        "() => { const gd = document.querySelector('#head-importance-plot .js-plotly-plot');"
        " return !!(gd && gd.__headTabFn); }",
        timeout=WAIT_MS,
    )
    cell = page.evaluate(HEAD_CELL_XY, ["#head-importance-plot", "cross:2:3"])
    page.mouse.move(cell["x"], cell["y"])
    page.mouse.click(cell["x"], cell["y"])
    wait_plot(page, "#head-scores-plot", "cross-attention · layer 2 · head 3")
    page.wait_for_selector("#importance-caption :text('Largest:')", timeout=WAIT_MS)

    # A row of the statistics table (this sentence's: the test model ships no corpus file).
    # The outline on the importance map moved with the click, and the click's place says what it chose.
    page.wait_for_function(
        "() => { const gd = document.querySelector('#head-importance-plot .js-plotly-plot');"
        " const r = gd && (gd.layout.shapes || [])[0]; return !!(r && r.xref === 'x3' && r.x0 === 2.5 && r.y0 === 1.5); }",
        timeout=WAIT_MS,
    )
    assert "cross:2:3" in page.inner_text("#importance-now")
    page.wait_for_selector("#stats-caption :text('no head_stats.json')", timeout=WAIT_MS)
    row = page.locator("#head-stats-table [role=gridcell]").filter(has_text="decoder").first
    row.click()
    page.wait_for_function(
        "() => document.querySelector('#head-title').innerText.includes('decoder self-attention')",
        timeout=WAIT_MS,
    )
    layer, head = re.search(r"layer (\d+) · head (\d+)", page.inner_text("#head-title")).groups()
    wait_plot(page, "#head-scores-plot", f"decoder self-attention · layer {layer} · head {head}")
    assert f"decoder:{layer}:{head}" in page.inner_text("#stats-now")


def test_phone_width_has_no_sideways_scroll(page, shots):
    translate(page, "Do you want to drink some tea?")
    page.get_by_role("tab", name="Inside a head").click()
    wait_plot(page, "#head-scores-plot", "query")
    page.set_viewport_size({"width": 390, "height": 900})
    page.wait_for_timeout(800)  # plotly re-lays out on resize
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    page.screenshot(path=str(shots / "head-phone.png"), full_page=True)
    assert wide <= 390
    # Content versus position of a long sentence, drawn at phone width (its colour bar's title once left
    # the bar no length, and Plotly drew nothing: "Something went wrong with axis scaling").
    long = "When I was a child, my grandmother used to tell me long stories about her village every evening."
    page.locator("#source-text textarea").fill(long)
    page.click("#translate-btn")  # the open tab draws the new sentence too
    page.wait_for_function("() => document.querySelector('#head-status').innerText.includes('grandmother')")
    page.click("#head-kind input[type=radio][value='encoder']")
    page.wait_for_function(
        "() => { const gd = document.querySelector('#head-terms-plot .js-plotly-plot');"
        " return !!(gd && gd._fullLayout && gd.offsetHeight > 600); }",
        timeout=WAIT_MS,
    )
    # The importance map's colour bar had its title beside it too: at 390 px the bar kept ~20 px.
    page.click("#importance-btn")
    page.wait_for_function(
        "() => !!document.querySelector('#head-importance-plot .js-plotly-plot .colorbar .cbfill')",
        timeout=WAIT_MS,
    )
    bar = page.evaluate(
        "() => document.querySelector('#head-importance-plot .colorbar .cbfill').getBoundingClientRect().width"
    )
    assert bar > 150, bar


def test_a_fold_draws_its_plot_when_opened_and_follows_the_pickers(page):
    translate(page, "She is my sister.")
    page.get_by_role("tab", name="Inside a head").click()
    wait_plot(page, "#head-scores-plot", "cross-attention · layer 1 · head 1 · query 1")
    # A query chosen from the menu redraws the steps (the menu's blur is the event).
    page.click("#head-query input")
    page.click("#head-query li[data-index='2']")
    wait_plot(page, "#head-scores-plot", "head 1 · query 3")
    # The keys and values fold is drawn when opened, for what the steps show, and follows the pickers.
    page.click("#head-kv-fold button.label-wrap")
    wait_plot(page, "#head-kv-plot", "cross-attention · layer 1 · head 1 · query 3")
    page.locator("#head-head label", has_text="2").click()
    wait_plot(page, "#head-kv-plot", "head 2 · query 3")
    # Closed, it is left behind; opened again, it shows the head picked meanwhile.
    page.click("#head-kv-fold button.label-wrap")
    page.locator("#head-head label", has_text="3").click()
    wait_plot(page, "#head-scores-plot", "head 3 · query 3")
    page.click("#head-kv-fold button.label-wrap")
    wait_plot(page, "#head-kv-plot", "head 3 · query 3")
    # The menu opened and left as it was: its blur changes nothing, and fails nothing (the app's log is
    # checked when the module's app stops: `app_url`).
    page.click("#head-query input")
    page.click("#head-title")
    page.wait_for_timeout(500)
    wait_plot(page, "#head-scores-plot", "head 3 · query 3")


def animation_frames_per_second(page, seconds: float = 1.0) -> float:
    """Chromium's animation-frame callbacks on the page's main thread, per second, counted from a trace."""
    cdp = page.context.new_cdp_session(page)
    events, done = [], []
    cdp.on("Tracing.dataCollected", lambda e: events.extend(e["value"]))
    cdp.on("Tracing.tracingComplete", lambda e: done.append(True))
    cdp.send("Tracing.start", {"categories": "devtools.timeline", "transferMode": "ReportEvents"})
    page.wait_for_timeout(seconds * 1000)
    cdp.send("Tracing.end")
    while not done:
        page.wait_for_timeout(50)
    cdp.detach()
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    main = {thread for thread, name in names.items() if name == "CrRendererMain"}
    fired = [e for e in events if e.get("name") == "FireAnimationFrame" and (e["pid"], e["tid"]) in main]
    return len(fired) / seconds


def test_switching_kinds_leaves_no_frame_loop_running(page):
    """Content versus position has a plot for self-attention only, hidden for cross-attention. Gradio
    unmounted it while its event was pending, and its status tracker kept a frame loop running from then on:
    one more 60-per-second loop for every switch away from a self-attention kind. No event reports its
    progress on a plot that can be hidden now (page.narrow_progress)."""
    translate(page, "She is my sister.")
    page.get_by_role("tab", name="Inside a head").click()
    wait_plot(page, "#head-scores-plot", "cross-attention · layer 1 · head 1")
    page.wait_for_timeout(500)
    before = animation_frames_per_second(page)
    for kind, title in [("encoder", "encoder self-attention"), ("cross", "cross-attention")] * 3:
        page.click(f"#head-kind input[type=radio][value='{kind}']")
        wait_plot(page, "#head-scores-plot", title)
        # content versus position: drawn for encoder self-attention, collapsed for cross-attention
        state = "visible" if kind == "encoder" else "hidden"
        page.wait_for_selector("#head-terms-plot", state=state, timeout=WAIT_MS)
    page.wait_for_timeout(500)
    after = animation_frames_per_second(page)
    assert after < before + 40, (before, after)  # three leaked loops would add ~180 per second
