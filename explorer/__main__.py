"""Command line: python -m explorer {translate,trace} --help"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .loading import add_model_args, load_translator, positive_int


def add_cli_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--beam", type=positive_int, metavar="N",
                   help="beam size; 1 = greedy (default: the model's config.json)")


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
        print(f"{len(lines)} lines in {seconds:.1f}s ({len(lines) / max(seconds, 1e-9):.1f} sentences/s) · "
              f"{loaded.model_id}", file=sys.stderr)
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .inference import trace

    loaded = load_translator(args.weights, args.repo_id, args.revision)
    tr = trace(loaded.translator, args.text, beam=args.beam, model_id=loaded.model_id)
    json.dump(tr.to_json(), sys.stdout, ensure_ascii=False, indent=args.indent)
    sys.stdout.write("\n")
    for notice in tr.notices:
        print(f"note: {notice}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer",
                                     description="Translate English to Chinese, or trace every attention map.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{translate,trace}")
    p = sub.add_parser("translate", help="translate stdin to stdout, one line per line",
                       description="Translate English lines from stdin; one Chinese line per input line, in order "
                                   "(an empty line for an empty line). Timing goes to stderr.")
    add_cli_args(p)
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="sentences decoded together (default: 64)")
    p.add_argument("--quiet", action="store_true", help="no timing line on stderr")
    p.set_defaults(func=cmd_translate)
    p = sub.add_parser("trace", help="print the trace JSON of one sentence",
                       description="Translate one sentence and print its trace as JSON: source_tokens, target_tokens, "
                                   "predicted_tokens, translation, attention {encoder_self [L][H][S][S], "
                                   "decoder_self [L][H][T][T], cross [L][H][T][S]}, model id and decoding settings.")
    p.add_argument("text", help="the English sentence")
    add_cli_args(p)
    p.add_argument("--indent", type=int, default=None, metavar="N", help="pretty-print the JSON (default: compact)")
    p.set_defaults(func=cmd_trace)
    return parser


def main(argv: list[str] | None = None) -> int:
    from training.translator import WeightsError

    from .inference import InputError

    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (WeightsError, InputError) as e:  # what the user can fix; anything else is a bug and keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left, which is not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
