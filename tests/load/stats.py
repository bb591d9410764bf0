"""Small figures shared by the phases and the report."""

from __future__ import annotations

import itertools
import string
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app_process import dir_size, proc_status_mb  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def mb(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def memory(pid: int) -> dict:
    """The app's resident memory now and its peak so far, in MB."""
    return {"rss_mb": mb(proc_status_mb(pid, "VmRSS")), "peak_mb": mb(proc_status_mb(pid, "VmHWM"))}


def reset_peak(pid: int) -> None:
    """Restart the kernel's peak-RSS count (VmHWM), so a phase's peak is its own, not an earlier phase's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass  # not our process to reset: the peak then covers the app's whole life, still an upper bound


def temp_size(root: Path) -> dict:
    """The app's temp folder, split into its trace files and Gradio's cache (its GRADIO_TEMP_DIR)."""
    total, files = dir_size(root)
    traces = sum(dir_size(p)[0] for p in root.glob("attention-explorer-*"))
    cache = dir_size(root / "gradio")[0]
    return {"bytes": total, "files": files, "trace_dir_bytes": traces, "gradio_cache_bytes": cache}


def unknown_words(n_chars: int) -> str:
    """Distinct made-up words ("qaaax qaabx …") up to n_chars: every one is <unk>, and every one is listed
    in the unknown-word notice, which makes this the largest answer per character we know of."""
    words, used = [], 0
    for letters in itertools.product(string.ascii_lowercase, repeat=3):
        word = "q" + "".join(letters) + "x"
        if used + len(word) + 1 > n_chars:
            break
        words.append(word)
        used += len(word) + 1
    return " ".join(words)


def bounded_map(fn, items, workers: int) -> list:
    """pool.map that, when interrupted (Ctrl-C, a timeout's SIGINT), drops the requests not yet sent
    instead of sending them all before the app can be stopped."""
    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
