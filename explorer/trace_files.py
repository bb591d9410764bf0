"""Download files (the trace JSON, the visible maps as CSV): one folder per process, bounded, never half-written.

The folder lives inside Gradio's cache folder (GRADIO_TEMP_DIR, else <tmp>/gradio), so Gradio
serves the file where it is instead of copying it a second time. Its name carries the PID:
at start the folders of dead processes (and a leftover of our own PID) are removed, and the
app removes its own at shutdown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from gradio.utils import get_upload_folder

from .inference import Trace

FOLDER_PREFIX = "attention-explorer-"
MAX_BYTES = 64 * 2**20  # all trace files together; the oldest go first
MAX_AGE_S = 15 * 60  # Gradio's delete_cache uses the same age
SUFFIXES = ("json", "csv")


def cache_root() -> Path:
    """Gradio's cache folder: files in it are served without a copy."""
    return Path(get_upload_folder())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def encode(tr: Trace) -> bytes:
    """UTF-8 JSON; a character UTF-8 cannot hold (a lone surrogate) becomes "?" instead of an error."""
    return json.dumps(tr.to_json(), ensure_ascii=False).encode("utf-8", errors="replace")


class TraceFiles:
    def __init__(
        self,
        root: Path | None = None,
        max_bytes: int = MAX_BYTES,
        max_age_s: float = MAX_AGE_S,
        pid: int | None = None,
    ):
        self.root = Path(root) if root is not None else cache_root()
        self.pid = os.getpid() if pid is None else pid
        self.dir = self.root / f"{FOLDER_PREFIX}{self.pid}"
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self._lock = threading.Lock()

    def remove_stale(self, roots: list[Path] | None = None) -> list[Path]:
        """Remove the trace folders of processes that are gone, and any earlier folder with our own PID.

        `roots`: where to look (default: our root and the plain temp dir, where earlier versions wrote).
        """
        removed = []
        for root in roots or [self.root, Path(tempfile.gettempdir())]:
            with contextlib.suppress(OSError):
                for folder in root.glob(f"{FOLDER_PREFIX}*"):
                    pid = folder.name[len(FOLDER_PREFIX) :]
                    if (
                        folder.is_dir()
                        and pid.isdigit()
                        and (int(pid) == self.pid or not pid_alive(int(pid)))
                    ):
                        shutil.rmtree(folder, ignore_errors=True)
                        removed.append(folder)
        return removed

    def remove_all(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, tr: Trace, stem: str = "trace") -> Path:
        """Write `tr` as JSON and return the path. Raises OSError (e.g. ENOSPC), leaving no partial file."""
        return self.write_bytes(encode(tr), stem, "json")

    def write_text(self, text: str, stem: str, suffix: str) -> Path:
        return self.write_bytes(text.encode("utf-8", errors="replace"), stem, suffix)

    def write_bytes(self, data: bytes, stem: str, suffix: str) -> Path:
        """Write `data` as `<stem>-<random>.<suffix>` (the name the browser saves it under), atomically."""
        if not re.fullmatch(r"[A-Za-z0-9-]{1,60}", stem) or suffix not in SUFFIXES:
            raise ValueError(f"bad download name {stem!r}.{suffix!r}")
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._prune(len(data))
            path = self.dir / f"{stem}-{secrets.token_hex(4)}.{suffix}"
            fd, staging = tempfile.mkstemp(dir=self.dir, prefix=".download-", suffix=".part")
            os.close(fd)
            try:
                with open(staging, "wb") as f:
                    f.write(data)
                os.replace(staging, path)  # readers see the whole file or none
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(staging)
                raise
        return path

    def files(self) -> list[Path]:
        with contextlib.suppress(OSError):
            return sorted(f for f in self.dir.iterdir() if f.suffix[1:] in SUFFIXES)
        return []

    def total_bytes(self) -> int:
        total = 0
        for f in self.files():
            with contextlib.suppress(OSError):
                total += f.stat().st_size
        return total

    def _prune(self, incoming: int) -> None:
        """Make room for `incoming` bytes: drop files past their age, then the oldest until the budget holds."""
        now, files = time.time(), []
        for f in self.files():
            with contextlib.suppress(OSError):
                st = f.stat()
                files.append((st.st_mtime, st.st_size, f))
        files.sort()
        total = sum(size for _, size, _ in files)
        for mtime, size, f in files:
            if now - mtime <= self.max_age_s and total + incoming <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                f.unlink()
                total -= size
