"""One writer per run folder, and the rules for starting, resuming, replacing and finishing a run.

Everything that writes into a run folder holds its lock (:class:`RunLock`): ``fcntl.flock`` on
``<run>/.lock``, which also records the holder's pid, host and start time. The kernel frees a flock when its
process dies (``kill -9`` included), so a crashed run never leaves a stale lock behind. A second writer fails
at once with a one-line :class:`RunFolderError` naming the holder.

:func:`plan_run` decides what a command will do with a folder *without changing anything*, so that every
input can be validated before anything changes (validate, then destroy). Which folders are runs, and the
journaled replace behind ``--overwrite``, live in :mod:`part.engine.folders`: :func:`plan_run` refuses a folder
that ``part`` did not make, :class:`RunReplacement` trains the new run beside the old one and swaps it in at its
first verified checkpoint, and :func:`settle_run` finishes or undoes a replace that a crash interrupted.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..io import read_json
from .folders import (LOCK_NAME, try_flock, RUN_DIRS, RUN_FILES, FolderError, Replace, check_folder, foreign_entries, pending_replace,
                      settle, side)

_HELD: dict[str, "RunLock"] = {}  # locks held by this process, by resolved path (re-entrant)


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (in use, finished without --resume, nothing to resume ...)."""


class RunLock:
    """Exclusive, re-entrant (within one process) lock of a run folder; creates the folder if needed.

    ``with RunLock(run): ...``. On a failed acquire the folder is left as it was (a folder this call
    created is removed again)."""

    def __init__(self, run: str | Path):
        self.run = Path(run)
        self.key = str(self.run.resolve())
        self.fd: int | None = None
        self.depth = 0
        self.created = False

    def acquire(self) -> "RunLock":
        held = _HELD.get(self.key)
        if held is not None:
            held.depth += 1
            return held
        self.created = not self.run.exists()
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {self.run}: {exc.strerror or exc}") from None
        holder = try_flock(fd)
        if holder is not None:
            raise RunFolderError(f"{self.run} is in use by another part process ({holder}); wait for it to "
                                 "finish or choose another --out")
        self.fd, self.depth = fd, 1
        _HELD[self.key] = self
        return self

    def release(self, failed: bool = False) -> None:
        """Drop one level; the last one unlocks. ``failed``: a folder this lock created and that holds
        nothing but the lock file is removed (a refused command leaves no half-made run folder)."""
        self.depth -= 1
        if self.depth > 0 or self.fd is None:
            return
        import fcntl

        _HELD.pop(self.key, None)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
        if failed and self.created:
            try:
                if [p.name for p in self.run.iterdir()] == [LOCK_NAME]:
                    shutil.rmtree(self.run)
            except OSError:
                pass

    def moved_to(self, run: str | Path) -> None:
        """The locked folder was renamed to ``run`` (a replace swapped it in): keep holding it there."""
        _HELD.pop(self.key, None)
        self.run, self.created = Path(run), False
        self.key = str(self.run.resolve())
        _HELD[self.key] = self

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type, exc, tb) -> None:
        _HELD.get(self.key, self).release(failed=exc_type is not None)


@contextmanager
def writes_into(run: str | Path | None, path: str | Path):
    """Hold ``run``'s lock for the ``with`` block when ``path`` lies inside the run folder ``run``.

    For commands that read a run and write next to it (``part evaluate``, ``part probe``, ``part export``,
    ``part visualize --out <run>/...``): inside the folder they are writers like the trainer, so they fail at
    once, with the holder named, while the run trains; a ``path`` elsewhere (or ``run`` None, or not a
    folder: a weights file) takes no lock. :func:`check_writer` before the work fails before it; this around the
    write holds the lock while it lasts.
    """
    inside = run is not None and Path(run).is_dir() and Path(path).resolve().is_relative_to(Path(run).resolve())
    if not inside:
        yield
        return
    with RunLock(run):
        yield


def check_writer(run: str | Path | None, path: str | Path) -> None:
    """Take and release ``run``'s lock if writing ``path`` would need it (:func:`writes_into`): raises now,
    naming the holder, while the run is in use, so a command fails before its work rather than after it."""
    with writes_into(run, path):
        pass


@dataclass
class RunPlan:
    """What a command will do with its run folder: ``fresh`` (new or empty folder), ``replace``
    (--overwrite of an existing run), ``resume`` (continue from a checkpoint) or ``finished`` (a finished run
    under --resume: nothing to do, nothing written)."""

    mode: str
    run: Path
    work: Path | None = None  # replace: where the new run is built until it is swapped in


def has_run(run: Path) -> bool:
    return (run / "config.yaml").is_file()


def is_finished(run: Path) -> bool:
    return bool(read_json(run / "summary.json").get("finished"))


def check_resume_init(resume, init) -> None:
    """``--resume`` continues a run from its own checkpoint; ``--init`` is only for a new run."""
    if resume is True and init is not None:
        raise RunFolderError("--resume continues a run from its own checkpoint; --init is only for a new run "
                             "(drop one of them)")


def check_recorded_init(run: Path, init) -> None:
    """``--resume auto`` of an existing run: ``init`` (when given) must be the source its ``init.json``
    records, so a requeued job cannot silently continue a run started from other weights."""
    recorded = read_json(Path(run) / "init.json").get("source")
    if recorded is not None and init is not None and Path(str(recorded)).resolve() != Path(str(init)).resolve():
        raise RunFolderError(f"--resume auto: {run} was started with --init {recorded}, not {init}; drop --init "
                             "or choose another --out")


def plan_run(run: str | Path, resume: bool | str = False, overwrite: bool = False) -> RunPlan:
    """Decide, without writing, what to do with ``run``.

    ``resume``: ``False``, ``True`` (continue; error when there is nothing to continue) or ``"auto"``
    (continue when the folder holds a run, else start fresh: a requeued job needs no special casing).
    Raises :class:`RunFolderError` when the folder holds a run and neither resume nor overwrite is given."""
    run = Path(run)
    if resume not in (False, True, "auto"):
        raise RunFolderError(f"resume must be true, false or 'auto', got {resume!r}")
    if resume and overwrite:
        raise RunFolderError("choose one of --resume and --overwrite, not both")
    check_folder(run, "run")  # a folder part did not make is refused, whatever the flags
    exists = has_run(run)
    if resume is True and not exists:
        raise RunFolderError(f"--resume: no run to resume in {run} (no config.yaml)")
    if resume and exists:
        if not is_finished(run):
            _check_export(run, replacing=False)
        return RunPlan("finished" if is_finished(run) else "resume", run)
    if exists and not overwrite:
        state = "a finished run" if is_finished(run) else "a started run"
        raise RunFolderError(f"{run} already holds {state}; pass --resume to continue it, --resume auto, "
                             "or --overwrite to replace it")
    if exists:
        _check_export(run, replacing=True)
    return RunPlan("replace" if exists else "fresh", run)


def _check_export(run: Path, replacing: bool) -> None:
    """Before any work: the run's ``export/`` is rewritten when the run finishes (an export ``part`` made keeps
    the user's files in it) and deleted with the run by ``--overwrite`` (then it must hold none)."""
    export = run / "export"
    if not export.is_dir():
        return
    try:
        check_folder(export, "export")
        mine = foreign_entries(export, "export") if replacing else []
    except FolderError:
        mine = foreign_entries(export, "export")
    if mine:
        what = "--overwrite would delete it with the run" if replacing else "the run rewrites it when it finishes"
        raise RunFolderError(f"{export} holds files part did not make ({', '.join(mine[:4])}); {what}: move them "
                             "out of it first")


REPLACED = ".replaced"  # where an --overwrite of part <= 0.1 (before the journal) set the old run aside


class RunReplacement:
    """``--overwrite`` of the run in ``run`` (the caller holds its lock ``old_lock`` and validated everything
    it can): a journaled :class:`~part.engine.folders.Replace`. The new run trains in ``work``
    (``.<name>.part-new`` beside the run, locked) while the old run stays where it is; :meth:`swap`, called at
    the new run's first verified checkpoint, puts the new run in its place and deletes the old one (the
    user's own files in it move over). :meth:`abort` (a failure before that) drops the new run: the old one was
    never touched."""

    def __init__(self, run: str | Path, old_lock: RunLock):
        self.run, self.old_lock, self.done, self.committing = Path(run), old_lock, False, False
        self.replace = Replace(self.run, "run")
        self.work = self.replace.begin()
        try:
            self.lock = RunLock(self.work).acquire()
        except BaseException:
            self.replace.abort()
            raise

    def swap(self) -> Path:
        self.committing = True  # from here on the journal, not abort(), decides: the swap is rolled forward
        self.replace.commit()
        self.done = True
        self.old_lock.release()
        self.lock.moved_to(self.run)
        return self.run

    def fail(self) -> bool:
        """The command failed before the swap was done: drop the new run (True), or, when the swap had
        begun, leave its journal for the next command to finish (False)."""
        if self.committing:
            self.lock.release()
            return False
        self.abort()
        return True

    def abort(self) -> None:
        self.lock.release()
        self.replace.abort()


def settle_run(run: str | Path) -> None:
    """Finish or undo an interrupted replace of the run in ``run`` or of its ``export/`` (each reported in a
    ``note:`` line), and an interrupted ``--overwrite`` of an earlier version (``.replaced/``). Under
    ``torchrun`` rank 0 does it while the others wait for it."""
    run = Path(run)
    if int(os.environ.get("RANK", "0")) != 0:
        deadline = time.time() + 120
        while side(run, "replace.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        return
    settle(run, "run")
    if (run / REPLACED).is_dir():
        try:
            check_folder(run, "run")  # only in a run: a folder of the user's is refused, never rearranged
        except FolderError:
            return
        _settle_replaced(run)
    if run.is_dir():
        settle(run / "export", "export")


def _settle_replaced(run: Path) -> None:
    from .checkpoint import verified_checkpoints

    with RunLock(run):
        if not (run / REPLACED).is_dir():
            return
        if verified_checkpoints(run / "checkpoints"):
            drop_replaced(run)
            note = (f"an interrupted --overwrite of {run} (an earlier part version) is finished: the new run has a "
                    f"verified checkpoint, the run it replaced ({REPLACED}/) is deleted")
        else:
            restore_replaced(run)
            note = (f"an interrupted --overwrite of {run} (an earlier part version) is undone: the new run had no "
                    f"checkpoint, the run it was replacing is back from {REPLACED}/")
    print(f"note: {note}", file=sys.stderr, flush=True)


def pending_run_replace(run: str | Path) -> list[str]:
    """Lines about an unfinished replace of ``run`` or of its export, for ``part info`` (reads only)."""
    run = Path(run)
    lines = []
    own = pending_replace(run)
    if own:
        lines.append(f"{run}: {own}")
    if (run / REPLACED).is_dir():
        lines.append(f"{run}: an --overwrite by an earlier part version was interrupted; the run it was replacing "
                     f"waits in {REPLACED}/; the next part pretrain --out {run} --resume or --overwrite puts it back "
                     "(or deletes it when the new run has a verified checkpoint)")
    export = pending_replace(run / "export")
    if export:
        lines.append(f"{run / 'export'}: {export}")
    return lines


def restore_replaced(run: str | Path) -> bool:
    """Undo an earlier version's ``--overwrite``: remove what the failed new run wrote, move the old run back."""
    run = Path(run)
    trash = run / REPLACED
    if not trash.is_dir():
        return False
    for name in (*RUN_DIRS, *RUN_FILES):
        if (trash / name).exists():
            if (run / name).is_dir():
                shutil.rmtree(run / name)
            elif (run / name).exists():
                (run / name).unlink()
            os.replace(trash / name, run / name)
        elif (run / name).is_dir():
            shutil.rmtree(run / name)
        elif (run / name).exists():
            (run / name).unlink()
    shutil.rmtree(trash, ignore_errors=True)
    return True


def drop_replaced(run: str | Path) -> None:
    """An earlier version's ``--overwrite`` whose new run has a verified checkpoint: delete the replaced run."""
    shutil.rmtree(Path(run) / REPLACED, ignore_errors=True)


__all__ = ["RunFolderError", "FolderError", "RunLock", "RunPlan", "RunReplacement", "plan_run", "settle_run",
           "pending_run_replace", "restore_replaced", "drop_replaced", "has_run", "is_finished", "check_resume_init",
           "check_recorded_init", "RUN_FILES", "RUN_DIRS", "LOCK_NAME"]
