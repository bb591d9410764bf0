"""The "Inside a head" tab without a browser: its view functions against the model's own numbers, its
handlers called as Gradio calls them, and its API endpoints through gradio_client."""

import json
import math
import re

import gradio as gr
import numpy as np
import pytest
from conftest import translate_values
from gradio_client import Client

from explorer.figures import unique_labels
from explorer.head_panels import CORPUS, SENTENCE, stats_view
from explorer.head_view import (
    click_note,
    click_selection,
    query_labels,
    query_steps,
    sentence_head_stats,
    stats_table,
)
from explorer.heads import Head, parse_head_names
from explorer.inference import InputError
from explorer.page import run
from explorer.policy import EXPIRED, capped_ablate, capped_internals, capped_trace
from explorer.tabs import head as head_tab


@pytest.fixture(scope="module")
def traced(loaded):
    return capped_internals(loaded, "She is my sister.", 2)


@pytest.fixture(scope="module")
def demo(page_parts):
    return page_parts[0]


@pytest.fixture(scope="module")
def shared(page_parts):
    return page_parts[1]


def fn(demo, name):
    return next(f for f in demo.fns.values() if f.name == name)


def by_id(out: dict) -> dict:
    return {c.elem_id: v for c, v in out.items() if c.elem_id}


def picked(shared, key, kind, layer, head_, query, more: dict | None = None) -> dict:
    """The tab's pickers (and whatever else a handler reads) as Gradio hands them over."""
    h = shared.tabs["head"]
    return {
        shared.trace_state: key,
        h.kind: kind,
        h.layer: layer,
        h.head: head_,
        h.query: query,
        **(more or {}),
    }


def array(value) -> np.ndarray:
    """A figure JSON's array: a list, or Plotly's typed array ({"dtype", "bdata" in base64, "shape"})."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return a.reshape([int(n) for n in str(value.get("shape", len(a))).split(",")])
    return np.array(value, dtype=float)


def call(shared, handler, values):
    return handler(shared, shared.tabs["head"], values)


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_steps_reproduce_the_attention_map_and_the_head_output(traced, kind):
    maps = {"encoder": traced.encoder_self, "decoder": traced.decoder_self, "cross": traced.cross}[kind]
    sub = traced.internals[{"encoder": "encoder_self", "decoder": "decoder_self", "cross": "cross"}[kind]]
    for layer in range(maps.shape[0]):
        for query in range(maps.shape[2]):
            s = query_steps(traced, Head(kind, layer, 1, query))
            assert np.array_equal(s.q, sub.q[layer, 1, query])  # the strip is the captured q
            # Independent reference: the softmax written out with math.exp over the allowed keys.
            d = len(s.q)
            scores = [float(np.dot(s.q, kj)) / math.sqrt(d) for kj in sub.k[layer, 1]]
            allowed = [j for j in range(len(scores)) if not (kind == "decoder" and j > query)]
            top = max(scores[j] for j in allowed)
            total = sum(math.exp(scores[j] - top) for j in allowed)
            ref = [math.exp(scores[j] - top) / total if j in allowed else 0.0 for j in range(len(scores))]
            assert np.allclose(s.weights, ref, atol=1e-9)
            assert s.row_diff <= 1e-6 and np.abs(maps[layer, 1, query] - ref).max() <= 1e-6
            assert list(s.masked) == [j not in allowed for j in range(len(scores))]
            assert s.output_diff <= 1e-5 and s.residual_diff <= 1e-5


def test_concat_through_w_o_is_the_captured_attention_output(loaded, traced):
    s = query_steps(traced, Head("cross", 1, 2, 3))
    attn = loaded.translator.model.decoder[1].cross_attn.out_proj
    assert s.wo_diff(attn.weight.detach().double().numpy(), attn.bias.detach().double().numpy()) <= 1e-5
    assert s.head_slice == (2 * len(s.q), 3 * len(s.q))


def test_out_of_range_selection_is_one_clear_line(traced):
    with pytest.raises(
        InputError, match=r"^head must be a whole number from 1 to 4 for cross-attention; got 9$"
    ):
        query_steps(traced, Head("cross", 0, 8, 0))
    with pytest.raises(InputError, match="query must be a whole number from 1 to"):
        query_steps(traced, Head("encoder", 0, 0, 99))


def test_a_click_on_the_attention_map_selects_its_panel_and_row(traced):
    labels = unique_labels(query_labels(traced, "decoder"))
    current = Head("encoder", 0, 0, 0)
    payload = json.dumps({"plot": "attention-plot", "y": labels[3], "row": 0, "panel": "layer 2 · head 3"})
    assert click_selection(traced, payload, current, "decoder", None) == Head("decoder", 1, 2, 3)
    # An averaged panel names no head: the current one stays; the Layer control gives the layer.
    avg = json.dumps({"plot": "attention-plot", "y": labels[2], "row": 2, "panel": "mean of heads 1, 2"})
    assert click_selection(traced, avg, Head("decoder", 0, 3, 0), "decoder", 1) == Head("decoder", 1, 3, 2)
    # A label the view does not know (a future pooled view, say) falls back to the row index.
    odd = json.dumps({"plot": "attention-plot", "y": "??", "row": 1, "panel": "layer 1 · head 1"})
    assert click_selection(traced, odd, current, "cross", None) == Head("cross", 0, 0, 1)
    cell = json.dumps({"plot": "head-importance-plot", "head": "cross:2:4"})
    assert click_selection(traced, cell, current, "encoder", None) == Head("cross", 1, 3, 0)
    with pytest.raises(InputError):
        click_selection(traced, "not json", current, "cross", None)


def test_repeated_source_tokens_are_told_apart_by_the_click(loaded):
    tr = capped_internals(loaded, "I love you , I love tea .", 1)
    labels = unique_labels(query_labels(tr, "encoder"))
    second_i = [i for i, t in enumerate(tr.source_tokens) if t == "i"][1]
    payload = json.dumps(
        {"plot": "attention-plot", "y": labels[second_i], "row": 0, "panel": "layer 1 · head 1"}
    )
    assert click_selection(tr, payload, Head("encoder", 0, 0, 0), "encoder", None).query == second_i


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cross:9:1", "this model has 2 cross layers of 4 heads"),
        ("cross:1", "is not KIND:LAYER:HEAD"),
        ("self:1:1", "is not KIND:LAYER:HEAD"),
        ("cross:0:1", "this model has 2 cross layers"),
    ],
)
def test_malformed_or_out_of_range_heads_are_one_clear_line(spec, message):
    shape = {"encoder": (2, 4), "decoder": (2, 4), "cross": (2, 4)}
    with pytest.raises(InputError, match=message) as info:
        parse_head_names(spec, shape)
    assert "\n" not in str(info.value)
    assert parse_head_names("none", shape) == [] and parse_head_names("cross:1:2, cross:1:2", shape) == [
        Head("cross", 0, 1)
    ]


def test_app_ablation_keeps_the_traces_caps_and_translation(loaded):
    long = " ".join(["I love tea ."] * 12)  # over MAX_WORDS: cut the same way in both
    tr = capped_trace(loaded, long, 2)
    result = capped_ablate(loaded, long, [Head("cross", 0, 0)], 2)
    assert result["translation"] == tr.translation
    assert len(result["delta_logprob"]) == len(tr.predicted_tokens)


def test_head_stats_table_has_one_row_per_head_and_nan_for_cross_positions(traced):
    headers, rows = stats_table(sentence_head_stats(traced))
    assert headers[:3] == ["kind", "layer", "head"] and len(rows) == 3 * 2 * 4
    cross = [r for r in rows if r[0] == "cross"]
    assert all(r[headers.index("distance")] is None for r in cross)
    enc = [r for r in rows if r[0] == "encoder"]
    assert all(r[headers.index("distance")] is not None for r in enc)


def test_a_folder_without_head_stats_says_so(loaded, traced):
    assert loaded.head_stats is None  # the test model is exported without --dev
    table, _, caption = stats_view(traced, None, CORPUS, "entropy_bits")
    assert "has no `head_stats.json`" in caption and len(table) == 24  # falls back to the sentence


def test_shipped_weights_carry_corpus_head_stats():
    from explorer.loading import load_translator

    corpus = load_translator(None).head_stats
    assert corpus is not None and corpus["data"] == "dev.tsv" and corpus["sentences"] > 1000
    table, fig, caption = stats_view(None, corpus, CORPUS, "entropy_bits")
    assert len(table) == 3 * 3 * 4 and "1,061 sentences" in caption
    assert table["entropy (bits)"].between(0, math.log2(60)).all()


# ---- handlers, as Gradio calls them -------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(shared):
    return run(shared, translate_values(shared, "She is my sister.", 2))[shared.trace_state]


def test_every_model_event_of_the_tab_is_private_and_in_the_model_group(demo):
    for name in (
        "on_retry",
        "on_fold",
        "on_open",
        "on_new_trace",
        "on_table_row",
        "on_ablate",
        "on_importance_click",
    ):
        f = fn(demo, name)
        assert f.api_visibility == "private" and f.concurrency_id == "model" and f.queue, name
    # A pick and a map click skip the queue (they never run the model: see the next test)
    for name in ("on_pick_fast", "on_click_fast"):
        f = fn(demo, name)
        assert f.api_visibility == "private" and not f.queue and f.js, name
    assert (
        fn(demo, "on_stats").concurrency_id == "views" and fn(demo, "on_new_stats").concurrency_id == "views"
    )
    public = {f.api_name: f.concurrency_id for f in demo.fns.values() if f.api_visibility == "public"}
    # every endpoint runs in the model group (others may add endpoints: this tab's are these)
    assert set(public) >= {"translate", "trace", "internals", "ablate", "head_stats"}
    assert set(public.values()) == {"model"}


def test_opening_the_tab_draws_the_steps_and_the_trust_checks(shared, key):
    h = shared.tabs["head"]
    out = call(shared, head_tab.on_open, picked(shared, key, "decoder", "2", "3", 2, {h.shown: None}))
    v = by_id(out)
    assert "row_sum_error" not in v["head-checks"] and "max |row sum − 1|" in v["head-checks"]
    assert v["head-query"]["value"] == 2 and v["head-layer"]["value"] == "2"
    assert "decoder self-attention · layer 2 · head 3 · query 3" in v["head-title"]  # named once, at the top
    scores = json.loads(v["head-scores-plot"])  # what the page's Plotly.react gets
    (weight_bar,) = [t for t in scores["data"] if t["type"] == "bar" and t["name"] == "weight"]
    (scaled_bar,) = [t for t in scores["data"] if t["type"] == "bar" and t["name"] == "q·k/√d"]
    assert list(weight_bar["x"]) == [0, 1, 2]  # decoder row 3 sees keys 0..2; 3.. are masked
    e = np.exp(np.array(scaled_bar["y"]) - max(scaled_bar["y"]))
    assert np.allclose(weight_bar["y"], e / e.sum(), atol=1e-6)  # the JSON keeps 7 decimals
    # The one-line summary above the folds carries the measured differences, and they are small.
    diffs = [float(x) for x in re.findall(r"\*\*([0-9.e+-]+)\*\*", v["head-summary"])]
    assert "match the attention map's row to" in v["head-summary"] and len(diffs) == 3
    assert max(diffs) <= 1e-5
    assert v["head-terms-plot"]["visible"] is True and "to within" in v["head-terms-caption"]
    # The folds are closed: their panels wait until one opens.
    assert not {"head-kv-plot", "head-out-plot", "head-out-caption"} & set(v)
    # Already drawn for this trace: opening the tab again only marks it open.
    shown = {"key": key, "kind": "decoder", "layer": 1, "head": 2}
    again = call(shared, head_tab.on_open, picked(shared, key, "decoder", "2", "3", 2, {h.shown: shown}))
    assert list(by_id(again)) == []


def test_a_query_change_sends_only_what_changed(shared, key):
    h = shared.tabs["head"]
    shown = {"key": key, "kind": "decoder", "layer": 1, "head": 2}
    v = by_id(call(shared, head_tab.on_pick, picked(shared, key, "decoder", "2", "3", 1, {h.shown: shown})))
    assert not {"head-query", "head-layer", "head-kind", "head-head"} & set(v)  # they show it already
    assert not {"stats-now", "importance-now"} & set(v)  # the same head: the lines that name it stay
    assert "head-terms-plot" not in v and "head-checks" not in v  # layer 1's terms of this head: unchanged
    assert "head-q-plot" in v and "head-values-plot" in v


def test_picking_cross_attention_hides_the_content_position_split(shared, key):
    h = shared.tabs["head"]
    v = by_id(call(shared, head_tab.on_pick, picked(shared, key, "cross", "1", "1", 0)))
    assert v["head-terms-plot"]["visible"] is False and "Cross-attention's keys" in v["head-terms-caption"]
    # Another layer or query of the same head leaves the terms as they are.
    shown = {"key": key, "kind": "cross", "layer": 0, "head": 0, "query": 0}
    again = by_id(call(shared, head_tab.on_pick, picked(shared, key, "cross", "2", "1", 1, {h.shown: shown})))
    assert "head-terms-plot" not in again and "head-scores-plot" in again


def test_a_pick_of_what_is_drawn_sends_nothing(shared, key):
    # The query menu's `blur` comes whether or not the choice changed: the second time, nothing is sent.
    h = shared.tabs["head"]
    shown = {"key": key, "kind": "decoder", "layer": 1, "head": 2, "query": 1}
    assert call(shared, head_tab.on_pick, picked(shared, key, "decoder", "2", "3", 1, {h.shown: shown})) == {}
    moved = call(shared, head_tab.on_pick, picked(shared, key, "decoder", "2", "3", 2, {h.shown: shown}))
    assert "head-query" not in by_id(moved) and moved[h.shown] == {**shown, "query": 2}  # the menu shows it


def test_the_folds_panels_are_drawn_while_open_and_emptied_when_closed(shared, key):
    h = shared.tabs["head"]
    shown = {"key": key, "kind": "cross", "layer": 1, "head": 0, "query": 2}
    base = picked(shared, key, "cross", "2", "1", 2, {h.shown: shown, h.folds: []})
    opened = head_tab.on_fold(shared, h, "out", True, base)
    v = by_id(opened)
    # Only the fold's own panels: they are the event's outputs (Gradio refuses any other).
    assert opened[h.folds] == ["out"] and set(v) == {"head-out-plot", "head-out-caption"}
    assert "Concat·W_Oᵀ + b_O" in v["head-out-caption"]
    residual = json.loads(v["head-out-plot"])
    assert residual["layout"]["meta"].startswith("cross-attention · layer 2 · head 1 · query 3")
    # Open, the fold's panels come with every pick; the other fold's stay unsent.
    pick = by_id(call(shared, head_tab.on_pick, {**base, h.query: 1, h.folds: ["out"]}))
    assert "head-out-plot" in pick and "head-kv-plot" not in pick
    meta = lambda panel: json.loads(pick[panel])["layout"]["meta"]
    assert meta("head-out-plot") == meta("head-scores-plot") and "query 2" in meta("head-out-plot")
    closed = head_tab.on_fold(shared, h, "out", False, {**base, h.folds: ["out"]})
    assert closed[h.folds] == [] and by_id(closed) == {"head-out-plot": "", "head-out-caption": ""}


def test_a_new_translation_redraws_only_once_the_tab_was_opened(shared, key):
    active = shared.tabs["head"].active
    closed = by_id(
        call(shared, head_tab.on_new_trace, picked(shared, key, "cross", "1", "1", 0, {active: False}))
    )
    assert "head-q-plot" not in closed and closed["ablate-original"]
    opened = by_id(
        call(shared, head_tab.on_new_trace, picked(shared, key, "cross", "1", "1", 0, {active: True}))
    )
    assert opened["head-q-plot"] is not None


RENDERED = {"pick": head_tab.on_pick, "click": head_tab.on_click}


def test_a_pick_or_click_outside_the_queue_never_runs_the_model_it_hands_over_to_a_queued_event(
    shared, monkeypatch
):
    h, attention = shared.tabs["head"], shared.tabs["attention"]
    ran = []
    real = head_tab.capped_internals
    monkeypatch.setattr(head_tab, "capped_internals", lambda *a, **k: ran.append(a) or real(*a, **k))
    payload = json.dumps({"plot": "attention-plot", "y": "", "row": 1, "panel": "layer 1 · head 2"})
    clicked = {h.click: payload, attention.kind: "cross", attention.layer: "all"}
    for name, fast, text in (
        ("pick", head_tab.on_pick_fast, "He reads a book."),
        ("click", head_tab.on_click_fast, "He reads a long book."),
    ):
        key = run(shared, translate_values(shared, text, 1))[shared.trace_state]
        values = picked(shared, key, "cross", "1", "2", 1, clicked)
        assert shared.internals.get(key) is None  # the tab never drew this trace
        ran.clear()
        out = call(shared, fast, values)
        assert set(out) <= {h.retry, h.click, h.shown} and out[h.retry].startswith(name + " ") and not ran
        if name == "click":
            assert out[h.click] == payload  # kept for the queued event, which reads it from the page
        # The tab, opened by the click meanwhile, leaves the drawing to that event (it would draw its own pick)
        assert call(shared, head_tab.on_open, {**values, h.shown: out[h.shown]}) == {h.active: True}
        # The queued event (model group) computes the internals once and draws what the fast one would have.
        retried = call(shared, head_tab.on_retry, {**values, h.retry: out[h.retry], h.shown: out[h.shown]})
        assert h.values_plot in retried and retried[h.shown]["head"] == 1 and len(ran) == 1
        # With the internals kept, the fast path draws by itself, the same.
        again = by_id(call(shared, fast, values))
        assert len(ran) == 1 and again == by_id(call(shared, RENDERED[name], values))
    assert call(shared, head_tab.on_retry, {**values, h.retry: "<script>"}) == gr.skip()


def test_expired_trace_asks_to_translate_again(shared):
    assert by_id(call(shared, head_tab.on_pick, picked(shared, "gone", "cross", "1", "1", 0))) == {
        "head-status": EXPIRED
    }


def test_bad_pick_values_are_clamped_not_crashed(shared, key):
    v = by_id(call(shared, head_tab.on_pick, picked(shared, key, "decoder", "9", "x", 99)))
    assert v["head-layer"]["value"] == "2" and v["head-head"] == "1"
    assert v["head-query"]["value"] == len(v["head-query"]["choices"]) - 1


def test_click_handler_selects_the_clicked_row(shared, key, traced):
    labels = unique_labels(query_labels(traced, "cross"))
    payload = json.dumps({"plot": "attention-plot", "y": labels[2], "row": 2, "panel": "layer 2 · head 4"})
    attention = shared.tabs["attention"]
    clicked = {shared.tabs["head"].click: payload, attention.kind: "cross", attention.layer: "all"}
    v = by_id(call(shared, head_tab.on_click, picked(shared, key, "encoder", "1", "1", 0, clicked)))
    assert (v["head-kind"], v["head-layer"]["value"], v["head-head"], v["head-query"]["value"]) == (
        "cross",
        "2",
        "4",
        2,
    )


def test_switching_heads_off_shows_both_translations_and_per_token_deltas(shared, key):
    heads = shared.tabs["head"].ablate_heads
    chosen = ["cross:1:1", "cross:2:1", "cross:1:2", "cross:2:2"]
    v = by_id(call(shared, head_tab.on_ablate, {shared.trace_state: key, heads: chosen}))
    assert v["ablate-original"] == "她是我的姐姐。"
    assert v["ablate-translation"] and "Switched off: cross:1:1" in v["ablate-note"]
    (bar,) = json.loads(v["ablate-delta-plot"])["data"]
    assert len(bar["y"]) == len("她是我的姐姐。") + 1  # every output token, </s> included
    with pytest.raises(Exception, match="Pick at least one head"):
        call(shared, head_tab.on_ablate, {shared.trace_state: key, heads: []})


def test_importance_reports_progress_and_marks_the_largest_drop(shared, key):
    seen = []
    values = picked(shared, key, "cross", "1", "1", 0)
    out = head_tab.on_importance(shared, shared.tabs["head"], values, lambda f, desc=None: seen.append(f))
    v = by_id(out)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    fig = json.loads(v["head-importance-plot"])
    z = {t["customdata"][0][0].split(":")[0]: array(t["z"]) for t in fig["data"]}
    kind, layer, head = max(
        ((k, *np.unravel_index(np.argmax(a), a.shape)) for k, a in z.items()),
        key=lambda t: z[t[0]][t[1], t[2]],
    )
    assert f"**{kind}:{layer + 1}:{head + 1}**" in v["importance-caption"]
    # Choosing another head moves the map's outline to it, and says so where the click was.
    h = shared.tabs["head"]
    moved = by_id(
        call(shared, head_tab.on_pick, picked(shared, key, "decoder", "2", "3", 0, {h.drops: out[h.drops]}))
    )
    (rect,) = json.loads(moved["head-importance-plot"])["layout"]["shapes"]
    assert (rect["xref"], rect["x0"], rect["y0"]) == ("x2", 2.5, 1.5)  # decoder: panel 2; head 3, layer 2
    assert "Now showing **decoder:2:3**" in moved["importance-now"]


def test_stats_for_the_sentence_without_a_corpus_file(shared, key):
    h = shared.tabs["head"]
    v = by_id(
        call(
            shared,
            head_tab.on_stats,
            {shared.trace_state: key, h.stats_source: SENTENCE, h.stats_stat: "distance"},
        )
    )
    assert len(v["head-stats-table"]) == 24 and "no `head_stats.json`" in v["stats-caption"]


def test_a_new_translation_redraws_the_statistics_of_the_sentence_only(shared, key):
    # The corpus figures do not change with the sentence: a new trace leaves them as they are.
    h = shared.tabs["head"]
    values = {shared.trace_state: key, h.stats_source: CORPUS, h.stats_stat: "distance"}
    assert isinstance(call(shared, head_tab.on_new_stats, values), type(gr.skip()))
    sentence = by_id(call(shared, head_tab.on_new_stats, {**values, h.stats_source: SENTENCE}))
    assert len(sentence["head-stats-table"]) == 24


# ---- API -----------------------------------------------------------------------------------------------


def test_internals_endpoint_gives_one_query_step_by_step(served):
    data = Client(served, verbose=False).predict("I love you.", 1, "decoder", 2, 1, 2, api_name="/internals")
    assert data["translation"] == "我爱你。" and data["query_token"] == "我 → 爱"
    assert data["scores"][2:] == [None] * (len(data["keys"]) - 2)  # masked: null, never a number
    assert sum(data["weights"]) == pytest.approx(1.0, abs=1e-5) and data["weights"][2:] == [0.0] * (
        len(data["keys"]) - 2
    )
    assert data["max_diff_to_attention_map"] <= 1e-6 and data["checks"]["masked_weight"] == 0.0


@pytest.mark.parametrize(
    "args, message",
    [
        (("I love you.", 1, "cross", 7, 1, 1), "layer must be a whole number from 1 to 2"),
        (("I love you.", 1, "self", 1, 1, 1), "kind must be one of encoder, decoder, cross"),
        (("I love you.", 1, "cross", 1, 1, 99), "query must be a whole number from 1 to"),
        (("I love you.", 1, "cross", 1.5, 1, 1), "layer must be a whole number"),
        (("I love you.", 0, "cross", 1, 1, 1), "beam must be a whole number"),
    ],
)
def test_internals_endpoint_refuses_bad_selections_clearly(served, args, message):
    with pytest.raises(Exception, match=message):
        Client(served, verbose=False).predict(*args, api_name="/internals")


def test_ablate_endpoint(served):
    client = Client(served, verbose=False)
    data = client.predict("I love you.", "cross:1:1,cross:2:1", 1, api_name="/ablate")
    assert data["translation"] == "我爱你。" and data["heads"] == ["cross:1:1", "cross:2:1"]
    assert len(data["delta_logprob"]) == len(data["target_tokens"])
    none = client.predict("I love you.", "none", 1, api_name="/ablate")
    assert none["ablated_translation"] == none["translation"] and set(none["delta_logprob"]) == {0.0}
    with pytest.raises(Exception, match="is not KIND:LAYER:HEAD"):
        client.predict("I love you.", "cross:1", 1, api_name="/ablate")


def test_head_stats_endpoint(served):
    data = Client(served, verbose=False).predict("I love you.", 1, api_name="/head_stats")
    assert data["corpus"] is None and data["sentence"]["cross"]["distance"][0] == [None] * 4
    assert len(data["sentence"]["encoder"]["entropy_bits"]) == 2


def test_new_endpoints_take_their_defaults_over_plain_http(served):
    import httpx

    base = served.rstrip("/") + "/gradio_api/call/internals"
    r = httpx.post(base, json={"data": ["I love you."]}, timeout=60)
    assert r.status_code == 200
    event = r.json()["event_id"]
    with httpx.stream("GET", f"{base}/{event}", timeout=60) as s:
        body = "".join(s.iter_text())
    assert "event: complete" in body and '"kind": "cross"' in body.replace('":"', '": "')


def test_internals_response_stays_small_at_the_caps(demo):
    internals_api = fn(demo, "internals_api").fn
    data = internals_api(" ".join(["I drink tea every day ."] * 8), 1, "cross", 1, 1, 1)
    assert len(json.dumps(data)) < 2 * 2**20


# ---- issue 26: what the tab says is true ------------------------------------------------------------


def test_a_click_on_an_averaged_map_opens_the_head_with_the_largest_weight_and_says_so(traced):
    labels = unique_labels(query_labels(traced, "cross"))
    keys = unique_labels(traced.source_tokens)
    layer, query, key = 1, 2, 1
    payload = json.dumps(
        {
            "plot": "attention-plot",
            "y": labels[query],
            "x": keys[key],
            "row": query,
            "panel": "mean of heads 1, 2, 4",
        }
    )
    sel = click_selection(traced, payload, Head("cross", 0, 2, 0), "cross", layer)
    weights = traced.cross[layer, [0, 1, 3], query, key]
    assert sel == Head("cross", layer, [0, 1, 3][int(np.argmax(weights))], query)
    note = click_note(traced, payload, sel)
    assert f"showing head {sel.head + 1}" in note and f"({weights.max():.2f})" in note
    assert click_note(traced, json.dumps({"plot": "attention-plot", "panel": "layer 1 · head 2"}), sel) == ""


def test_the_statistics_table_is_sorted_by_the_chosen_map_and_the_caption_names_the_source(traced, shipped):
    corpus = shipped.head_stats
    table, _, caption = stats_view(traced, corpus, SENTENCE, "distance")
    column = table["distance"].tolist()
    numbers = [x for x in column if x == x and x is not None]
    assert numbers == sorted(numbers, reverse=True) and column[: len(numbers)] == numbers  # None last
    assert "This sentence" in caption and "1,061" not in caption  # not the corpus's caption
    _, _, corpus_caption = stats_view(traced, corpus, CORPUS, "distance")
    assert "1,061 sentences" in corpus_caption


def test_a_statistic_that_does_not_apply_says_so_instead_of_an_empty_map(traced):
    _, fig, _ = stats_view(traced, None, SENTENCE, "previous")
    assert [t.customdata[0][0].split(":")[0] for t in fig.data] == ["encoder", "decoder"]
    assert any("not defined for cross-attention" in a.text for a in fig.layout.annotations)
    assert sum(bool(t.showscale) for t in fig.data) == 1  # one colour bar, on a map that has values


def test_figure_json_rounds_only_when_asked():
    import plotly.graph_objects as go

    from explorer.live_plot import figure_json

    fig = go.Figure(go.Bar(y=[0.123456789123, 2.0]))
    assert json.loads(figure_json(fig, "x"))["data"][0]["y"] == [0.123456789123, 2.0]  # the Attention tab's
    assert json.loads(figure_json(fig, "x", decimals=7))["data"][0]["y"] == [0.1234568, 2.0]
    heat = go.Figure(go.Heatmap(z=np.array([[0.123456789123, np.nan]])))  # typed arrays: binary, kept exact
    z = array(json.loads(figure_json(heat, "x", decimals=7))["data"][0]["z"])
    assert z[0, 0] == 0.123456789123 and np.isnan(z[0, 1])


@pytest.fixture(scope="module")
def shipped():
    from explorer.loading import load_translator

    return load_translator(None)


LONG = (
    "When I was a child, my grandmother used to tell me long stories about her village in the mountains "
    "every single evening before dinner."
)


def test_the_last_step_of_a_capped_translation_says_the_cap_ended_it(shipped):
    from explorer.inference import trace
    from explorer.policy import CAPS
    from explorer.views import step_view

    # The shipped model ends this sentence well within the page's cap (64 tokens); a cap of 12 ends it
    # by the same code path.
    tr = trace(shipped.translator, LONG, beam=5, **{**CAPS, "max_target_tokens": 12})
    assert any("maximum of" in n for n in tr.notices)  # the cap ended this translation
    last = len(tr.target_tokens) - 1
    assert tr.predicted_tokens[last] == "</s>" and tr.predicted_rank[last] > 1
    fig, caption = step_view(tr, last)
    assert "Beam search chose" not in caption and "maximum" in caption
    (bar,) = fig.data
    assert not any("chosen" in t for t in bar.text)  # the model never chose </s> here
