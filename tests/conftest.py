"""Shared fixtures: tiny corpora written by the tests, and one toy model trained once per session."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from training.config import ModelConfig, TrainConfig

# One thread: the suite runs beside other work on a 2-core machine, where 2 threads can be much slower.
torch.set_num_threads(1)


def reverse_digits_pairs(n: int, seed: int, min_len: int = 3, max_len: int = 6) -> list[tuple[str, str]]:
    """The toy task: English side "3 1 4", Chinese side "413" (the digits reversed, one token per digit)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        digits = [str(rng.randrange(10)) for _ in range(rng.randint(min_len, max_len))]
        pairs.append((" ".join(digits), "".join(reversed(digits))))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{en}\t{zh}\n" for en, zh in pairs), encoding="utf-8")
    return path


# The shape and recipe both toy models share: small enough to learn in seconds on one CPU thread.
TINY_RECIPE = dict(
    d_model=64,
    n_heads=4,
    d_ff=128,
    n_encoder_layers=2,
    n_decoder_layers=2,
    dropout=0.0,
    subwords=0,  # word vocabularies; tests/test_subwords.py trains the pieces
    concat=0.0,  # single pairs: tests/test_concat.py trains the joins
    min_freq_src=1,
    lr=3e-3,
    schedule="cosine",
    label_smoothing=0.0,
    seed=0,
    device="cpu",
    threads=1,
    progress=False,
)


def toy_train_config(tmp: Path, **overrides) -> TrainConfig:
    """A recipe that learns the reversal task in seconds on one CPU thread."""
    tmp.mkdir(parents=True, exist_ok=True)
    train = write_tsv(tmp / "train.tsv", reverse_digits_pairs(3000, seed=0))
    dev = write_tsv(tmp / "dev.tsv", reverse_digits_pairs(100, seed=1))
    base = dict(
        train_path=str(train),
        dev_path=str(dev),
        run_dir=str(tmp / "run"),
        **TINY_RECIPE,
        max_len=32,
        epochs=10,
        max_tokens=512,
        warmup_steps=60,
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> tuple[TrainConfig, dict]:
    """Train the toy model once through the real training loop; returns (config, summary)."""
    from training.train import train

    cfg = toy_train_config(tmp_path_factory.mktemp("toy"))
    summary = train(cfg)
    return cfg, summary


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(
        src_vocab_size=23,
        tgt_vocab_size=19,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.1,
        max_len=40,
    )


# A tiny English→Chinese corpus the UI tests memorize in seconds, so that
# heatmap labels are real Chinese characters (the browser test checks the font).
ZH_PAIRS = [
    ("I love you.", "我爱你。"),
    ("I love tea.", "我爱茶。"),
    ("You love me.", "你爱我。"),
    ("Where is the station?", "车站在哪里？"),
    ("Where is the book?", "书在哪里？"),
    ("The book is here.", "书在这里。"),
    ("I drink tea every day.", "我每天喝茶。"),
    ("She is my sister.", "她是我的姐姐。"),
    ("He is my brother.", "他是我的哥哥。"),
    ("It is going to rain tomorrow.", "明天会下雨。"),
    ("Do you want to drink some tea?", "你想喝点茶吗？"),
    ("My brother became an engineer.", "我哥哥成了一名工程师。"),
    ("I am happy.", "我很高兴。"),
    ("We are students.", "我们是学生。"),
    ("The dog is not here.", "狗不在这里。"),
    ("Thank you.", "谢谢你。"),
]


def zh_train_config(tmp: Path, **overrides) -> TrainConfig:
    tmp.mkdir(parents=True, exist_ok=True)
    train = write_tsv(tmp / "train.tsv", ZH_PAIRS * 25)
    dev = write_tsv(tmp / "dev.tsv", ZH_PAIRS)
    base = dict(
        train_path=str(train),
        dev_path=str(dev),
        run_dir=str(tmp / "run"),
        **TINY_RECIPE,
        max_len=48,
        epochs=12,
        max_tokens=400,
        warmup_steps=30,
        keep_checkpoints=1,
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def zh_weights(tmp_path_factory) -> Path:
    """A weights folder (as `python -m training export` writes it) of a model that knows ZH_PAIRS."""
    from training.export import export
    from training.train import train

    cfg = zh_train_config(tmp_path_factory.mktemp("zh"))
    train(cfg)
    path, _ = export(cfg.run_dir, Path(cfg.run_dir).parent / "weights", checkpoint="last", dtype="float32")
    return path


# The app built on the toy model: loaded once per module, served in this process when a test needs HTTP.
@pytest.fixture(scope="module")
def loaded(zh_weights):
    from explorer.loading import load_translator

    return load_translator(str(zh_weights))


def serve(demo, loaded) -> str:
    """Launch as app.py does (same launch options), on a free port, in this process; returns the URL."""
    from explorer.page import launch_options

    _, url, _ = demo.launch(
        **launch_options(loaded),
        server_name="127.0.0.1",
        server_port=None,
        prevent_thread_lock=True,
        quiet=True,
    )
    return url


@pytest.fixture(scope="module")
def served(loaded):
    from explorer.page import build_demo

    demo = build_demo(loaded)
    try:
        yield serve(demo, loaded)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page_parts(loaded):
    """(demo, shared) of `explorer.page.build`: the handlers' arguments, as the page wires them."""
    from explorer.page import build

    return build(loaded)


def view_values(shared, kind="cross", layer="all", heads=("1", "2", "3", "4"), average="grid", show_special=True,
                per_map=False, words=False, large="none", width=None, step=1) -> dict:  # fmt: skip
    """The Attention tab's controls as Gradio hands them to a handler: {component: value}."""
    t = shared.tabs["attention"]
    values = [kind, layer, list(heads), average, show_special, per_map, words]
    return {**dict(zip(t.controls, values)), t.large: large, t.step: step, shared.client_width: width}


def translate_values(shared, text, beam, **view) -> dict:
    """The Translate event's inputs: the text, the beam, the Attention tab's controls, and every other
    input a tab's hook reads, as the page first shows it."""
    shown = {c: getattr(c, "value", None) for hook in shared.hooks for c in hook.inputs}
    return {**shown, shared.text: text, shared.beam: beam, **view_values(shared, **view)}


def pytest_configure(config):
    # Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:.*no_silent_downcasting.*")
    config.addinivalue_line("filterwarnings", "ignore:The copy keyword is deprecated.*")


# The browser tests' fixtures (test_e2e_*.py): one app per test module, a fresh page per test.
@pytest.fixture(scope="module")
def app_url(zh_weights, tmp_path_factory):
    from app_process import AppProcess

    log = tmp_path_factory.mktemp("app") / "app.log"
    app = AppProcess(["--weights", str(zh_weights), "--threads", "1"], log=log)
    try:
        app.wait(timeout=90)
        yield app.url
    finally:
        app.stop()
    # A handler that fails without a word to the visitor still leaves its traceback here: the page
    # looking right is not enough (an unchanged pick once failed this way on every query-menu blur).
    text = log.read_text(errors="replace")
    if "Traceback" in text:
        start = text.index("Traceback")
        pytest.fail(f"the app logged a traceback during these browser tests:\n{text[start : start + 3000]}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: $E2E_SCREENSHOTS, else the test's tmp dir."""
    d = Path(os.environ.get("E2E_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture()
def page(app_url):
    """The app in headless Chromium at 1400 px, once the first visit's example map is drawn.

    `page.dialogs` collects the messages of any dialog (then dismissed): markup must never open one.
    An error the page's scripts throw and nothing catches fails the test when it ends (a plot Plotly
    could not draw shows only that).
    """
    from app_process import CHROMIUM, CHROMIUM_ARGS, E2E_WAIT_MS, FIRST_MAP
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1800})
        pg.dialogs = []
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(app_url)
        pg.wait_for_selector("#source-text textarea, #source-text input", timeout=E2E_WAIT_MS)
        pg.wait_for_selector(FIRST_MAP, timeout=2 * E2E_WAIT_MS)
        yield pg
        browser.close()
    assert not errors, f"the page threw: {errors[:3]}"
