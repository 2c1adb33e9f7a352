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

__all__ = ["DatasetNotFoundError", "DatasetFormatError", "missing_path", "require_extra"]


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
