"""One writer per run folder, and the rules for starting, resuming, replacing and finishing a run.

Everything that writes into a run folder holds its lock (:class:`RunLock`): ``fcntl.flock`` on
``<run>/.lock``, which also records the holder's pid, host and start time. The kernel frees a flock when its
process dies (``kill -9`` included), so a crashed run never leaves a stale lock behind. A second writer fails
at once with a one-line :class:`RunFolderError` naming the holder.

:func:`plan_run` decides what a command will do with a folder *without changing anything*, so that every
input can be validated before :func:`replace_run` deletes an old run (validate, then destroy).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..io import read_json

LOCK_NAME = ".lock"
# what a run folder may hold; --overwrite removes exactly these (and nothing else a user put there)
RUN_FILES = ("config.yaml", "metrics.jsonl", "weights.safetensors", "summary.json", "probe.json",
             "results.json", "init.json", "data.json")
RUN_DIRS = ("checkpoints", "export", "plots", "tb", "wandb")

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
        import fcntl

        self.created = not self.run.exists()
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {self.run}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunFolderError(f"{self.run} is in use by another part process ({holder}); wait for it to "
                                 "finish or choose another --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": _dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
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


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"
    except (OSError, ValueError):
        return "holder unknown"


@dataclass
class RunPlan:
    """What a command will do with its run folder: ``fresh`` (new or empty folder), ``replace``
    (--overwrite of an existing run), ``resume`` (continue from a checkpoint) or ``finished`` (a finished run
    under --resume: nothing to do, nothing written)."""

    mode: str
    run: Path


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
    if run.exists() and not run.is_dir():
        raise RunFolderError(f"--out {run} exists and is not a folder")
    exists = has_run(run)
    if resume is True and not exists:
        raise RunFolderError(f"--resume: no run to resume in {run} (no config.yaml)")
    if resume and exists:
        return RunPlan("finished" if is_finished(run) else "resume", run)
    if exists and not overwrite:
        state = "a finished run" if is_finished(run) else "a started run"
        raise RunFolderError(f"{run} already holds {state}; pass --resume to continue it, --resume auto, "
                             "or --overwrite to replace it")
    return RunPlan("replace" if exists else "fresh", run)


REPLACED = ".replaced"  # the replaced run waits here until its successor has a verified checkpoint


def replace_run(run: str | Path) -> None:
    """Set the run in ``run`` aside for ``--overwrite`` (the caller holds the lock and has validated
    everything it can). Its files move to ``<run>/.replaced/``; :func:`drop_replaced` deletes them once the
    new run has written a verified checkpoint, :func:`restore_replaced` puts them back if it fails first
    (an error only found while training, e.g. a corrupt image, loses nothing)."""
    run = Path(run)
    trash = run / REPLACED
    shutil.rmtree(trash, ignore_errors=True)
    trash.mkdir()
    for name in (*RUN_DIRS, *RUN_FILES):
        if (run / name).exists():
            os.replace(run / name, trash / name)


def restore_replaced(run: str | Path) -> bool:
    """Undo :func:`replace_run`: remove what the failed new run wrote, move the old run back."""
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
    """The new run has a verified checkpoint: delete the replaced run for good."""
    shutil.rmtree(Path(run) / REPLACED, ignore_errors=True)


__all__ = ["RunFolderError", "RunLock", "RunPlan", "plan_run", "replace_run", "restore_replaced", "drop_replaced",
           "has_run", "is_finished", "check_resume_init", "check_recorded_init",
           "RUN_FILES", "RUN_DIRS", "LOCK_NAME"]
