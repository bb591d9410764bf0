"""Find the weights (a local folder, or a Hugging Face Hub repo), validate them, load once per process."""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from training.translator import WEIGHT_FILES, Translator, WeightsError, load_weights_dir

BUNDLED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


@dataclass
class LoadedModel:
    translator: Translator
    model_id: str  # what the footer and the trace name: a path, or repo@revision
    notice: str = ""  # set when the requested weights could not be used and a fallback was


def _download(repo_id: str, revision: str | None) -> Path:
    """Only the files the app needs, into the standard HF cache (works offline from that cache)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=list(WEIGHT_FILES)))


def _bundled(device: str) -> Translator:
    if not (BUNDLED_WEIGHTS / "config.json").is_file():
        raise WeightsError(
            f"{BUNDLED_WEIGHTS}: no bundled model here. Pass --weights DIR (a folder written by "
            "`python -m training export`) or --repo-id USER/NAME (a Hub model repo)."
        )
    return load_weights_dir(BUNDLED_WEIGHTS, device)


def resolve(weights: str | None = None, repo_id: str | None = None, revision: str | None = None,
            device: str = "cpu") -> LoadedModel:
    """Load the requested weights; a Hub failure falls back to the bundled `weights/` with a notice.

    A local folder that is broken is an error (WeightsError), never silently replaced.
    """
    if weights:
        path = Path(weights)
        return LoadedModel(load_weights_dir(path, device), str(path))
    if repo_id:
        label = f"{repo_id}@{revision or 'main'}"
        try:
            return LoadedModel(load_weights_dir(_download(repo_id, revision), device), label)
        except WeightsError:
            raise
        except Exception as e:  # network, auth, missing repo, offline without cache
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
            notice = (f"Could not get {label} from the Hugging Face Hub ({reason[:200]}); "
                      f"using the bundled weights in {BUNDLED_WEIGHTS.name}/ instead.")
            print(f"warning: {notice}", file=sys.stderr)
            return LoadedModel(_bundled(device), f"{BUNDLED_WEIGHTS.name}/ (bundled)", notice)
    return LoadedModel(_bundled(device), f"{BUNDLED_WEIGHTS.name}/ (bundled)")


def from_environment() -> dict[str, str | None]:
    """MODEL_REPO / MODEL_REVISION (how a Space points at a model repo)."""
    return {"repo_id": os.environ.get("MODEL_REPO") or None, "revision": os.environ.get("MODEL_REVISION") or None}


_cache: dict[tuple, LoadedModel] = {}
_lock = threading.Lock()


def load_translator(weights: str | None = None, repo_id: str | None = None, revision: str | None = None) -> LoadedModel:
    """Like `resolve`, but each distinct request is loaded once per process (thread-safe)."""
    key = (weights, repo_id, revision)
    with _lock:
        if key not in _cache:
            _cache[key] = resolve(weights, repo_id, revision)
        return _cache[key]
