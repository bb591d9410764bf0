"""Shared fixtures: tiny corpora written by the tests, and one toy model trained once per session."""
from __future__ import annotations

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


def toy_train_config(tmp: Path, **overrides) -> TrainConfig:
    """A recipe that learns the reversal task in seconds on one CPU thread."""
    tmp.mkdir(parents=True, exist_ok=True)
    train = write_tsv(tmp / "train.tsv", reverse_digits_pairs(3000, seed=0))
    dev = write_tsv(tmp / "dev.tsv", reverse_digits_pairs(100, seed=1))
    base = dict(
        train_path=str(train), dev_path=str(dev), run_dir=str(tmp / "run"),
        d_model=64, n_heads=4, d_ff=128, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0,
        max_len=32, min_freq_src=1, epochs=10, max_tokens=512, lr=3e-3, warmup_steps=60, schedule="cosine",
        label_smoothing=0.0, seed=0, device="cpu", threads=1, progress=False,
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
    return ModelConfig(src_vocab_size=23, tgt_vocab_size=19, d_model=32, n_heads=4, d_ff=64,
                       n_encoder_layers=2, n_decoder_layers=2, dropout=0.1, max_len=40)
