"""The errors of every data reader (images, EEG records, arrays), in one place.

A reader fails with a one-line message that names the file, folder or option at fault:

* :class:`DatasetNotFoundError` - a path does not exist (a ``FileNotFoundError`` and a ``ValueError``, so
  ``part``'s CLI reports it as a usage error);
* :class:`DatasetFormatError` - a file exists but is malformed, truncated or of the wrong kind (a
  ``ValueError``);
* ``ImportError`` from :func:`require_extra` - an optional reader package (``wfdb``, ``pyedflib``) is
  missing; the message says which extra installs it.

Bad arguments stay plain ``ValueError``s.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["DatasetNotFoundError", "DatasetFormatError", "missing_path", "require_extra", "MAX_CLASSES",
           "check_label_range"]

MAX_CLASSES = 100_000
"""The most classes a label array may imply without naming them (largest label + 1): a stray label such as
1e9 would otherwise size class counts, confusion matrices and classifiers by it. Data with more classes names
them (``class_names``) or relabels them 0..K-1."""


def check_label_range(labels, where: str, named: int | None = None) -> None:
    """Raise :class:`DatasetFormatError` naming ``where`` when the largest label of ``labels`` (array-like of
    ints) implies more than :data:`MAX_CLASSES` classes and the data names none (``named``: the number of
    class names, which bound the labels themselves elsewhere)."""
    import numpy as np

    y = np.asarray(labels).reshape(-1)
    if named is not None or y.size == 0:
        return
    top = int(y.max())
    if top >= MAX_CLASSES:
        i = int(np.argmax(y))
        present = int(np.unique(y).size)
        raise DatasetFormatError(f"{where}: label {top} (sample {i}) implies {top + 1} classes, more than the "
                                 f"{MAX_CLASSES} part accepts without class names ({present} distinct labels are "
                                 "present); relabel them 0..K-1 or give class_names")


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset path (file or folder) does not exist; the message names it."""


class DatasetFormatError(ValueError):
    """A dataset file is malformed, truncated or of the wrong kind; the message names it."""


def missing_path(path: str | os.PathLike, what: str = "dataset path", hint: str | None = None) -> DatasetNotFoundError:
    """``DatasetNotFoundError("<what> does not exist: <path>[; <hint>]")`` (returned, for ``raise``)."""
    msg = f"{what} does not exist: {path}"
    if hint:
        msg += f"; {hint}"
    return DatasetNotFoundError(msg)


def require_extra(module: str, what: str, extra: str = "sleep") -> ModuleType:
    """Import an optional package, or raise ``ImportError`` saying that ``what`` needs it and how to get it
    (``pip install 'part[<extra>]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the optional package '{module}', part of the {extra} extra: pip install 'part[{extra}]'"
        ) from err
