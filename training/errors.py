"""Errors the user can fix. The command lines print them as one line (`error: …`, exit 2);
any other exception is a bug and keeps its traceback.

Both are ValueErrors, so callers (and tests) that catch ValueError still do. The other
user errors live beside the code that raises them: `WeightsError` (training/translator.py),
`InputError` (explorer/inference.py), `HubError` (training/hub.py).
"""


class DataError(ValueError):
    """A file the user gave, or one a run wrote, cannot be used: a corpus with no usable pairs,
    a damaged vocabulary, checkpoint or JSON file. The message names the file."""


class ConfigError(ValueError):
    """Flags or a configuration file ask for something that cannot work. The message names the
    flag or the file, and what to do instead."""
