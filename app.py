"""Entry point: `python app.py` serves the attention explorer (Hugging Face Spaces run this file too).

Weights: --weights DIR, or --repo-id USER/NAME [--revision REV] (also MODEL_REPO /
MODEL_REVISION), else the bundled weights/. Listens on 127.0.0.1:7860 unless
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys

from explorer.loading import add_model_args, load_translator, positive_int
from explorer.ui import CONCURRENCY, QUEUE_SIZE, build_demo
from training.translator import WeightsError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the English→Chinese attention explorer.")
    add_model_args(p)
    p.add_argument("--queue-size", type=positive_int, default=QUEUE_SIZE, metavar="N",
                   help=f"requests that may wait; more are refused at once with 'queue is full' (default: {QUEUE_SIZE})")
    p.add_argument("--concurrency", type=positive_int, default=CONCURRENCY, metavar="N",
                   help=f"translations run at the same time (default: {CONCURRENCY})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        loaded = load_translator(args.weights, args.repo_id, args.revision)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    build_demo(loaded, args.queue_size, args.concurrency).launch(
        # Set but empty would make Gradio listen on every interface: treat it as unset.
        server_name=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
