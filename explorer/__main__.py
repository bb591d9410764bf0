"""Command line: python -m explorer {translate,trace,ablate,head-stats,faithfulness} --help"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from training.argtypes import positive_int

from .loading import add_model_args, load_translator


def add_cli_args(p: argparse.ArgumentParser, json_output: bool = False) -> None:
    add_model_args(p)
    p.add_argument(
        "--beam",
        type=positive_int,
        metavar="N",
        help="beam size; 1 = greedy (default: the model's config.json)",
    )
    if json_output:
        p.add_argument(
            "--indent", type=int, default=None, metavar="N", help="pretty-print the JSON (default: compact)"
        )


def cmd_translate(args: argparse.Namespace) -> int:
    loaded = load_translator(args.weights, args.repo_id, args.revision)
    # Undecodable bytes become U+FFFD, not a crash; only "\n" ends a line, so a stray "\r" cannot add one.
    sys.stdin.reconfigure(encoding="utf-8", errors="replace", newline="\n")
    lines = [line.rstrip("\r\n") for line in sys.stdin]
    start = time.perf_counter()
    out = loaded.translator.translate(lines, batch_size=args.batch_size, beam=args.beam)
    sys.stdout.write("".join(o.replace("\n", " ") + "\n" for o in out))
    sys.stdout.flush()
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(
            f"{len(lines)} lines in {seconds:.1f}s ({len(lines) / max(seconds, 1e-9):.1f} sentences/s) · "
            f"{loaded.model_id}",
            file=sys.stderr,
        )
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .inference import trace

    loaded = load_translator(args.weights, args.repo_id, args.revision)
    tr = trace(
        loaded.translator,
        args.text,
        beam=args.beam,
        model_id=loaded.model_id,
        internals=args.internals or args.contributions,  # contributions are computed from the internals
        force=args.force,
        hypotheses=args.hypotheses,
    )
    if args.contributions:
        from .contributions import trace_json_with_contributions

        out = trace_json_with_contributions(tr, loaded.translator, internals=args.internals)
    else:
        out = tr.to_json()
    json.dump(out, sys.stdout, ensure_ascii=False, indent=args.indent)
    sys.stdout.write("\n")
    for notice in tr.notices:
        print(f"note: {notice}", file=sys.stderr)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from training.kinds import shape

    from .ablation import ablate
    from .heads import parse_head_names
    from .inference import InputError

    loaded = load_translator(args.weights, args.repo_id, args.revision)
    try:
        heads = parse_head_names(args.heads, shape(loaded.translator.model.cfg))
    except InputError as e:
        raise InputError(f"--heads: {e}") from None
    result = ablate(loaded.translator, args.text, [(h.kind, h.layer, h.head) for h in heads], beam=args.beam)
    # as typed
    result["heads"] = [[kind, layer + 1, head + 1] for kind, layer, head in result.get("heads", [])]
    json.dump(result, sys.stdout, ensure_ascii=False, indent=args.indent)
    sys.stdout.write("\n")
    return 0


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    """--data, --limit and --quiet: the options of the commands that run over a corpus."""
    p.add_argument(
        "--data", required=True, metavar="TSV", help="English<TAB>Chinese pairs (the English side is used)"
    )
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N sentences")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def corpus_run(args: argparse.Namespace, desc: str):
    """What the corpus commands share: (English sentences of --data up to --limit, the model, a progress
    bar on stderr that --quiet hides). No usable pair is an InputError."""
    from tqdm import tqdm

    from training.data import read_tsv

    from .inference import InputError

    corpus = read_tsv(args.data)
    texts = [en for en, _ in corpus.pairs][: args.limit]
    if not texts:
        raise InputError(
            f"{args.data}: no usable English<TAB>Chinese pairs ({corpus.skipped} malformed lines)"
        )
    loaded = load_translator(args.weights, args.repo_id, args.revision)
    bar = lambda xs: tqdm(xs, desc=desc, unit="sentence", disable=args.quiet, file=sys.stderr)
    return texts, loaded, bar


def cmd_head_stats(args: argparse.Namespace) -> int:
    from training.head_stats import corpus_head_stats

    texts, loaded, bar = corpus_run(args, "head statistics")
    stats = {
        "model_id": loaded.model_id,
        "data": args.data,
        **corpus_head_stats(loaded.translator, texts, bar),
    }
    json.dump(stats, sys.stdout, ensure_ascii=False, indent=args.indent)
    sys.stdout.write("\n")
    return 0


def cmd_faithfulness(args: argparse.Namespace) -> int:
    from pathlib import Path

    from training.faithfulness import faithfulness, table

    texts, loaded, bar = corpus_run(args, "faithfulness")
    result = {
        "model_id": loaded.model_id,
        "data": Path(args.data).name,
        "pairs": len(texts),
        **faithfulness(loaded.translator, texts, bar, seed=args.seed),
    }
    print(table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=1)
            f.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer", description="Translate English to Chinese, or trace every attention map."
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{translate,trace,ablate,head-stats,faithfulness}"
    )
    p = sub.add_parser(
        "translate",
        help="translate stdin to stdout, one line per line",
        description="Translate English lines from stdin; one Chinese line per input line, in order "
        "(an empty line for an empty line). Timing goes to stderr.",
    )
    add_cli_args(p)
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="N",
        help="sentences decoded together (default: 64)",
    )
    p.add_argument("--quiet", action="store_true", help="no timing line on stderr")
    p.set_defaults(func=cmd_translate)
    p = sub.add_parser(
        "trace",
        help="print the trace JSON of one sentence",
        description="Translate one sentence and print its trace as JSON: source_tokens, target_tokens, "
        "predicted_tokens, translation, attention {encoder_self [L][H][S][S], "
        "decoder_self [L][H][T][T], cross [L][H][T][S]}, model id and decoding settings.",
    )
    p.add_argument("text", help="the English sentence")
    add_cli_args(p, json_output=True)
    p.add_argument(
        "--internals",
        action="store_true",
        help="also print each head's q, k, v and output (key 'internals': {encoder_self, decoder_self, "
        "cross}: {q [L][H][Tq][d_head], k and v [L][H][Tk][d_head], head_output [L][H][Tq][d_head], "
        "residual_in [L][Tq][d_model]})",
    )
    p.add_argument(
        "--contributions",
        action="store_true",
        help="also print what each token contributed (key 'contributions': value_norm {encoder_self, "
        "decoder_self, cross} [L][H][Tq][Tk] and value_norm_layer [L][Tq][Tk]; alti and rollout, each "
        "{encoder [S][S], source [T][S], target [T][T], source_share [T]})",
    )
    p.add_argument(
        "--hypotheses",
        action="store_true",
        help="also print the finished hypotheses beam search weighed, best first (key 'hypotheses': "
        "translation, tokens, logprob (summed, </s> included), score (length-normalized); the first is "
        "the translation)",
    )
    p.add_argument(
        "--force",
        metavar="CHINESE",
        help="trace this Chinese translation instead of the model's own (teacher-forced: target_tokens "
        "are <s> and its characters; predicted_prob and predicted_rank say what the model thinks of each)",
    )
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser(
        "ablate",
        help="switch heads off, re-translate, and measure what they contributed",
        description="Translate the sentence with every head on, then with --heads switched off (their "
        "slice of the concatenated heads is zeroed before W_O). Prints JSON: translation, "
        "ablated_translation, target_tokens (the original output, </s> included) and "
        "delta_logprob (per target token: log-probability with the heads off minus on; "
        "negative = the heads helped).",
    )
    p.add_argument("text", help="the English sentence")
    p.add_argument(
        "--heads",
        required=True,
        metavar="KIND:LAYER:HEAD[,...]",
        help="heads to switch off, 1-based, KIND one of encoder, decoder, cross (e.g. cross:3:1,encoder:1:2); "
        "'none' switches nothing off",
    )
    add_cli_args(p, json_output=True)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser(
        "head-stats",
        help="what each head does, averaged over a corpus (JSON)",
        description="Per head and kind: entropy of its rows (bits), mean row maximum, mean query-key "
        "distance and the share on the same and the previous position (self-attention), "
        "the share on <s>/</s> and on punctuation; each a mean over rows, averaged over "
        "sentences. `training export --dev` ships the dev set's figures as head_stats.json.",
    )
    add_corpus_args(p)
    add_cli_args(p, json_output=True)
    p.set_defaults(func=cmd_head_stats)

    p = sub.add_parser(
        "faithfulness",
        help="measure how well each contribution view predicts what hiding a source token costs",
        description="Translate each sentence (the weights' decoding), then hide each source token in turn "
        "from every cross-attention of a teacher-forced pass on that translation: drop[t, j] = log p(t) "
        "- log p(t | j hidden). Per method (raw last-layer and all-layer cross-attention, value norm, "
        "rollout, ALTI+, random): the mean drop when hiding the token it ranks first, and the mean "
        "Spearman correlation of its scores with the drops. The source </s> is never ranked. "
        "`training export --dev` ships the dev set's figures as faithfulness.json.",
    )
    add_corpus_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default: 0)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    add_model_args(p)
    p.set_defaults(func=cmd_faithfulness)
    return parser


def main(argv: list[str] | None = None) -> int:
    from training.errors import DataError
    from training.translator import WeightsError

    from .inference import InputError

    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (
        WeightsError,
        InputError,
        DataError,
    ) as e:  # what the user can fix; anything else is a bug and keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left, which is not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
