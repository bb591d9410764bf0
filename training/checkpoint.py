"""Training checkpoints as single safetensors files (no pickle), written atomically.

One file holds the model parameters (`model.*`), the optimizer tensors
(`optim.*`), the RNG states (`rng.*`) and, in the safetensors metadata, a JSON
blob with everything else (step, epoch, batch position, optimizer
hyper-parameters, metrics). It is written to a temporary file, fsynced and
renamed over the target, so a crash or a full disk leaves either the previous
checkpoint or the new one, never half a file.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from .errors import DataError


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return tensors, {"python_random": random.getstate()}


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    v, state, gauss = meta["python_random"]
    random.setstate((v, tuple(state), gauss))


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
) -> None:
    path = Path(path)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, state in opt["state"].items():
        for name, value in state.items():
            if not torch.is_tensor(value):
                value = torch.tensor(value)
            tensors[f"optim.{idx}.{name}"] = value.detach().contiguous().cpu()
    rng_tensors, rng_meta = rng_state()
    tensors.update({k: v.contiguous() for k, v in rng_tensors.items()})
    blob = {"meta": meta, "param_groups": opt["param_groups"], "rng": rng_meta}
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata={"checkpoint": json.dumps(blob)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(
            f"could not write checkpoint {path}: {e.strerror or e}. "
            "The previous checkpoint is intact; free disk space and resume."
        ) from e


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Returns (tensors, blob). Raises DataError with the file name for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        # One read, then parse from memory: opening the path twice (header, then the mapping)
        # can straddle a concurrent writer's rename and see two different files.
        data = path.read_bytes()
        tensors = load(data)
        n = int.from_bytes(data[:8], "little")
        blob = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["checkpoint"])
    except (SafetensorError, KeyError, TypeError, ValueError, OSError) as e:
        raise DataError(
            f"{path}: not a readable training checkpoint ({e}); delete it or resume from another"
        ) from None
    return tensors, blob


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


def restore(
    tensors: dict[str, torch.Tensor],
    blob: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    """Load model, optimizer and RNG states in place; returns the run metadata."""
    model.load_state_dict(model_state(tensors))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": blob["param_groups"]})
    set_rng_state(tensors, blob["rng"])
    return blob["meta"]


def average_model_states(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model parameters of several checkpoints (fp32 accumulation)."""
    total: dict[str, torch.Tensor] = {}
    for p in paths:
        tensors, _ = read_checkpoint(p)
        for k, v in model_state(tensors).items():
            total[k] = total.get(k, 0) + v.float()
    return {k: v / len(paths) for k, v in total.items()}
