import json
import re

import gradio as gr
import pytest
from conftest import translate_values, view_values
from gradio_client import Client

from explorer.page import build_demo, run
from explorer.tabs import attention


def test_blocks_build_without_launching(loaded):
    demo = build_demo(loaded)
    assert isinstance(demo, gr.Blocks)
    api_names = {d.api_name for d in demo.fns.values() if d.api_name}
    assert {"translate", "trace"} <= api_names


def fn_named(demo, name):
    return next(f for f in demo.fns.values() if f.name == name)


def test_only_the_api_endpoints_are_public_and_all_model_calls_share_one_concurrency_group(loaded):
    demo = build_demo(loaded)
    public = {f.api_name for f in demo.fns.values() if f.api_visibility == "public"}
    assert public == {"translate", "trace", "internals", "ablate", "head_stats", "contributions", "compare"}
    ui_events = [f for f in demo.fns.values() if f.api_visibility != "public" and f.name != "load_example"]
    assert ui_events and all(f.api_visibility == "private" for f in ui_events)
    model_calls = [
        fn_named(demo, name)
        for name in (
            "run",
            "translate_api",
            "trace_api",
            "internals_api",
            "ablate_api",
            "head_stats_api",
            "contributions_api",
            "compare_api",
            "on_compare",
        )
    ]
    assert {f.concurrency_id for f in model_calls} == {"model"}
    assert len(fn_named(demo, "run").targets) == 2  # the Translate button and Enter in the textbox
    # each view control, "Open one map large" and "Draw as" (map or lines)
    assert len(fn_named(demo, "rerender").targets) == 9
    # "What to show" may compute contributions (the model): model group; re-renders never run it
    method = fn_named(demo, "on_method")
    assert method.concurrency_id == "model" and [(t[1]) for t in method.targets] == ["change"]
    # re-renders skip the queue (one POST: the page saves Gradio's per-stage bookkeeping), bounded by a semaphore
    assert not any(fn_named(demo, name).queue for name in ("rerender", "on_step"))


def test_contributions_are_computed_in_model_group_events_only_and_kept_with_the_trace(
    page_parts, monkeypatch
):
    _, shared = page_parts
    t = shared.tabs["attention"]
    calls = []
    real = attention.capped_contributions
    monkeypatch.setattr(attention, "capped_contributions", lambda *a, **k: calls.append(a) or real(*a, **k))
    key = run(shared, translate_values(shared, "I love you.", 1))[shared.trace_state]
    assert calls == []  # the weights need no contributions
    values = {shared.trace_state: key, **view_values(shared, kind="cross", layer="2"), t.method: "alti"}
    # a toggle (view group) that overtakes "What to show": the weights, and a notice, never the model
    shown = by_id(attention.rerender(shared, t, values))
    assert calls == [] and shared.store.get(key).contributions is None
    assert "Cross-attention" in shown["attention-plot"] and "not computed yet" in shown["maps-caption"]
    assert shown["share-plot"]["visible"] is False
    picked = by_id(attention.on_method(shared, t, values))  # the model group: computed once, kept
    assert len(calls) == 1 and shared.store.get(key).contributions is not None
    assert "ALTI+" in picked["attention-plot"] and picked["share-plot"]["visible"] is True
    assert picked["layer"]["interactive"] is False and picked["heads"]["interactive"] is False
    again = by_id(attention.rerender(shared, t, {**values, t.show_special: False}))
    assert len(calls) == 1 and "ALTI+" in again["attention-plot"]  # a toggle only reads them
    back = by_id(attention.on_method(shared, t, {**values, t.method: "weights"}))
    assert back["layer"]["interactive"] is True and back["share-plot"]["visible"] is False
    # Translate while a method is picked: computed in the Translate event (the model group) itself
    out = by_id(run(shared, {**translate_values(shared, "I love tea.", 1), t.method: "rollout"}))
    assert len(calls) == 2 and "Attention rollout" in out["attention-plot"]


def outputs_of(demo, name) -> list:
    return fn_named(demo, name).outputs


def test_translate_event_fills_every_output_and_an_error_only_the_notices(page_parts):
    demo, shared = page_parts
    ok = run(shared, translate_values(shared, "I love you.", 1))
    wired = outputs_of(demo, "run")
    assert list(ok) == wired  # a value for every output, none skipped, in the wired order
    assert {c.elem_id: v for c, v in ok.items()}["translation"] == "我爱你。"
    err = {c.elem_id: v for c, v in run(shared, translate_values(shared, "   ", 1)).items()}
    assert list(err) == ["notices"] and "Type an English sentence" in err["notices"]  # the last result stays


def test_translate_endpoint_through_gradio_client(served):
    client = Client(served, verbose=False)
    assert client.predict("I love you.", 1, api_name="/translate") == "我爱你。"


def test_trace_endpoint_returns_the_documented_json(served):
    client = Client(served, verbose=False)
    data = client.predict("Where is the book?", 2, api_name="/trace")
    if isinstance(data, str):
        data = json.loads(data)
    assert data["translation"] == "书在哪里？"
    assert data["target_tokens"][0] == "<s>" and data["predicted_tokens"][-1] == "</s>"
    s, t = len(data["source_tokens"]), len(data["target_tokens"])
    assert len(data["attention"]["cross"][0][0]) == t and len(data["attention"]["cross"][0][0][0]) == s


def test_empty_input_through_the_api_is_a_clear_error(served):
    client = Client(served, verbose=False)
    with pytest.raises(Exception, match="Type an English sentence"):
        client.predict("   ", 1, api_name="/translate")


@pytest.mark.parametrize("beam", [0, 9, 10**6, 2.5, "x", None])
def test_api_rejects_bad_beam_sizes_clearly(served, beam):
    client = Client(served, verbose=False)
    with pytest.raises(Exception, match="beam must be a whole number from 1 to 8"):
        client.predict("I love you.", beam, api_name="/translate")


def test_hidden_specials_note_shows_the_tokens_as_text():
    note = attention.specials_note(False)
    assert "<s>" in note and "<" not in re.sub(
        r"`[^`]*`", "", note
    )  # bare <s> would render as strikethrough HTML
    assert attention.specials_note(True) == ""


def by_id(out: dict) -> dict:
    return {c.elem_id: v for c, v in out.items() if c.elem_id}


def test_the_first_visit_and_an_example_click_translate_through_the_same_handler(loaded):
    demo = build_demo(loaded)
    runs = [f for f in demo.fns.values() if f.name == "run"]
    triggers = {
        (demo.blocks[t[0]].elem_id if t[0] in demo.blocks else t[0], t[1]) for f in runs for t in f.targets
    }
    assert ("translate-btn", "click") in triggers and ("source-text", "submit") in triggers
    # the page opens on a translated example, once a link's parameters (if any) are set
    visit = fn_named(demo, "on_visit")
    assert [t[1] for t in visit.targets] == ["load"] and any(f.trigger_after == visit._id for f in runs)
    example = fn_named(demo, "load_example")
    chained = [f for f in runs if f.trigger_after == example._id]
    assert len(chained) == 1  # an example click fills the box, then translates it
    assert all(f.concurrency_id == "model" and f.js for f in runs)  # queued; the browser adds its width
    text = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "source-text")
    assert text.value  # the first visit's example is in the box


def test_the_events_that_draw_maps_send_the_plot_width_as_their_last_input(page_parts):
    demo, shared = page_parts
    for name in ("run", "rerender", "on_step", "on_method"):
        f = fn_named(demo, name)
        assert f.js == attention.WITH_WIDTH and f.inputs[-1] is shared.client_width, name
    assert not attention.WITH_WIDTH.lstrip().startswith("//")  # Gradio evaluates it as one expression


def test_plots_carry_a_png_name_from_the_sentence_and_the_width_sets_the_layout(page_parts):
    _, shared = page_parts
    wide = by_id(run(shared, translate_values(shared, "I love you.", 1, layer="2", width=1100)))
    phone = by_id(run(shared, translate_values(shared, "I love you.", 1, layer="2", width=390)))
    for out in (wide, phone):
        fig = json.loads(out["attention-plot"])
        assert fig["config"]["toImageButtonOptions"]["filename"] == "attention-i-love-you"

    def domains(out):
        layout = json.loads(out["attention-plot"])["layout"]
        return {tuple(v["domain"]) for k, v in layout.items() if k.startswith("xaxis")}

    assert len(domains(wide)) == 4 and domains(phone) == {(0.0, 1.0)}  # side by side; stacked on a phone
    assert wide["large-plot"]["visible"] is False


def test_one_map_opens_large_in_the_views_kind(page_parts):
    _, shared = page_parts
    values = translate_values(
        shared, "I love you.", 1, kind="encoder", heads=("1", "2"), large="layer 2 · head 3"
    )
    large = by_id(run(shared, values))["large-plot"]
    assert large["visible"] is True
    fig = json.loads(large["value"])
    maps = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(maps) == 1 and any("layer 2 · head 3" in a["text"] for a in fig["layout"]["annotations"])


def test_a_toggle_rerenders_from_the_kept_trace_and_an_expired_key_asks_to_translate_again(page_parts):
    _, shared = page_parts
    key = run(shared, translate_values(shared, "I love you.", 1))[shared.trace_state]
    values = {shared.trace_state: key, **view_values(shared, kind="decoder", layer="1")}
    fig = by_id(attention.rerender(shared, shared.tabs["attention"], values))["attention-plot"]
    assert "Decoder self-attention" in fig and "Cross-attention" not in fig
    gone = attention.rerender(shared, shared.tabs["attention"], {**values, shared.trace_state: "gone"})
    assert list(by_id(gone)) == ["notices"] and "Press Translate again" in by_id(gone)["notices"]


def test_the_model_tab_says_what_the_model_is(loaded):
    from explorer.model_figures import model_summary_markdown

    text = model_summary_markdown(loaded.translator.info, 1234, "toy")
    cfg = loaded.translator.model.cfg
    assert f"{cfg.n_encoder_layers} encoder + {cfg.n_decoder_layers} decoder" in text and "1,234" in text


def test_a_live_plot_sends_the_figure_and_its_config_and_keeps_its_div():
    import plotly.graph_objects as go

    from explorer.live_plot import figure_json, live_plot

    fig = go.Figure(go.Heatmap(z=[[0.25, 0.75]], x=["a", "b"], y=["q"]), layout=dict(height=300))
    sent = json.loads(figure_json(fig, "attention-x"))
    assert sent["config"]["toImageButtonOptions"] == {"filename": "attention-x", "scale": 2}
    assert go.Figure(sent["data"], sent["layout"]).to_plotly_json() == json.loads(fig.to_json())
    # Gradio re-renders the template when the value changes: one without the value stays the same
    # <div>, which Plotly.react then updates in place
    assert "${value}" not in live_plot("x").html_template


def test_the_page_style_includes_every_css_file():
    from explorer.page import CSS_DIR, page_css

    sheets = sorted(CSS_DIR.glob("*.css"))
    assert sheets and all(f.read_text(encoding="utf-8") in page_css() for f in sheets)
    assert ".live-plot-block" in page_css()


def test_trace_endpoint_explains_a_given_translation(served):
    client = Client(served, verbose=False)
    data = client.predict("I love you.", 1, "我爱茶。", api_name="/trace")
    assert data["forced"] is True and data["target_tokens"] == ["<s>", "我", "爱", "茶", "。"]
    own = client.predict("I love you.", 1, api_name="/trace")  # force left out: the model's own
    assert own["translation"] == "我爱你。" and "forced" not in own


def test_a_handler_that_changes_nothing_skips_every_output_through_gradio():
    """Handlers say "nothing changes" with {} (an unchanged pick, a second look at Compare, a table row that is
    no hypothesis). Gradio reads a bare {} as one output's value and fails an event with several outputs:
    through `handler` and `selected` it reaches Gradio as gr.skip(), every output left as it is."""
    import asyncio

    from gradio.state_holder import SessionState

    from explorer.tabs.base import handler, selected

    def nothing(values, evt=None):
        return {}

    with gr.Blocks() as demo:
        a, b = gr.Textbox("a"), gr.Textbox("b")
        table = gr.Dataframe([["x"]])
        bare = gr.Button().click(lambda x: {}, [a], [a, b])
        through_handler = gr.Button().click(handler(nothing, [a]), [a], [a, b])
        through_selected = table.select(selected(nothing, [a]), [a], [a, b])

    def call(event, **kwargs):
        fn = demo.fns[event["id"]]
        return asyncio.run(demo.process_api(block_fn=fn, inputs=["x"], state=SessionState(demo), **kwargs))

    with pytest.raises(ValueError, match="didn't return enough output values"):
        call(bare)  # the reference: Gradio's own reading of {}
    assert call(through_handler)["data"] == [{"__type__": "update"}] * 2
    clicked = gr.SelectData(table, {"index": [0, 0], "value": "x", "row_value": ["x"]})
    assert call(through_selected, event_data=clicked)["data"] == [{"__type__": "update"}] * 2


def test_events_report_progress_only_on_watched_outputs_shown_from_the_start(page_parts):
    """Gradio's page updates the loading status of every component any event reported on, at every stage of
    every event, and leaks a frame loop for an output hidden while pending: so progress goes to few
    outputs, never to one that can be hidden (not shown from the start), and a hidden one to the sink."""
    demo, shared = page_parts
    sink = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "progress-sink")
    events = [fn for fn in demo.fns.values() if fn.fn is not None]
    hideable = {c.elem_id for c in demo.blocks.values() if isinstance(c, gr.HTML) and c.visible is not True}
    assert {"large-plot", "share-plot", "head-terms-plot"} <= hideable
    for fn in events:
        targets = fn.show_progress_on
        assert targets and set(targets) <= set(fn.outputs) | {sink}, fn.name
        assert not hideable & {getattr(c, "elem_id", None) for c in targets}, fn.name
        if fn.show_progress == "hidden":
            assert targets == [sink], fn.name
    measure = next(fn for fn in events if fn.name == "on_importance_click")  # its own targets, kept
    assert {c.elem_id for c in measure.show_progress_on} == {"importance-caption", "head-importance-plot"}
    translate = next(fn for fn in events if fn.name == "run")
    ids = {c.elem_id for c in translate.show_progress_on}
    assert {"translation", "attention-plot"} <= ids and len(ids) < len(translate.outputs) / 2
