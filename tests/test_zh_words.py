"""Chinese words (explorer/zh_words.py) and "Whole words" on the decoder's axes (views.select)."""

import dataclasses
import json
import subprocess
import sys

import jieba
import numpy as np
import pytest

from explorer import zh_words
from explorer.inference import trace
from explorer.lines_figures import lines_figure
from explorer.views import View, attention_view, select, words_note
from training.translator import load_weights_dir

TOKENS = ["<s>", "我", "在", "图", "书", "馆", "读", "书", "。", "他", "也", "来", "了", "。"]


@pytest.fixture(scope="module")
def tr(zh_weights):
    return trace(load_weights_dir(zh_weights), "I love you.", beam=1)


@pytest.fixture(scope="module")
def long_tr(tr):
    """The toy trace with a longer translation (two sentences) and random, properly normalised maps."""
    rng = np.random.default_rng(0)
    t, s = len(TOKENS), len(tr.source_tokens)
    dec = rng.random((2, 4, t, t)) * np.tril(np.ones((t, t)))
    cross = rng.random((2, 4, t, s))
    return dataclasses.replace(
        tr,
        target_tokens=TOKENS,
        predicted_tokens=TOKENS[1:] + ["</s>"],
        translation="".join(TOKENS[1:]),
        decoder_self=(dec / dec.sum(-1, keepdims=True)).astype(np.float32),
        cross=(cross / cross.sum(-1, keepdims=True)).astype(np.float32),
    )


def test_the_segmentation_covers_every_token_once_in_order_with_specials_alone():
    index = zh_words.word_index(TOKENS + ["</s>"])
    assert len(index) == len(TOKENS) + 1 and index[0] == 0
    assert all(b - a in (0, 1) for a, b in zip(index, index[1:]))  # contiguous, in order, none skipped
    groups = zh_words.groups(index)
    assert [p for g in groups for p in g] == list(range(len(index)))
    words = ["".join((TOKENS + ["</s>"])[p] for p in g) for g in groups]
    assert words[0] == "<s>" and words[-1] == "</s>"
    assert words[1:-1] == jieba.lcut("".join(TOKENS[1:]), HMM=False)  # the words are jieba's


def test_a_token_is_never_split_and_unknown_tokens_are_words_of_their_own():
    assert zh_words.word_index(["<s>", "图书", "馆", "<unk>", "读"]) == [0, 1, 1, 2, 3]
    assert zh_words.joined(["里", "</s>"]) == "里 </s>"


def test_jieba_is_loaded_once_quietly_and_not_when_the_page_is_built():
    assert zh_words.segmenter() is zh_words.segmenter()
    code = "import sys, explorer.page, explorer.views; print('jieba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def expected(weights, rows, keys):
    """An independent pooling: for each word row and word key, the mean over its rows of the sum over its keys."""
    out = np.zeros(weights.shape[:2] + (len(rows), len(keys)))
    for a, r in enumerate(rows):
        for b, k in enumerate(keys):
            out[:, :, a, b] = sum(sum(weights[:, :, i, j] for j in k) for i in r) / len(r)
    return out


def test_decoder_self_attention_in_jieba_words(long_tr):
    sel = select(long_tr, View(kind="decoder", words=True))
    words = zh_words.groups(zh_words.word_index(TOKENS))
    jieba_words = ["<s>"] + jieba.lcut("".join(TOKENS[1:]), HMM=False)
    assert sel["x_labels"] == jieba_words
    assert sel["y_labels"][2] == "在 → 图" and sel["y_labels"][3] == "图书馆 → 书馆读"
    np.testing.assert_allclose(sel["weights"], expected(long_tr.decoder_self, words, words), atol=1e-6)
    np.testing.assert_allclose(sel["weights"].sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(sel["masked"], np.triu(np.ones((len(words),) * 2, bool), 1))
    assert list(sel["forced_rows"]) == [True] + [False] * (len(words) - 1)
    word_of = {p: n for n, g in enumerate(words) for p in g}
    # keys: after the word "。"; rows: after the word whose last row predicts "。"
    assert sel["x_breaks"] == [word_of[8]] and sel["y_breaks"] == [word_of[7]]


def test_cross_attention_rows_in_jieba_words_and_the_step_outlines_its_word(long_tr):
    sel = select(long_tr, View(kind="cross", words=True, step=4))  # row 4 reads 书 of 图书馆
    words = zh_words.groups(zh_words.word_index(TOKENS))
    keys = [[j] for j in range(len(long_tr.source_tokens))]
    np.testing.assert_allclose(sel["weights"], expected(long_tr.cross, words, keys), atol=1e-6)
    np.testing.assert_allclose(sel["weights"].sum(-1), 1.0, atol=1e-6)
    assert sel["highlight_row"] == 3 and sel["y_labels"][3].startswith("图书馆 → ")


def test_hidden_specials_leave_their_rows_out_and_labels_name_what_is_pooled(long_tr):
    sel = select(long_tr, View(kind="decoder", words=True, show_special=False))
    assert "<s>" not in sel["x_labels"] and not any("<s>" in y or "</s>" in y for y in sel["y_labels"])
    # the last "。" is seen only by the hidden "。 → </s>" row: no column for it
    assert sel["x_labels"][-1] != "。" or sel["x_labels"].count("。") == 1


def test_the_figures_are_labelled_with_the_jieba_words(tr):
    view = View(kind="decoder", layer=0, heads=[0], words=True)
    fig = json.loads(attention_view(tr, view).to_json())
    heat = next(t for t in fig["data"] if t["type"] == "heatmap")
    assert [x.replace("\u200b", "") for x in heat["x"]] == ["&lt;s&gt;", "我爱你", "。"]
    assert [y.replace("\u200b", "") for y in heat["y"]] == [
        "&lt;s&gt; → 我",
        "我爱你 → 爱你。",
        "。 → &lt;/s&gt;",
    ]
    lines = lines_figure(select(tr, view))
    assert list(lines.layout.yaxis2.ticktext) == ["&lt;s&gt;", "我爱你", "。"]


def test_the_caption_says_what_is_pooled_on_each_axis():
    assert words_note(View(kind="cross"), True) == ""
    cross, dec = (
        words_note(View(kind="cross", words=True), True),
        words_note(View(kind="decoder", words=True), True),
    )
    assert (
        "rows: Chinese characters pooled into jieba words" in cross
        and "keys: English subword pieces" in cross
    )
    assert "keys: the same jieba words" in dec
    assert "Chinese" not in words_note(View(kind="encoder", words=True), True)
