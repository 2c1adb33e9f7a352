"""Stage summaries: the small, committed record of every finished stage of an ablation (issue 24).

A long protocol (hours on a CPU) is spread over sessions and machines. Its run folders (weights, checkpoints,
TensorBoard) stay local; each finished stage also writes ``<summaries>/<cell>/<stage>.json``, a few KB that
are committed with the code:

``{"cell", "stage", "spec", "spec_hash", "seeds", "metrics", "seconds", "curve", "commit", "machine",
"finished"}``

* ``spec``/``spec_hash``: what the stage computes (:func:`part.ablation.specs.cell_spec`; SHA-256 of its JSON
  normal form, first 16 hex digits). A stage whose summary holds today's spec is not run again, on any
  machine: rerunning the protocol command continues where the committed summaries stop.
* ``seeds``: ``pretrain`` (the cell's seed) and ``finetune`` (the fine-tune's, for fine-tune stages).
* ``metrics``, ``seconds`` (wall time of the stage), ``curve`` (learning curve: fine-tunes' validation accuracy
  per epoch, pretraining loss, probe accuracy per pretraining epoch).
* ``commit`` (``git describe``-style, ``-dirty`` when the tree had changes), ``machine`` (CPU, cores, torch,
  load average over the stage's last minute when it finished), ``finished`` (UTC).

The results page (:mod:`part.ablation.page`) is written from these files alone.

**Pretrained weights.** A finished pretraining also leaves its final weights beside its summary,
``<summaries>/<cell>/pretrain.safetensors`` (the objective's ``weights.safetensors``: the encoder and the pretext
head, a few MB at the protocol's size), and its summary records their ``{"file", "sha256", "bytes"}`` under
``weights``. On a machine without the run folder, a cell whose remaining stages read only those weights (pretext
errors, probe, fine-tunes) continues from them after checking the SHA-256 (:meth:`Summaries.verified_weights`)
instead of pretraining for an hour again; the probe-vs-epoch curve reads the run's checkpoints, so a missing
curve still pretrains again. Weights over :data:`KEEP_WEIGHTS_MAX_BYTES` are not kept (they would be committed
with the code): the full-MLP encoder's head alone is 23 M parameters (93 MB at the protocol's size), so a later
call on another machine pretrains that cell again when it still needs them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..engine.checkpoint import digest_mismatch, file_digest
from ..io import atomic_write, read_json
from ..evaluation.metrics import save_results_json

KEEP_WEIGHTS_MAX_BYTES = 16 * 2**20
"""The largest pretrained weights file kept beside a summary (the protocol's ViT with its PART head: 2.7 MB)."""

__all__ = ["spec_hash", "environment", "Summaries"]


def spec_hash(spec: Any) -> str:
    """First 16 hex digits of the SHA-256 of ``spec``'s JSON normal form (sorted keys)."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _commit() -> str | None:
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=src, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                               cwd=src.parent, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """The code and machine a stage ran on: ``commit``, ``machine`` (cpu, cores, torch, python, load average
    1/5/15 min at the end of the stage). No host name or path: summaries are committed."""
    import torch

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"commit": _commit(),
            "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                        "python": platform.python_version(), "load_avg": load}}


class Summaries:
    """The stage summaries of one ablation under ``folder`` (None: not kept; every method is then a no-op)."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None

    def path(self, cell: str, stage: str) -> Path | None:
        return None if self.folder is None else self.folder / cell / f"{stage}.json"

    def read(self, cell: str, stage: str) -> dict | None:
        """The summary of ``(cell, stage)``, or None (missing, unreadable)."""
        p = self.path(cell, stage)
        if p is None or not p.is_file():
            return None
        try:
            data = read_json(p)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "metrics" in data else None

    def weights_path(self, cell: str) -> Path | None:
        """Where the final weights of ``cell``'s pretraining are kept (module docstring), or None."""
        return None if self.folder is None else self.folder / cell / "pretrain.safetensors"

    def keep_weights(self, cell: str, weights: Path) -> dict | None:
        """Copy a finished pretraining's ``weights`` beside its summary (temp file, fsync, rename); returns the
        ``weights`` record of its summary (``file``, ``sha256``, ``bytes`` of the copy as read back); for a file
        over :data:`KEEP_WEIGHTS_MAX_BYTES`, ``{"kept": False, "bytes"}`` (nothing copied: the summary says why a
        later call pretrains again); None without a summaries folder."""
        dest = self.weights_path(cell)
        if dest is None:
            return None
        size = weights.stat().st_size
        if size > KEEP_WEIGHTS_MAX_BYTES:
            return {"kept": False, "bytes": size}
        atomic_write(dest, lambda tmp: shutil.copyfile(weights, tmp))
        return {"file": dest.name, **file_digest(dest)}

    def verified_weights(self, cell: str) -> tuple[Path | None, str]:
        """``(path, "")`` of ``cell``'s kept pretrained weights when the file matches the SHA-256 and size its
        pretraining summary records; else ``(None, why)``."""
        summary = self.read(cell, "pretrain")
        if summary is None:
            return None, "no pretraining summary"
        want = summary.get("weights")
        if not isinstance(want, dict):
            return None, "its pretraining summary records no weights"
        if want.get("kept") is False:
            return None, (f"its weights ({want.get('bytes')} bytes) are over the {KEEP_WEIGHTS_MAX_BYTES >> 20} MiB "
                          "a protocol keeps")
        path = self.weights_path(cell)
        why = "no summaries folder" if path is None else digest_mismatch(path, want)
        return (None, why) if why else (path, "")

    def write(self, cell: str, stage: str, spec: Any, metrics: dict, seconds: float, seeds: dict,
              curve: list | None = None, meta: dict | None = None, weights: dict | None = None) -> Path | None:
        """Write the summary of a finished stage (atomically); returns its path. ``meta``: what the page
        groups by (``row``: the cell's name without its seed, ``label``, ``method``, ``head``, ``num_pairs``,
        ``fraction``); ``weights``: a pretraining's kept weights (:meth:`keep_weights`)."""
        p = self.path(cell, stage)
        if p is None:
            return None
        p.parent.mkdir(parents=True, exist_ok=True)
        record = {"cell": cell, "stage": stage, **(meta or {}), "spec_hash": spec_hash(spec), "seeds": seeds, "metrics": metrics,
                  "seconds": round(float(seconds), 2), "curve": curve or [], **environment(),
                  "finished": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  **({"weights": weights} if weights else {}), "spec": spec}
        save_results_json(p, record)
        return p

    def all(self) -> list[dict]:
        """Every summary under the folder (sorted by cell, then stage)."""
        if self.folder is None or not self.folder.is_dir():
            return []
        out = []
        for p in sorted(self.folder.glob("*/*.json")):
            s = self.read(p.parent.name, p.stem)
            if s is not None:
                out.append(s)
        return out
