"""English subword pieces: no Latin word is unknown, frequent words stay whole, pieces map back to
words, and a subword model survives export → load bit for bit."""

import base64
import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ZH_PAIRS, zh_train_config

from training.data import hold_out
from training.files import SRC_VOCAB_FILE, SUBWORDS_FILE
from training.subwords import WORD_START, Subwords
from training.text import UNK_ID, tokenize_en
from training.translator import WeightsError, load_weights_dir

SENTENCES = [tokenize_en(en) for en, _ in ZH_PAIRS] * 5


@pytest.fixture(scope="module")
def subwords() -> Subwords:
    return Subwords.train(SENTENCES, vocab_size=120)


def test_any_word_of_letters_digits_and_punctuation_becomes_known_pieces(subwords):
    words = ["sesquipedalian", "xylophone", "qz", "2026", "e-mail", "k8s", *string.punctuation]
    split = subwords.split(words)
    assert UNK_ID not in split.ids
    assert "".join(split.pieces).replace(WORD_START, "") == "".join(words)


def test_frequent_words_stay_whole(subwords):
    for word in ("i", "love", "is", "my", "tea", "."):
        assert subwords.split([word]).pieces == [WORD_START + word]


def test_only_unseen_characters_are_unknown(subwords):
    split = subwords.split(["tea", "好", "é"])
    unknown = [p for p, i in zip(split.pieces, split.ids) if i == UNK_ID]
    assert unknown == ["好", "é"]


def test_word_index_maps_each_piece_to_its_word(subwords):
    words = ["my", "brother", "unbelievably", "likes", "tea"]
    split = subwords.split(words)
    assert len(split.word_index) == len(split.pieces) == len(split.ids)
    assert split.word_index == sorted(split.word_index)  # pieces come in word order
    for w, word in enumerate(words):
        pieces = [p for p, i in zip(split.pieces, split.word_index) if i == w]
        assert pieces[0].startswith(WORD_START) and not any(p.startswith(WORD_START) for p in pieces[1:])
        assert "".join(pieces).removeprefix(WORD_START) == word


def test_saved_model_loads_back_identically(subwords, tmp_path):
    subwords.save(tmp_path / SUBWORDS_FILE)
    loaded = Subwords.load(tmp_path / SUBWORDS_FILE)
    assert loaded.proto == subwords.proto
    assert loaded.vocab().itos == subwords.vocab().itos
    words = [w for s in SENTENCES for w in s] + ["sesquipedalian", "好"]
    assert loaded.split(words) == subwords.split(words)


def test_training_the_same_corpus_twice_gives_the_same_model(subwords):
    assert Subwords.train(SENTENCES, vocab_size=120).proto == subwords.proto


def test_vocabulary_starts_with_the_four_specials(subwords):
    assert subwords.vocab().itos[:4] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_a_file_that_is_not_a_sentencepiece_model_is_one_line(tmp_path):
    (tmp_path / SUBWORDS_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=f"{SUBWORDS_FILE}: not a SentencePiece model"):
        Subwords.load(tmp_path / SUBWORDS_FILE)


@pytest.fixture(scope="module")
def subword_cfg(tmp_path_factory):
    from training.train import train

    cfg = zh_train_config(tmp_path_factory.mktemp("zh-subwords"), subwords=120, epochs=12)
    train(cfg)
    return cfg


@pytest.fixture(scope="module")
def subword_run(subword_cfg, tmp_path_factory):
    from training.export import export, load_run

    cfg = subword_cfg
    weights, _ = export(
        cfg.run_dir, tmp_path_factory.mktemp("exp") / "weights", checkpoint="last", dtype="float32"
    )
    original, _, _ = load_run(cfg.run_dir, "last")
    return original, weights


def test_subword_weights_folder_round_trip_reproduces_the_logits(subword_run):
    original, weights = subword_run
    config = json.loads((weights / "config.json").read_text())
    assert config["tokenizer"]["subwords"] == SUBWORDS_FILE
    loaded = load_weights_dir(weights)
    assert loaded.subwords.proto == original.subwords.proto
    source = loaded.prepare("My brother likes unbelievably hot tea.")
    assert source.ids == original.prepare("My brother likes unbelievably hot tea.").ids
    src, tgt = torch.tensor([source.ids]), torch.tensor([[2, 5, 6, 7]])
    assert torch.equal(original.model(src, tgt)[0], loaded.model(src, tgt)[0])
    assert loaded.translate(["I love tea."]) == original.translate(["I love tea."]) == ["我爱茶。"]


def test_prepare_records_pieces_words_and_unknown_characters(subword_run):
    _, weights = subword_run
    source = load_weights_dir(weights).prepare("I love unbelievably 好 tea.")
    assert source.words == ["i", "love", "unbelievably", "好", "tea", ".", "</s>"]
    assert source.tokens[-1] == "</s>" and source.word_index[-1] == len(source.words) - 1
    assert [source.words[w] for w, u in zip(source.word_index, source.unknown) if u] == ["好"]
    assert len(source.tokens) > len(source.words)  # "unbelievably" is not one piece in this tiny model


def test_long_input_is_cut_at_a_word_boundary(subword_run):
    _, weights = subword_run
    translator = load_weights_dir(weights)
    source = translator.prepare("unbelievably " * 60)
    assert len(source.ids) <= translator.model.cfg.max_len
    kept_words = len(source.words) - 1
    assert source.truncated_words == 60 - kept_words > 0
    assert source.word_index[:-1].count(kept_words - 1) == source.word_index[:-1].count(0)  # last word whole


def test_a_subword_folder_without_its_model_file_is_one_line(subword_run, tmp_path):
    import shutil

    _, weights = subword_run
    broken = tmp_path / "w"
    shutil.copytree(weights, broken)
    (broken / SUBWORDS_FILE).unlink()
    with pytest.raises(WeightsError, match=f"{SUBWORDS_FILE}: missing"):
        load_weights_dir(broken)


def test_a_subword_model_from_another_run_is_refused(subword_run, tmp_path):
    import shutil

    _, weights = subword_run
    broken = tmp_path / "w"
    shutil.copytree(weights, broken)
    Subwords.train(SENTENCES, vocab_size=100).save(broken / SUBWORDS_FILE)
    with pytest.raises(WeightsError, match=f"{SUBWORDS_FILE}: its pieces differ from {SRC_VOCAB_FILE}"):
        load_weights_dir(broken)


def test_hold_out_keeps_each_english_sentence_on_one_side():
    pairs = [(f"Sentence {i % 40}.", f"句{i}") for i in range(200)] + [("sentence 3.", "句")]
    rest, held = hold_out(pairs, 50, seed=3)
    assert len(rest) + len(held) == len(pairs) and 50 <= len(held) < 60
    key = lambda en: en.lower()
    assert not {key(en) for en, _ in rest} & {key(en) for en, _ in held}
    assert hold_out(pairs, 50, seed=3) == (rest, held)


def test_trace_records_pieces_and_words_and_pools_them_for_display(subword_run):
    from explorer.inference import trace
    from explorer.views import View, select

    _, weights = subword_run
    tr = trace(load_weights_dir(weights), "My brother likes unbelievably hot tea.", beam=1)
    data = tr.to_json()
    assert data["source_tokens"] == tr.source_tokens and len(data["source_word_index"]) == len(
        tr.source_tokens
    )
    assert data["source_words"] == ["my", "brother", "likes", "unbelievably", "hot", "tea", ".", "</s>"]
    n_words = len(tr.source_words)
    enc = select(tr, View(kind="encoder", layer=0, words=True))
    assert enc["weights"].shape[2:] == (n_words, n_words) and enc["x_labels"] == tr.source_words
    np.testing.assert_allclose(enc["weights"].sum(-1), 1.0, atol=1e-5)
    cross = select(tr, View(kind="cross", words=True))
    assert cross["weights"].shape[3] == n_words
    np.testing.assert_allclose(cross["weights"].sum(-1), 1.0, atol=1e-5)
    hidden = select(tr, View(kind="encoder", words=True, show_special=False))
    assert hidden["x_labels"] == tr.source_words[:-1]


def test_too_few_subwords_for_the_alphabet_is_a_one_line_config_error():
    from training.errors import ConfigError

    with pytest.raises(ConfigError, match="--subwords 50 is too small.*use at least"):
        Subwords.train(SENTENCES, vocab_size=50)


def test_the_explorer_offers_whole_words_for_a_subword_model_and_pools_its_maps(subword_run):
    from conftest import translate_values

    from explorer.loading import load_translator
    from explorer.page import build, run

    _, weights = subword_run
    demo, shared = build(load_translator(str(weights)))
    words = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "words")
    assert words.visible is True
    text = "I love unbelievably hot tea."
    outs = {}
    for pooled in (False, True):
        values = translate_values(shared, text, 1, heads=("1",), words=pooled)
        out = {c.elem_id: v for c, v in run(shared, values).items() if c.elem_id}
        fig = json.loads(out["attention-plot"])
        outs[pooled] = next(t for t in fig["data"] if t["type"] == "heatmap")
    n_words = len(load_weights_dir(weights).prepare(text).words)  # </s> included
    assert len(outs[True]["x"]) == n_words < len(outs[False]["x"])
    z = outs[True]["z"]  # Plotly sends numpy arrays as base64 with their dtype and shape
    z = np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape(
        [int(n) for n in z["shape"].split(",")]
    )
    np.testing.assert_allclose(z.sum(axis=1), 1.0, atol=1e-4)  # pooled rows are still distributions


def test_a_run_started_from_a_subword_run_keeps_its_pieces_vocabularies_and_weights(subword_cfg, tmp_path):
    from training.__main__ import main
    from training.checkpoint import model_state, read_checkpoint

    first = Path(subword_cfg.run_dir)
    run = tmp_path / "second"
    # Only the recipe is given: shape and vocabulary options come from the first run.
    args = ["train", "--train", subword_cfg.train_path, "--dev", subword_cfg.dev_path, "--run-dir", str(run)]
    args += ["--init-from", str(first), "--epochs", "1", "--lr", "0", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    for name in ("subwords_src.model", "vocab_src.json", "vocab_tgt.json"):
        assert (run / name).read_bytes() == (first / name).read_bytes(), name
    # At learning rate 0 the weights stay those of the first run's best checkpoint, so the new run's
    # first dev score is that checkpoint's.
    before = model_state(read_checkpoint(first / "best.safetensors")[0])
    after = model_state(read_checkpoint(run / "last.safetensors")[0])
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    best = max(json.loads(line)["dev_bleu"] for line in (first / "log.jsonl").read_text().splitlines())
    assert json.loads((run / "log.jsonl").read_text().splitlines()[0])["dev_bleu"] == pytest.approx(best)
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["subwords"] == 120 and saved["d_model"] == subword_cfg.d_model


def test_init_from_refuses_a_shape_that_differs_from_the_run_in_one_line(subword_cfg, tmp_path, capsys):
    from training.__main__ import main

    args = ["train", "--train", subword_cfg.train_path, "--run-dir", str(tmp_path / "r")]
    args += ["--init-from", subword_cfg.run_dir, "--d-model", str(subword_cfg.d_model * 2)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "d_model" in err and "--init-from" in err
    assert not (tmp_path / "r" / "last.safetensors").exists()


def test_the_explorer_caps_subword_pieces_at_word_boundaries_and_within_a_word_of_junk(subword_run):
    from explorer.inference import prepare, trace

    _, weights = subword_run
    translator = load_weights_dir(weights)
    text = "unbelievably good " * 10
    whole = translator.prepare(text)
    _, source, notices = prepare(translator, text, max_words=30, max_pieces=20)
    assert len(source.ids) - 1 <= 20 and source.ids[:-1] == whole.ids[: len(source.ids) - 1]
    kept = len(source.words) - 1
    assert source.word_index[:-1].count(kept - 1) == whole.word_index.count(kept - 1)  # the last word whole
    assert source.truncated_words == 20 - kept and "20 subword pieces" in notices[-1]

    junk = "x" * 300 + " and more"
    _, source, notices = prepare(translator, junk, max_words=30, max_pieces=20)
    assert (
        len(source.ids) == 21 and source.words == ["x" * 300, "</s>"] and set(source.word_index[:-1]) == {0}
    )
    assert "only the first 20 pieces" in notices[-1] and source.truncated_words == 2
    tr = trace(translator, junk, max_words=30, max_pieces=20)  # the maps are as small as the cut input
    assert tr.encoder_self.shape[-1] == 21 and tr.source_tokens == source.tokens

    _, untouched, notices = prepare(translator, "unbelievably good", max_words=30, max_pieces=20)
    assert untouched.ids == translator.prepare("unbelievably good").ids and not any(
        "cut" in n for n in notices
    )
