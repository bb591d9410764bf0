"""Configuration dataclasses: the model's shape and the training recipe.

`Architecture` holds the shape's defaults, once. `ModelConfig` (the shape plus
the vocabulary sizes) travels with the weights: it is the `model` section of
`config.json` beside `model.safetensors`. `TrainConfig` (the shape plus the
recipe, one field per flag) is saved flat in each run directory as
`train_config.json`, so that a run can be resumed and reproduced.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError


@dataclass
class Architecture:
    """The model's shape, vocabularies aside: the one place each architecture default is set.

    `ModelConfig` adds the vocabulary sizes; `TrainConfig` inherits these fields as flags.
    """

    d_model: int = 256  # width of every residual stream vector
    n_heads: int = 4  # attention heads per attention layer; d_model % n_heads == 0
    d_ff: int = 1024  # hidden width of the position-wise feed-forward layer
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    # On embeddings, attention weights, sub-layer outputs. 0.25 learned far slower on this
    # corpus (36.25 vs 39.97 greedy dev BLEU after 30 epochs).
    dropout: float = 0.1
    max_len: int = 256  # longest sequence the positional encoding table covers
    pre_norm: bool = True  # LayerNorm before each sub-layer (stabler) vs after (2017 paper)


SIZE_LIMITS = {
    "src_vocab_size": 1_000_000,
    "tgt_vocab_size": 1_000_000,
    "d_model": 8192,
    "n_heads": 256,
    "d_ff": 65536,
    "max_len": 8192,
    "n_encoder_layers": 64,
    "n_decoder_layers": 64,
}


# kw_only: fields without defaults may follow the inherited ones, and a positional call
# cannot put a vocabulary size into d_model.
@dataclass(kw_only=True)
class ModelConfig(Architecture):
    src_vocab_size: int  # English vocabulary size, specials included
    tgt_vocab_size: int  # Chinese vocabulary size, specials included
    pad_id: int = 0  # must match the vocabularies' <pad> id

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = {"int": int, "float": (int, float), "bool": bool}[str(f.type)]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(f"{f.name} must be {str(f.type)}, got {value!r}")
        for name in (
            "src_vocab_size",
            "tgt_vocab_size",
            "d_model",
            "n_heads",
            "d_ff",
            "max_len",
            "n_encoder_layers",
            "n_decoder_layers",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        # Far beyond any model this project trains; a config.json asking for more is damaged or
        # hostile, and would otherwise be a raw allocation error (max_len 5e7 asks torch for 51 GB).
        for name, limit in SIZE_LIMITS.items():
            if getattr(self, name) > limit:
                raise ConfigError(
                    f"{name} is {getattr(self, name):,}, more than this project supports ({limit:,})"
                )
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**_fields_of(cls, d))


@dataclass(kw_only=True)
class TrainConfig(Architecture):
    """The training recipe; the model's shape comes from `Architecture` (the vocabulary sizes from the data)."""

    train_path: str  # TSV of English<TAB>Chinese pairs
    dev_path: str | None  # TSV used for per-epoch BLEU/chrF and best-checkpoint selection
    run_dir: str  # where checkpoints, vocabularies and the log go
    # vocabulary
    subwords: int = 4000  # English subword pieces (SentencePiece BPE) to learn; 0 keeps whole words
    min_freq_src: int = 2  # word vocabulary only: English words seen fewer times become <unk>
    min_freq_tgt: int = 1  # Chinese characters seen fewer times become <unk>
    lowercase: bool = True  # lower-case English before tokenizing
    max_tokens_per_sentence: int = 100  # longer training pairs are skipped, not truncated
    # Share of each epoch's examples that are 2-3 random pairs joined into one (concatenation
    # augmentation): teaches long and multi-sentence input, which Tatoeba's single sentences never show.
    concat: float = 0.5
    # Start from this run's best weights, vocabularies and subword model, not from scratch (a
    # second stage, e.g. on distilled targets). Its shape and vocabulary settings are inherited.
    init_from: str | None = None
    # optimisation
    epochs: int = 50
    max_tokens: int = 2500  # token budget per batch (padded source or target, the larger)
    accum_steps: int = 1  # micro-batches per optimizer step (per process)
    lr: float = 7e-4  # peak learning rate
    warmup_steps: int = 400
    schedule: str = "cosine"  # "cosine" (to 0 at the last epoch) or "inverse_sqrt" decay after warmup
    min_lr_ratio: float = 0.0  # cosine only: floor as a fraction of the peak
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    label_smoothing: float = 0.1
    # R-Drop's alpha (Liang et al. 2021; 5 in their translation runs): each batch runs twice under two
    # dropout masks and alpha times the symmetric KL of the two predictions is added. 0: off.
    rdrop: float = 0.0
    clip_norm: float = 1.0
    max_steps: int | None = (
        None  # stop after this many optimizer steps; the lr schedule still spans all epochs
    )
    # evaluation and checkpoints
    eval_beam: int = 1  # beam size for the per-epoch dev evaluation
    eval_max_sentences: int | None = None  # evaluate on the first N dev pairs only
    checkpoint_every: int | None = None  # also checkpoint every N steps (None: only per epoch)
    keep_checkpoints: int = 5  # epoch checkpoints kept for averaging at export
    # runtime
    seed: int = 1234
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    threads: int | None = None  # torch CPU threads (None: torch's default)
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" (autocast anywhere), "fp32"
    progress: bool = True  # tqdm progress bar

    def model_config(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int) -> ModelConfig:
        shape = {f.name: getattr(self, f.name) for f in dataclasses.fields(Architecture)}
        return ModelConfig(
            src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, pad_id=pad_id, **shape
        )

    def to_dict(self) -> dict[str, Any]:
        # flat, one key per field (and per flag), as train_config.json has always been
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = _fields_of(cls, d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])  # JSON has no tuples
        return cls(**d)


def _fields_of(cls, d: Any) -> dict[str, Any]:
    """`d` as keyword arguments of the dataclass `cls`; unknown or missing keys are a ConfigError
    (a typo in a hand-edited file must not pass silently as a default)."""
    if not isinstance(d, dict):
        raise ConfigError(f"expected a JSON object, got {type(d).__name__}")
    fields = dataclasses.fields(cls)
    unknown = sorted(set(d) - {f.name for f in fields})
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
        )
    missing = [
        f.name
        for f in fields
        if f.name not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{cls.__name__} lacks {', '.join(map(repr, missing))}")
    return dict(d)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
