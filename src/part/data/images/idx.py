"""IDX files, the MNIST family's format (MNIST, Fashion-MNIST, KMNIST, EMNIST): :func:`read_idx` for one
file, :class:`IDXDataset` for an images + labels split."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetFormatError, DatasetNotFoundError, missing_path
from .base import InMemoryImageDataset, check_split

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "FASHION_MNIST_HINT", "read_idx", "IDXDataset"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_HINT = "install it with `apt-get install dataset-fashion-mnist` (or `make data`)"

_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic ``1f 8b``."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a native-endian numpy array of its stated shape.

    IDX layout: magic ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then
    the data in row-major order (big-endian). Raises :class:`DatasetFormatError` naming ``path``
    on a bad magic number, an unknown dtype code, or a size that disagrees with the header.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_path(path, "IDX file")
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetFormatError(f"{path}: truncated IDX file ({len(data)} bytes, header needs 4)")
    if data[0] != 0 or data[1] != 0:
        magic = int.from_bytes(data[:4], "big")
        raise DatasetFormatError(f"{path}: bad IDX magic number 0x{magic:08x} "
                                 f"(expected 0x0000<dtype><ndim>); not an IDX file")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DatasetFormatError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise DatasetFormatError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        kind = "truncated" if found < expected else "oversized"
        raise DatasetFormatError(f"{path}: {kind} IDX data: header dims {dims} need {expected} "
                                 f"bytes, file has {found}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    arr = arr.astype(dtype.newbyteorder("="), copy=True)  # writable, native byte order
    return arr.reshape(dims)


def _find_idx(root: Path, prefix: str, kind: str, ndim: int, hint: str | None) -> Path:
    names = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    msg = f"IDX {kind} file for split '{'train' if prefix == 'train' else 'test'}' not found: " \
          f"{root / names[0]}[.gz]"
    if hint:
        msg += f"; {hint}"
    raise DatasetNotFoundError(msg)


class IDXDataset(InMemoryImageDataset):
    """MNIST-family IDX files: ``{train,t10k}-images-idx3-ubyte[.gz]`` + ``...-labels-idx1-ubyte[.gz]``.

    The whole split is parsed once into a uint8 tensor ``(N, 1, H, W)`` (numpy ``frombuffer``, no
    per-image Python work); ``__getitem__`` converts one image.

    Args:
        root: folder holding the four files (e.g. :data:`FASHION_MNIST_DIR`).
        split: ``"train"`` or ``"test"`` (``t10k-*`` files).
        classes: optional class names (sets ``num_classes`` to their count).
        channels, image_size, resize_mode, transform, max_samples: see the module docstring.

    Item: ``(image (C, H, W) float in [0, 1] before transform, label int)``.
    """

    def __init__(self, root: str | os.PathLike = FASHION_MNIST_DIR, split: str = "train", *,
                 channels: int | None = None, image_size: int | Sequence[int] | None = None,
                 resize_mode: str = "resize", transform: Callable[[Tensor], Tensor] | None = None,
                 max_samples: int | None = None, classes: Sequence[str] | None = None):
        super().__init__(channels, image_size, resize_mode, transform, max_samples)
        self.root = Path(root)
        self.split = check_split(split, "IDXDataset")
        hint = FASHION_MNIST_HINT if self.root == Path(FASHION_MNIST_DIR) else None
        if not self.root.is_dir():
            raise missing_path(self.root, "IDX dataset folder", hint)
        prefix = "train" if split == "train" else "t10k"
        self.images_path = _find_idx(self.root, prefix, "images", 3, hint)
        self.labels_path = _find_idx(self.root, prefix, "labels", 1, hint)
        images = read_idx(self.images_path)
        labels = read_idx(self.labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetFormatError(f"{self.images_path}: expected uint8 images (N, H, W), got "
                                     f"{images.dtype} with shape {images.shape}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DatasetFormatError(f"{self.labels_path}: expected integer labels (N,), got "
                                     f"{labels.dtype} with shape {labels.shape}")
        if labels.shape[0] != images.shape[0]:
            raise DatasetFormatError(f"{self.labels_path}: {labels.shape[0]} labels but "
                                     f"{self.images_path} has {images.shape[0]} images")
        self.classes = list(classes) if classes is not None else None
        self._set_images(torch.from_numpy(images).unsqueeze(1),
                         torch.from_numpy(labels.astype(np.int64)), str(self.images_path))

    def _describe(self) -> str:
        return f"root={str(self.root)!r}, split={self.split!r}, "

