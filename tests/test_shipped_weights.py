"""Regression tests for the model shipped in weights/: it loads, stays small, and still translates."""

from pathlib import Path

import pytest

from training.data import read_tsv
from training.evaluate import evaluate
from training.translator import load_weights_dir

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
DEV = ROOT.parent / "shared" / "data" / "tatoeba-cmn-eng" / "dev.tsv"
# On the first 200 dev pairs with the shipped decoding settings: 44.12 / 38.42 when this model was
# shipped (weights/README.md has the full-dev figures); a drop of ~3 points means something broke.
DEV_BLEU_FLOOR = 41.0
DEV_CHRF_FLOOR = 35.5

# Everyday sentences this test wrote itself, with characters any correct translation contains.
EXPECTED = [
    ("I love you.", "我爱你"),
    ("Where is the station?", "哪"),
    ("Thank you very much.", "谢"),
    ("I am hungry.", "饿"),
    ("It is raining today.", "今天雨"),
    ("My mother is a teacher.", "老师"),
    ("The dog is sleeping.", "狗睡"),
    ("Do you speak English?", "英"),
    ("I have two brothers.", "两"),
    ("This book is very interesting.", "书"),
    ("We will go to school tomorrow.", "明天学"),
    ("He drinks coffee every morning.", "咖啡"),
]

pytestmark = pytest.mark.skipif(
    not (WEIGHTS / "config.json").is_file(), reason="no model shipped in weights/ yet"
)


@pytest.fixture(scope="module")
def translator():
    return load_weights_dir(WEIGHTS)


def test_weights_folder_is_complete_and_small():
    names = {p.name for p in WEIGHTS.iterdir()}
    assert {"model.safetensors", "config.json", "vocab_src.json", "vocab_tgt.json", "README.md"} <= names
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    assert size <= 40 * 1024 * 1024, f"weights/ is {size / 2**20:.1f} MB"


@pytest.mark.parametrize("english,chars", EXPECTED)
def test_everyday_sentences_contain_the_expected_characters(translator, english, chars):
    out = translator.translate([english])[0]
    missing = [c for c in chars if c not in out]
    assert not missing, f"{english!r} -> {out!r} lacks {missing}"


@pytest.mark.skipif(not DEV.is_file(), reason=f"{DEV} not present (it is in CI, beside the checkout)")
def test_dev_bleu_stays_above_the_floor(translator):
    pairs = read_tsv(DEV).pairs[:200]
    scores, _ = evaluate(translator, pairs)
    assert scores.bleu >= DEV_BLEU_FLOOR and scores.chrf >= DEV_CHRF_FLOOR, scores.line()


@pytest.mark.skipif(not DEV.is_file(), reason=f"{DEV} not present (it is in CI, beside the checkout)")
def test_no_dev_sentence_has_an_unknown_english_word(translator):
    # The shipped model reads subword pieces: any word of letters, digits or punctuation is known pieces.
    unknown = [en for en, _ in read_tsv(DEV).pairs if any(translator.prepare(en).unknown)]
    assert unknown == [], f"{len(unknown)} dev sentences still have <unk>, e.g. {unknown[:3]}"


@pytest.mark.parametrize("english", ["Grzegorz visited Reykjavik in 1997.", "The sesquipedalian ptarmigan!"])
def test_words_never_seen_in_training_become_pieces_not_unk(translator, english):
    source = translator.prepare(english)
    assert not any(source.unknown), source.tokens


@pytest.mark.skipif(not DEV.is_file(), reason=f"{DEV} not present (it is in CI, beside the checkout)")
def test_gibberish_is_still_flagged_though_subwords_leave_no_unk_and_no_dev_sentence_is(translator):
    from explorer.source_text import not_english_reason

    flagged = [en for en, _ in read_tsv(DEV).pairs if not_english_reason(translator.prepare(en))]
    assert flagged == []
    for junk in ("asdkjh qwpoeiru zxmcnv", "Xqzvb wkrtpl fjdks mmnbvq."):
        assert not_english_reason(translator.prepare(junk)) == "most of its words are unknown to it", junk


def test_the_training_defaults_are_the_shipped_models_recipe():
    # The README calls `python -m training train --train … --dev … --run-dir …` the shipped recipe:
    # every recipe option the shipped model's command gave must equal the default.
    import json
    import shlex

    from training.__main__ import build_parser
    from training.config import TrainConfig

    first = json.loads((WEIGHTS / "config.json").read_text())["training"]["command"].splitlines()[0]
    args = build_parser().parse_args(shlex.split(first)[3:])  # after "python -m training"
    where_and_how = {"train_path", "dev_path", "run_dir", "threads", "precision", "progress"}
    given = {k: v for k, v in vars(args).items() if k not in where_and_how | {"command", "func", "resume"}}
    assert given, first  # the command did name recipe options (--subwords, --epochs)
    defaults = TrainConfig(train_path="t", dev_path=None, run_dir="r")
    assert {k: getattr(defaults, k) for k in given} == given
