"""Reading pickles from data files without running their code.

``pickle.loads`` calls any importable function a file names, so a malicious ``data_batch_1`` runs code.
:func:`safe_loads` allows only what the CIFAR "python version" files hold: dicts, lists, tuples, strings,
bytes, numbers, and NumPy arrays / dtypes / scalars. Anything else is refused by name.
"""

from __future__ import annotations

import io
import pickle

# (module, name) pairs a NumPy array pickle needs; "numpy.core" before NumPy 2, "numpy._core" after
_ALLOWED = {
    (mod, name)
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"),
     ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 store bytes (string -> bytes only)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that plain data never needs (code would run on load)."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load {module}.{name} (data files may hold only arrays, lists, "
                                "dicts, strings and numbers)")


def safe_loads(data: bytes, encoding: str = "bytes"):
    """``pickle.loads(data, encoding=encoding)`` restricted to plain containers, numbers and NumPy arrays."""
    return _Restricted(io.BytesIO(data), encoding=encoding).load()


__all__ = ["safe_loads", "UnsafePickleError"]
