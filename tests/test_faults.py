"""Broken weights stop the app and the CLIs with one clear line naming the file; nothing starts half-broken."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def broken_copy(src: Path, dst: Path, fault: str) -> Path:
    shutil.copytree(src, dst)
    weights = dst / "model.safetensors"
    if fault == "missing-folder":
        shutil.rmtree(dst)
    elif fault == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif fault == "corrupted":
        data = bytearray(weights.read_bytes())
        data[:8] = b"\xff" * 8  # the header length: garbage
        weights.write_bytes(bytes(data))
    elif fault == "config-mismatch":
        config = json.loads((dst / "config.json").read_text())
        config["model"]["d_model"] = 128
        config["model"]["d_ff"] = 256
        (dst / "config.json").write_text(json.dumps(config))
    elif fault == "missing-vocab":
        (dst / "vocab_tgt.json").unlink()
    return dst


FAULTS = {
    "missing-folder": "weights folder not found",
    "truncated": "model.safetensors: unreadable or truncated",
    "corrupted": "model.safetensors: unreadable or truncated",
    "config-mismatch": "do not belong together",
    "missing-vocab": "vocab_tgt.json",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_cli_reports_broken_weights_in_one_line(zh_weights, tmp_path, fault):
    bad = broken_copy(zh_weights, tmp_path / "bad", fault)
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "translate", "--weights", str(bad)],
        input="I love you.\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and FAULTS[fault] in lines[0]
    assert str(bad) in lines[0]


def test_app_refuses_to_start_on_broken_weights(zh_weights, tmp_path):
    bad = broken_copy(zh_weights, tmp_path / "bad", "config-mismatch")
    proc = subprocess.run(
        [sys.executable, "app.py", "--weights", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**__import__("os").environ, "GRADIO_SERVER_PORT": "1"},
    )
    assert proc.returncode == 2
    assert "Running on" not in proc.stdout
    assert proc.stderr.strip().startswith("error: ") and "config.json" in proc.stderr
    assert "Traceback" not in proc.stderr
