import math

import numpy as np
import pytest

from training.head_stats import STATS, average, entropy_bits, head_stats, is_punctuation


def rows(matrix) -> np.ndarray:
    return np.asarray(matrix, dtype=np.float64)[None, None]  # (1, 1, Tq, Tk)


def test_a_one_hot_head_has_zero_entropy_and_a_uniform_one_log2_n():
    n = 6
    one_hot = rows(np.eye(n))
    uniform = rows(np.full((n, n), 1 / n))
    tokens = [f"t{i}" for i in range(n)]
    assert head_stats(one_hot, tokens, True)["entropy_bits"][0, 0] == 0.0
    assert head_stats(uniform, tokens, True)["entropy_bits"][0, 0] == pytest.approx(math.log2(n), abs=1e-12)
    assert head_stats(one_hot, tokens, True)["max_weight"][0, 0] == 1.0


def test_positional_heads():
    n = 5
    tokens = [f"t{i}" for i in range(n)]
    diagonal = head_stats(rows(np.eye(n)), tokens, True)
    assert (
        diagonal["same"][0, 0] == 1.0
        and diagonal["distance"][0, 0] == 0.0
        and diagonal["previous"][0, 0] == 0.0
    )
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0  # the first query has no previous position
    stats = head_stats(rows(previous), tokens, True)
    assert stats["previous"][0, 0] == 1.0  # over the rows that have a previous position
    assert stats["distance"][0, 0] == pytest.approx((n - 1) / n)
    assert stats["same"][0, 0] == pytest.approx(1 / n)


def test_statistics_match_plain_loops_on_random_rows():
    rng = np.random.default_rng(1)
    raw = rng.random((2, 3, 6, 6)) * (rng.random((2, 3, 6, 6)) > 0.3)
    raw[..., 0] += 0.01
    w = raw / raw.sum(-1, keepdims=True)
    tokens = ["我", "爱", "，", "你", "。", "</s>"]
    stats = head_stats(w, tokens, True)
    for layer in range(2):
        for head in range(3):
            m = w[layer, head]
            ent = np.mean([-sum(x * math.log2(x) for x in row if x > 0) for row in m])
            dist = np.mean([sum(m[i, j] * abs(i - j) for j in range(6)) for i in range(6)])
            assert stats["entropy_bits"][layer, head] == pytest.approx(ent)
            assert stats["distance"][layer, head] == pytest.approx(dist)
            assert stats["special"][layer, head] == pytest.approx(m[:, 5].mean())
            assert stats["punctuation"][layer, head] == pytest.approx((m[:, 2] + m[:, 4]).mean())
            assert stats["max_weight"][layer, head] == pytest.approx(m.max(1).mean())


def test_cross_attention_has_no_positional_statistics():
    w = rows(np.full((3, 4), 0.25))
    stats = head_stats(w, ["▁i", "▁love", "▁.", "</s>"], self_attention=False)
    assert set(stats) == set(STATS)
    assert all(np.isnan(stats[name]).all() for name in ("distance", "same", "previous"))
    assert stats["punctuation"][0, 0] == pytest.approx(0.25) and stats["special"][0, 0] == pytest.approx(0.25)


def test_punctuation_in_any_script_and_after_the_word_mark():
    assert all(map(is_punctuation, [".", "。", "？", "\u2581,", "...", "«"]))
    assert not any(map(is_punctuation, ["a", "\u2581", "我", "</s>", "<s>", "1"]))


def test_entropy_ignores_zero_weights_and_corpus_average_weights_sentences_equally():
    assert entropy_bits(np.array([0.5, 0.5, 0.0])) == 1.0
    a = {name: np.full((1, 1), 1.0) for name in STATS}
    b = {name: np.full((1, 1), 3.0) for name in STATS}
    assert all(v[0, 0] == 2.0 for v in average([a, b]).values())
    with pytest.raises(ValueError):
        average([])
