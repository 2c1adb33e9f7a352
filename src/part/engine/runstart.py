"""The start of a training run: what is checked and written before its first step.

:func:`init_weights` loads ``--init`` weights into a new run's model; on ``--resume``, :func:`check_data` compares
the data the run trained on with the data it would continue on; :func:`prepare_run` (rank 0, once everything is
valid) writes the run folder's marker, ``config.yaml``, ``init.json``, the data-change record and trims
``metrics.jsonl`` to the checkpoint the run continues from.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import torch.nn as nn

from ..config import Config, DataConfig, read_yaml_mapping, save_config
from . import checkpoint as ck
from .datainfo import IDENTITY_KEYS, data_changes
from .folders import write_marker
from .runfolder import RunFolderError


def prepare_run(run: Path, cfg: Config, resuming: bool, provenance, data_note, step: int) -> None:
    """Rank 0, once everything is valid: the run folder's marker, config, provenance, data-change record, and
    ``metrics.jsonl`` without the lines after ``step``."""
    write_marker(run, "run")  # part made this folder (part.engine.folders); kept on resume
    ck.atomic_write(run / "config.yaml", lambda tmp: save_config(cfg, tmp))
    if not resuming:
        ck.write_json(run / "init.json", provenance or {"source": None, "from_scratch": True})
    if data_note is not None:
        record_data_change(run, data_note)
    truncate_jsonl(run / "metrics.jsonl", step)


def check_data(run: Path, cfg: Config, recorded: dict | None, now: dict, step: int, allowed: bool) -> dict | None:
    """``--resume`` at ``step``: compare the data the run trained on (the fingerprint ``recorded`` with its
    checkpoint, and the ``data`` section of its ``config.yaml``) with the data it would continue on (``cfg``,
    fingerprint ``now``). Other data raises :class:`RunFolderError` naming the first difference unless
    ``allowed``; returns the record of a change or of a move (the same data at another root), else None."""
    saved = read_yaml_mapping(run / "config.yaml", "run config").get("data") or {}
    before = {**dataclasses.asdict(DataConfig()), **(saved if isinstance(saved, dict) else {})}
    after = cfg.to_dict()["data"]
    changes = data_changes(before, after, recorded, now)
    if changes and not allowed:
        more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
        raise RunFolderError(f"--resume: the data differs from what {run} trained on up to step {step} "
                             f"({changes[0]}{more}); resume with the run's own data, or pass --allow-data-change "
                             "to continue on this data (the change is recorded in data_changes.jsonl)")
    if not changes and before.get("root") == after.get("root"):
        return None
    return {"step": step, "changes": changes or [f"data.root: {before.get('root')!r} -> {after.get('root')!r} "
                                                 "(the same data, moved)"],
            "before": recorded or {k: before.get(k) for k in IDENTITY_KEYS}, "after": now,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def record_data_change(run: Path, note: dict) -> None:
    """Append ``note`` to ``<run>/data_changes.jsonl`` (atomic: the earlier lines are kept as they are)."""
    path = run / "data_changes.jsonl"
    earlier = path.read_text() if path.is_file() else ""
    ck.atomic_write(path, lambda tmp: Path(tmp).write_text(earlier + json.dumps(note, default=str) + "\n"))
    print(f"note: {run}: from step {note['step']} the run continues on other data ({note['changes'][0]}); "
          f"recorded in {path}", file=sys.stderr)


def init_weights(objective: nn.Module, init) -> int:
    """Load weights into a new run: a run folder (its weights.safetensors) or a safetensors file.
    Keys present in both must match in shape; other keys are listed but allowed (e.g. a new head). A file
    that shares no key with the model is an error. Returns the number of tensors loaded."""
    path = Path(init)
    if path.is_dir():
        path = path / "weights.safetensors"
    state = ck.load_weights(path)
    missing, unexpected = ck.load_state_dict_checked(objective, state, strict=False, what=f"--init {path}")
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise ValueError(f"--init {path}: none of its {len(state)} tensors matches a parameter of this model "
                         f"(e.g. {sorted(state)[:3]}); is it the weights of another kind of model?")
    if missing or unexpected:
        print(f"--init {path}: {len(missing)} missing keys {missing[:6]}, {len(unexpected)} unexpected keys {unexpected[:6]}",
              file=sys.stderr)
    return loaded


def truncate_jsonl(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint we resume from. A torn last line (a kill in
    the middle of a write) is dropped with a warning naming the file; a bad line elsewhere is an error."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = []
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
            rec_step = rec["step"]
        except (ValueError, KeyError, TypeError):
            if i == len(lines) - 1:
                print(f"warning: {path}: dropped a torn last line (an interrupted write)", file=sys.stderr)
                continue
            raise ValueError(f"{path}:{i + 1}: not a metrics record; fix or remove that line") from None
        if rec_step <= step:
            keep.append(ln)
    ck.atomic_write(path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in keep)))


__all__ = ["prepare_run", "check_data", "record_data_change", "init_weights", "truncate_jsonl"]
