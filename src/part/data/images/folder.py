"""Image files decoded with Pillow: :func:`read_image` (one file), :func:`find_images` (a folder's image
files), :class:`ImageFolderDataset` (a ``root/<class>/**/<image>`` tree)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetFormatError, missing_path
from .base import ImageDataset

__all__ = ["IMAGE_EXTENSIONS", "WIDE_MODES", "read_image", "find_images", "ImageFolderDataset"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def read_image(path: str | os.PathLike, mode: str = "RGB") -> Tensor:
    """Decode one image file fully with Pillow, converted to ``mode`` (``"RGB"`` or ``"L"``).

    Returns a ``uint8`` tensor ``(C, H, W)`` (C = 3 or 1); a 16-bit grayscale image (:data:`WIDE_MODES`)
    comes back as ``float32`` in [0, 1] (value / 65535: scaled, not clipped at 255). Raises :class:`DatasetFormatError` naming the
    file when Pillow cannot decode it (truncated, corrupt, not an image).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in WIDE_MODES:  # 16-bit grayscale: scaled to [0, 1], never clipped at 255
                return _wide_to_unit(np.array(im), mode)
            arr = np.array(im.convert(mode))  # a writable copy
    except Exception as exc:  # Pillow raises many types on bad input
        raise DatasetFormatError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
"""Pillow modes of grayscale images wider than 8 bits (16-bit PNG and TIFF; ``I`` is how older Pillows open a
16-bit PNG). Pillow's ``convert("L")`` clips them at 255, so :func:`read_image` scales them itself."""


def _wide_to_unit(arr: np.ndarray, mode: str) -> Tensor:
    """A 16-bit grayscale image ``(H, W)`` as float32 ``(C, H, W)`` in [0, 1] (value / 65535); ``mode`` RGB
    repeats the plane. Values outside 16 bits (a 32-bit ``I`` image) are scaled by the image's own maximum."""
    a = arr.astype(np.float64)
    top = 65535.0 if a.size == 0 or (a.min() >= 0 and a.max() <= 65535) else max(float(np.abs(a).max()), 1.0)
    t = torch.from_numpy(np.clip(a / top, 0.0, 1.0).astype(np.float32)).unsqueeze(0)
    return t.expand(3, -1, -1).contiguous() if mode == "RGB" else t


def find_images(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files under ``folder``, recursively (symlinked folders followed), sorted by path.

    Hidden files and folders (names starting with ``.``) are skipped; ``extensions`` match
    case-insensitively. Every real folder is walked once: a symlink back to a folder already walked (a
    loop, or a second link to the same folder) is skipped with one warning, so no image is counted twice
    through it.
    """
    exts = tuple(e.lower() for e in extensions)
    found = []
    seen = {os.path.realpath(folder)}
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            real = os.path.realpath(os.path.join(dirpath, d))
            if real in seen:
                skipped.append(os.path.join(dirpath, d))
                continue
            seen.add(real)
            keep.append(d)
        dirnames[:] = keep
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f.lower().endswith(exts)]
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} symlinked folder(s) that lead to a folder already read "
                      f"(a symlink loop or a second link; first: {skipped[0]})", stacklevel=2)
    return sorted(found)


class ImageFolderDataset(ImageDataset):
    """A ``root/<class>/**/<image>`` tree (jpg, jpeg, png, bmp, webp; case-insensitive).

    Classes are the sorted names of ``root``'s non-hidden subfolders, indexed in that order
    (``classes``, ``class_to_idx``); samples are sorted by class, then path. Images are decoded with
    Pillow and converted to RGB (``channels`` 3 or None) or L (``channels=1``).

    Corrupt files: by default a file that fails to decode raises :class:`DatasetFormatError` naming
    it when its item is read. With ``skip_corrupt=True`` every candidate file is decoded once at
    construction (deterministic length and indices, at the cost of one full read of the tree); bad
    ones are dropped, counted in ``num_skipped`` (paths in ``skipped``) and reported by one
    ``warnings.warn`` with the count. ``max_samples`` keeps the first k (valid) samples in sorted
    order, so with few samples they may all come from the first classes.

    Item: ``(image (C, H, W) float in [0, 1] before transform, label int)``.
    """

    def __init__(self, root: str | os.PathLike, *, channels: int | None = None,
                 image_size: int | Sequence[int] | None = None, resize_mode: str = "resize",
                 transform: Callable[[Tensor], Tensor] | None = None, max_samples: int | None = None,
                 skip_corrupt: bool = False, extensions: Sequence[str] = IMAGE_EXTENSIONS):
        super().__init__(channels, image_size, resize_mode, transform, max_samples)
        self.root = Path(root)
        if not self.root.exists():
            raise missing_path(self.root, "image folder")
        if not self.root.is_dir():
            raise ValueError(f"image folder root is not a directory: {self.root}")
        self._mode = "L" if channels == 1 else "RGB"
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(d.name for d in self.root.iterdir()
                              if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise ValueError(f"image folder has no class subfolders (expected root/<class>/<image>): {self.root}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        candidates = [(p, self.class_to_idx[cls]) for cls in self.classes
                      for p in find_images(self.root / cls, exts)]
        if not candidates:
            raise ValueError(f"dataset is empty: no {'/'.join(e.lstrip('.') for e in exts)} images "
                             f"under {self.root}")

        self.skipped: list[Path] = []
        if skip_corrupt:
            kept: list[tuple[Path, int]] = []
            for path, label in candidates:
                if self.max_samples is not None and len(kept) >= self.max_samples:
                    break
                try:
                    read_image(path, self._mode)
                except DatasetFormatError:  # any decode failure marks the file corrupt
                    self.skipped.append(path)
                    continue
                kept.append((path, label))
            if self.skipped:
                warnings.warn(f"ImageFolderDataset: skipped {len(self.skipped)} corrupt image "
                              f"file(s) under {self.root} (first: {self.skipped[0]})", stacklevel=2)
            candidates = kept
            if not candidates:
                raise ValueError(f"dataset is empty: all {len(self.skipped)} image files under "
                                 f"{self.root} are corrupt")
        elif self.max_samples is not None:
            candidates = candidates[: self.max_samples]
        self.num_skipped = len(self.skipped)
        self.samples = candidates
        self._set_labels(torch.tensor([lab for _, lab in candidates], dtype=torch.int64),
                         len(candidates), num_classes=len(self.classes))

    def _raw(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        return read_image(path, self._mode), label

    def _describe(self) -> str:
        return f"root={str(self.root)!r}, "

