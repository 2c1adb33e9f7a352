"""Which folders ``part`` may change, and a replace of a whole folder that survives a crash at any instant.

**Ownership.** A run folder, an export folder and an ablation folder each carry a marker written when
``part`` makes them: ``.part-run.json``, ``.part-export.json``, ``.part-ablation.json`` =
``{"kind", "made_by": "part", "version", "created"}``. ``part`` writes into or deletes from a folder only when
it is missing, empty (a ``.lock`` alone counts as empty), or carries the marker of the right kind;
:func:`check_folder` refuses anything else with one line naming what is there. Folders made before markers
existed are recognised by their complete layout (:func:`legacy_kind`), never by one file. Inside its own
folders ``part`` deletes only the names it writes (:data:`OWNED`); a user's extra files stay.

**Journaled replace** (:class:`Replace`: ``--overwrite`` of a run, an export replacing an earlier one). The
new folder is built beside the target (``.<name>.part-new``) while the target stays as it is; the journal
``.<name>.part-replace.json`` beside them records the step reached:

==============  =====================================================================================
``building``    the new folder is being made; the target is untouched. Recovery *rolls back*: the new
                folder is deleted, the target was never changed.
``swapping``    the new folder is complete (a run: its first verified checkpoint). The target is renamed to
                ``.<name>.part-old``, the new folder to the target. Recovery *rolls forward*: it does
                whichever rename is missing.
``swapped``     the new folder is the target. Recovery finishes: the user's files left in the old folder
                move into the new one, then the old folder (only names ``part`` owns) is deleted.
==============  =====================================================================================

So at every instant the target is the old complete folder or the new complete one (or, between the two
renames, nothing, with the journal saying which rename to do), and a set-aside folder is deleted only by the
completion of its replacement. Every command that touches the folder calls :func:`settle` first (it reports
what it did in a ``note:`` line); ``part info`` reports a pending replace with :func:`pending_replace`. The
replace holds ``.<name>.part-lock`` (``fcntl.flock``) from its start to its end, and recovery takes the same
lock, so a replace in progress is never "recovered" under its writer.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import socket
from pathlib import Path

from ..io import fsync_dir, read_json, write_json

KINDS = ("run", "export", "ablation")
MARKERS = {kind: f".part-{kind}.json" for kind in KINDS}
LOCK_NAME = ".lock"  # a folder's writer lock (part.engine.runfolder.RunLock)

# the names part writes into each kind of folder: the only ones it ever deletes or replaces there
RUN_FILES = ("config.yaml", "metrics.jsonl", "weights.safetensors", "summary.json", "probe.json",
             "results.json", "init.json", "data.json", "data_changes.jsonl")
RUN_DIRS = ("checkpoints", "export", "plots", "tb", "wandb")
EXPORT_FILES = ("config.json", "model.safetensors", "README.md")
EXPORT_EXTRA = ("config.yaml", "relative_encoder.safetensors")  # part export --relative-encoder (engine.reference)
ABLATION_NAMES = ("ablation.yaml", "cells", "results.csv", "table.md", "plots")
OWNED = {
    "run": frozenset((*RUN_FILES, *RUN_DIRS, LOCK_NAME, ".replaced")),
    "export": frozenset((*EXPORT_FILES, *EXPORT_EXTRA)),
    "ablation": frozenset((*ABLATION_NAMES, LOCK_NAME)),
}
_SIDE = re.compile(r"^\..+\.part-(new|old|replace\.json|lock)$")  # a journaled replace of a child folder
HOW = {
    "run": "a run goes into a new or empty folder, or one that part made as a run folder: choose another --out",
    "export": "an export goes into a new or empty folder, or one that part made as an export: choose another --out",
    "ablation": "an ablation goes into a new or empty folder, or one that part made as an ablation folder: "
                "choose another --out",
}
_A = {"run": "a run", "export": "an export", "ablation": "an ablation"}


class FolderError(ValueError):
    """A folder that ``part`` did not make (or made as another kind), or a replace it cannot finish."""


def owns(name: str, kind: str) -> bool:
    """Whether ``part`` writes an entry called ``name`` in a folder of ``kind`` (so may replace or delete it)."""
    return name in OWNED[kind] or name in MARKERS.values() or bool(_SIDE.match(name))


# --------------------------------------------------------------------------------------------------
# markers and ownership
# --------------------------------------------------------------------------------------------------
def write_marker(folder: str | Path, kind: str) -> None:
    """Mark ``folder`` as a ``kind`` folder made by ``part`` (kept as it is when already there)."""
    path = Path(folder) / MARKERS[kind]
    if not path.is_file():
        write_json(path, {"kind": kind, "made_by": "part", "version": _version(),
                          "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("part")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def marker_kind(folder: str | Path) -> str | None:
    """The kind named by ``folder``'s marker, or None when it has none."""
    for kind, name in MARKERS.items():
        if (Path(folder) / name).is_file():
            return kind
    return None


def _part_config(path: Path) -> bool:
    """Whether ``path`` reads like a config that ``part`` saved (its top-level sections), without parsing it."""
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 16).decode("utf-8", "replace")
    except OSError:
        return False
    keys = set(re.findall(r"^([a-z_]+):", text, re.MULTILINE))
    return {"model", "objective", "data", "train"} <= keys


def legacy_kind(folder: str | Path) -> str | None:
    """The kind of a folder made by a ``part`` without markers, recognised by its complete layout:

    * run: a ``config.yaml`` with ``part``'s sections, ``metrics.jsonl`` and ``checkpoints/`` or
      ``weights.safetensors``; or one killed before its first log line: that ``config.yaml``, ``init.json``
      and nothing but names a run holds;
    * export: ``config.json`` and ``model.safetensors``, and nothing but the export's files (those of
      ``--relative-encoder`` included);
    * ablation: ``ablation.yaml`` and ``cells/``."""
    folder = Path(folder)
    try:
        names = set(os.listdir(folder))
    except OSError:
        return None
    if {"config.json", "model.safetensors"} <= names and names <= OWNED["export"]:
        return "export"
    if "ablation.yaml" in names and (folder / "cells").is_dir():
        return "ablation"
    if (folder / "config.yaml").is_file() and _part_config(folder / "config.yaml"):
        if "metrics.jsonl" in names and ((folder / "checkpoints").is_dir() or (folder / "weights.safetensors").is_file()):
            return "run"
        if "init.json" in names and all(owns(n, "run") for n in names):
            return "run"
    return None


def foreign_entries(folder: str | Path, kind: str) -> list[str]:
    """The entries of the ``kind`` folder ``folder`` that ``part`` did not write (a user's own files)."""
    try:
        return sorted(n for n in os.listdir(folder) if not owns(n, kind))
    except OSError:
        return []


def _listing(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def check_folder(folder: str | Path, kind: str, flag: str = "--out") -> str:
    """May ``part`` write a ``kind`` folder at ``folder``? ``"new"`` (missing or empty), ``"own"`` (its
    marker) or ``"legacy"`` (an older ``part``'s complete layout); anything else raises :class:`FolderError`
    with one line naming what is there and what to do instead. Changes nothing."""
    folder = Path(folder)
    if not folder.exists():
        return "new"
    if not folder.is_dir():
        raise FolderError(f"{flag} {folder} exists and is not a folder")
    try:
        names = sorted(n for n in os.listdir(folder) if n != LOCK_NAME)
    except OSError as exc:
        raise FolderError(f"{flag} {folder}: cannot read the folder: {exc.strerror or exc}") from None
    if not names:
        return "new"
    found = marker_kind(folder)
    if found == kind:
        return "own"
    if found is not None:
        raise FolderError(f"{flag} {folder} is a folder part made for {_A[found]}, not for {_A[kind]}; "
                          f"choose another {flag}")
    legacy = legacy_kind(folder)
    if legacy == kind:
        return "legacy"
    if legacy is not None:
        raise FolderError(f"{flag} {folder} holds {_A[legacy]} made by part, not {_A[kind]}; choose another {flag}")
    raise FolderError(f"{flag} {folder} holds files part did not make ({_listing(names)}); {HOW[kind]}")


# --------------------------------------------------------------------------------------------------
# the journaled replace
# --------------------------------------------------------------------------------------------------
def side(target: Path, what: str) -> Path:
    """``.<name>.part-<what>`` beside ``target``: ``new``, ``old``, ``replace.json`` (journal), ``lock``."""
    target = Path(os.path.abspath(target))  # "." or "runs/x/" name their folder too
    return target.parent / f".{target.name}.part-{what}"


def _crash_point(step: str) -> None:
    """Called between the steps of a replace (nothing happens): the fault tests stop the process here."""


class _SideLock:
    """``fcntl.flock`` on ``.<name>.part-lock``; the file is removed when the replace ends (while still
    held: a process that opened the old file sees it is gone after it gets the lock, and tries again)."""

    def __init__(self, target: Path):
        self.target = target
        self.path = side(target, "lock")
        self.fd: int | None = None

    def acquire(self, what: str) -> "_SideLock":
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise FolderError(f"cannot {what} {self.path.parent}: {exc.strerror or exc}") from None
            holder = try_flock(fd)
            if holder is not None:
                raise FolderError(f"{self.target} is being replaced by another part "
                                  f"process ({holder}); wait for it to finish")
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)  # removed by the holder that just finished: take the new one
        raise FolderError(f"cannot lock {self.path}")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def try_flock(fd: int) -> str | None:
    """Lock the open lock file ``fd`` (``fcntl.flock``, exclusive, without waiting) and write its holder (pid,
    host, since) into it; returns None. When another process holds it: closes ``fd`` and returns that holder
    as the file says it (one line). Used by a run folder's writer lock and by a replace's lock."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            holder = f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"
        except (OSError, ValueError):
            holder = "holder unknown"
        os.close(fd)
        return holder
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": _dt.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return None


def _held(path: Path) -> bool:
    """Whether another process holds the flock of the existing file ``path`` (False when it is missing)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class Replace:
    """Replace the folder ``target`` by a new one of ``kind``, journaled (module docstring).

    ``new = r.begin()`` (takes the side lock, journals ``building``, makes the empty folder ``new``); build
    into it; ``r.commit()`` swaps it in and returns ``target``; ``r.abort()`` drops it (the target was never
    changed). The caller checked ownership (:func:`check_folder`) and called :func:`settle` first."""

    def __init__(self, target: str | Path, kind: str):
        self.target, self.kind = Path(os.path.abspath(target)), kind
        self.new, self.old, self.journal = side(self.target, "new"), side(self.target, "old"), side(self.target, "replace.json")
        self.lock = _SideLock(self.target)
        self.started = ""

    def _write(self, state: str) -> None:
        write_json(self.journal, {"state": state, "kind": self.kind, "target": self.target.name,
                                  "new": self.new.name, "old": self.old.name, "started": self.started,
                                  "pid": os.getpid(), "host": socket.gethostname()})

    def begin(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.lock.acquire("replace")
        try:
            for leftover in (self.new, self.old):
                if leftover.exists():
                    raise FolderError(f"{leftover} is in the way of replacing {self.target} (left by an earlier "
                                      "replace without its journal); move it away")
            self.started = _dt.datetime.now().isoformat(timespec="seconds")
            self._write("building")
            _crash_point("building")
            self.new.mkdir()
        except BaseException:
            self.lock.release()
            raise
        return self.new

    def commit(self) -> Path:
        """``new`` is complete: swap it in (journal ``swapping``, two renames, ``swapped``), carry the user's
        files over, delete the old folder, end the journal. Returns ``target``."""
        try:
            fsync_dir(self.new)
            self._write("swapping")
            _crash_point("swapping")
            _finish(self.target, self.kind, self.new, self.old, self.journal)
        finally:  # on a failure the journal stays: the next command on the folder finishes the swap
            self.lock.release()
        return self.target

    def abort(self) -> None:
        """Drop the new folder; the target was never changed."""
        try:
            _remove_tree(self.new)
            self.journal.unlink(missing_ok=True)
            fsync_dir(self.target.parent)
        finally:
            self.lock.release()


def _finish(target: Path, kind: str, new: Path, old: Path, journal: Path) -> None:
    """Roll a ``swapping``/``swapped`` replace forward from whatever step it reached."""
    state = read_json(journal).get("state")
    if state == "swapping":
        if new.exists():
            if target.exists():
                if old.exists():
                    raise FolderError(f"{target}, {new.name} and {old.name} all exist beside the journal {journal}; "
                                      "move the one you do not want away and remove the journal")
                os.rename(target, old)
                fsync_dir(target.parent)
                _crash_point("old aside")
            os.rename(new, target)
            fsync_dir(target.parent)
            _crash_point("new in place")
        elif not target.exists():
            raise FolderError(f"the journal {journal} says {target} was being replaced, but neither it nor "
                              f"{new.name} exists; nothing to recover (remove the journal)")
        payload = read_json(journal)
        payload["state"] = "swapped"
        write_json(journal, payload)
        _crash_point("swapped")
    if old.exists():
        kept = _carry_user_files(old, target, kind)
        if kept:
            import sys

            print(f"warning: {old} keeps files that are also in the new {target} ({_listing(kept)}); "
                  "nothing of them was deleted", file=sys.stderr, flush=True)
        else:
            _remove_tree(old)
    journal.unlink(missing_ok=True)
    fsync_dir(target.parent)


def _carry_user_files(old: Path, new: Path, kind: str) -> list[str]:
    """Move the entries of ``old`` that ``part`` does not own into ``new``; the names that clash stay."""
    kept = []
    for name in sorted(os.listdir(old)):
        if owns(name, kind):
            continue
        if (new / name).exists() or (new / name).is_symlink():
            kept.append(name)
        else:
            os.rename(old / name, new / name)
    return kept


def settle(target: str | Path, kind: str) -> str | None:
    """Finish (``swapping``/``swapped``) or undo (``building``) an interrupted replace of ``target``; a replace
    still running in another process is an error naming it. Returns the ``note:`` line it printed, or None
    when there was nothing to do."""
    import sys

    target = Path(os.path.abspath(target))
    journal = side(target, "replace.json")
    if not journal.is_file():
        return None
    lock = _SideLock(target).acquire("recover")
    try:
        if not journal.is_file():  # finished by its own process meanwhile
            return None
        j = read_json(journal)
        state = j.get("state")
        new, old = side(target, "new"), side(target, "old")
        if state == "building":
            _remove_tree(new)
            journal.unlink()
            fsync_dir(target.parent)
            note = (f"note: a replace of {target} (started {j.get('started')}) was interrupted before the new "
                    f"{j.get('kind', kind)} was complete; it is undone and {target} is as it was before")
        elif state in ("swapping", "swapped"):
            _finish(target, j.get("kind", kind), new, old, journal)
            note = (f"note: a replace of {target} (started {j.get('started')}) was interrupted after the new "
                    f"{j.get('kind', kind)} was complete; it is finished and {target} holds the new one")
        else:
            raise FolderError(f"{journal}: not a journal part can read (state {state!r}); {target} was being "
                              "replaced: check it, then remove the journal")
    finally:
        lock.release()
    print(note, file=sys.stderr, flush=True)
    return note


def pending_replace(target: str | Path) -> str | None:
    """One line about a replace of ``target`` whose journal is still there (running or interrupted), for
    ``part info``; None when there is none. Reads only."""
    target = Path(target)
    journal = side(target, "replace.json")
    if not journal.is_file():
        return None
    j = read_json(journal)
    state = j.get("state")
    what = j.get("kind", "folder")
    if _held(side(target, "lock")):
        return f"being replaced by a new {what} (pid {j.get('pid')}, started {j.get('started')}; state {state})"
    if state == "building":
        return (f"an interrupted replace (started {j.get('started')}) left an incomplete new {what} in "
                f"{side(target, 'new').name}; the next part command on it removes that (this one is kept)")
    return (f"an interrupted replace (started {j.get('started')}) reached '{state}': the new {what} is complete; "
            "the next part command on it finishes the replace")


def replace_folder(target: str | Path, kind: str, build, flag: str = "--out") -> Path:
    """Make the ``kind`` folder ``target`` with ``build(folder)``, replacing an earlier one journaled: settle an
    interrupted replace, check ownership, build beside it, mark, swap in. Any failure before the swap leaves
    ``target`` as it was."""
    target = Path(target)
    settle(target, kind)
    check_folder(target, kind, flag)
    r = Replace(target, kind)
    new = r.begin()
    try:
        build(new)
        write_marker(new, kind)
        _crash_point("built")
    except BaseException:
        r.abort()
        raise
    return r.commit()


__all__ = ["try_flock", "KINDS", "MARKERS", "OWNED", "RUN_FILES", "RUN_DIRS", "EXPORT_FILES", "EXPORT_EXTRA", "FolderError", "owns",
           "write_marker", "marker_kind", "foreign_entries", "legacy_kind", "check_folder", "Replace", "settle", "pending_replace",
           "replace_folder", "side"]
