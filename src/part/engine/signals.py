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
    """Training stopped on a signal after writing a checkpoint; ``step``, ``signum`` and ``exit_code``."""

    def __init__(self, message: str, step: int, signum: int):
        super().__init__(message)
        self.step, self.signum = step, signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))


class StopRequests:
    """Context manager: while active, the first SIGTERM/SIGINT sets :attr:`signum`; a second one raises
    ``KeyboardInterrupt`` at once. Handlers are installed only in the main thread (Python allows no
    other) and the previous ones are restored on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
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

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()


__all__ = ["StopRequests", "TrainingStopped", "EXIT_CODES", "STOP_SIGNALS"]
