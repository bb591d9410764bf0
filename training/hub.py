"""Push a weights folder to a Hugging Face Hub model repo (one commit), after checking that it loads and translates.

The token comes from `token=`, else HF_TOKEN, else the `hf auth login` token file (huggingface_hub
finds the last two itself). It is never printed: every error raised here is one line with the
token replaced by `***`. HF_ENDPOINT points the client at another Hub (a mirror, a test server).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .files import CARD_FILE, OPTIONAL_WEIGHT_FILES, WEIGHT_FILES

VALIDATION_SENTENCE = "I love you."


class HubError(RuntimeError):
    """A Hub operation failed; the message is one line, names the fix, and never contains the token."""


@dataclass
class PushResult:
    repo_id: str
    revision: str
    endpoint: str
    files: list[tuple[str, int]]  # (name, bytes), in upload order
    translation: str  # of VALIDATION_SENTENCE, by the folder being pushed
    commit_url: str | None = None  # None for a dry run
    commit_oid: str | None = None


def push_files(weights_dir: str | Path) -> tuple[str, ...]:
    """The files of a weights folder that belong on the Hub (other files stay local)."""
    return tuple(
        name
        for name in (*WEIGHT_FILES, *OPTIONAL_WEIGHT_FILES, CARD_FILE)
        if (Path(weights_dir) / name).is_file()
    )


def known_tokens(token: str | None) -> list[str]:
    """Every token huggingface_hub might send, so that none of them can leak into a message."""
    found = [token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    try:
        from huggingface_hub import get_token

        found.append(get_token())
    except Exception:  # a broken token file or OIDC set-up is reported by the request itself
        pass
    return sorted({t.strip() for t in found if t and t.strip()}, key=len, reverse=True)


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact_url(text: str) -> str:
    """`scheme://user:password@host` → `scheme://***@host`, wherever a URL appears in `text`."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def scrub(text: str, secrets: list[str]) -> str:
    """One line, no secret: known tokens become ***, and so do anything after 'Bearer' and a URL's credentials."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
    return " ".join(redact_url(text).split())


def describe(error: BaseException, endpoint: str, repo_id: str, secrets: list[str]) -> str:
    """A one-line, token-free explanation of a huggingface_hub / httpx error, with what to do about it."""
    try:  # huggingface_hub's HTTP client; its transport errors mean "could not connect"
        from httpx2 import TransportError as transport_errors
    except ImportError:
        transport_errors = ()
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    login = "set HF_TOKEN or run `hf auth login`"
    if isinstance(error, OfflineModeIsEnabled):
        text = f"offline mode is on (HF_HUB_OFFLINE=1), so the Hub at {endpoint} was not contacted"
    elif isinstance(error, (transport_errors, ConnectionError, TimeoutError)):
        text = f"could not reach the Hub at {endpoint}: {str(error) or type(error).__name__}; check your network or HF_ENDPOINT"
    elif isinstance(error, RevisionNotFoundError):
        text = f"{repo_id}: revision not found on {endpoint}"
    elif isinstance(error, RepositoryNotFoundError):
        text = (
            f"{repo_id}: repository not found on {endpoint} (or private and this token may not see it); "
            f"check the repo id, or {login}"
        )
    elif isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        server = error.server_message or str(error).strip().splitlines()[0]
        hint = {
            401: f"the token was refused; {login} with a token that has write access",
            403: f"this token may not write to {repo_id}; use a write token of its owner",
        }.get(status, "")
        text = f"the Hub at {endpoint} answered {status} for {repo_id}: {server}" + (
            f"; {hint}" if hint else ""
        )
    elif isinstance(error, LocalEntryNotFoundError):
        text = f"{repo_id}: not in the local cache, and the Hub at {endpoint} could not be used ({error})"
    else:
        text = f"{type(error).__name__}: {error}"
    return scrub(text, secrets)[:500]


def _validate(weights_dir: Path) -> str:
    from .translator import load_weights_dir

    translator = load_weights_dir(weights_dir)  # WeightsError (a ValueError) names the broken file
    return translator.translate([VALIDATION_SENTENCE], beam=1)[0]


def push(
    weights_dir: str | Path,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Validate `weights_dir`, then upload its weight files and model card to `repo_id` in one commit.

    A broken folder fails before any network access; `dry_run` never touches the network.
    Prints what it does; raises ValueError for bad input and HubError for what the Hub said.
    """
    weights_dir = Path(weights_dir)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--repo-id must look like USER/NAME, got {repo_id!r}")
    translation = _validate(weights_dir)
    files = [(name, (weights_dir / name).stat().st_size) for name in push_files(weights_dir)]
    branch = revision or "main"
    if endpoint is None:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT  # HF_ENDPOINT, as the client reads it
    endpoint = endpoint.rstrip("/")
    result = PushResult(repo_id, branch, endpoint, files, translation)
    print(f"validated {weights_dir}: {VALIDATION_SENTENCE!r} -> {translation!r}")
    total = sum(size for _, size in files)
    print(
        f"{'would upload' if dry_run else 'uploading'} {len(files)} files ({total:,} bytes) "
        f"to {endpoint}/{repo_id} (branch {branch}) in one commit:"
    )
    for name, size in files:
        print(f"  {name:<20} {size:>14,} bytes")
    if dry_run:
        print("dry run: nothing was sent")
        return result

    from huggingface_hub import HfApi

    secrets = known_tokens(token)
    if not secrets:
        raise HubError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)"
        )
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            folder_path=weights_dir,
            repo_id=repo_id,
            repo_type="model",
            revision=branch,
            commit_message=commit_message or f"Upload weights ({', '.join(name for name, _ in files)})",
            allow_patterns=[name for name, _ in files],
        )
    except Exception as e:
        from huggingface_hub.errors import HfHubHTTPError

        # `from None`: the original exception chain is not shown, so nothing in it can carry the token out.
        if isinstance(e, ValueError) and not isinstance(e, HfHubHTTPError):  # e.g. the client's repo-id check
            raise ValueError(scrub(str(e), secrets)) from None
        raise HubError(describe(e, endpoint, repo_id, secrets)) from None
    result.commit_url, result.commit_oid = info.commit_url, info.oid
    print(f"committed {info.oid[:12]} to {repo_id}@{branch}: {info.commit_url}")
    return result
