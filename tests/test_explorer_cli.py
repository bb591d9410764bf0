import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ZH_PAIRS

from explorer.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def run_translate(monkeypatch, capsys, data: bytes, *args):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code = main(["translate", *args, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_translate_keeps_one_line_per_input_line(monkeypatch, capsys, zh_weights):
    lines = ["I love you.", "", "Thank you.", "   ", "Where is the book?"]
    code, out, _ = run_translate(
        monkeypatch, capsys, ("\n".join(lines) + "\n").encode(), "--weights", str(zh_weights), "--beam", "2"
    )
    assert code == 0
    got = out.split("\n")
    assert len(got) == len(lines) + 1 and got[-1] == ""
    assert got[0] == "我爱你。" and got[4] == "书在哪里？"
    assert got[1] == got[3] == ""  # empty in, empty out
    assert "谢" in got[2]


def test_translate_survives_odd_input(monkeypatch, capsys, zh_weights):
    odd = [
        "<script>alert(1)</script>",
        "🙂" * 50,
        "\u202eI love you.",
        "word " * 3000,
        "%s %d {0} '; DROP TABLE t;--",
        "我爱你",
        "\x07\x1b[31mred",
    ]
    data = ("\n".join(odd) + "\n").encode() + b"\xff\xfe broken bytes\n"
    code, out, _ = run_translate(monkeypatch, capsys, data, "--weights", str(zh_weights))
    assert code == 0
    assert out.count("\n") == len(odd) + 1


def test_trace_prints_the_documented_json(capsys, zh_weights):
    assert main(["trace", "I love you.", "--weights", str(zh_weights), "--beam", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["translation"] == "我爱你。"
    assert data["source_tokens"] == ["i", "love", "you", ".", "</s>"]
    assert data["target_tokens"] == ["<s>", "我", "爱", "你", "。"]
    assert data["predicted_tokens"] == ["我", "爱", "你", "。", "</s>"]
    assert data["model_id"] == str(zh_weights) and data["decoding"]["beam"] == 1
    assert len(data["attention"]["decoder_self"][0][0]) == 5


def test_errors_are_one_line(capsys, tmp_path, zh_weights):
    assert main(["trace", "  ", "--weights", str(zh_weights)]) == 2
    assert capsys.readouterr().err.strip() == "error: Type an English sentence to translate."
    assert main(["trace", "Hi.", "--weights", str(tmp_path / "none")]) == 2
    assert "weights folder not found" in capsys.readouterr().err


def test_module_entry_point_reads_stdin(zh_weights):
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "translate", "--weights", str(zh_weights)],
        input="I love tea.\n\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "我爱茶。\n\n"
    assert "sentences/s" in proc.stderr


def test_a_bug_keeps_its_traceback(monkeypatch, zh_weights):
    """Only weights and input errors are one line; a ValueError from a bug propagates (traceback, exit 1)."""

    def bug(*args, **kwargs):
        raise ValueError("bug in the loader")

    monkeypatch.setattr("explorer.__main__.load_translator", bug)
    with pytest.raises(ValueError, match="bug in the loader"):
        main(["trace", "Hi.", "--weights", str(zh_weights)])


def run_json(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_trace_internals_are_added_only_when_asked(capsys, zh_weights):
    w = ["--weights", str(zh_weights)]
    _, plain, _ = run_json(capsys, "trace", "I love you.", *w)
    code, full, _ = run_json(capsys, "trace", "I love you.", *w, "--internals")
    assert code == 0 and "internals" not in plain and "checks" in plain and "checks" in full
    s, t = len(full["source_tokens"]), len(full["target_tokens"])
    enc, cross = full["internals"]["encoder_self"], full["internals"]["cross"]
    layers, heads = len(enc["q"]), len(enc["q"][0])
    d_head = len(enc["q"][0][0][0])
    assert [len(enc["q"][0][0]), len(cross["q"][0][0]), len(cross["k"][0][0])] == [s, t, s]
    assert (
        len(cross["head_output"][0][0][0]) == d_head
        and len(cross["v"]) == layers
        and len(cross["v"][0]) == heads
    )
    assert {k: v for k, v in full.items() if k != "internals"} == plain


def test_ablate_none_changes_nothing_and_a_head_changes_log_probabilities(capsys, zh_weights):
    w = ["--weights", str(zh_weights), "--beam", "1"]
    code, none, _ = run_json(capsys, "ablate", "Where is the book?", "--heads", "none", *w)
    assert code == 0 and none["translation"] == none["ablated_translation"]
    assert none["delta_logprob"] == [0.0] * len(none["target_tokens"]) and none["target_tokens"][-1] == "</s>"
    _, some, _ = run_json(
        capsys, "ablate", "Where is the book?", "--heads", "cross:1:1,cross:2:1,cross:2:2", *w
    )
    assert some["heads"] == [["cross", 1, 1], ["cross", 2, 1], ["cross", 2, 2]]
    assert len(some["delta_logprob"]) == len(some["target_tokens"]) and any(
        d != 0.0 for d in some["delta_logprob"]
    )


@pytest.mark.parametrize(
    "spec,message",
    [
        ("bogus", "is not KIND:LAYER:HEAD"),
        ("cross:0:1", "this model has 2 cross layers"),
        ("self:1:1", "is not KIND"),
        ("cross:9:1", "this model has 2 cross layers of 4 heads (from 1)"),  # as the API and the page say it
        ("encoder:1:5", "of 4 heads"),
    ],
)
def test_bad_heads_are_one_line_and_exit_2(capsys, zh_weights, spec, message):
    code, _, err = run_json(capsys, "ablate", "I love you.", "--heads", spec, "--weights", str(zh_weights))
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_head_stats_over_a_corpus(capsys, zh_weights, tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text(
        "I love you.\t我爱你。\nWhere is the book?\t书在哪里？\nThank you.\t谢谢你。\n", encoding="utf-8"
    )
    code, stats, _ = run_json(
        capsys, "head-stats", "--data", str(data), "--limit", "2", "--quiet", "--weights", str(zh_weights)
    )
    assert code == 0 and stats["sentences"] == 2
    for kind in ("encoder", "decoder", "cross"):
        entropy = stats["stats"][kind]["entropy_bits"]
        assert len(entropy) == 2 and len(entropy[0]) == 4 and all(e >= 0 for row in entropy for e in row)
    assert stats["stats"]["cross"]["distance"] == [[None] * 4] * 2  # positions do not align across languages
    assert all(0 <= s <= 1 for row in stats["stats"]["decoder"]["same"] for s in row)


def test_trace_contributions_are_the_modules_figures_and_bring_internals_only_when_asked(capsys, zh_weights):
    from explorer.contributions import contributions, contributions_json
    from explorer.inference import trace
    from training.translator import load_weights_dir

    w = ["--weights", str(zh_weights), "--beam", "1"]
    code, data, _ = run_json(capsys, "trace", "Where is the book?", *w, "--contributions")
    assert code == 0 and "internals" not in data
    translator = load_weights_dir(zh_weights)
    tr = trace(translator, "Where is the book?", beam=1, internals=True)
    assert data["contributions"] == json.loads(json.dumps(contributions_json(contributions(tr, translator))))
    s, t = len(data["source_tokens"]), len(data["predicted_tokens"])
    c = data["contributions"]
    assert len(c["value_norm"]["cross"][0][0]) == t and len(c["value_norm"]["cross"][0][0][0]) == s
    for method in ("alti", "rollout"):
        assert [len(c[method]["encoder"]), len(c[method]["source"]), len(c[method]["target"])] == [s, t, t]
        assert len(c[method]["source"][0]) == s and len(c[method]["source_share"]) == t
    _, both, _ = run_json(capsys, "trace", "Where is the book?", *w, "--contributions", "--internals")
    _, plain, _ = run_json(capsys, "trace", "Where is the book?", *w)
    assert "internals" in both and both["contributions"] == data["contributions"]
    assert {k: v for k, v in data.items() if k != "contributions"} == plain


def test_faithfulness_prints_a_table_and_writes_the_figures(capsys, zh_weights, tmp_path):
    from training.faithfulness import METHODS, is_result

    data, out = tmp_path / "d.tsv", tmp_path / "f.json"
    data.write_text("".join(f"{en}\t{zh}\n" for en, zh in ZH_PAIRS), encoding="utf-8")
    args = ["faithfulness", "--data", str(data), "--limit", "5", "--weights", str(zh_weights)]
    assert main([*args, "--json", str(out), "--seed", "2"]) == 0
    printed, err = capsys.readouterr()
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert is_result(figures) and figures["data"] == "d.tsv" and figures["pairs"] == figures["sentences"] == 5
    assert figures["seed"] == 2 and figures["model_id"] == str(zh_weights)
    assert all(name in printed for name in METHODS) and "</s> excluded" in printed
    assert "faithfulness" in err and "5/5" in err  # the progress bar
    assert main([*args, "--quiet"]) == 0 and capsys.readouterr().err == ""
    empty = tmp_path / "empty.tsv"
    empty.write_text("no tab here\n", encoding="utf-8")
    code = main(["faithfulness", "--data", str(empty), "--weights", str(zh_weights)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no usable English<TAB>Chinese pairs" in err


def test_trace_with_hypotheses_and_a_forced_translation(capsys, zh_weights):
    w = ["--weights", str(zh_weights), "--beam", "4"]
    code, beam, _ = run_json(capsys, "trace", "She is my sister.", *w, "--hypotheses")
    assert code == 0 and beam["hypotheses"][0]["translation"] == beam["translation"]
    code, forced, _ = run_json(capsys, "trace", "She is my sister.", *w, "--force", "她是我的哥哥。")
    assert code == 0 and forced["forced"] is True and forced["translation"] == "她是我的哥哥。"
    assert forced["target_tokens"] == ["<s>", *"她是我的哥哥。"] and "hypotheses" not in forced
    code, _, err = run_json(capsys, "trace", "She is my sister.", *w, "--force", " ")
    assert code == 2 and "The Chinese to explain is empty" in err and err.count("\n") == 1
