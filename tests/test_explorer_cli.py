import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def run_translate(monkeypatch, capsys, data: bytes, *args):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code = main(["translate", *args, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_translate_keeps_one_line_per_input_line(monkeypatch, capsys, zh_weights):
    lines = ["I love you.", "", "Thank you.", "   ", "Where is the book?"]
    code, out, _ = run_translate(monkeypatch, capsys, ("\n".join(lines) + "\n").encode(), "--weights", str(zh_weights), "--beam", "2")
    assert code == 0
    got = out.split("\n")
    assert len(got) == len(lines) + 1 and got[-1] == ""
    assert got[0] == "我爱你。" and got[4] == "书在哪里？"
    assert got[1] == got[3] == ""  # empty in, empty out
    assert "谢" in got[2]


def test_translate_survives_odd_input(monkeypatch, capsys, zh_weights):
    odd = ["<script>alert(1)</script>", "🙂" * 50, "\u202eI love you.", "word " * 3000, "%s %d {0} '; DROP TABLE t;--",
           "我爱你", "\x07\x1b[31mred"]
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
    proc = subprocess.run([sys.executable, "-m", "explorer", "translate", "--weights", str(zh_weights)],
                          input="I love tea.\n\n", capture_output=True, text=True, cwd=ROOT, timeout=120)
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
