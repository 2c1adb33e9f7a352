"""Checkpoints: atomic durable writes, safetensors weights, training state loadable with ``weights_only=True``,
and a content-hash manifest that makes a checkpoint count only once it is durable and verified.

Layout inside a run folder::

    checkpoints/step_0000200.safetensors   objective weights (model + head)
    checkpoints/step_0000200.pt            optimizer, scaler, RNG states, step, last metrics
    checkpoints/step_0000200.json          manifest: sha256 + size of both files, loss, "good"
    checkpoints/rejected/                  checkpoints set aside (corrupt, or diverged after a loss spike)
    weights.safetensors                    final objective weights
    export/model.safetensors + config.json backbone only, timm parameter names

Every file is written to ``<name>.tmp`` in the same folder, fsynced, ``os.replace``-d, and the folder is
fsynced, so a crash in the middle of a save leaves the previous file intact. The manifest is written last,
from the bytes read back from disk: a checkpoint without a manifest is incomplete (never counted as
verified), and a checkpoint whose bytes no longer match its manifest (bit flip, truncation) is rejected on
resume in favour of the next older verified one. Older checkpoints are pruned only after their successor's
manifest is durable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import WriteError, atomic_write, fsync_dir, write_json  # noqa: F401 - the run files' writers, re-exported

_STEP_RE = re.compile(r"step_(\d+)\.pt$")


class CheckpointError(ValueError):
    """No checkpoint could be used (none verified, or all unreadable); the message names the folder."""


def save_weights(state_dict: dict, path: str | Path, metadata: dict | None = None) -> None:
    """Save tensors as safetensors (contiguous CPU copies), atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_weights(path: str | Path) -> dict:
    """Tensors of a safetensors file; a missing file or one that is not safetensors (a ``.pt``, text,
    truncated) is a ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type on a bad header
        hint = " (a .pt training state? give the .safetensors beside it)" if path.suffix == ".pt" else ""
        raise ValueError(f"{path} is not a readable safetensors weights file{hint}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def weight_shapes(path: str | Path) -> dict:
    """``{name: shape}`` of a safetensors file, from its header alone (no tensor is read): what a config's
    architecture is checked against before the model is built (:func:`part.models.shapes.check_against_shapes`).
    A missing or unreadable file is a ``ValueError`` naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error type on a bad header
        raise ValueError(f"{path} is not a readable safetensors weights file: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


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


def file_digest(path: str | Path) -> dict:
    """``{"sha256": hex, "bytes": size}`` of a file, read back from disk."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            n += len(chunk)
    return {"sha256": h.hexdigest(), "bytes": n}


def digest_mismatch(path: str | Path, want: dict) -> str | None:
    """``None`` when the file at ``path`` has the ``bytes`` and ``sha256`` that ``want`` records, else the reason
    (one line naming the file); a missing file is a mismatch."""
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    got = file_digest(path)
    if got["bytes"] != want.get("bytes"):
        return f"{path} has {got['bytes']} bytes, {want.get('bytes')} recorded"
    if got["sha256"] != want.get("sha256"):
        return f"{path} does not match its recorded SHA-256 (corrupted on disk)"
    return None


def _manifest_path(ckpt: Path) -> Path:
    return ckpt.with_suffix(".json")


def checkpoint_step(ckpt: Path) -> int:
    return int(_STEP_RE.search(ckpt.name).group(1))


def save_checkpoint(ckpt_dir: str | Path, step: int, weights: dict, state: dict, keep_last: int = 2,
                    info: dict | None = None, protect: int | None = None) -> Path:
    """Write checkpoint ``step`` durably, verify it, then prune.

    1. ``step_XXXXXXX.safetensors`` (weights) and ``step_XXXXXXX.pt`` (state), each atomic and fsynced;
    2. the manifest ``step_XXXXXXX.json`` with the sha256 of both files as read back from disk, plus
       ``info`` (e.g. ``{"loss": 4.1, "good": true}``), atomic;
    3. only then older verified checkpoints beyond the newest ``keep_last`` are deleted, except step
       ``protect`` (the last good one before a loss spike), and leftovers of interrupted writes.
       A checkpoint whose ``info`` says ``"interim": true`` (written by a stop between two ``ckpt_every``
       steps) does not count towards ``keep_last``, and it is deleted once a later one is verified: a
       preempted run keeps the same regular checkpoints (the probe curve's points) as one never stopped.
    Returns the ``.pt`` path. Raises :class:`WriteError` (nothing older is touched) when a write fails."""
    ckpt_dir = Path(ckpt_dir)
    stem = ckpt_dir / f"step_{step:07d}"
    wpath, spath = stem.with_suffix(".safetensors"), stem.with_suffix(".pt")
    _manifest_path(spath).unlink(missing_ok=True)  # a re-written step is unverified until its new manifest
    save_weights(weights, wpath, {"step": step})
    atomic_write(spath, lambda tmp: torch.save(state, tmp))
    manifest = {"step": step, "files": {wpath.name: file_digest(wpath), spath.name: file_digest(spath)},
                **(info or {})}
    write_json(_manifest_path(spath), manifest)
    verified = verified_checkpoints(ckpt_dir)
    regular = [p for p in verified if not read_manifest(p).get("interim")]
    keep = {checkpoint_step(p) for p in regular[-keep_last:]} | {protect}
    for old in verified:
        if checkpoint_step(old) not in keep and checkpoint_step(old) < step:
            for suffix in (".json", ".pt", ".safetensors"):  # manifest first: a half-deleted one is unverified
                old.with_suffix(suffix).unlink(missing_ok=True)
    for orphan in ckpt_dir.iterdir():  # interrupted writes of older steps (no manifest)
        m = re.match(r"step_(\d+)\.(pt|safetensors)(\.tmp)?$", orphan.name)
        if m and int(m.group(1)) < step and not (ckpt_dir / f"step_{m.group(1)}.json").is_file():
            orphan.unlink(missing_ok=True)
    return spath


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoints (state + weights present; verified or not), oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if _STEP_RE.search(p.name) and p.with_suffix(".safetensors").is_file()]
    return sorted(found, key=checkpoint_step)


def verified_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Checkpoints that have a manifest (written only after both files were durable), oldest first.
    Their content is checked against the manifest by :func:`verify_checkpoint` when they are loaded."""
    return [p for p in list_checkpoints(ckpt_dir) if _manifest_path(p).is_file()]


def read_manifest(ckpt: str | Path) -> dict:
    try:
        return json.loads(_manifest_path(Path(ckpt)).read_text())
    except (OSError, ValueError):
        return {}


def verify_checkpoint(ckpt: str | Path) -> str | None:
    """``None`` when both files match the manifest's sha256 and size, else the reason (one line)."""
    ckpt = Path(ckpt)
    manifest = read_manifest(ckpt)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "no readable manifest"
    for name, want in files.items():
        why = digest_mismatch(ckpt.parent / name, want if isinstance(want, dict) else {})
        if why:
            return why
    return None


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(weights, state)`` of a checkpoint; the state is read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable training state: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path} is not a part training state (no step)")
    return load_weights(path.with_suffix(".safetensors")), state


def set_aside(ckpt: str | Path, reason: str) -> Path:
    """Move a checkpoint's files into ``checkpoints/rejected/`` (never deleted: kept for inspection)."""
    ckpt = Path(ckpt)
    dest = ckpt.parent / "rejected"
    dest.mkdir(exist_ok=True)
    for suffix in (".json", ".pt", ".safetensors"):  # manifest first: the rest is then unverified
        f = ckpt.with_suffix(suffix)
        if f.exists():
            os.replace(f, dest / f.name)
    (dest / (ckpt.stem + ".reason.txt")).write_text(reason + "\n")
    fsync_dir(ckpt.parent)
    return dest


def load_latest(ckpt_dir: str | Path, warn=None) -> tuple[dict, dict, Path]:
    """``(weights, state, path)`` of the newest usable checkpoint.

    Verified checkpoints are tried newest first; one that fails its hash check or cannot be read is named
    in a one-line warning and set aside (:func:`set_aside`), and the next older one is tried. Checkpoints
    without a manifest (written by part < 0.2, or an interrupted write) are used only when no verified one
    exists, with a warning. Raises :class:`CheckpointError` when nothing is usable."""
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    ckpt_dir = Path(ckpt_dir)
    verified = verified_checkpoints(ckpt_dir)
    for ckpt in reversed(verified):
        reason = verify_checkpoint(ckpt)
        if reason is None:
            try:
                weights, state = load_checkpoint(ckpt)
                return weights, state, ckpt
            except ValueError as exc:
                reason = str(exc)
        warn(f"checkpoint {ckpt.with_suffix('')} is unusable ({reason}); set aside in {ckpt_dir / 'rejected'}, "
             "trying the next older one")
        set_aside(ckpt, reason)
    legacy = [p for p in list_checkpoints(ckpt_dir) if not _manifest_path(p).is_file()]
    for ckpt in reversed(legacy):
        try:
            weights, state = load_checkpoint(ckpt)
        except ValueError as exc:
            warn(f"checkpoint {ckpt.with_suffix('')} is unusable ({exc}); trying the next older one")
            continue
        warn(f"checkpoint {ckpt.with_suffix('')} has no manifest (unverified); using it")
        return weights, state, ckpt
    raise CheckpointError(f"no usable checkpoint in {ckpt_dir}" + (" (all were corrupt)" if verified else ""))


