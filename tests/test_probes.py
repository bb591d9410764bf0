"""The joined and long probes, the sentence splitter, and evaluate --split-sentences."""

from __future__ import annotations

import pytest
from conftest import ZH_PAIRS, write_tsv

from training.__main__ import main
from training.evaluate import evaluate, translate_by_sentence
from training.probes import joined_probe, long_probe, words
from training.sentences import split_sentences
from training.translator import load_weights_dir


def n_words(n: int, tag: str) -> tuple[str, str]:
    """A pair whose English has exactly n words, told apart by tag."""
    return " ".join([tag] + ["word"] * (n - 1)) + ".", f"{tag}。"


# Single sentences with the splitter's traps inside: abbreviations, quotes, decimals, questions.
CORPUS = [
    ("Mr. Smith is not at home today.", "史密斯先生今天不在家。"),
    ('I said "Go!" to the little dog.', "我对小狗说：“走！”"),
    ("It costs 3.50 dollars at the shop.", "在商店里要三块五。"),
    ("Who is that man over there?", "那边那个人是谁？"),
    ("Dr. Brown works at the big hospital.", "布朗医生在大医院工作。"),
    ("What a beautiful day it is!", "多么美好的一天！"),
    ("She was born in 1990 in Boston.", "她1990年生于波士顿。"),
    ('Tom asked me, "Are you hungry?"', "汤姆问我：“你饿吗？”"),
    ("Please give Mrs. Jones my best wishes.", "请代我向琼斯夫人问好。"),
    ("The train leaves at 7.15 every morning.", "火车每天早上七点十五分出发。"),
    ("We visited St. Paul's last summer.", "我们去年夏天参观了圣保罗教堂。"),
    ("Do you know where Prof. Lee lives?", "你知道李教授住在哪里吗？"),
    ("I can't believe you did that!", "我不敢相信你做了那件事！"),
    ("My brother is two years older.", "我哥哥大我两岁。"),
    ("'Tis the season to be jolly, they say.", "他们说这是欢乐的季节。"),
    ("I have apples, pears, and so on.", "我有苹果、梨等等。"),
    ("Is this your umbrella, or is it mine?", "这把伞是你的还是我的？"),
    ("He lives at No. 5 on this street.", "他住在这条街的五号。"),
    ("Let's meet again next week.", "我们下周再见吧。"),
    ("Why did you come so late?", "你为什么来得这么晚？"),
    ("The U.N. meets here every year.", "联合国每年在这里开会。"),
    ("I'll be there at 10 o'clock.", "我十点钟到。"),
    ("Never give up on your dreams!", "永远不要放弃你的梦想！"),
    ("'Where are you going?' she asked.", "“你去哪儿？”她问。"),
]


# --- the probes' rules ---------------------------------------------------------------------------


def test_joined_keeps_triples_of_15_to_30_words():
    fits = [n_words(5, f"a{i}") for i in range(6)] + [n_words(10, f"b{i}") for i in range(6)]
    assert len(joined_probe(fits, seed=0)) == 4  # every triple is 15 to 30 words
    assert joined_probe([n_words(4, f"c{i}") for i in range(9)], seed=0) == []  # 12 words
    assert joined_probe([n_words(11, f"d{i}") for i in range(9)], seed=0) == []  # 33 words
    mixed = [n_words(n, f"e{i}") for i, n in enumerate([1, 2, 4, 5, 6, 8, 9, 10, 12, 14] * 5)]
    for seed in range(5):
        probe = joined_probe(mixed, seed)
        assert probe and all(15 <= words(en) <= 30 for en, _ in probe)


def test_joined_takes_three_disjoint_pairs_and_joins_each_side():
    zh_of = dict(CORPUS)
    used: list[str] = []
    probe = joined_probe(CORPUS, seed=3)
    assert probe
    for en, zh in probe:
        parts = [p for p in CORPUS if en.startswith(p[0]) or f" {p[0]}" in en]
        parts.sort(key=lambda p: en.index(p[0]))
        assert len(parts) == 3
        assert en == " ".join(p for p, _ in parts)
        assert zh == "".join(zh_of[p] for p, _ in parts)  # Chinese joined as is, no space
        used += [p for p, _ in parts]
    assert len(used) == len(set(used))  # no sentence in two probe lines


def test_joined_never_joins_a_leftover_pair_or_two():
    assert joined_probe([n_words(8, "a"), n_words(8, "b")], seed=0) == []
    assert len(joined_probe([n_words(6, f"a{i}") for i in range(8)], seed=0)) == 2


def test_joined_is_seeded_and_reproducible_and_leaves_its_input_alone():
    pairs = [n_words(6, f"w{i}") for i in range(60)]
    before = list(pairs)
    assert joined_probe(pairs, seed=1) == joined_probe(pairs, seed=1)
    assert joined_probe(pairs, seed=1) != joined_probe(pairs, seed=2)
    assert pairs == before


def test_long_keeps_pairs_of_12_or_more_words_in_order():
    pairs = [n_words(11, "a"), n_words(12, "b"), n_words(3, "c"), n_words(20, "d")]
    assert long_probe(pairs) == [pairs[1], pairs[3]]
    assert long_probe([("a  b\tc " * 4, "x")]) == [("a  b\tc " * 4, "x")]  # words: split on whitespace


# --- the sentence splitter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,sentences",
    [
        ("Mr. Smith is here. He left.", ["Mr. Smith is here.", "He left."]),
        ('I said "Go!" Then he went.', ['I said "Go!"', "Then he went."]),
        ("It costs 3.50 dollars.", ["It costs 3.50 dollars."]),
        ("Who? Me.", ["Who?", "Me."]),
        ("No. I don't want to.", ["No.", "I don't want to."]),  # the answer, not "number"
        ("He lives at No. 5.", ["He lives at No. 5."]),
        ("It was 1990. 2000 was better.", ["It was 1990.", "2000 was better."]),
        ("Wait... What is it?", ["Wait...", "What is it?"]),
        ("'Where?' she asked. 'There.'", ["'Where?' she asked.", "'There.'"]),
        ("Look at the U.N. building.", ["Look at the U.N. building."]),  # lower case follows
        ("", []),
        ("  One line, no end", ["One line, no end"]),
    ],
)
def test_splitter(text, sentences):
    assert split_sentences(text) == sentences


@pytest.mark.parametrize("seed", range(5))
def test_splitter_recovers_the_three_parts_of_every_joined_line(seed):
    for en, _ in CORPUS:
        assert split_sentences(en) == [en]
    probe = joined_probe(CORPUS, seed)
    assert len(probe) >= 4
    english = {en for en, _ in CORPUS}
    for en, _ in probe:
        parts = split_sentences(en)
        assert len(parts) == 3 and set(parts) <= english and " ".join(parts) == en


# --- evaluate --split-sentences ------------------------------------------------------------------


class EchoTranslator:
    """Translates by bracketing; remembers each call, to check that all sentences go in one."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def translate(self, texts, batch_size=64, **overrides):
        self.calls.append(list(texts))
        return [f"<{t}>" for t in texts]


def test_translate_by_sentence_batches_everything_in_one_call_and_joins_in_order():
    fake = EchoTranslator()
    texts = ["Mr. Smith is here. He left.", "Who? Me. You.", "Alone."]
    assert translate_by_sentence(fake, texts, beam=2) == [
        "<Mr. Smith is here.><He left.>",
        "<Who?><Me.><You.>",
        "<Alone.>",
    ]
    assert fake.calls == [["Mr. Smith is here.", "He left.", "Who?", "Me.", "You.", "Alone."]]


def test_evaluate_scores_the_joined_hypotheses():
    fake = EchoTranslator()
    scores, hyps = evaluate(fake, [("A b. C d.", "x"), ("E f.", "y")], split_sentences=True)
    assert hyps == ["<A b.><C d.>", "<E f.>"] and len(fake.calls) == 1
    assert scores.sentences == 2 and 0 < scores.brevity_penalty <= 1


def test_evaluate_cli_split_sentences_end_to_end(capsys, zh_weights, tmp_path):
    pairs = [(f"{a[0]} {b[0]}", a[1] + b[1]) for a, b in zip(ZH_PAIRS[::2], ZH_PAIRS[1::2], strict=True)]
    data = write_tsv(tmp_path / "joined.tsv", pairs)
    hyp_file = tmp_path / "hyps.txt"
    code = main(
        ["evaluate", str(zh_weights), "--data", str(data), "--split-sentences", "--output", str(hyp_file)]
        + ["--threads", "1"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "one sentence at a time" in out and "BP " in out
    translator = load_weights_dir(zh_weights)
    one_by_one = ["".join(translator.translate(split_sentences(en))) for en, _ in pairs]
    assert hyp_file.read_text(encoding="utf-8").splitlines() == one_by_one


# --- the probes verb -----------------------------------------------------------------------------


def test_probes_cli_writes_both_files_named_after_the_data(capsys, tmp_path):
    pairs = CORPUS + [n_words(12, "long"), n_words(30, "longer")]
    data = write_tsv(tmp_path / "tune.tsv", pairs)
    code = main(["probes", str(data), "--out-dir", str(tmp_path / "out"), "--seed", "4"])
    out = capsys.readouterr().out
    joined = (tmp_path / "out" / "tune-joined.tsv").read_text(encoding="utf-8").splitlines()
    long = (tmp_path / "out" / "tune-long.tsv").read_text(encoding="utf-8").splitlines()
    assert code == 0
    assert joined == [f"{en}\t{zh}" for en, zh in joined_probe(pairs, seed=4)]
    assert long == [f"{en}\t{zh}" for en, zh in long_probe(pairs)] and len(long) == 2
    assert f"tune-joined.tsv: {len(joined)} pairs" in out and "tune-long.tsv: 2 pairs" in out


def test_probes_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["probes", str(tmp_path / "nope.tsv"), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'nope.tsv'}: no such file"
    (tmp_path / "empty.tsv").write_text("no tab\n")
    assert main(["probes", str(tmp_path / "empty.tsv"), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no usable English<TAB>Chinese pairs (1 malformed lines)" in err and err.count("\n") == 1
