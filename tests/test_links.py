"""Links that restore a view: every parameter round-trips, hostile ones are dropped or clamped with a notice."""

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from explorer.links import Limits, Link, link_query, parse_link

LIMITS = Limits(
    layers=3,
    heads=4,
    max_beam=8,
    max_chars=1000,
    tabs=("attention", "head", "compare"),
    shows=("weights", "alti"),
)


def test_every_parameter_round_trips():
    link = Link(
        s="I love you.", beam=3, tab="head", kind="decoder", layer="2", heads=["1", "3"], average=True,
        words=False, show_special=True, step=2, show="alti", hkind="cross", hlayer="3", hhead="4", hquery=1,
    )  # fmt: skip
    back = parse_link(dict(parse_qsl(link_query(link))), LIMITS)
    assert back.notices == [] and back == link
    assert link_query(Link()) == ""  # a link that says nothing: the page's own defaults
    assert parse_link({"layer": "all"}, LIMITS).layer == "all"
    # query rows count from 1 in the URL, as the tab names them; the Link holds the row index
    assert parse_link({"hquery": "3"}, LIMITS).hquery == 2 and "hquery=3" in link_query(Link(hquery=2))


@pytest.mark.parametrize(
    "params, field, value, notice",
    [
        ({"beam": "99"}, "beam", 8, "clamped"),
        ({"beam": "two"}, "beam", None, "ignored"),
        ({"layer": "7"}, "layer", "3", "clamped"),
        ({"layer": "-1"}, "layer", "1", "clamped"),
        ({"hhead": "0"}, "hhead", "1", "clamped"),
        ({"kind": "self"}, "kind", None, "encoder, decoder, cross"),
        ({"heads": "1,9,x,2"}, "heads", ["1", "2"], "dropped"),
        ({"tab": "<script>"}, "tab", None, "does not have"),
        ({"avg": "yes"}, "average", None, "0 or 1"),
        ({"step": "1e9"}, "step", None, "whole number"),
        ({"show": "gradients"}, "show", None, "weights, alti"),
        ({"evil": "1"}, None, None, "means nothing"),
        ({"kind": "x" * 200}, "kind", None, "too long"),
    ],
)
def test_bad_parameters_are_dropped_or_clamped_with_a_notice(params, field, value, notice):
    link = parse_link(params, LIMITS)
    if field:
        assert getattr(link, field) == value
    assert len(link.notices) == 1 and notice in link.notices[0] and "\n" not in link.notices[0]


def test_a_100_kb_sentence_is_cut_and_markup_stays_text():
    link = parse_link({"s": "<b>" + "a" * 100_000}, LIMITS)
    assert len(link.s) == 1000 and link.s.startswith("<b>") and "cut to its first 1,000" in link.notices[0]


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=300), max_size=8))
def test_any_query_parses_without_raising(params):
    link = parse_link(params, LIMITS)
    assert link.beam is None or 1 <= link.beam <= 8
    assert link.layer in (None, "all", "1", "2", "3")
    parse_link(dict(parse_qsl(link_query(link))), LIMITS)  # and what it became is a valid link again
