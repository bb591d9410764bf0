"""The training loop: bucketed batches, AdamW with warmup + decay, label smoothing,
per-epoch dev BLEU/chrF, atomic checkpoints, exact resume, optional DDP.

Reading order: `train` → `prepare` (data, model, optimizer, the TrainState to start from)
→ `run_epoch` (one `optimizer_step` per group of batches) → `finish_epoch` (log, evaluate, checkpoint).

Run directory layout:
    train_config.json          the TrainConfig (resume reads it back)
    vocab_src.json, vocab_tgt.json
    subwords_src.model         the English SentencePiece model (--subwords only)
    last.safetensors           newest checkpoint (what --resume continues from)
    best.safetensors           best dev BLEU so far
    epoch-NNN.safetensors      the last `keep_checkpoints` epochs (for averaging at export)
    log.jsonl                  one JSON line of metrics per epoch
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import model_state, read_checkpoint, restore, save_checkpoint
from .config import ModelConfig, TrainConfig, read_json, write_json
from .data import (
    Batch,
    Corpus,
    Example,
    collate,
    encode_pairs,
    epoch_examples,
    make_batches,
    read_tsv,
    tokenize_pairs,
)
from .decoding import DecodeSettings
from .errors import ConfigError, DataError
from .evaluate import evaluate
from .files import BEST_CHECKPOINT as BEST
from .files import LAST_CHECKPOINT as LAST
from .files import LOG_FILE, SRC_VOCAB_FILE, SUBWORDS_FILE, TGT_VOCAB_FILE, TRAIN_CONFIG_FILE
from .model import Transformer
from .subwords import Subwords
from .text import PAD_ID, Vocab
from .translator import Translator

T = TypeVar("T")


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warmup to cfg.lr, then inverse-square-root or cosine decay. `step` counts from 1."""
    warm = max(1, cfg.warmup_steps)
    if step <= warm:
        return cfg.lr * step / warm
    if cfg.schedule == "inverse_sqrt":
        return cfg.lr * math.sqrt(warm / step)
    if cfg.schedule == "cosine":
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        floor = cfg.min_lr_ratio
        return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    raise ConfigError(f"unknown schedule {cfg.schedule!r} (use inverse_sqrt or cosine)")


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "CPU"


def describe_hardware(device: torch.device, world: int, precision: str) -> str:
    """For the model card: what the run trained on."""
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{cpu_name()}, {torch.get_num_threads()} thread(s)"
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return f"{what}{f' × {world} processes' if world > 1 else ''}, {'bf16 autocast' if bf16 else 'fp32'}"


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = device_name != "cpu" and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(local)
    # Rank 0 evaluates the dev set while the others wait at a barrier: allow for a long evaluation.
    dist.init_process_group("nccl" if use_nccl else "gloo", timeout=datetime.timedelta(hours=2))
    return Dist(rank, world, local)


@dataclass
class Data:
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: list[Example]
    dev: list[tuple[str, str]]
    report: str
    subwords: Subwords | None = None


def load_data(cfg: TrainConfig, vocab_dir: Path | None) -> Data:
    """The training pairs encoded with the vocabularies (and subword model) of `vocab_dir`, or with
    new ones learned from these pairs when it is None."""
    corpus = read_tsv(cfg.train_path)
    if not corpus.pairs:
        raise DataError(
            f"{cfg.train_path}: no usable English<TAB>Chinese pairs ({corpus.skipped} malformed lines)"
        )
    tokenized = tokenize_pairs(corpus.pairs, cfg.lowercase)
    subwords = None
    if cfg.subwords:  # the encoder reads pieces of words, learned on this training split only
        subwords = (
            read_subwords(vocab_dir)
            if vocab_dir
            else Subwords.train([en for en, _ in tokenized], cfg.subwords, cfg.lowercase)
        )
        tokenized = [(subwords.pieces(en), zh) for en, zh in tokenized]
    if vocab_dir:
        src_vocab, tgt_vocab = read_vocabs(vocab_dir)
    else:
        src_vocab = (
            subwords.vocab() if subwords else Vocab.build((en for en, _ in tokenized), cfg.min_freq_src)
        )
        tgt_vocab = Vocab.build((zh for _, zh in tokenized), cfg.min_freq_tgt)
    limit = min(cfg.max_tokens_per_sentence, cfg.max_len - 2)
    train, too_long = encode_pairs(tokenized, src_vocab, tgt_vocab, limit)
    if not train:
        raise DataError(f"{cfg.train_path}: every pair is empty or longer than {limit} tokens")
    dev: Corpus | None = read_tsv(cfg.dev_path) if cfg.dev_path else None
    dev_pairs = dev.pairs[: cfg.eval_max_sentences] if dev else []
    report = (
        f"train: {len(train)} pairs ({corpus.skipped} malformed lines skipped, {too_long} too long)"
        f" · vocab en {len(src_vocab)} {'subword pieces' if subwords else 'words'} / zh {len(tgt_vocab)}"
        + (f" · dev: {len(dev_pairs)} pairs ({dev.skipped} malformed)" if dev else " · no dev set")
    )
    return Data(src_vocab, tgt_vocab, train, dev_pairs, report, subwords)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean token cross-entropy (label-smoothed), padding ignored. logits (B, T, V), target (B, T)."""
    return F.cross_entropy(
        logits.float().flatten(0, 1), target.flatten(), ignore_index=PAD_ID, label_smoothing=smoothing
    )


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens of (KL(p_a‖p_b) + KL(p_b‖p_a)) / 2, p = softmax(logits (B, T, V))."""
    log_a, log_b = F.log_softmax(logits_a.float(), -1), F.log_softmax(logits_b.float(), -1)
    per_token = ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum(-1) / 2  # (B, T)
    keep = target != PAD_ID
    return per_token[keep].mean()


def batch_loss(model: torch.nn.Module, batch: Batch, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, what to minimize): the same unless R-Drop adds its KL term."""
    if not cfg.rdrop:
        logits, _ = model(batch.src, batch.tgt_in)
        loss = loss_fn(logits, batch.tgt_out, cfg.label_smoothing)
        return loss, loss
    # The batch twice in one forward: two dropout masks, one pass through the graph. Both halves
    # have the same tokens, so the cross-entropy over both is the mean of the two passes'.
    logits, _ = model(batch.src.repeat(2, 1), batch.tgt_in.repeat(2, 1))
    loss = loss_fn(logits, batch.tgt_out.repeat(2, 1), cfg.label_smoothing)
    first, second = logits.chunk(2)
    return loss, loss + cfg.rdrop / 2 * symmetric_kl(first, second, batch.tgt_out)  # the paper's alpha


@dataclass
class EpochTotals:
    """Running totals of the epoch under way, for its log line. A mid-epoch checkpoint carries
    them, so that a resumed epoch's loss and tokens/s still cover the whole epoch."""

    tokens: int = 0  # target tokens trained on, all processes together
    loss_sum: float = 0.0  # sum of the micro-batches' mean losses
    loss_n: int = 0  # micro-batches
    seconds: float = 0.0  # training time spent on this epoch, across resumes


@dataclass
class TrainState:
    """Where a run stands. Every checkpoint holds it in its metadata as the dict `to_meta` makes,
    the layout older versions wrote too: their runs still resume, and theirs resume ours."""

    step: int = 0  # optimizer steps taken in the whole run
    epoch: int = 0  # the epoch under way, from 0 (so also: epochs finished)
    epoch_step: int = 0  # optimizer steps already taken in that epoch; a resumed epoch skips them
    best_bleu: float = -1.0  # best dev BLEU of a finished epoch (-1: none yet)
    history: list[dict] = field(default_factory=list)  # one log.jsonl record per finished epoch
    totals: EpochTotals = field(default_factory=EpochTotals)
    hardware: str = ""  # what the run trains on, for the model card

    def to_meta(self) -> dict:
        meta = {
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.epoch_step,
            "best_bleu": self.best_bleu,
            "history": self.history,
            "hardware": self.hardware,
        }
        if self.epoch_step:  # mid-epoch: the totals so far go along ("partial")
            meta["partial"] = dataclasses.asdict(self.totals)
        return meta

    @classmethod
    def from_meta(cls, meta: dict) -> TrainState:
        partial = meta.get("partial") if meta["batch"] else None  # absent in checkpoints older than it
        return cls(
            step=meta["step"],
            epoch=meta["epoch"],
            epoch_step=meta["batch"],
            best_bleu=meta["best_bleu"],
            history=meta["history"],
            totals=EpochTotals(**partial) if partial else EpochTotals(),
            hardware=meta.get("hardware", ""),
        )


@dataclass
class Run:
    """What stays fixed while a run trains."""

    cfg: TrainConfig
    dir: Path
    dd: Dist
    device: torch.device
    data: Data
    model: Transformer
    optimizer: torch.optim.Optimizer
    ddp: torch.nn.parallel.DistributedDataParallel | None  # the model wrapped, with more than one process
    translator: Translator  # over `model`, for the dev evaluation
    group: int  # batches per optimizer step: `accum_steps` for each process
    total_steps: int  # what the lr schedule spans: every epoch, whatever --max-steps says
    use_bf16: bool


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a run; returns a summary dict (best BLEU, steps, timing)."""
    run_dir = Path(cfg.run_dir)
    dd = setup_distributed(cfg.device)
    try:
        return _train(cfg, run_dir, resume, dd)
    finally:
        if dd.world > 1:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, run_dir: Path, resume: bool, dd: Dist) -> dict:
    run, state = prepare(cfg, run_dir, resume, dd)
    start_time = time.perf_counter()
    while state.epoch < cfg.epochs:
        finished, stop = run_epoch(run, state)
        if finished:
            finish_epoch(run, state)
        if stop:
            break
    return {
        "steps": state.step,
        "epochs_done": state.epoch,
        "best_bleu": state.best_bleu,
        "seconds": time.perf_counter() - start_time,
        "parameters": run.model.num_parameters(),
        "history": state.history,
    }


def prepare(cfg: TrainConfig, run_dir: Path, resume: bool, dd: Dist) -> tuple[Run, TrainState]:
    """Everything before the first step: the run directory, data, model, optimizer, and the state
    to start from (a fresh one, or that of last.safetensors when resuming)."""
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision must be auto, bf16 or fp32, got {cfg.precision!r}")
    device = pick_device(cfg.device, dd.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    resuming = resume and (run_dir / LAST).is_file()
    if resume and not resuming and dd.main:
        print(f"note: --resume but {run_dir / LAST} does not exist yet; starting from scratch", flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if dd.main:  # a write cut short by a crash leaves a .tmp beside an intact checkpoint
        for stale in run_dir.glob("*.tmp"):
            stale.unlink()

    init_dir = Path(cfg.init_from) if cfg.init_from else None
    data = load_data(cfg, run_dir if resuming else init_dir)
    mcfg = cfg.model_config(len(data.src_vocab), len(data.tgt_vocab), PAD_ID)
    if dd.main:
        print(data.report, flush=True)
        write_json(run_dir / TRAIN_CONFIG_FILE, cfg.to_dict())  # on resume too: a raised --epochs sticks
        if not resuming:
            data.src_vocab.save(run_dir / SRC_VOCAB_FILE)
            data.tgt_vocab.save(run_dir / TGT_VOCAB_FILE)
            if data.subwords:
                data.subwords.save(run_dir / SUBWORDS_FILE)

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = Transformer(mcfg).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=1e-9, weight_decay=cfg.weight_decay
    )
    torch.manual_seed(cfg.seed + 1 + dd.rank)  # dropout streams differ per rank
    if init_dir and not resuming:
        start_from(init_dir, model, dd)
    state = resume_from(run_dir / LAST, model, optimizer, cfg, dd) if resuming else TrainState()
    state.hardware = describe_hardware(device, dd.world, cfg.precision)
    if dd.main:
        print(
            f"model: {model.num_parameters():,} parameters · device {device}"
            f"{f' × {dd.world} processes' if dd.world > 1 else ''}",
            flush=True,
        )

    ddp = (
        torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        if dd.world > 1
        else None
    )
    group = dd.world * cfg.accum_steps
    steps_per_epoch = (
        len(make_batches(examples_of(cfg, data.train, 0), cfg.max_tokens, seed=cfg.seed)) // group
    )
    if steps_per_epoch == 0:
        raise ConfigError(
            f"the training set makes fewer than {group} batches of {cfg.max_tokens} tokens; "
            "lower --max-tokens, --accum-steps or the number of processes"
        )
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    translator = Translator(
        model,
        data.src_vocab,
        data.tgt_vocab,
        cfg.lowercase,
        DecodeSettings(beam=cfg.eval_beam),
        subwords=data.subwords,
    )
    # The schedule is planned for all epochs; --max-steps only stops early (as a kill would).
    run = Run(
        cfg,
        run_dir,
        dd,
        device,
        data,
        model,
        optimizer,
        ddp,
        translator,
        group,
        total_steps=steps_per_epoch * cfg.epochs,
        use_bf16=use_bf16,
    )
    return run, state


def start_from(init_dir: Path, model: Transformer, dd: Dist) -> None:
    """Load the weights of `init_dir`'s best checkpoint (its last when it has none); the optimizer,
    schedule and epochs start afresh."""
    path = init_dir / BEST if (init_dir / BEST).is_file() else init_dir / LAST
    if not path.is_file():
        raise ConfigError(f"--init-from {init_dir}: no {BEST} or {LAST} there; name a training run directory")
    tensors, _ = read_checkpoint(path)
    model.load_state_dict(model_state(tensors))
    if dd.main:
        print(f"initialized from {path}", flush=True)


def resume_from(
    path: Path, model: Transformer, optimizer: torch.optim.Optimizer, cfg: TrainConfig, dd: Dist
) -> TrainState:
    """Load model, optimizer and RNG states from a checkpoint; returns the state saved with them."""
    tensors, blob = read_checkpoint(path)
    state = TrainState.from_meta(restore(tensors, blob, model, optimizer))
    if dd.rank:  # RNG in the file is rank 0's; keep other ranks' streams distinct
        torch.manual_seed(cfg.seed + 1 + dd.rank + 7919 * state.step)
    if dd.main:
        print(
            f"resumed from {path}: step {state.step}, epoch {state.epoch + 1}, batch {state.epoch_step}",
            flush=True,
        )
        # The checkpoint's history is the truth: a crash between appending an epoch's line and
        # saving its checkpoint would otherwise leave that line twice once the epoch is redone.
        write_log(path.parent, state.history)
    return state


def examples_of(cfg: TrainConfig, train: list[Example], epoch: int) -> list[Example]:
    """Epoch `epoch`'s examples: the training pairs, a share of them joined when --concat asks."""
    limit = min(cfg.max_tokens_per_sentence, cfg.max_len - 2)
    return epoch_examples(train, cfg.concat, seed=cfg.seed * 7919 + epoch, max_tokens=limit)


def run_epoch(run: Run, state: TrainState) -> tuple[bool, bool]:
    """Train epoch `state.epoch` from `state.epoch_step` on. Returns (finished, stop): whether the
    epoch reached its end, and whether --max-steps ends the run here."""
    cfg = run.cfg
    # The same order as in any other process or resume of this epoch: it depends on the seed and epoch only.
    examples = examples_of(cfg, run.data.train, state.epoch)
    batches = make_batches(examples, cfg.max_tokens, seed=cfg.seed * 1000 + state.epoch)
    n_steps = len(batches) // run.group
    totals = state.totals
    started = time.perf_counter() - totals.seconds  # when the epoch would have started, had it run in one go
    bar = tqdm(
        range(state.epoch_step, n_steps),
        desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
        unit="step",
        disable=not (cfg.progress and run.dd.main),
        dynamic_ncols=True,
        leave=True,
    )
    run.model.train()
    stop = False
    for s in bar:
        lr = lr_at(state.step + 1, cfg, run.total_steps)
        optimizer_step(run, examples, batches[s * run.group : (s + 1) * run.group], lr, totals)
        state.step, state.epoch_step = state.step + 1, s + 1
        totals.seconds = time.perf_counter() - started
        if run.dd.main and (s % 10 == 0 or s == n_steps - 1):
            bar.set_postfix(
                loss=f"{totals.loss_sum / totals.loss_n:.3f}",
                lr=f"{lr:.2e}",
                tok_s=f"{totals.tokens / totals.seconds:,.0f}",
            )
        stop = bool(cfg.max_steps and state.step >= cfg.max_steps)
        periodic = cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0
        if (stop or periodic) and state.epoch_step < n_steps:  # at the epoch's end, finish_epoch saves
            save(run, LAST, state)
        if stop:
            break
    bar.close()
    totals.seconds = time.perf_counter() - started
    return state.epoch_step >= n_steps, stop


def optimizer_step(
    run: Run, examples: list[Example], group: list[list[int]], lr: float, totals: EpochTotals
) -> None:
    """One AdamW step over a group of batches: `accum_steps` of them per process, this process's share."""
    cfg, dd = run.cfg, run.dd
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    for a in range(cfg.accum_steps):
        batch = collate([examples[i] for i in group[a * dd.world + dd.rank]]).to(run.device)
        # DDP averages gradients on the last micro-batch only
        sync = run.ddp is None or a == cfg.accum_steps - 1
        autocast = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.use_bf16)
        with contextlib.nullcontext() if sync else run.ddp.no_sync(), autocast:
            loss, objective = batch_loss(run.ddp or run.model, batch, cfg)
            (objective / cfg.accum_steps).backward()
        totals.tokens += batch.n_target_tokens * dd.world
        totals.loss_sum += loss.item()  # the cross-entropy alone, comparable across recipes
        totals.loss_n += 1
    if cfg.clip_norm:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)


def finish_epoch(run: Run, state: TrainState) -> None:
    """Log the finished epoch (with dev scores when there is a dev set), move the state to the start
    of the next one, and checkpoint it: epoch-NNN (kept for averaging), best if dev BLEU rose, last."""
    cfg, dd, totals = run.cfg, run.dd, state.totals
    record = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "train_loss": totals.loss_sum / max(1, totals.loss_n),
        "tokens_per_s": totals.tokens / max(totals.seconds, 1e-9),
        "epoch_seconds": totals.seconds,
        "lr": lr_at(max(1, state.step), run.cfg, run.total_steps),
    }  # the rate of the epoch's last step
    if dd.main and run.data.dev:
        scores, _ = evaluate(run.translator, run.data.dev)
        run.model.train()
        record.update(dev_bleu=scores.bleu, dev_chrf=scores.chrf, eval_seconds=scores.seconds)
        print(
            f"epoch {state.epoch + 1}: loss {record['train_loss']:.3f} · dev {scores.line()} · "
            f"{record['tokens_per_s']:,.0f} target tok/s",
            flush=True,
        )
    elif dd.main:
        print(
            f"epoch {state.epoch + 1}: loss {record['train_loss']:.3f} · {record['tokens_per_s']:,.0f} target tok/s",
            flush=True,
        )
    state.history.append(record)
    state.epoch, state.epoch_step, state.totals = state.epoch + 1, 0, EpochTotals()
    if dd.main:
        write_log(run.dir, state.history)
        save(run, f"epoch-{state.epoch:03d}.safetensors", state, barrier=False)
        for old in sorted(run.dir.glob("epoch-*.safetensors"))[: -cfg.keep_checkpoints or None]:
            old.unlink()
        if record.get("dev_bleu", -1.0) > state.best_bleu:
            state.best_bleu = record["dev_bleu"]
            save(run, BEST, state, barrier=False)
    save(run, LAST, state)


def write_log(run_dir: Path, history: list[dict]) -> None:
    """log.jsonl: one JSON line per finished epoch (rewritten whole, atomically: it is small)."""
    tmp = run_dir / (LOG_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(record) + "\n" for record in history), encoding="utf-8")
    os.replace(tmp, run_dir / LOG_FILE)


def save(run: Run, name: str, state: TrainState, barrier: bool = True) -> None:
    """Rank 0 writes the checkpoint; with `barrier`, the other ranks wait until it is on disk."""
    if run.dd.main:
        save_checkpoint(run.dir / name, run.model, run.optimizer, state.to_meta())
    if barrier and run.dd.world > 1:
        dist.barrier()


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / TRAIN_CONFIG_FILE
    try:
        saved = read_json(path)
        if isinstance(saved, dict):
            # Written before subword pieces existed: a word-vocabulary run (today's default is 4000).
            saved.setdefault("subwords", 0)
            # …and before concatenation augmentation: none (today's default is 0.5).
            saved.setdefault("concat", 0.0)
        return TrainConfig.from_dict(saved)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def read_run_file(path: Path, read: Callable[[Path], T]) -> T:
    """`read(path)` for a file a run wrote (vocabulary, subword model); a damaged one is a DataError naming it."""
    try:
        return read(path)
    except ValueError as e:
        text = str(e) if str(path) in str(e) else f"{path}: {e}"
        raise DataError(f"{text}; restore the file, or train a new run") from None


def read_vocabs(run_dir: Path) -> tuple[Vocab, Vocab]:
    return read_run_file(run_dir / SRC_VOCAB_FILE, Vocab.load), read_run_file(
        run_dir / TGT_VOCAB_FILE, Vocab.load
    )


def read_subwords(run_dir: Path) -> Subwords:
    return read_run_file(run_dir / SUBWORDS_FILE, Subwords.load)


def model_config_of_run(run_dir: str | Path) -> ModelConfig:
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    src, tgt = read_vocabs(run_dir)
    return cfg.model_config(len(src), len(tgt), PAD_ID)
