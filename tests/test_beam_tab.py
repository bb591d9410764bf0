"""The Beam search tab and forced translations on the page, without a browser: the handlers called as
Gradio calls them, checked against traces made independently (explorer.inference.trace)."""

import gradio as gr
import numpy as np
import pytest
from conftest import translate_values

from explorer import page
from explorer.beam_view import CHOICE, GIVEN, SHOWN, history_html, history_rows
from explorer.inference import trace
from explorer.page import run
from explorer.policy import CAPS
from explorer.tabs import beam as beam_tab
from explorer.views import step_view

TEXT = "She is my sister."


@pytest.fixture(scope="module")
def parts(page_parts):
    _, shared = page_parts
    return shared, shared.tabs["beam"], shared.force


def translate(shared, force_box, text=TEXT, beam=4, force=""):
    return run(shared, {**translate_values(shared, text, beam), force_box: force})


def test_the_table_lists_the_traces_hypotheses_best_first_the_choice_marked(parts, loaded):
    shared, t, force = parts
    out = translate(shared, force)
    tr = shared.store.get(out[shared.trace_state])
    own = trace(loaded.translator, TEXT, beam=4, hypotheses=True, **CAPS)  # made independently
    assert (
        tr.hypotheses == own.hypotheses and tr.beam_history == own.beam_history and len(own.hypotheses) >= 2
    )
    rows = out[t.table]["data"]
    assert [r[1] for r in rows] == [h["translation"] for h in own.hypotheses]
    assert [r[2] for r in rows] == [round(h["logprob"], 4) for h in own.hypotheses]
    assert [r[3] for r in rows] == [round(h["score"], 4) for h in own.hypotheses]
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
    assert rows[0][5] == f"{CHOICE} · {SHOWN}" and all(r[5] == "" for r in rows[1:])
    assert "Beam search with 4 beams" in out[t.summary] and "<table>" in out[t.history]
    assert out[shared.translation] == own.translation and "Explaining" not in out[shared.notices]


def test_choosing_a_hypothesis_traces_it_forced_and_every_map_is_that_texts_pass(parts, loaded):
    shared, t, force = parts
    key = translate(shared, force)[shared.trace_state]
    hyps = shared.store.get(key).hypotheses
    chosen = beam_tab.on_choose(shared, force, {shared.trace_state: key}, 1)
    assert chosen == {force: hyps[1]["translation"]}
    out = translate(shared, force, force=chosen[force])  # the page's Translate, chained to the click
    tr = shared.store.get(out[shared.trace_state])
    ref = trace(loaded.translator, TEXT, beam=4, force=hyps[1]["translation"], **CAPS)
    assert tr.forced and tr.force == hyps[1]["translation"] and out[shared.translation] == ref.translation
    for name in ("encoder_self", "decoder_self", "cross"):
        np.testing.assert_array_equal(getattr(tr, name), getattr(ref, name))
    assert tr.predicted_prob == ref.predicted_prob and tr.target_tokens == ref.target_tokens
    # the search is still listed (the same one), the given hypothesis marked as shown
    assert tr.hypotheses == hyps
    rows = out[t.table]["data"]
    assert rows[0][5] == CHOICE and rows[1][5] == SHOWN and len(rows) == len(hyps)
    assert "hypothesis 2" in out[t.summary] and "Explaining the Chinese given" in out[shared.notices]
    # row 1 is the model's own: the box empties and the page traces the decoded translation again
    assert beam_tab.on_choose(shared, force, {shared.trace_state: key}, 0) == {force: ""}
    back = shared.store.get(translate(shared, force, force="")[shared.trace_state])
    assert not back.forced and back.translation == hyps[0]["translation"]


def test_a_forced_translations_step_chart_and_caption_say_given(parts, loaded):
    shared, _, force = parts
    out = translate(shared, force, text="I love you.", force="我爱茶。")
    attention = shared.tabs["attention"]
    assert (
        "is **given**" in out[attention.step_caption]
        and "Beam search chose" not in out[attention.step_caption]
    )
    tr = shared.store.get(out[shared.trace_state])
    fig, caption = step_view(tr, 2)  # 茶 where the model expects 你
    assert "is **given** **`茶`**" in caption and f"ranked {tr.predicted_rank[2]}" in caption.replace(
        "th", ""
    )
    texts = list(fig.data[0].text)
    assert sum("· given" in s for s in texts) == 1 and not any("chosen" in s for s in texts)
    own_fig, own_caption = step_view(trace(loaded.translator, "I love you.", beam=4, **CAPS), 2)
    assert "given" not in own_caption and any("· chosen" in s for s in own_fig.data[0].text)


def test_a_given_translation_the_search_did_not_finish_is_listed_last_and_ranked_in_words(parts):
    shared, t, force = parts
    out = translate(shared, force, text="I love you.", force="茶茶我。")
    tr = shared.store.get(out[shared.trace_state])
    rows = out[t.table]["data"]
    assert rows[-1][0] is None and rows[-1][1] == "茶茶我。" and rows[-1][5] == f"{GIVEN} · {SHOWN}"
    assert rows[-1][2] == round(tr.score, 4) and len(rows) == len(tr.hypotheses) + 1
    assert "did not finish" in out[t.summary]
    # a click on that row (no hypothesis) or on an expired trace changes nothing
    skip = beam_tab.on_choose(shared, force, {shared.trace_state: out[shared.trace_state]}, len(rows) - 1)
    assert (
        skip == gr.skip() and beam_tab.on_choose(shared, force, {shared.trace_state: "gone"}, 1) == gr.skip()
    )


def test_an_empty_or_blank_box_is_the_models_own_translation(parts):
    shared, _, force = parts
    for blank in ("", "   ", None):
        tr = shared.store.get(translate(shared, force, force=blank)[shared.trace_state])
        assert not tr.forced and tr.force is None


def test_greedy_has_one_row_and_no_steps(parts):
    shared, t, force = parts
    out = translate(shared, force, beam=1)
    assert len(out[t.table]["data"]) == 1 and out[t.history] == "" and "Greedy decoding" in out[t.summary]


def test_the_history_table_is_the_recorded_search_escaped_and_outlines_the_choice(parts, loaded):
    shared, _, force = parts
    tr = shared.store.get(translate(shared, force)[shared.trace_state])
    rows = history_rows(tr)
    assert len(rows) == len(tr.beam_history) and rows[-1]["last"]
    for row, step in zip(rows, tr.beam_history):
        assert len(row["kept"]) == sum(c["fate"] == "kept" for c in step["candidates"])
        assert len(row["finished"]) == sum(c["fate"] == "finished" for c in step["candidates"])
    # the search's choice: one outlined candidate per step, up to its </s>
    path = tr.hypotheses[0]["tokens"]
    outlined = [n for n, row in enumerate(rows) for g in ("kept", "finished") for *_, on in row[g] if on]
    assert outlined == list(range(len(path)))  # finished at its own step (this search keeps its choice)
    html_ = history_html(tr)
    assert "&lt;/s&gt;" in html_ and "<b></s>" not in html_ and html_.count("beam-path") == len(path) + 1


def test_the_page_wires_the_tab_and_the_box(page_parts):
    demo, shared = page_parts
    assert page.TABS.index(beam_tab) == page.TABS.index(page.compare) + 1
    runs = [f for f in demo.fns.values() if f.name == "run"]
    assert all(shared.force in f.inputs for f in runs)
    # new English empties the box: an example's click fills it with "", typing empties it in the browser
    example = next(f for f in demo.fns.values() if f.name == "load_example")
    assert example.outputs == [shared.text, shared.force]
    assert all(e[1] == "" for e in shared.examples.examples)
    # a click on a hypothesis is one event: it writes the box and translates, in the model's group
    chosen = next(f for f in demo.fns.values() if f.name == "on_row")
    (translate,) = [f for f in runs if f.inputs == chosen.inputs and f.trigger_after is None][:1]
    assert chosen.outputs == [*translate.outputs, shared.force]
    assert chosen.concurrency_id == translate.concurrency_id != "views"


def test_a_click_on_a_hypothesis_translates_it_in_the_same_event(page_parts, loaded):
    demo, shared = page_parts
    force = shared.force
    key = translate(shared, force)[shared.trace_state]
    hyps = shared.store.get(key).hypotheses
    chosen = next(f for f in demo.fns.values() if f.name == "on_row")
    values = {**translate_values(shared, TEXT, 4), force: "", shared.trace_state: key}
    args = [values.get(c, getattr(c, "value", None)) for c in chosen.inputs]
    evt = gr.SelectData(None, {"index": [1, 1], "value": hyps[1]["translation"], "selected": True})
    out = chosen.fn(evt, *args)
    tr = shared.store.get(out[shared.trace_state])
    ref = trace(loaded.translator, TEXT, beam=4, force=hyps[1]["translation"], **CAPS)
    assert out[force] == hyps[1]["translation"] and tr.forced and out[shared.translation] == ref.translation
    np.testing.assert_array_equal(tr.cross, ref.cross)
    # a click on no hypothesis changes nothing
    evt = gr.SelectData(None, {"index": [99, 0], "value": "", "selected": True})
    assert chosen.fn(evt, *args) == gr.skip()  # every output left as it is


def test_choosing_a_hypothesis_reuses_the_search_on_screen_and_lists_what_a_new_search_would(
    parts, loaded, monkeypatch
):
    # Beam search depends on the input and beam only: explaining a hypothesis beside the trace on
    # screen needs its teacher-forced pass, not a second search.
    import explorer.inference as inference

    shared, t, force = parts
    key = translate(shared, force)[shared.trace_state]
    hyps = shared.store.get(key).hypotheses
    searches = []
    real = inference._search
    monkeypatch.setattr(inference, "_search", lambda *a, **k: searches.append(a) or real(*a, **k))
    values = {**translate_values(shared, TEXT, 4), force: hyps[1]["translation"], shared.trace_state: key}
    out = run(shared, values)
    tr = shared.store.get(out[shared.trace_state])
    assert searches == [] and tr.forced
    fresh = trace(loaded.translator, TEXT, beam=4, force=hyps[1]["translation"], hypotheses=True, **CAPS)
    assert len(searches) == 1  # the independent trace did search
    assert tr.hypotheses == fresh.hypotheses and tr.beam_history == fresh.beam_history
    np.testing.assert_array_equal(tr.cross, fresh.cross)
    # another beam, or other text, is another search
    run(shared, {**values, shared.beam: 3})
    run(shared, {**values, shared.text: "I love you."})
    assert len(searches) == 3
