"""The traces of recent translations, kept on the server and bounded, so sessions hold only a key.

A public Space gets a new session per visitor; a Trace in each session's gr.State would stay
until Gradio evicts the session. Here a session's state is a random key into one store with a
cap on entries and bytes and a time to live; an evicted or expired key reads as None, and the
UI asks the user to translate again.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .inference import Trace

MAX_TRACES = 256  # sessions that can hold a trace at once
MAX_BYTES = 64 * 2**20  # their attention maps together; a capped trace of the shipped model is ~0.2 MB
TTL_S = 30 * 60  # since last use: time to read the maps, not forever
INTERNALS_KEPT = 16  # traces with internals kept (~1–3 MB each at the app's caps)


def trace_nbytes(tr: Trace) -> int:
    """The maps' bytes, and what a view's contributions add once computed (about as much again)."""
    return tr.encoder_self.nbytes + tr.decoder_self.nbytes + tr.cross.nbytes + _nbytes(tr.contributions)


def _nbytes(tree) -> int:
    if isinstance(tree, dict):
        return sum(_nbytes(v) for v in tree.values())
    return getattr(tree, "nbytes", 0)


class TraceStore:
    """Least recently used traces by key; thread-safe (Gradio runs handlers in worker threads)."""

    def __init__(
        self,
        max_traces: int = MAX_TRACES,
        max_bytes: int = MAX_BYTES,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_traces, self.max_bytes, self.ttl_s, self.clock = max_traces, max_bytes, ttl_s, clock
        # key → (trace, bytes, last use)
        self._items: OrderedDict[str, tuple[Trace, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, tr: Trace) -> str:
        """Keep `tr` (evicting the least recently used as needed); returns its key."""
        key = secrets.token_urlsafe(16)
        size = trace_nbytes(tr)
        with self._lock:
            self._items[key] = (tr, size, self.clock())
            self._bytes += size
            self._evict()
        return key

    def get(self, key: str | None) -> Trace | None:
        """The trace, or None when the key is unknown, evicted or expired. A hit counts as a use."""
        if not isinstance(key, str):
            return None
        with self._lock:
            self._evict()
            item = self._items.pop(key, None)
            if item is None:
                return None
            tr, size, _ = item
            self._items[key] = (tr, size, self.clock())  # to the most recently used end
            return tr

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def _evict(self) -> None:
        now = self.clock()
        while self._items:
            key, (_, size, used) = next(iter(self._items.items()))
            too_many = len(self._items) > self.max_traces or self._bytes > self.max_bytes
            # One trace over the byte budget alone is still kept: the user who just translated sees it.
            if not (too_many and len(self._items) > 1) and now - used <= self.ttl_s:
                break
            del self._items[key]
            self._bytes -= size


@dataclass
class InternalsEntry:
    trace: Trace  # the same translation, traced with internals
    terms: dict[str, dict] = field(default_factory=dict)  # kind → layer 1's first_layer_terms (H, T, T)


class InternalsCache:
    """Main trace key → its trace with internals (~10× a trace's size), for the "Inside a head" tab;
    least recently used first out; thread-safe."""

    def __init__(self, size: int = INTERNALS_KEPT):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: str) -> InternalsEntry | None:
        with self._lock:
            entry = self._items.pop(key, None)
            if entry is not None:
                self._items[key] = entry
            return entry

    def put(self, key: str, entry: InternalsEntry) -> InternalsEntry:
        with self._lock:
            self._items[key] = entry
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return entry
