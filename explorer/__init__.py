"""The attention explorer: load a model, trace a translation, draw its attention.

from explorer import load_translator, trace
loaded = load_translator()                  # bundled weights/ (or weights=..., repo_id=...)
tr = trace(loaded.translator, "I love you.", beam=4)
tr.translation, tr.source_tokens, tr.cross.shape   # '我爱你。', [...], (L, H, T, S)
"""

from .inference import InputError, Trace, trace
from .loading import LoadedModel, load_translator

__all__ = ["InputError", "LoadedModel", "Trace", "load_translator", "trace"]
