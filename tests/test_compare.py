"""The Compare tab and /compare: alignment, B − A against a loop over the aligned pairs, the page."""

import json

import numpy as np
import pytest
from conftest import translate_values
from gradio_client import Client

from explorer.compare_view import align, difference, differences_json, marked_translations
from explorer.inference import trace
from explorer.tabs import compare
from training.translator import load_weights_dir


@pytest.fixture(scope="module")
def pair(zh_weights):
    translator = load_weights_dir(zh_weights)
    return trace(translator, "I love you.", beam=1), trace(translator, "I love tea.", beam=1)


def test_alignment_is_identity_for_equal_tokens_and_a_diff_otherwise():
    same = align(["i", "love", "you"], ["i", "love", "you"])
    assert same.a == same.b == [0, 1, 2]
    pieces = align(["▁i", "▁love", "▁you", "▁."], ["▁i", "▁lov", "ed", "▁you", "▁."])
    assert list(zip(pieces.a, pieces.b)) == [(0, 0), (2, 3), (3, 4)]
    assert align(["a"], ["b"]).a == []


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_the_difference_is_b_minus_a_exactly_where_rows_and_keys_align(pair, kind):
    a, b = pair
    d = difference(a, b, kind)
    maps_a = {"encoder": a.encoder_self, "decoder": a.decoder_self, "cross": a.cross}[kind]
    maps_b = {"encoder": b.encoder_self, "decoder": b.decoder_self, "cross": b.cross}[kind]
    rows_a = a.source_tokens if kind == "encoder" else a.target_tokens
    rows_b = b.source_tokens if kind == "encoder" else b.target_tokens
    assert [rows_a[i] for i in d.rows.a] == [rows_b[j] for j in d.rows.b]  # matched rows hold equal tokens
    for r, (ra, rb) in enumerate(zip(d.rows.a, d.rows.b)):
        for c, (ca, cb) in enumerate(zip(d.keys.a, d.keys.b)):
            assert np.array_equal(d.diff[:, :, r, c], maps_b[:, :, rb, cb] - maps_a[:, :, ra, ca])
    assert "love" in [b.source_tokens[j] for j in d.keys.b] or kind == "decoder"


def test_no_alignment_is_null(zh_weights):
    translator = load_weights_dir(zh_weights)
    a, b = trace(translator, "Thank you.", beam=1), trace(translator, "Where is the book?", beam=1)
    assert set(a.source_tokens) & set(b.source_tokens) == {"</s>"}  # only the end lines up
    assert difference(a, b, "encoder").diff.shape[2:] == (1, 1)
    empty = {"source_tokens": ["x"], "target_tokens": ["y"], "predicted_tokens": ["z"]}
    odd = a.__class__(**{**a.__dict__, **empty, "encoder_self": a.encoder_self[:, :, :1, :1]})
    assert difference(a, odd, "encoder") is None and differences_json(a, odd)["encoder"] is None


def test_translations_are_escaped_and_their_differences_marked():
    left, right = marked_translations("我爱你。", "我爱<b>茶</b>。")
    assert left == "我爱<del>你</del>。" and right == "我爱<ins>&lt;b&gt;茶&lt;/b&gt;</ins>。"


def by_id(out: dict) -> dict:
    return {c.elem_id: v for c, v in out.items() if getattr(c, "elem_id", None)}


def test_the_tab_draws_both_maps_and_their_difference(page_parts):
    _, shared = page_parts
    t = shared.tabs["compare"]
    values = {
        t.keys: None,
        t.text_a: "I love you.",
        t.text_b: "I love tea.",
        shared.beam: 1,
        t.kind: "cross",
        t.layer: "2",
        t.head: "mean",
        t.width: 500,
    }
    out = compare.on_compare(shared, t, values)
    v = by_id(out)
    assert "<del>你</del>" in v["compare-translations"] and "<ins>茶</ins>" in v["compare-translations"]
    diff = json.loads(v["compare-diff"])
    assert diff["data"][0]["zmid"] == 0 and "B − A" in diff["layout"]["title"]["text"]
    assert "line up" in v["compare-diff-caption"]
    keys = out[t.keys]
    again = by_id(compare.rerender(shared, t, {**values, t.keys: keys, t.kind: "encoder", t.head: "2"}))
    assert json.loads(again["compare-a"])["data"] and "head 2" in json.dumps(
        json.loads(again["compare-diff"])
    )
    gone = compare.rerender(shared, t, {**values, t.keys: ["x", "y"]})
    assert "Press Compare" in by_id(gone)["compare-notices"]
    bad = by_id(compare.on_compare(shared, t, {**values, t.text_b: "  "}))
    assert list(bad) == ["compare-notices"] and "Type an English sentence" in bad["compare-notices"]
    assert translate_values  # the page's own fixtures build the values the same way


def test_compare_endpoint(served):
    data = Client(served, verbose=False).predict("I love you.", "I love tea.", 1, api_name="/compare")
    assert data["a"]["translation"] == "我爱你。" and data["b"]["translation"] == "我爱茶。"
    cross = data["differences"]["cross"]
    assert len(cross["diff"][0][0]) == len(cross["rows_b"]) and len(cross["diff"][0][0][0]) == len(
        cross["keys_b"]
    )
    with pytest.raises(Exception, match="Type an English sentence"):
        Client(served, verbose=False).predict("I love you.", "", 1, api_name="/compare")
