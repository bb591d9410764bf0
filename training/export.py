"""Export a training run as a self-contained weights folder with a Hugging Face model card."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_model

from .checkpoint import average_model_states, model_state, read_checkpoint
from .config import read_json, write_json
from .data import read_tsv
from .decoding import DecodeSettings
from .errors import ConfigError
from .evaluate import Scores, evaluate
from .faithfulness import faithfulness
from .files import BEST_CHECKPOINT as BEST
from .files import (
    CARD_FILE,
    CONFIG_FILE,
    FAITHFULNESS_FILE,
    HEAD_STATS_FILE,
    SRC_VOCAB_FILE,
    SUBWORDS_FILE,
    TGT_VOCAB_FILE,
    TRAIN_CONFIG_FILE,
    TRAINING_LOG_FILE,
    WEIGHTS_FILE,
)
from .files import LAST_CHECKPOINT as LAST
from .head_stats import corpus_head_stats
from .model import Transformer
from .train import load_run_config, model_config_of_run, read_subwords, read_vocabs
from .translator import Translator

FORMAT = "attention-explorer-weights/1"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# Dev sentences the faithfulness figures are measured on: the first ones, as `python -m explorer
# faithfulness --limit 200` does (~10 s on one core for the shipped model; the figures settle by then).
FAITHFULNESS_SENTENCES = 200


def _had_dev_set(run_dir: Path) -> bool:
    try:
        return bool(read_json(run_dir / TRAIN_CONFIG_FILE).get("dev_path"))
    except (OSError, ValueError, AttributeError):
        return False


def pick_checkpoints(run_dir: Path, checkpoint: str, average: int) -> list[Path]:
    if average > 1:
        epochs = sorted(run_dir.glob("epoch-*.safetensors"))
        if len(epochs) < average:
            raise ConfigError(
                f"{run_dir}: --average {average} needs {average} epoch checkpoints, found {len(epochs)}"
            )
        return epochs[-average:]
    named = {"best": run_dir / BEST, "last": run_dir / LAST}
    path = named.get(checkpoint, Path(checkpoint))
    if not path.is_file():
        hint = "did training finish an epoch?"
        if checkpoint == "best" and (run_dir / LAST).is_file():
            hint = (
                "the run stopped before its first evaluation on its dev set"
                if _had_dev_set(run_dir)
                else "the run had no dev set, so no best checkpoint"
            ) + ": use --checkpoint last or --average K"
        raise FileNotFoundError(f"{path}: checkpoint not found ({hint})")
    return [path]


def load_run(
    run_dir: str | Path, checkpoint: str = "last", average: int = 1, decoding: DecodeSettings | None = None
) -> tuple[Translator, dict, list[Path]]:
    """A Translator over a run's checkpoint (or the average of its last K epochs), in fp32."""
    run_dir = Path(run_dir)
    tcfg = load_run_config(run_dir)
    paths = pick_checkpoints(run_dir, checkpoint, average)
    tensors, blob = read_checkpoint(paths[-1])
    state = average_model_states(paths) if len(paths) > 1 else model_state(tensors)
    model = Transformer(model_config_of_run(run_dir))
    model.load_state_dict(state)
    model.eval()
    src_vocab, tgt_vocab = read_vocabs(run_dir)
    subwords = read_subwords(run_dir) if tcfg.subwords else None
    translator = Translator(
        model, src_vocab, tgt_vocab, tcfg.lowercase, decoding or DecodeSettings(), subwords=subwords
    )
    return translator, blob, paths


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    checkpoint: str = "best",
    average: int = 1,
    dtype: str = "float16",
    dev_path: str | None = None,
    decoding: DecodeSettings | None = None,
    command: str | None = None,
    threads: int | None = None,
    card_notes: str = "",
) -> tuple[Path, Scores | None]:
    """Write model.safetensors, config.json, vocabularies and README.md to out_dir (atomically)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_replaceable(out_dir, run_dir)
    if threads:
        torch.set_num_threads(threads)
    translator, blob, paths = load_run(run_dir, checkpoint, average, decoding)
    model = translator.model
    # Round-trip through the storage dtype so the scores below are those of the shipped file.
    model.to(DTYPES[dtype]).float().eval()
    tcfg, mcfg = load_run_config(run_dir), model.cfg
    src_vocab, tgt_vocab, decoding = translator.src_vocab, translator.tgt_vocab, translator.decoding

    scores = head_stats = faithful = None
    if dev_path:
        dev = read_tsv(dev_path).pairs
        scores, _ = evaluate(translator, dev)
        head_stats = {"data": Path(dev_path).name, **corpus_head_stats(translator, [en for en, _ in dev])}
        texts = [en for en, _ in dev][:FAITHFULNESS_SENTENCES]
        faithful = {"data": Path(dev_path).name, "pairs": len(texts), **faithfulness(translator, texts)}
    history = blob["meta"].get("history", [])
    config = {
        "format": FORMAT,
        "model": mcfg.to_dict(),
        "tokenizer": {
            "source": "nltk-treebank-words" + ("+sentencepiece-bpe" if translator.subwords else ""),
            "lowercase": tcfg.lowercase,
            "target": "opencc-t2s-characters",
            **({"subwords": SUBWORDS_FILE} if translator.subwords else {}),
        },
        "decoding": asdict(decoding),
        "dtype": dtype,
        "checkpoints": [p.name for p in paths],
        "metrics": _metrics(scores, dev_path, history),
        "training": {
            "command": command,
            "epochs": blob["meta"]["epoch"],
            "steps": blob["meta"]["step"],
            "hardware": blob["meta"].get("hardware", "not recorded"),
            "train_seconds": sum(h.get("epoch_seconds", 0) for h in history),
        },
    }

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_model(model.to(DTYPES[dtype]), str(tmp / WEIGHTS_FILE))
        write_json(tmp / CONFIG_FILE, config)
        src_vocab.save(tmp / SRC_VOCAB_FILE)
        tgt_vocab.save(tmp / TGT_VOCAB_FILE)
        if translator.subwords:
            translator.subwords.save(tmp / SUBWORDS_FILE)
        if head_stats:
            write_json(tmp / HEAD_STATS_FILE, head_stats)
        if faithful:
            write_json(tmp / FAITHFULNESS_FILE, faithful)
        log = {"shipped_epoch": blob["meta"]["epoch"], "history": history}
        if len(paths) > 1:  # the Model tab marks every averaged epoch, not only the last one
            log["averaged_epochs"] = [int(p.stem.removeprefix("epoch-")) for p in paths]
        write_json(tmp / TRAINING_LOG_FILE, log)
        card = model_card(
            config, model.num_parameters(), tcfg.train_path, head_stats is not None, faithful is not None
        )
        if card_notes.strip():
            card += "\n" + card_notes.strip() + "\n"
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; a weights folder is meant to be shared
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir, scores


def check_replaceable(out_dir: Path, run_dir: Path) -> None:
    """Export replaces OUT_DIR: allow that only for a missing or empty folder, or an earlier export."""
    out, run, cwd = out_dir.resolve(), run_dir.resolve(), Path.cwd().resolve()
    if out in (run, cwd) or out in run.parents or out in cwd.parents:
        raise ConfigError(
            f"{out_dir}: refusing to replace this folder (it holds the run or the working directory); "
            "choose a new OUT_DIR"
        )
    if out.exists() and any(out.iterdir()):
        config = out / CONFIG_FILE
        try:
            ours = config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("format") == FORMAT
        except (ValueError, OSError):
            ours = False
        if not ours:
            raise ConfigError(
                f"{out_dir}: exists and is not an earlier export; choose a new OUT_DIR or remove it"
            )


def _metrics(scores: Scores | None, dev_path: str | None, history: list[dict]) -> dict:
    if scores:
        return {
            "dev_bleu": round(scores.bleu, 2),
            "dev_chrf": round(scores.chrf, 2),
            "dev_file": Path(dev_path).name,
            "bleu_signature": scores.bleu_signature,
            "chrf_signature": scores.chrf_signature,
            "measured": "at export, with the decoding settings in this config",
        }
    best = max((h for h in history if "dev_bleu" in h), key=lambda h: h["dev_bleu"], default=None)
    if best is None:
        return {}
    return {
        "dev_bleu": round(best["dev_bleu"], 2),
        "dev_chrf": round(best["dev_chrf"], 2),
        "measured": f"during training (epoch {best['epoch']}, eval settings of the run)",
    }


def _dev_files_text(with_head_stats: bool, with_faithfulness: bool) -> str:
    text = ""
    if with_head_stats:
        text += (
            ", `head_stats.json` (what each attention head does, averaged over the dev sentences: "
            "`python -m explorer head-stats`, as `training export --dev` writes it)"
        )
    if with_faithfulness:
        text += (
            ", `faithfulness.json` (how well each contribution view predicts what hiding a source token "
            f"costs, on the first {FAITHFULNESS_SENTENCES} dev sentences: `python -m explorer faithfulness`)"
        )
    return text


def model_card(
    config: dict,
    n_params: int,
    train_path: str,
    with_head_stats: bool = False,
    with_faithfulness: bool = False,
) -> str:
    m, mc, tr = config["metrics"], config["model"], config["training"]
    metric_yaml = ""
    if m:
        metric_yaml = f"""model-index:
- name: attention-explorer-en-zh
  results:
  - task:
      type: translation
      name: English to Chinese translation
    dataset:
      type: tatoeba
      name: Tatoeba cmn-eng (dev split)
    metrics:
    - type: bleu
      value: {m["dev_bleu"]}
      name: BLEU (sacrebleu, tokenize=zh)
    - type: chrf
      value: {m["dev_chrf"]}
      name: chrF
"""
    dec = config["decoding"]
    hours = tr["train_seconds"] / 3600
    return f"""---
language:
- en
- zh
license: cc-by-2.0
library_name: pytorch
pipeline_tag: translation
tags:
- translation
- transformer
- attention-visualization
datasets:
- tatoeba
{metric_yaml}---

# English → Chinese Transformer (attention explorer)

A small encoder–decoder Transformer ("Attention Is All You Need"), written from
scratch in PyTorch and trained on the Tatoeba English–Mandarin pairs. It is the
model behind the attention explorer app: every attention map it computes can be
inspected, per layer and per head.

| | |
|---|---|
| parameters | {n_params:,} |
| layers | {mc["n_encoder_layers"]} encoder + {mc["n_decoder_layers"]} decoder, {"pre" if mc["pre_norm"] else "post"}-norm |
| width | d_model {mc["d_model"]}, {mc["n_heads"]} heads, FFN {mc["d_ff"]} |
| vocabularies | English {mc["src_vocab_size"]} {"subword pieces (SentencePiece BPE over NLTK words" if config["tokenizer"].get("subwords") else "words (NLTK tokens"}{", lower-cased" if config["tokenizer"]["lowercase"] else ""}), Chinese {mc["tgt_vocab_size"]} characters (simplified) |
| storage | {config["dtype"]} safetensors (upcast to float32 at load) |
| default decoding | beam {dec["beam"]}, length penalty {dec["length_penalty"]} |
| training | {tr["epochs"]} epochs, {tr["steps"]:,} steps, {hours:.2f} h of training time{_on(tr.get("hardware"))} |

## Evaluation
{_metrics_text(m)}

## Training
Data: `{Path(train_path).name}` (Tatoeba cmn-eng training split); vocabularies from the training split only.

```
{tr["command"] or "(command not recorded)"}
```

## Files
`model.safetensors` (weights), `config.json` (`ModelConfig`, tokenizer and decoding settings),
`vocab_src.json`, `vocab_tgt.json`{", `subwords_src.model` (the English SentencePiece model)" if config["tokenizer"].get("subwords") else ""},
`training_log.json` (loss, learning rate and dev scores per epoch){_dev_files_text(with_head_stats, with_faithfulness)}.

## Limits
Trained on short everyday sentences (with `--concat`, also on two or three of them joined): expect
good output for those, and weak output for technical or rare-word input, names, and input much
longer than what it was trained on. {"Rare English words are split into known pieces; only characters never seen in training become `<unk>`." if config["tokenizer"].get("subwords") else "Words outside the English vocabulary become `<unk>`."}
Output is simplified Chinese.

## Attribution
Training data: sentences from the Tatoeba project (https://tatoeba.org), by the
Tatoeba contributors, licensed CC-BY 2.0 FR, via the cmn-eng pair file of
manythings.org/anki.
"""


def _on(hardware: str | None) -> str:
    return f" on {hardware}" if hardware and hardware != "not recorded" else ""


def _metrics_text(m: dict) -> str:
    if not m:
        return "No dev evaluation was recorded."
    text = f"On the dev split: **BLEU {m['dev_bleu']}**, **chrF {m['dev_chrf']}** ({m['measured']})."
    if "bleu_signature" in m:
        text += f"\n\nsacrebleu signatures: `{m['bleu_signature']}`, `{m['chrf_signature']}`"
    return text
