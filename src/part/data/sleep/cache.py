"""The window cache of raw sleep records: each record is read, filtered and windowed once.

Every record's windows are stored as an uncompressed ``.npy`` (memory-mapped when read back, so a corpus
larger than RAM works) plus a small ``.npz`` of labels, subject, record and onsets, under
``<cache_dir>/<kind>-<key>/`` where ``key`` hashes the data folder and the reader's options. A cached record
is re-read only when its source files change (size or modification time); files are written atomically, so
an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...io import atomic_write
from .recording import SleepRecording
from .source import RecordFormat, SleepSource

__all__ = ["CACHE_VERSION", "sleep_cache_dir", "cached_source"]

CACHE_VERSION = 1
"""Bumped whenever the cached arrays' meaning changes (part of every cache key)."""


def sleep_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Root of the window cache: ``cache_dir``, else ``$PART_CACHE_DIR/sleep``, else ``~/.cache/part/sleep``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("PART_CACHE_DIR")
    return Path(env).expanduser() / "sleep" if env else Path.home() / ".cache" / "part" / "sleep"


def cached_source(
    kind: str,
    root: Path,
    paths: Sequence[Path],
    fmt: RecordFormat,
    reader_kw: dict,
    cache_dir: str | os.PathLike | None = None,
) -> SleepSource:
    """The windows of the records ``paths`` (under ``root``) of the format ``fmt``, from the cache or read with
    ``fmt.read(path, **reader_kw)`` and cached; ``X`` of every record is the path of its ``.npy``. A cached record
    is read again when one of its files (``fmt.files(path)``) changed.

    ``reader_kw`` (with ``kind`` and the absolute ``root``) is the cache key: other options, another folder.
    """
    key_src = json.dumps({"version": CACHE_VERSION, "kind": kind, "root": str(root.resolve()),
                          **{k: list(v) if isinstance(v, tuple) else v for k, v in reader_kw.items()}},
                         sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    folder = sleep_cache_dir(cache_dir) / f"{kind}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key.json").write_text(key_src + "\n")
    metas, parts = [], []
    for p in paths:
        rel = p.relative_to(root).as_posix()  # rglob paths start with root
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", p.stem)[:60]
        base = folder / f"{stem}-{hashlib.sha256(rel.encode()).hexdigest()[:8]}"
        x_path, meta_path = base.with_suffix(".X.npy"), base.with_suffix(".meta.npz")
        sig = _signature(fmt.files(p))
        rec = _read_meta(meta_path, sig) if x_path.exists() else None
        if rec is None:
            full = fmt.read(p, **reader_kw)
            atomic_write(x_path, _to_file(lambda f: np.save(f, full.X, allow_pickle=False)), shared=True)
            atomic_write(meta_path, _to_file(lambda f: np.savez(
                f, y=full.y, subject=full.subject, record=full.record, onset=full.onset,
                channels=np.asarray(full.channels, dtype=str), fs=np.float64(full.fs),
                window_len=np.int64(full.X.shape[2]), signature=np.asarray(sig))), shared=True)
            rec = _read_meta(meta_path, sig)
        metas.append(rec)
        parts.append(x_path)
    return SleepSource.from_recordings(metas, parts)


def _read_meta(path: Path, signature: str) -> SleepRecording | None:
    """The cached labels of a record as a :class:`SleepRecording` with a zero-size ``X`` placeholder of the
    right ``(W, C, T)`` shape (strided, no memory), or ``None`` if missing or stale."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["signature"]) != signature:
            return None
        y, subject, record, onset = z["y"], z["subject"], z["record"], z["onset"]
        channels, fs, t = tuple(str(c) for c in z["channels"]), float(z["fs"]), int(z["window_len"])
    shape = (y.shape[0], len(channels), t)
    placeholder = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0, 0, 0), writeable=False)
    return SleepRecording(placeholder, y, subject, record, onset, channels, fs)


def _signature(files: Sequence[Path]) -> str:
    return json.dumps([[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])


def _to_file(write: Callable) -> Callable[[Path], None]:
    """``write(file object)`` as a writer of a path (NumPy would append ``.npy``/``.npz`` to a bare path)."""
    def write_path(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)
    return write_path
