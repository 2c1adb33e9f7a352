"""Preemption-safe stopping: SIGTERM (what SLURM and Kubernetes send before killing a job) and SIGINT
(Ctrl-C) ask the training loop to finish its current step, write a verified checkpoint and stop.

A second signal aborts at once (``KeyboardInterrupt``), without a checkpoint. Under torchrun each rank gets
the signal; the loop agrees on the stop step over all ranks (:func:`part.engine.distributed.broadcast_flag`),
so every rank stops after the same step.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells report them


class TrainingStopped(RuntimeError):
    """Training stopped on a signal after writing a checkpoint; ``step``, ``signum`` and ``exit_code``.
    ``stopped``: what happened (step, signal, checkpoint); ``resume``: the command that continues it. The
    message is both (``<stopped>; continue with: <resume>``); a caller that ran the training for another
    command (``part ablate``) raises it again with its own :meth:`continued_by`."""

    def __init__(self, stopped: str, step: int, signum: int, resume: str | None = None):
        super().__init__(stopped + (f"; continue with: {resume}" if resume else ""))
        self.stopped, self.resume = stopped, resume
        self.step, self.signum = step, signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))

    def continued_by(self, resume: str) -> "TrainingStopped":
        """The same stop, continued by the command ``resume``."""
        return TrainingStopped(self.stopped, self.step, self.signum, resume)


class StopRequests:
    """Context manager: while active, the first SIGTERM/SIGINT sets :attr:`signum`; a second one raises
    ``KeyboardInterrupt`` at once. Handlers are installed only in the main thread (Python allows no
    other) and the previous ones are restored on exit.

    :meth:`defer_worker_failures` (after a DataLoader with workers started): PyTorch's SIGCHLD handler raises
    a worker's death in the main thread wherever it happens to be (in a forward pass, an optimiser step, a
    checkpoint write). A SIGTERM to the whole process group ends the workers with the main process, so that
    error would pre-empt the orderly stop; deferred, it is kept in :attr:`worker_error` for the next batch
    fetch to answer (the trainer: a stop request when one came, else the error). While the main thread waits
    for a batch (:attr:`fetching`) the error is raised at once, as PyTorch does: a worker that died in the
    middle of sending a batch would otherwise leave that read blocked for ever."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.worker_error: BaseException | None = None
        self.fetching = False  # the main thread waits for a batch: a worker's death is raised there at once
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborted without a checkpoint")
        self.signum = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def defer_worker_failures(self) -> None:
        """Wrap the current SIGCHLD handler (PyTorch's, once a DataLoader started workers) so that the error
        it raises for a dead worker is stored in :attr:`worker_error` instead of interrupting the main thread.
        Restored on exit. A no-op outside the main thread, or when no Python handler is set."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGCHLD"):
            return
        try:  # PyTorch's handler, installed now (it is installed once per process), so no worker starts unwrapped
            from torch.utils.data._utils import signal_handling

            signal_handling._set_SIGCHLD_handler()
        except (ImportError, AttributeError):  # another PyTorch: wrap whatever is installed
            pass
        current = signal.getsignal(signal.SIGCHLD)
        if not callable(current) or getattr(current, "_part_deferred", False):
            return

        def deferred(signum, frame):
            try:
                current(signum, frame)
            except RuntimeError as exc:  # "DataLoader worker (pid X) is killed by signal: ..."
                if self.fetching:  # blocked on a batch (maybe half sent by the dead worker): interrupt it
                    raise
                if self.worker_error is None:
                    self.worker_error = exc

        deferred._part_deferred = True
        self._previous.setdefault(signal.SIGCHLD, current)
        signal.signal(signal.SIGCHLD, deferred)

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            if s == getattr(signal, "SIGCHLD", None) and self.signum is not None:
                continue  # stopping: workers the signal ended may still be reaped; their end is no error now
            signal.signal(s, h)
        self._previous.clear()


__all__ = ["StopRequests", "TrainingStopped", "EXIT_CODES", "STOP_SIGNALS"]
