"""Find the weights (a local folder, or a Hugging Face Hub repo), validate them, load once per process.

A Hub repo is fetched with `snapshot_download` into the standard HF cache (HF_HOME / HF_HUB_CACHE;
HF_ENDPOINT picks the Hub), only the four weight files. When the Hub cannot be reached, or
HF_HUB_OFFLINE=1, the cached copy of that revision is used; without one, the bundled `weights/`
are used with a visible notice. Files that were downloaded but do not load are an error
(WeightsError naming the repo), never a silent fallback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from training.argtypes import positive_int
from training.config import read_json
from training.faithfulness import is_result as _valid_faithfulness
from training.files import (
    FAITHFULNESS_FILE,
    HEAD_STATS_FILE,
    OPTIONAL_WEIGHT_FILES,
    TRAINING_LOG_FILE,
    WEIGHT_FILES,
)
from training.hub import redact_url
from training.translator import Translator, WeightsError, load_weights_dir

log = logging.getLogger("explorer")

BUNDLED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
# Seconds any one Hub request may wait. huggingface_hub's client has no timeout for listing a
# repo: a Hub that accepts the connection but never answers would hang the app's start forever.
HUB_TIMEOUT_S = 20.0


@dataclass
class LoadedModel:
    """A translator and what its weights folder ships beside it, read once."""

    translator: Translator
    model_id: str  # what the footer and the trace name: a path, or repo@revision
    notice: str = ""  # set when the requested weights could not be used and a fallback was
    head_stats: dict | None = field(init=False)  # head_stats.json: per-head figures over a corpus
    training_log: dict | None = field(init=False)  # training_log.json: the curves of the Model tab
    # faithfulness.json: how far each contribution view predicts what hiding a source token costs
    faithfulness: dict | None = field(init=False)

    def __post_init__(self) -> None:
        folder = self.translator.folder
        self.head_stats = _optional(folder, HEAD_STATS_FILE, _valid_head_stats)
        self.training_log = _optional(folder, TRAINING_LOG_FILE, _valid_training_log)
        self.faithfulness = _optional(folder, FAITHFULNESS_FILE, _valid_faithfulness)


def _valid_head_stats(data) -> bool:
    from .head_view import corpus_arrays

    corpus_arrays(data)  # shape check: a broken file is reported, never half shown
    return True


def _valid_training_log(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("history"), list) and bool(data["history"])


def _optional(folder: Path | None, name: str, valid) -> dict | None:
    """An optional file of the weights folder, or None when it is absent or broken (which only loses
    what it would have shown: a warning, never a failed start)."""
    path = folder / name if folder else None
    if path is None or not path.is_file():
        return None
    try:
        data = read_json(path)
        if valid(data):
            return data
        log.warning("%s not used: not what %s should hold", path, name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s not used: %s", path, e)
    return None


def _cached_commit(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> str | None:
    """The commit this revision pointed to at the last successful download, if the cache remembers one."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import REGEX_COMMIT_HASH, repo_folder_name

    revision = revision or "main"
    if REGEX_COMMIT_HASH.fullmatch(revision):
        return revision
    ref = (
        Path(cache_dir or constants.HF_HUB_CACHE)
        / repo_folder_name(repo_id=repo_id, repo_type="model")
        / "refs"
        / revision
    )
    if not ref.is_file():
        return None
    return ref.read_text().strip() or None


def _bound_hub_requests(session, seconds: float) -> None:
    """Give every request of huggingface_hub's shared client a timeout where it has none.

    Listing a repo passes `timeout=None` explicitly, which overrides any client default, so
    the bound is set per request, by an event hook (hooks run before the request is sent).
    """

    def hook(request) -> None:
        limits = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            phase: seconds if limits.get(phase) is None else limits[phase]
            for phase in ("connect", "read", "write", "pool")
        }

    hook.bounds_hub_requests = True
    hooks = session.event_hooks
    hooks["request"] = [h for h in hooks["request"] if not getattr(h, "bounds_hub_requests", False)] + [hook]
    session.event_hooks = hooks


def _download(
    repo_id: str,
    revision: str | None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float = HUB_TIMEOUT_S,
) -> tuple[Path, str]:
    """Only the files the app needs, into the HF cache; returns (folder, a note if an older cached copy was used)."""
    from huggingface_hub import get_session, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    _bound_hub_requests(get_session(), timeout)

    # Read before downloading: snapshot_download moves refs/<revision> to the new commit before
    # fetching its files, so after a failed transfer the previous complete copy is only reachable by its hash.
    previous = _cached_commit(repo_id, revision, cache_dir)
    common = dict(
        repo_id=repo_id,
        allow_patterns=[*WEIGHT_FILES, *OPTIONAL_WEIGHT_FILES],
        endpoint=endpoint,
        cache_dir=cache_dir,
    )
    try:
        return Path(snapshot_download(revision=revision, **common)), ""
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise  # the Hub answered, and the client already returned a cached copy of a missing repo if it had one
    except Exception as error:
        # When listing the repo fails (no connection, timeout, offline, 5xx, 401) the client itself
        # falls back to the cache; when a file transfer fails after the listing, it does not. Then
        # the last complete copy is still there under its commit hash.
        if previous is None:
            raise
        try:
            path = Path(snapshot_download(revision=previous, local_files_only=True, **common))
        except Exception:
            raise error from None
        from huggingface_hub import constants

        reason = _hub_reason(
            error, redact_url(endpoint or constants.ENDPOINT).rstrip("/"), f"{repo_id}@{revision or 'main'}"
        )
        return path, f"the download failed ({reason}); using the cached copy (commit {previous[:12]})"


def _bundled(device: str) -> Translator:
    if not (BUNDLED_WEIGHTS / "config.json").is_file():
        raise WeightsError(
            f"{BUNDLED_WEIGHTS}: no bundled model here. Pass --weights DIR (a folder written by "
            "`python -m training export`) or --repo-id USER/NAME (a Hub model repo)."
        )
    return load_weights_dir(BUNDLED_WEIGHTS, device)


def _hub_reason(error: Exception, endpoint: str, label: str) -> str:
    from huggingface_hub.errors import LocalEntryNotFoundError

    from training.hub import describe, known_tokens

    if isinstance(error, LocalEntryNotFoundError) and error.__cause__ is not None:
        # The client's message is several lines about the cache; the cause says what actually failed.
        text = (
            describe(error.__cause__, endpoint, label, known_tokens(None)) + ", and there is no cached copy"
        )
    else:
        text = describe(error, endpoint, label, known_tokens(None))
    return text.removeprefix(f"{label}: ")  # every message built around this one names the repo already


def _load_from_hub(
    repo_id: str,
    revision: str | None,
    device: str,
    endpoint: str | None,
    cache_dir: str | Path | None,
    timeout: float,
) -> LoadedModel:
    from huggingface_hub import constants

    label = f"{repo_id}@{revision or 'main'}"
    where = redact_url(endpoint or constants.ENDPOINT).rstrip("/")  # it is shown: notices, logs, the page
    try:
        path, note = _download(repo_id, revision, endpoint, cache_dir, timeout)
    except Exception as e:  # network, auth, missing repo or revision, offline without a cached copy
        reason = _hub_reason(e, where, label)
        if not (BUNDLED_WEIGHTS / "config.json").is_file():
            raise WeightsError(
                f"could not get {label} from the Hugging Face Hub: {reason}; and there are no "
                f"bundled weights in {BUNDLED_WEIGHTS} to fall back to"
            ) from None
        notice = (
            f"Could not get {label} from the Hugging Face Hub ({reason}); "
            f"using the bundled weights in {BUNDLED_WEIGHTS.name}/ instead."
        )
        print(f"warning: {notice}", file=sys.stderr)
        return LoadedModel(_bundled(device), f"{BUNDLED_WEIGHTS.name}/ (bundled)", notice)
    missing = [name for name in WEIGHT_FILES if not (path / name).is_file()]
    if missing:
        raise WeightsError(
            f"{label} on {where} has no {', '.join(missing)}: it is not a weights folder "
            "(push one with `python -m training push WEIGHTS_DIR --repo-id USER/NAME`)"
        )
    try:
        translator = load_weights_dir(path, device)
    except WeightsError as e:
        raise WeightsError(
            f"{label} from {where} cannot be used: {e}; if the repo itself is broken, push a "
            "working folder with `python -m training push`"
        ) from None
    notice = ""
    if note:
        notice = f"{label}: {note}."
        print(f"warning: {notice}", file=sys.stderr)
    return LoadedModel(translator, label, notice)


def resolve(
    weights: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    device: str = "cpu",
    *,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float = HUB_TIMEOUT_S,
) -> LoadedModel:
    """Load the requested weights; a Hub failure falls back to the bundled `weights/` with a notice.

    A local folder that is broken is an error (WeightsError), never silently replaced; so is a Hub
    repo whose files were downloaded but do not load. `endpoint` and `cache_dir` override
    HF_ENDPOINT and the HF cache (which huggingface_hub reads once, at import); `timeout` bounds
    each Hub request, in seconds.
    """
    if weights:
        path = Path(weights)
        return LoadedModel(load_weights_dir(path, device), str(path))
    if repo_id:
        return _load_from_hub(repo_id, revision, device, endpoint, cache_dir, timeout)
    return LoadedModel(_bundled(device), f"{BUNDLED_WEIGHTS.name}/ (bundled)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The options that choose the model, shared by app.py and `python -m explorer`."""
    env = from_environment()
    p.add_argument("--weights", metavar="DIR", help="a local weights folder (default: the bundled weights/)")
    p.add_argument(
        "--repo-id",
        default=env["repo_id"],
        metavar="USER/NAME",
        help="download the weights from this Hugging Face Hub model repo (env MODEL_REPO)",
    )
    p.add_argument(
        "--revision",
        default=env["revision"],
        metavar="REV",
        help="branch, tag or commit of --repo-id (env MODEL_REVISION; default: main)",
    )
    p.add_argument(
        "--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's choice)"
    )


def from_environment() -> dict[str, str | None]:
    """MODEL_REPO / MODEL_REVISION (how a Space points at a model repo)."""
    return {
        "repo_id": os.environ.get("MODEL_REPO") or None,
        "revision": os.environ.get("MODEL_REVISION") or None,
    }


_cache: dict[tuple, LoadedModel] = {}
_lock = threading.Lock()


def load_translator(
    weights: str | None = None, repo_id: str | None = None, revision: str | None = None
) -> LoadedModel:
    """Like `resolve`, but each distinct request is loaded once per process (thread-safe)."""
    key = (weights, repo_id, revision)
    with _lock:
        if key not in _cache:
            _cache[key] = resolve(weights, repo_id, revision)
        return _cache[key]
