"""Concatenation augmentation: a join is the pairs' texts joined, and an epoch's mix is reproducible."""

from collections import Counter

from training.data import encode_pairs, epoch_examples, join, tokenize_pairs
from training.text import Vocab

PAIRS = [
    ("I love you.", "我爱你。"),
    ("He runs every morning.", "他每天早上跑步。"),
    ("Where is the station?", "车站在哪里？"),
    ("Tom is late.", "汤姆迟到了。"),
]


def encoded(pairs):
    tokenized = tokenize_pairs(pairs, lowercase=True)
    src = Vocab.build(en for en, _ in tokenize_pairs(PAIRS, True))
    tgt = Vocab.build(zh for _, zh in tokenize_pairs(PAIRS, True))
    examples, dropped = encode_pairs(tokenized, src, tgt, max_tokens=100)
    assert dropped == 0
    return examples


def test_a_join_encodes_like_the_texts_joined_with_a_space():
    singles = encoded(PAIRS)
    for parts in ([0, 1], [2, 0, 3], [1, 1]):
        text = [(" ".join(PAIRS[i][0] for i in parts), "".join(PAIRS[i][1] for i in parts))]
        (reference,) = encoded(text)
        joined = join([singles[i] for i in parts])
        assert joined.src == reference.src
        assert joined.tgt == reference.tgt


def test_an_epoch_has_the_asked_share_of_joins_and_depends_only_on_its_seed():
    singles = encoded(PAIRS) * 50  # 200 examples
    epoch = epoch_examples(singles, 0.5, seed=3, max_tokens=100)
    assert len(epoch) == len(singles)
    ends = Counter(sum(1 for i in e.src if i == e.src[-1]) for e in epoch)  # </s> only at the end
    assert ends == {1: len(singles)}
    tgt = Vocab.build(zh for _, zh in tokenize_pairs(PAIRS, True))
    ends_zh = {tgt.stoi["。"], tgt.stoi["？"]}  # one of them ends every sentence here
    n_sentences = [sum(1 for i in e.tgt if i in ends_zh) for e in epoch]
    assert Counter(n > 1 for n in n_sentences)[True] == 100
    assert set(n_sentences) <= {1, 2, 3}
    assert [e.src for e in epoch] == [e.src for e in epoch_examples(singles, 0.5, seed=3, max_tokens=100)]
    assert [e.src for e in epoch] != [e.src for e in epoch_examples(singles, 0.5, seed=4, max_tokens=100)]
    assert epoch_examples(singles, 0.0, seed=3, max_tokens=100) is singles


def test_joins_longer_than_the_limit_fall_back_to_two_pairs_or_are_left_out():
    singles = encoded(PAIRS) * 10
    longest_two = 2 * max(len(e.src) - 1 for e in singles)
    epoch = epoch_examples(singles, 0.5, seed=0, max_tokens=longest_two)
    assert all(len(e.src) <= longest_two + 1 for e in epoch)
    short = epoch_examples(singles, 0.5, seed=0, max_tokens=4)
    assert len(short) == 20  # every join is too long: only the singles remain
