"""The repository root must deploy as a Gradio Space unchanged."""

import re
from pathlib import Path

import gradio
import yaml

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter"
    return yaml.safe_load(match.group(1))


def test_space_front_matter():
    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["sdk_version"] == gradio.__version__  # what the Space runs is what the tests ran
    assert meta["license"] and meta["title"] and meta["emoji"]
    assert isinstance(meta["models"], list) and all("/" in m for m in meta["models"])
    assert len(meta.get("short_description", "")) <= 60


def test_requirements_pin_what_the_space_needs():
    reqs = {
        line.split("==")[0].lower(): line.split("==")[1].split()[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    import torch

    # torch is pinned (an unpinned one pulls gigabytes of CUDA packages), and the pin is what runs here
    assert reqs["torch"] == torch.__version__.split("+")[0]
    assert reqs["gradio"] == front_matter()["sdk_version"]
    for name in ("plotly", "nltk", "numpy", "huggingface-hub", "safetensors", "sacrebleu", "opencc"):
        assert name in reqs, name
