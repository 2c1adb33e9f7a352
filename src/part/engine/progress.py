"""tqdm progress bars that stay off where nobody watches: on when stderr is a terminal (or
``PART_PROGRESS=1``), off when it is a file or pipe (logs, CI) and on every rank but 0 under torchrun."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when bars are wanted: ``PART_PROGRESS=1`` forces them (``0`` forbids), else stderr is a TTY;
    never on a DDP rank other than 0."""
    if int(os.environ.get("RANK", "0")) != 0:
        return False
    forced = os.environ.get("PART_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, enabled: bool = True) -> Iterable[T]:
    """``iterable`` wrapped in a tqdm bar on stderr (``leave=False``: it disappears when done), or as is."""
    if not (enabled and progress_enabled()):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


__all__ = ["progress", "progress_enabled"]
