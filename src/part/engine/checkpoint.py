"""Checkpoints: atomic writes, safetensors weights, training state loadable with ``weights_only=True``.

Layout inside a run folder::

    checkpoints/step_0000200.safetensors   objective weights (model + head)
    checkpoints/step_0000200.pt            optimizer, scheduler, scaler, RNG states, step, epoch
    weights.safetensors                    final objective weights
    export/model.safetensors + config.json backbone only, timm parameter names

Every file is written to ``<name>.tmp`` in the same folder and then ``os.replace``-d, so a crash in the
middle of a save leaves the previous checkpoint intact and loadable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_STEP_RE = re.compile(r"step_(\d+)\.pt$")


def atomic_write(path: str | Path, write_fn) -> None:
    """Call ``write_fn(tmp_path)`` then atomically rename the temp file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_fn(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_weights(state_dict: dict, path: str | Path, metadata: dict | None = None) -> None:
    """Save tensors as safetensors (contiguous CPU copies), atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_weights(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    return load_file(str(path))


def load_state_dict_checked(module: torch.nn.Module, state: dict, strict: bool = True, what: str = "weights") -> tuple[list, list]:
    """Load ``state`` into ``module``; shape mismatches and (when strict) missing/unexpected keys raise a
    ``ValueError`` that lists them (with the sizes of mismatched tensors)."""
    own = module.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items() if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(f"{what} do not fit this model (different size?): " + "; ".join(mismatched[:5])
                         + (f" ... and {len(mismatched) - 5} more" if len(mismatched) > 5 else ""))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise ValueError(f"{what}: missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                         f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return missing, unexpected


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every RNG a step touches: torch (CPU, CUDA), Python, NumPy, and PART's sampling generator."""
    import random

    import numpy as np

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    if generator is not None:
        state["sampling"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    if generator is not None and "sampling" in state:
        generator.set_state(state["sampling"])


def save_checkpoint(ckpt_dir: str | Path, step: int, weights: dict, state: dict, keep_last: int = 2) -> Path:
    """Write ``step_XXXXXXX.{safetensors,pt}`` atomically (weights first, state last, so a state file
    always has its weights), then delete all but the newest ``keep_last`` checkpoints."""
    ckpt_dir = Path(ckpt_dir)
    stem = ckpt_dir / f"step_{step:07d}"
    save_weights(weights, stem.with_suffix(".safetensors"), {"step": step})
    atomic_write(stem.with_suffix(".pt"), lambda tmp: torch.save(state, tmp))
    for old in list_checkpoints(ckpt_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
        old.with_suffix(".safetensors").unlink(missing_ok=True)
    return stem.with_suffix(".pt")


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoints (state + weights present), oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if _STEP_RE.search(p.name) and p.with_suffix(".safetensors").is_file()]
    return sorted(found, key=lambda p: int(_STEP_RE.search(p.name).group(1)))


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(weights, state)`` of a checkpoint; the state is read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return load_weights(path.with_suffix(".safetensors")), state


def write_json(path: str | Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n"))
