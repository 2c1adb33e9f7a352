"""Durable file writes, the one home for every module that writes a file a reader must never see half
written: checkpoints and run files (:mod:`part.engine.checkpoint` re-exports these names), the data caches
(:mod:`part.data.sleep.cache`), results JSON (:mod:`part.evaluation.metrics`) and ablation tables.

Every file is written to a temporary file in the same folder, fsynced, ``os.replace``-d over the target and
the folder is fsynced, so a crash in the middle of a write leaves the previous file intact. This module
imports nothing of ``part``: any layer may use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


class WriteError(OSError):
    """A file could not be written (permission, disk full, ...); the message names the path. The previous
    version of the file, if any, is untouched."""


def fsync_dir(path: str | Path) -> None:
    """Make a rename/creation inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write_fn: Callable[[Path], object], shared: bool = False) -> None:
    """Call ``write_fn(tmp_path)``, fsync it, atomically rename it to ``path`` and fsync the folder.

    The temporary file is ``<name>.tmp`` beside ``path``; with ``shared=True`` (several processes may write
    the same file at once, e.g. a data cache built by every DDP rank) it is ``.<name>.<pid>.tmp``, so the
    writers never share one. Any failure (disk full, permission, a writer error) leaves ``path`` as it was,
    removes the temp file, and raises :class:`WriteError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp" if shared else path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_fn(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except WriteError:
        raise
    except Exception as exc:  # OSError, or a serialiser's own error type wrapping one
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        err = WriteError(f"cannot write {path}: {reason}")
        err.errno = getattr(exc, "errno", None)
        raise err from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_json(path: str | Path, data, default: Callable | None = str) -> None:
    """``data`` as indented JSON (one trailing newline) at ``path``, atomically (:func:`atomic_write`).

    ``default`` turns what ``json`` cannot write into something it can (``str`` by default; ``None`` makes
    such a value an error)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, default=default) + "\n",
                                                        encoding="utf-8"))


def read_json(path: str | Path, missing=None):
    """The JSON in ``path``, or ``missing`` (default ``{}``) when the file is absent, unreadable or not
    JSON (a run folder read while it is written, or from an older version)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {} if missing is None else missing


__all__ = ["WriteError", "fsync_dir", "atomic_write", "write_json", "read_json"]
