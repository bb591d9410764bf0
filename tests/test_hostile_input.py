"""Property-based: no input makes the translator, the trace or the batch CLI crash, hang or emit malformed output."""

import io
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.__main__ import main as explorer_main
from explorer.inference import InputError, trace
from training.translator import load_weights_dir

SLOW_CALL_S = 5.0  # far above a normal call (~0.1 s): catches hangs and runaway decoding

emoji = st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), min_size=1, max_size=40)
punctuation = st.text(alphabet=list("!?.,;:'\"()[]{}<>/\\|@#$%^&*-_=+~`…—“”«»"), min_size=1, max_size=200)
chinese = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=200
)
controls = st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=50)
rtl = st.builds(lambda a, b: f"\u202e{a}\u200f{b}\u202c", st.text(max_size=50), st.text(max_size=50))
markup = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "**bold** _x_ [a](javascript:alert(1))",
        "'; DROP TABLE users; --",
        "1' OR '1'='1",
        "%s%s%s%n",
        "{0}{1}{__class__}",
        "${jndi:ldap://x}",
        "\\x00\\u0000",
    ]
)
english_ish = st.lists(
    st.sampled_from("i you love tea where is the book she my sister . ? ,".split()), max_size=80
).map(" ".join)
any_text = st.one_of(
    st.text(max_size=10_000), emoji, punctuation, chinese, controls, rtl, markup, english_ish
)


@pytest.fixture(scope="module")
def translator(zh_weights):
    return load_weights_dir(zh_weights)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=any_text)
def test_trace_never_raises_anything_but_a_friendly_input_error(translator, text):
    start = time.perf_counter()
    try:
        tr = trace(translator, text, beam=2)
    except InputError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert time.perf_counter() - start < SLOW_CALL_S
    assert isinstance(tr.translation, str) and "\n" not in tr.translation
    s, t = len(tr.source_tokens), len(tr.target_tokens)
    assert tr.cross.shape[2:] == (t, s) and tr.encoder_self.shape[2:] == (s, s)
    assert np.isfinite(tr.cross).all() and np.allclose(tr.cross.sum(-1), 1, atol=1e-4)
    assert s <= translator.model.cfg.max_len and t <= translator.model.cfg.max_len


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(any_text.map(lambda s: s.replace("\n", " ").replace("\r", " ")), max_size=8))
def test_batch_cli_gives_one_line_out_per_line_in(zh_weights, capsys, monkeypatch, lines):
    data = "".join(line + "\n" for line in lines).encode("utf-8", errors="surrogatepass")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="\n"))
    start = time.perf_counter()
    assert explorer_main(["translate", "--weights", str(zh_weights), "--beam", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert time.perf_counter() - start < SLOW_CALL_S * (1 + len(lines))
    assert out.count("\n") == len(lines)
    for line_in, line_out in zip(lines, out.split("\n")):
        if not line_in.strip():
            assert line_out == ""
