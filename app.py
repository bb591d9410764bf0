"""Entry point: `python app.py` serves the attention explorer (Hugging Face Spaces run this file too).

Weights: --weights DIR, or --repo-id USER/NAME [--revision REV] (also MODEL_REPO /
MODEL_REVISION), else the bundled weights/. Listens on 127.0.0.1:7860 unless
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
import tempfile

from explorer.loading import add_model_args, load_translator
from explorer.malloc import tune_allocator
from explorer.page import build_demo, launch_options
from explorer.policy import CONCURRENCY, QUEUE_SIZE
from explorer.trace_files import TraceFiles
from training.argtypes import positive_int
from training.translator import WeightsError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the English→Chinese attention explorer.")
    add_model_args(p)
    p.add_argument(
        "--queue-size",
        type=positive_int,
        default=QUEUE_SIZE,
        metavar="N",
        help=f"requests that may wait; more are refused at once with 'queue is full' (default: {QUEUE_SIZE})",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=CONCURRENCY,
        metavar="N",
        help=f"translations run at the same time (default: {CONCURRENCY})",
    )
    return p.parse_args(argv)


def temp_dir_problem() -> str | None:
    """Gradio writes into GRADIO_TEMP_DIR (else <tmp>/gradio) from its first request: check it before starting."""
    named = os.environ.get("GRADIO_TEMP_DIR")
    fix = "set GRADIO_TEMP_DIR to a writable folder"
    try:
        folder = named or os.path.join(tempfile.gettempdir(), "gradio")
    except FileNotFoundError as e:  # no usable temp folder at all
        return f"no writable temp folder ({e}): {fix}"
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        where = f"GRADIO_TEMP_DIR={named}" if named else f"the temp folder {folder}"
        return f"{where} is not writable ({e.strerror or e}): {fix}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = temp_dir_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # One line per expected refusal (see explorer.policy.refusal), on our logger only: the root logger
    # at INFO would add a line per HTTP request of the libraries Gradio uses.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    log = logging.getLogger("explorer")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    tune_allocator()  # before the server's threads exist: they share 2 arenas
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        loaded = load_translator(args.weights, args.repo_id, args.revision)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = TraceFiles()
    files.remove_stale()  # folders of processes that died without cleaning up
    atexit.register(files.remove_all)
    # SIGTERM (how Spaces and process managers stop an app) as Ctrl-C: Gradio closes the server and
    # returns from launch, so the finally below (and Gradio's cache cleanup) runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        build_demo(loaded, args.queue_size, args.concurrency, files=files).launch(
            **launch_options(loaded),
            # Set but empty would make Gradio listen on every interface: treat it as unset.
            server_name=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
            server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        )
    finally:
        files.remove_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
