"""Links restore the view they name: the server side (which controls a URL sets) and in Chromium."""

import pytest

from explorer.share_link import restore


def by_id(out: dict) -> dict:
    return {getattr(c, "elem_id", None) or type(c).__name__: v for c, v in out.items()}


def test_a_link_sets_the_controls_it_names_and_leaves_the_rest(page_parts):
    _, shared = page_parts
    params = {"s": "I love you.", "beam": "2", "kind": "decoder", "layer": "1", "heads": "1,3", "avg": "1",
              "tab": "head", "step": "3", "hkind": "cross", "hhead": "2"}  # fmt: skip
    v = by_id(restore(shared, params))
    assert v["source-text"] == "I love you." and v["beam"] == 2
    assert (v["kind"], v["layer"], v["heads"], v["average"]) == ("decoder", "1", ["1", "3"], "average")
    assert v["head-kind"] == "cross" and v["head-head"] == "2" and "head-layer" not in v
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
