import pytest

from training.data import collate, encode_pairs, make_batches, read_tsv, tokenize_pairs
from training.text import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    Vocab,
    detokenize_zh,
    tokenize_en,
    tokenize_zh,
)


def test_english_uses_nltk_treebank_tokens_lowercased():
    assert tokenize_en("I don't like it.") == ["i", "do", "n't", "like", "it", "."]
    assert tokenize_en("I don't like it.", lowercase=False) == ["I", "do", "n't", "like", "it", "."]


def test_english_splits_sentence_periods_inside_multi_sentence_text():
    assert tokenize_en("Tom left. Mary stayed.") == ["tom", "left", ".", "mary", "stayed", "."]
    assert tokenize_en("Mr. Smith is here.")[:2] == ["mr.", "smith"]


def test_english_drops_control_and_zero_width_characters():
    assert tokenize_en("he\u200bllo\x00 world\t!") == ["he", "llo", "world", "!"]
    assert tokenize_en("   ") == []


def test_chinese_is_simplified_and_split_per_character():
    assert tokenize_zh("我哥哥成了一名工程師。") == list("我哥哥成了一名工程师。")
    assert tokenize_zh("他們 在說話") == list("他们在说话")


def test_detokenize_joins_characters_and_drops_specials():
    assert detokenize_zh(["<s>", "我", "爱", "你", "。", "</s>", "<pad>"]) == "我爱你。"


def test_vocab_has_fixed_special_ids_and_round_trips_through_json(tmp_path):
    v = Vocab.build([["b", "a", "b"], ["c", "b", "a"], ["rare"]], min_freq=2)
    assert v.itos[:4] == list(SPECIALS)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert v.itos[4:] == ["b", "a"]  # by frequency; "c" and "rare" are below the cut-off
    assert v.encode(["a", "c"]) == [5, UNK_ID]
    v.save(tmp_path / "v.json")
    loaded = Vocab.load(tmp_path / "v.json")
    assert loaded.itos == v.itos and loaded.stoi == v.stoi


def test_vocab_rejects_a_file_without_the_specials(tmp_path):
    (tmp_path / "v.json").write_text('{"tokens": ["a", "b"]}')
    with pytest.raises(ValueError, match="must start with"):
        Vocab.load(tmp_path / "v.json")
    (tmp_path / "w.json").write_text("not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Vocab.load(tmp_path / "w.json")


def test_read_tsv_skips_and_counts_malformed_lines(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_bytes(
        "Hello.\t你好。\nno tab here\n\t只有中文\nOnly English\t\n\n".encode()
        + b"bad bytes \xff\xfe\t\xe4\xbd\n"
        + "Three\t三\tattribution column\r\n".encode()
    )
    corpus = read_tsv(path)
    assert corpus.pairs == [("Hello.", "你好。"), ("Three", "三")]
    assert corpus.skipped == 4


def test_read_tsv_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_tsv(tmp_path / "missing.tsv")


def test_encode_and_collate_shift_the_target_by_one():
    tok = tokenize_pairs([("I love you.", "我愛你。")], lowercase=True)
    src_v = Vocab.build([en for en, _ in tok])
    tgt_v = Vocab.build([zh for _, zh in tok])
    examples, dropped = encode_pairs(tok, src_v, tgt_v, max_tokens=10)
    assert dropped == 0
    b = collate(examples)
    assert src_v.decode(b.src[0].tolist()) == ["i", "love", "you", ".", "</s>"]
    assert tgt_v.decode(b.tgt_in[0].tolist()) == ["<s>", "我", "爱", "你", "。"]
    assert tgt_v.decode(b.tgt_out[0].tolist()) == ["我", "爱", "你", "。", "</s>"]


def test_batches_respect_the_token_budget_and_cover_every_example_once():
    tok = tokenize_pairs([(" ".join(["w"] * n), "字" * (n + 1)) for n in range(1, 40)] * 5, lowercase=True)
    v_src, v_tgt = Vocab.build(en for en, _ in tok), Vocab.build(zh for _, zh in tok)
    examples, _ = encode_pairs(tok, v_src, v_tgt, max_tokens=100)
    batches = make_batches(examples, max_tokens=120, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    for b in batches:
        longest = max(max(len(examples[i].src), len(examples[i].tgt)) for i in b)
        assert longest * len(b) <= 120 or len(b) == 1
    assert make_batches(examples, 120, seed=3) == batches  # same seed, same batches (resume relies on it)
    assert make_batches(examples, 120, seed=4) != batches
