"""Durable file writes, the one home for every module that writes a file a reader must never see half
written: checkpoints and run files (:mod:`part.engine.checkpoint` re-exports these names), the data caches
(:mod:`part.data.sleep.cache`), results JSON (:mod:`part.evaluation.metrics`) and ablation tables.

Every file is written to a temporary file in the same folder, fsynced, ``os.replace``-d over the target and
the folder is fsynced, so a crash in the middle of a write leaves the previous file intact. It also holds
the one YAML reader of ``part`` (:func:`safe_yaml`: no anchors or aliases). This module imports nothing of
``part``: any layer may use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import yaml


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


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases: an alias chain ("billion laughs") expands to
    exponentially many nodes from a few lines, and no config of ``part`` needs one."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                                 "allowed in part configs; write the value out")
        if self.check_event(yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent):
            event = self.peek_event()
            if getattr(event, "anchor", None) is not None:
                raise yaml.YAMLError(f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not "
                                     "allowed in part configs; write the value out")
        return super().compose_node(parent, index)


def safe_yaml(text, what: str = "YAML"):
    """``yaml.safe_load`` without anchors or aliases (:class:`_NoAliasLoader`): the one YAML reader of
    ``part`` (configs, run folders, ``--set`` values). ``text``: a string or an open file. Raises
    :class:`ValueError` naming ``what`` on an anchor, an alias or a syntax error."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{what}:{mark.line + 1}:{mark.column + 1}" if mark is not None else what
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "" if "not allowed" in problem else "YAML syntax error: "
        raise ValueError(f"{where}: {kind}{problem}") from None


__all__ = ["WriteError", "fsync_dir", "atomic_write", "write_json", "read_json", "safe_yaml"]
