"""Command line: python -m training {train,evaluate,export,split,probes,push} --help"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from .argtypes import fraction, non_negative_float, non_negative_int, positive_int
from .config import Architecture, TrainConfig
from .errors import ConfigError, DataError
from .hub import HubError

DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING
}
# Options that may change when resuming; everything else must match the run.
RESUMABLE = {
    "train_path",
    "dev_path",
    "epochs",
    "max_steps",
    "threads",
    "device",
    "progress",
    "checkpoint_every",
    "eval_max_sentences",
    "precision",
}


def _opt(p: argparse.ArgumentParser, flag: str, field: str, type_, help_: str, **kw) -> None:
    default = DEFAULTS.get(field)
    kw.setdefault(
        "metavar",
        "N" if type_ in (int, positive_int, non_negative_int) else "X" if type_ is not str else "NAME",
    )
    p.add_argument(flag, dest=field, type=type_, help=f"{help_} (default: {default})", **kw)


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--train",
        dest="train_path",
        required=True,
        metavar="TSV",
        help="training pairs, one 'English<TAB>Chinese' per line (malformed lines are skipped and counted)",
    )
    p.add_argument(
        "--dev",
        dest="dev_path",
        metavar="TSV",
        help="dev pairs for per-epoch BLEU/chrF and best-checkpoint selection (default: none)",
    )
    p.add_argument(
        "--run-dir",
        dest="run_dir",
        required=True,
        metavar="DIR",
        help="where checkpoints, vocabularies and log.jsonl are written",
    )
    resume = p.add_argument("--resume", action="store_true", default=False)
    p.add_argument(
        "--init-from",
        dest="init_from",
        metavar="RUN_DIR",
        help="start from this run's best weights, vocabularies and subword model, with a fresh optimizer "
        "and schedule (e.g. to fine-tune on distilled targets); its model and vocabulary options are "
        "inherited (default: from scratch)",
    )
    g = p.add_argument_group("model")
    _opt(g, "--d-model", "d_model", positive_int, "width of the residual stream")
    _opt(g, "--heads", "n_heads", positive_int, "attention heads per layer (must divide --d-model)")
    _opt(g, "--d-ff", "d_ff", positive_int, "feed-forward hidden width")
    _opt(g, "--encoder-layers", "n_encoder_layers", positive_int, "encoder blocks")
    _opt(g, "--decoder-layers", "n_decoder_layers", positive_int, "decoder blocks")
    _opt(g, "--dropout", "dropout", fraction, "dropout on embeddings, attention and sub-layer outputs")
    g.add_argument(
        "--post-norm",
        dest="pre_norm",
        action="store_false",
        help="LayerNorm after each residual add, as in the 2017 paper (default: pre-norm)",
    )
    _opt(g, "--max-len", "max_len", positive_int, "longest sequence (tokens) the model accepts")
    g = p.add_argument_group("data and vocabulary")
    _opt(
        g,
        "--subwords",
        "subwords",
        non_negative_int,
        "English subword pieces to learn (SentencePiece BPE over NLTK words, training split only); 0: whole words",
    )
    _opt(
        g,
        "--min-freq-src",
        "min_freq_src",
        positive_int,
        "with --subwords 0: English words rarer than this become <unk>",
    )
    _opt(g, "--min-freq-tgt", "min_freq_tgt", positive_int, "Chinese characters rarer than this become <unk>")
    g.add_argument(
        "--keep-case",
        dest="lowercase",
        action="store_false",
        help="keep English casing (default: lower-case, which suits a corpus this small)",
    )
    _opt(
        g,
        "--concat",
        "concat",
        fraction,
        "share of each epoch's examples that are 2 or 3 random training pairs joined into one "
        "(concatenation augmentation: long and multi-sentence input); an epoch costs about 1 + 1.5x as much",
    )
    _opt(
        g,
        "--max-sentence-tokens",
        "max_tokens_per_sentence",
        positive_int,
        "training pairs longer than this on either side are skipped",
    )
    g = p.add_argument_group("optimisation")
    _opt(g, "--epochs", "epochs", positive_int, "passes over the training data")
    _opt(
        g, "--max-tokens", "max_tokens", positive_int, "token budget of one batch (padded length × sentences)"
    )
    _opt(g, "--accum-steps", "accum_steps", positive_int, "batches accumulated per optimizer step")
    _opt(g, "--lr", "lr", non_negative_float, "peak learning rate (AdamW)")
    _opt(g, "--warmup-steps", "warmup_steps", int, "linear warmup steps")
    g.add_argument(
        "--schedule",
        dest="schedule",
        choices=["inverse_sqrt", "cosine"],
        help=f"decay after warmup (default: {DEFAULTS['schedule']})",
    )
    _opt(g, "--min-lr-ratio", "min_lr_ratio", fraction, "cosine floor as a fraction of the peak lr")
    _opt(g, "--weight-decay", "weight_decay", non_negative_float, "AdamW weight decay")
    _opt(g, "--label-smoothing", "label_smoothing", fraction, "label smoothing of the cross-entropy")
    _opt(
        g,
        "--rdrop",
        "rdrop",
        non_negative_float,
        "R-Drop weight: the batch runs twice (two dropout masks) and the symmetric KL of the two "
        "predictions, times this, joins the loss; 0 is off, a step costs twice as much",
    )
    _opt(g, "--clip-norm", "clip_norm", non_negative_float, "gradient-norm clipping threshold (0 disables)")
    _opt(
        g,
        "--max-steps",
        "max_steps",
        positive_int,
        "stop after this many optimizer steps (the schedule still spans --epochs)",
    )
    g = p.add_argument_group("evaluation and checkpoints")
    _opt(g, "--eval-beam", "eval_beam", positive_int, "beam size of the per-epoch dev evaluation")
    _opt(
        g,
        "--eval-max-sentences",
        "eval_max_sentences",
        positive_int,
        "evaluate on the first N dev pairs only",
    )
    _opt(
        g, "--checkpoint-every", "checkpoint_every", positive_int, "also write last.safetensors every N steps"
    )
    _opt(
        g,
        "--keep-checkpoints",
        "keep_checkpoints",
        positive_int,
        "epoch checkpoints kept for --average at export",
    )
    g = p.add_argument_group("runtime")
    _opt(g, "--seed", "seed", int, "seed for initialization, data order and dropout")
    _opt(g, "--device", "device", str, "auto (CUDA if present), cpu, cuda, cuda:N")
    _opt(
        g,
        "--threads",
        "threads",
        positive_int,
        "torch CPU threads; 1 is often fastest on a busy 2-core machine",
    )
    g.add_argument(
        "--precision",
        dest="precision",
        choices=["auto", "bf16", "fp32"],
        help="auto: bf16 autocast on CUDA, fp32 on CPU; bf16: autocast on CPU too (about 1.7x faster "
        "on CPUs with native bf16, e.g. AVX512-BF16); fp32: no autocast (default: auto)",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bar")
    # Written last, from the options just declared, so that it names exactly the RESUMABLE ones.
    may_change = [a.option_strings[0] for a in p._actions if a.dest in RESUMABLE]
    resume.help = (
        "continue from DIR/last.safetensors with its model, optimizer, RNG and data position "
        f"(shape and recipe come from DIR/train_config.json; {', '.join(may_change[:-1])} and "
        f"{may_change[-1]} may change)"
    )


# What a run started with --init-from takes from that run: the weights must fit, the pieces must match.
INHERITED = (
    *(f.name for f in dataclasses.fields(Architecture) if f.name != "dropout"),
    "subwords",
    "min_freq_src",
    "min_freq_tgt",
    "lowercase",
)


def inherit_from_init(given: dict) -> dict:
    from .train import load_run_config

    init_dir = Path(given["init_from"])
    if not (init_dir / "train_config.json").is_file():
        raise ConfigError(
            f"--init-from {init_dir}: no train_config.json there; name a training run directory"
        )
    init = load_run_config(init_dir)
    clash = sorted(k for k in INHERITED if k in given and given[k] != getattr(init, k))
    if clash:
        raise ConfigError(
            f"--init-from {init_dir}: {', '.join(clash)} differ from its train_config.json; leave them out"
        )
    return {k: getattr(init, k) for k in INHERITED} | given


def cmd_train(args: argparse.Namespace) -> int:
    from .train import load_run_config, train

    given = {
        k: v for k, v in vars(args).items() if k not in ("command", "func", "resume", "argv")
    }  # only explicit flags
    run_dir = Path(args.run_dir)
    if args.resume and (run_dir / "train_config.json").is_file():
        saved = load_run_config(run_dir).to_dict()
        changed = sorted(k for k, v in given.items() if k not in RESUMABLE and k in saved and v != saved[k])
        if changed:
            raise ConfigError(
                f"--resume: {', '.join(changed)} differ from {run_dir / 'train_config.json'}; "
                "start a new --run-dir to change them"
            )
        cfg = TrainConfig.from_dict(saved | {k: v for k, v in given.items() if k in RESUMABLE})
        cfg.max_steps = given.get("max_steps")  # a limit for this invocation, not for the run
    else:
        if given.get("init_from"):
            given = inherit_from_init(given)
        cfg = TrainConfig.from_dict({"dev_path": None, **given})
        if cfg.d_model % cfg.n_heads:
            raise ConfigError(f"--d-model {cfg.d_model} is not divisible by --heads {cfg.n_heads}")
    run_dir.mkdir(parents=True, exist_ok=True)
    # One line per invocation, so a run continued with --resume (say, with more --epochs) can be replayed.
    with open(run_dir / "command.txt", "a" if args.resume else "w", encoding="utf-8") as f:
        f.write("python -m training " + shlex.join(args.argv) + "\n")
    summary = train(cfg, resume=args.resume)
    print(
        f"done: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min, best dev BLEU "
        f"{summary['best_bleu']:.2f}"
        if summary["best_bleu"] >= 0
        else f"done: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min"
    )
    return 0


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--beam", type=positive_int, help="beam size; 1 = greedy (default: the weights' config.json)"
    )
    p.add_argument(
        "--length-penalty",
        type=non_negative_float,
        help="GNMT length penalty alpha; 0 ranks by raw log-probability (default: the weights' config.json)",
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .data import read_tsv
    from .evaluate import evaluate
    from .translator import load_weights_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = read_tsv(args.data)
    if not corpus.pairs:
        raise DataError(
            f"{args.data}: no usable English<TAB>Chinese pairs ({corpus.skipped} malformed lines)"
        )
    translator = load_weights_dir(args.weights_dir)
    settings = translator.settings(beam=args.beam, length_penalty=args.length_penalty)
    scores, hyps = evaluate(
        translator,
        corpus.pairs,
        split_sentences=args.split_sentences,
        beam=settings.beam,
        length_penalty=settings.length_penalty,
    )
    if args.output:  # only when asked: a score should not leave files behind in the working directory
        Path(args.output).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    skipped = f", {corpus.skipped} malformed lines skipped" if corpus.skipped else ""
    by_sentence = " · one sentence at a time, joined" if args.split_sentences else ""
    print(
        f"{args.data}: {len(corpus.pairs)} pairs{skipped} · beam {settings.beam}, length penalty "
        f"{settings.length_penalty}{by_sentence}"
    )
    print(f"BLEU {scores.bleu:.2f}   BP {scores.brevity_penalty:.3f}   {scores.bleu_signature}")
    print(f"chrF {scores.chrf:.2f}   {scores.chrf_signature}")
    print(
        f"{scores.seconds:.1f}s ({len(corpus.pairs) / scores.seconds:.1f} sentences/s)"
        + (f" · hypotheses written to {args.output}" if args.output else "")
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .decoding import DecodeSettings
    from .export import export

    command_file = Path(args.run_dir) / "command.txt"
    command = command_file.read_text(encoding="utf-8").strip() if command_file.is_file() else None
    # Flags left out keep DecodeSettings' defaults: the decoding a weights folder ships with.
    given = {"beam": args.beam, "length_penalty": args.length_penalty}
    settings = DecodeSettings(**{k: v for k, v in given.items() if v is not None})
    notes = Path(args.card_notes).read_text(encoding="utf-8") if args.card_notes else ""
    out, scores = export(
        args.run_dir,
        args.out_dir,
        args.checkpoint,
        args.average,
        args.dtype,
        args.dev,
        settings,
        command,
        args.threads,
        notes,
    )
    print(f"exported to {out}" + (f" · dev {scores.line()}" if scores else ""))
    return 0


def write_parts(data: str, out_dir: str, parts: dict[str, list]) -> list[Path]:
    """Each part as OUT_DIR/STEM-NAME.tsv (STEM: the data file's), in order; returns the paths."""
    from .data import write_tsv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{Path(data).stem}-{name}.tsv" for name in parts]
    for path, pairs in zip(paths, parts.values()):
        write_tsv(path, pairs)
    return paths


def cmd_split(args: argparse.Namespace) -> int:
    from .data import hold_out, read_tsv

    corpus = read_tsv(args.data)
    rest, held = hold_out(corpus.pairs, args.holdout, args.seed)
    rest_path, held_path = write_parts(args.data, args.out_dir, {"rest": rest, "heldout": held})
    print(
        f"{rest_path}: {len(rest)} pairs · {held_path}: {len(held)} pairs "
        f"(no English sentence in both; {corpus.skipped} malformed lines skipped)"
    )
    return 0


def cmd_probes(args: argparse.Namespace) -> int:
    from .data import read_tsv
    from .probes import JOINED_MAX_WORDS, JOINED_MIN_WORDS, LONG_MIN_WORDS, joined_probe, long_probe

    corpus = read_tsv(args.data)
    if not corpus.pairs:
        raise DataError(
            f"{args.data}: no usable English<TAB>Chinese pairs ({corpus.skipped} malformed lines)"
        )
    joined, long = joined_probe(corpus.pairs, args.seed), long_probe(corpus.pairs)
    joined_path, long_path = write_parts(args.data, args.out_dir, {"joined": joined, "long": long})
    print(
        f"{joined_path}: {len(joined)} pairs (3 sentences, {JOINED_MIN_WORDS}-"
        f"{JOINED_MAX_WORDS} words) · {long_path}: {len(long)} pairs "
        f"({LONG_MIN_WORDS}+ words) · from {len(corpus.pairs)} pairs "
        f"({corpus.skipped} malformed lines skipped)"
    )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from .hub import push

    # push() checks this too, but as a plain ValueError: check it here, where it is the user's flag.
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise ConfigError(f"--repo-id must look like USER/NAME, got {args.repo_id!r}")
    try:
        validate_repo_id(args.repo_id)  # what the Hub client would refuse later, mid-push
    except HFValidationError as e:
        raise ConfigError(f"--repo-id: {e}") from None
    push(
        args.weights_dir,
        args.repo_id,
        revision=args.revision,
        private=args.private,
        commit_message=args.commit_message,
        dry_run=args.dry_run,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train, evaluate, export and push the English→Chinese Transformer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m training train --train ../shared/data/tatoeba-cmn-eng/train.tsv "
        "--dev ../shared/data/tatoeba-cmn-eng/dev.tsv --run-dir runs/base --epochs 2 --threads 2",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{train,evaluate,export,split,probes,push}"
    )

    p = sub.add_parser(
        "train",
        help="train a model (or --resume one)",
        argument_default=argparse.SUPPRESS,
        description="Train the Transformer on TSV pairs; see README.md for a worked example. "
        "Distributed: torchrun --nproc_per_node N -m training train ...",
    )
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="BLEU/chrF of a weights folder on a TSV file",
        description="Translate the English side of a TSV file and score it against the Chinese side "
        "(sacrebleu, tokenize=zh, both sides converted to simplified).",
    )
    p.add_argument("weights_dir", metavar="WEIGHTS_DIR", help="an exported weights folder (e.g. weights/)")
    p.add_argument("--data", required=True, metavar="TSV", help="English<TAB>Chinese pairs to score")
    add_decoding_args(p)
    p.add_argument(
        "--output",
        metavar="FILE",
        help="also write the hypotheses here, one per line (default: none are written)",
    )
    p.add_argument(
        "--split-sentences",
        action="store_true",
        help="translate each input one sentence at a time and join the translations: the ceiling "
        "for multi-sentence input such as the joined probe (default: whole lines)",
    )
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="write a weights folder (safetensors + config + vocab + model card)",
        description="Turn a run directory into a weights folder the app and the Hub can use.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the weights folder to write (replaced if it exists)")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint path (default: best)")
    p.add_argument(
        "--average",
        type=positive_int,
        default=1,
        help="average the last K epoch checkpoints instead (default: 1, no averaging)",
    )
    p.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default="float16",
        help="storage dtype of model.safetensors (default: float16, upcast at load)",
    )
    p.add_argument(
        "--dev",
        metavar="TSV",
        help="re-score on this dev file and put the figures in the model card; also write head_stats.json "
        "(all its sentences) and faithfulness.json (its first 200)",
    )
    p.add_argument(
        "--card-notes",
        metavar="FILE",
        help="Markdown appended to the model card (experiments, hardware, caveats)",
    )
    add_decoding_args(p)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "split",
        help="carve a held-out tuning split from a TSV file",
        description="Split DATA into DIR/STEM-rest.tsv and DIR/STEM-heldout.tsv, whole English sentences "
        "at a time, so that recipes can be tuned without touching dev.",
    )
    p.add_argument("data", metavar="DATA", help="English<TAB>Chinese pairs, e.g. the training split")
    p.add_argument("--holdout", type=positive_int, default=1000, help="pairs to hold out (default: 1000)")
    p.add_argument("--seed", type=int, default=1, help="which sentences are held out (default: 1)")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where the two files are written")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser(
        "probes",
        help="build the joined and long probes from a TSV file",
        description="Write DIR/STEM-joined.tsv (three pairs at a time from a seeded shuffle, English "
        "joined with a space, Chinese as is, 15-30 English words) and DIR/STEM-long.tsv (pairs of 12 "
        "or more English words). Build them from the tuning split, never from dev.",
    )
    p.add_argument("data", metavar="DATA", help="English<TAB>Chinese pairs, e.g. data/train-heldout.tsv")
    p.add_argument(
        "--seed", type=int, default=1, help="the shuffle that groups the joined pairs (default: 1)"
    )
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where the two probe files are written")
    p.set_defaults(func=cmd_probes)

    p = sub.add_parser(
        "push",
        help="upload a weights folder to a Hugging Face Hub model repo (one commit)",
        description="Check that WEIGHTS_DIR loads and translates, then upload model.safetensors,\n"
        "config.json, the two vocabularies and README.md (the model card) to a Hub model\n"
        "repo in one commit, creating the repo (and the branch) if needed. Other files in\n"
        "the folder are not uploaded.",
        epilog="environment:\n"
        "  HF_TOKEN     a token with write access; without it, the one saved by `hf auth login`.\n"
        "               It is never printed, not even in error messages.\n"
        "  HF_ENDPOINT  another Hub (a mirror, a test server); default https://huggingface.co\n\n"
        "example:\n"
        "  python -m training push weights/ --repo-id USER/attention-explorer-en-zh --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "weights_dir", metavar="WEIGHTS_DIR", help="an exported weights folder (python -m training export)"
    )
    p.add_argument(
        "--repo-id",
        required=True,
        metavar="USER/NAME",
        help="the model repo to push to, e.g. USER/attention-explorer-en-zh (created if missing)",
    )
    p.add_argument(
        "--revision",
        metavar="BRANCH",
        help="push to this branch, created from main if missing (default: main); the app loads it "
        "with --revision BRANCH or MODEL_REVISION",
    )
    p.add_argument(
        "--private",
        action="store_true",
        help="create the repo as private (only applies when the repo does not exist yet)",
    )
    p.add_argument(
        "--commit-message",
        metavar="MSG",
        help="summary line of the commit (default: 'Upload weights (…the file names…)')",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the folder and list the files and sizes that would be uploaded; no network, "
        "no token needed",
    )
    p.set_defaults(func=cmd_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .translator import WeightsError  # here, not at the top: it imports torch, which --help does not need

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for the run's command.txt
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(
            "\ninterrupted" + (" · continue with --resume" if args.command == "train" else ""),
            file=sys.stderr,
        )
        return 130
    # What the user can fix gets one line. OSError: a missing file, a full disk, a permission; its
    # message names the file. Anything else is a bug in this code, and keeps its traceback.
    except (DataError, ConfigError, WeightsError, HubError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
