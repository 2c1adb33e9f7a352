"""Images (and optional labels) stored as numpy arrays in an ``.npz`` archive."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetFormatError, missing_path
from .base import InMemoryImageDataset

__all__ = ["NpzDataset"]


class NpzDataset(InMemoryImageDataset):
    """Images (and optional labels) from a numpy ``.npz`` archive.

    Image array: key ``x_key`` or the first of ``"x"``, ``"images"``; shape ``(N, H, W)``,
    ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in {1, 3}; dtype uint8 (0-255) or float (must lie in
    [0, 1]). ``layout="auto"`` reads 4-D arrays as NCHW when dim 1 is 1 or 3, as NHWC when the last
    dim is, and asks for ``layout="NCHW"|"NHWC"`` when both are. Labels: key ``y_key`` or the first
    of ``"y"``, ``"labels"`` (integers, shape ``(N,)``); absent -> unlabeled (label -1).

    Item: ``(image (C, H, W) float in [0, 1] before transform, label int)``.
    """

    def __init__(self, path: str | os.PathLike, *, x_key: str | None = None, y_key: str | None = None,
                 layout: str = "auto", channels: int | None = None,
                 image_size: int | Sequence[int] | None = None, resize_mode: str = "resize",
                 transform: Callable[[Tensor], Tensor] | None = None, max_samples: int | None = None):
        super().__init__(channels, image_size, resize_mode, transform, max_samples)
        self.path = Path(path)
        if layout not in ("auto", "NCHW", "NHWC"):
            raise ValueError(f"NpzDataset: layout must be 'auto', 'NCHW' or 'NHWC', got {layout!r}")
        if not self.path.is_file():
            raise missing_path(self.path, "npz file")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                keys = list(npz.files)
                xk = self._pick(keys, x_key, ("x", "images"), "image")
                yk = self._pick(keys, y_key, ("y", "labels"), "label", required=False)
                x = npz[xk]
                y = npz[yk] if yk is not None else None
        except DatasetFormatError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, ValueError from a bad member, ...
            raise DatasetFormatError(f"{self.path}: cannot read npz ({type(exc).__name__}: {exc})") from None
        self.x_key, self.y_key = xk, yk

        if self.max_samples is not None:
            x = x[: self.max_samples]
            y = None if y is None else y[: self.max_samples]
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4:
            x = self._to_nchw(x, layout)
        else:
            raise DatasetFormatError(f"{self.path}: '{xk}' must be (N, H, W), (N, H, W, C) or "
                                     f"(N, C, H, W), got shape {x.shape}")
        if x.dtype == np.uint8:
            images = torch.from_numpy(np.ascontiguousarray(x))
        elif x.dtype.kind == "f":
            if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0):
                raise DatasetFormatError(f"{self.path}: float images in '{xk}' must lie in [0, 1] "
                                         f"(found [{np.nanmin(x):.4g}, {np.nanmax(x):.4g}] or non-finite); "
                                         f"divide 0-255 data by 255 or store uint8")
            images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        else:
            raise DatasetFormatError(f"{self.path}: '{xk}' must be uint8 or float, got {x.dtype}")
        labels = None
        if y is not None:
            if y.shape != (x.shape[0],):
                raise DatasetFormatError(f"{self.path}: '{yk}' must have shape ({x.shape[0]},) to "
                                         f"match '{xk}', got {y.shape}")
            if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
                raise DatasetFormatError(f"{self.path}: '{yk}' must hold integer class labels, got {y.dtype}")
            labels = torch.from_numpy(y.astype(np.int64))
        self._set_images(images, labels, str(self.path))

    def _pick(self, keys: list[str], explicit: str | None, defaults: tuple[str, ...], what: str,
              required: bool = True) -> str | None:
        if explicit is not None:
            if explicit not in keys:
                raise DatasetFormatError(f"{self.path}: no {what} array '{explicit}'; available keys: {keys}")
            return explicit
        for k in defaults:
            if k in keys:
                return k
        if required:
            raise DatasetFormatError(f"{self.path}: no {what} array; expected key "
                                     f"{' or '.join(repr(d) for d in defaults)}, available keys: {keys}")
        return None

    def _to_nchw(self, x: np.ndarray, layout: str) -> np.ndarray:
        if layout == "auto":
            first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
            if first and last:
                raise DatasetFormatError(f"{self.path}: cannot tell channels-first from channels-last "
                                         f"for shape {x.shape}; pass layout='NCHW' or 'NHWC'")
            if not (first or last):
                raise DatasetFormatError(f"{self.path}: 4-D images need 1 or 3 channels in dim 1 "
                                         f"(NCHW) or dim 3 (NHWC), got shape {x.shape}")
            layout = "NCHW" if first else "NHWC"
        return x if layout == "NCHW" else x.transpose(0, 3, 1, 2)

    def _describe(self) -> str:
        return f"path={str(self.path)!r}, "

