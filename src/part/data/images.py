"""Image dataset readers: IDX (MNIST family), CIFAR pickles, class folders, and ``.npz`` arrays.

Every dataset here is a map-style ``torch.utils.data.Dataset`` whose item is ``(image, label)``:

* ``image``: float32 tensor ``(C, H, W)`` with values in [0, 1] *before* ``transform`` runs (the
  transform, e.g. :func:`part.data.transforms.build_transforms`, then augments and normalises);
* ``label``: a Python ``int`` class index, ``-1`` when the source has no labels.

Common options (all readers):

* ``channels``: 1 or 3 (``None`` keeps the source's channels). Grayscale -> 3 repeats the plane;
  RGB -> 1 takes the ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B`` (Pillow's ``"L"``).
* ``image_size``: int or ``(H, W)``; ``resize_mode="resize"`` resizes bilinearly with antialias
  (``F.interpolate``), ``resize_mode="pad"`` zero-pads centrally (the image must not be larger).
* ``transform``: callable applied last to the ``(C, H, W)`` tensor.
* ``max_samples``: keep only the first k samples (quick runs).

Datasets with labels expose ``num_classes``, and all expose ``labels`` (``(N,)`` int64, ``-1`` when
unlabeled). The paper pretrains and evaluates on CIFAR-100 and ImageNet-1K (Appendix, "Image
classification"); Fashion-MNIST (IDX) is this package's small default for CPU demos.

Loading errors are one line and name the offending file: a missing path raises
:class:`DatasetNotFoundError` (a ``FileNotFoundError`` and a ``ValueError``), a malformed file
:class:`DatasetFormatError` (a ``ValueError``).
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .transforms import size_pair as _size_pair

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "DATASET_KINDS",
    "DatasetNotFoundError",
    "DatasetFormatError",
    "read_idx",
    "convert_channels",
    "fit_image_size",
    "IDXDataset",
    "CIFARDataset",
    "ImageFolderDataset",
    "NpzDataset",
    "build_image_dataset",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_HINT = "install it with `apt-get install dataset-fashion-mnist` (or `make data`)"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DATASET_KINDS = ("idx", "fashion_mnist", "cifar", "imagefolder", "npz")

_LUMA = (0.299, 0.587, 0.114)


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset path (file or folder) does not exist; the message names it."""


class DatasetFormatError(ValueError):
    """A dataset file is malformed, truncated or of the wrong kind; the message names it."""


# --------------------------------------------------------------------------------------------
# Per-image helpers (shared by every reader)
# --------------------------------------------------------------------------------------------

def convert_channels(img: Tensor, channels: int | None) -> Tensor:
    """Convert a ``(C, H, W)`` float image to ``channels`` channels (``None``: unchanged).

    1 -> 3 repeats the plane; 3 -> 1 is the ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``.
    """
    c = img.shape[0]
    if channels is None or c == channels:
        return img
    if c == 1 and channels == 3:
        return img.expand(3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(_LUMA, dtype=img.dtype, device=img.device).view(3, 1, 1)
        return (img * w).sum(dim=0, keepdim=True)
    raise ValueError(f"cannot convert a {c}-channel image to channels={channels}")


def fit_image_size(img: Tensor, size: tuple[int, int] | None, mode: str = "resize") -> Tensor:
    """Bring a ``(C, H, W)`` image to ``(C, *size)``.

    ``mode="resize"``: bilinear with antialias (``F.interpolate``, ``align_corners=False``).
    ``mode="pad"``: zero-pad centrally (extra row/column at the bottom/right); the image must not
    be larger than ``size``.
    """
    if size is None or tuple(img.shape[-2:]) == tuple(size):
        return img
    if mode == "resize":
        out = F.interpolate(img.unsqueeze(0), size=size, mode="bilinear", align_corners=False,
                            antialias=True)
        return out.squeeze(0)
    if mode == "pad":
        h, w = img.shape[-2:]
        th, tw = size
        if h > th or w > tw:
            raise ValueError(f"resize_mode='pad' cannot shrink a {h}x{w} image to image_size "
                             f"{th}x{tw}; use resize_mode='resize'")
        ph, pw = th - h, tw - w
        return F.pad(img, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    raise ValueError(f"resize_mode must be 'resize' or 'pad', got {mode!r}")


def _to_unit_float(raw: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; float input is taken as already in [0, 1]."""
    if raw.dtype == torch.uint8:
        return raw.to(torch.float32).div_(255.0)
    return raw.to(torch.float32)


def _check_split(split: str, who: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"{who}: split must be 'train' or 'test', got {split!r}")
    return split


def _check_max_samples(max_samples: int | None) -> int | None:
    if max_samples is None:
        return None
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples <= 0:
        raise ValueError(f"max_samples must be a positive int or None, got {max_samples!r}")
    return max_samples


def _missing(path: Path | str, what: str = "dataset path", hint: str | None = None) -> DatasetNotFoundError:
    msg = f"{what} does not exist: {path}"
    if hint:
        msg += f"; {hint}"
    return DatasetNotFoundError(msg)


# --------------------------------------------------------------------------------------------
# Base classes
# --------------------------------------------------------------------------------------------

class _ImageDataset(Dataset):
    """Shared post-processing: to [0, 1] float -> channels -> size -> ``transform``."""

    def __init__(self, channels: int | None, image_size: int | Sequence[int] | None,
                 resize_mode: str, transform: Callable[[Tensor], Tensor] | None,
                 max_samples: int | None):
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
        if resize_mode not in ("resize", "pad"):
            raise ValueError(f"resize_mode must be 'resize' or 'pad', got {resize_mode!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable, got {transform!r}")
        self.channels = channels
        self.image_size = None if image_size is None else _size_pair(image_size, "image_size")
        self.resize_mode = resize_mode
        self.transform = transform
        self.max_samples = _check_max_samples(max_samples)
        self.labels: Tensor = torch.empty(0, dtype=torch.int64)
        self.classes: list[str] | None = None
        self.num_classes: int | None = None

    # Subclasses return the raw image (C, H, W) as uint8 or float in [0, 1], and its label.
    def _raw(self, index: int) -> tuple[Tensor, int]:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        raw, label = self._raw(index)
        img = _to_unit_float(raw)
        img = convert_channels(img, self.channels)
        img = fit_image_size(img, self.image_size, self.resize_mode)
        if self.transform is not None:
            img = self.transform(img)
        return img, label

    def _set_labels(self, labels: Tensor | None, n: int, num_classes: int | None = None) -> None:
        if labels is None:
            self.labels = torch.full((n,), -1, dtype=torch.int64)
            self.num_classes = None
        else:
            self.labels = labels.to(torch.int64)
            if num_classes is not None:
                self.num_classes = num_classes
            elif self.classes is not None:
                self.num_classes = len(self.classes)
            else:
                self.num_classes = int(self.labels.max().item()) + 1 if n else None

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._describe()}n={len(self)}, channels={self.channels}, "
                f"image_size={self.image_size}, resize_mode={self.resize_mode!r}, "
                f"num_classes={self.num_classes})")


class _InMemoryImageDataset(_ImageDataset):
    """Images held as one tensor ``(N, C, H, W)`` (uint8, or float32 in [0, 1])."""

    _images: Tensor

    def _set_images(self, images: Tensor, labels: Tensor | None, source: str,
                    num_classes: int | None = None) -> None:
        if self.max_samples is not None:
            images = images[: self.max_samples]
            labels = None if labels is None else labels[: self.max_samples]
        n = int(images.shape[0])
        if n == 0:
            raise ValueError(f"dataset is empty: {source}")
        c, h, w = images.shape[1:]
        if c not in (1, 3):
            raise DatasetFormatError(f"{source}: images must have 1 or 3 channels, got {c} "
                                     f"(array shape {tuple(images.shape)})")
        if self.image_size is not None and self.resize_mode == "pad":
            th, tw = self.image_size
            if h > th or w > tw:
                raise ValueError(f"resize_mode='pad' cannot shrink the {h}x{w} images of {source} "
                                 f"to image_size {th}x{tw}; use resize_mode='resize'")
        self._images = images
        self._set_labels(labels, n, num_classes)

    def _raw(self, index: int) -> tuple[Tensor, int]:
        return self._images[index], int(self.labels[index])

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the stored images, before channel conversion and resizing."""
        return tuple(self._images.shape[1:])  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST, KMNIST, EMNIST)
# --------------------------------------------------------------------------------------------

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
        raise _missing(path, "IDX file")
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


class IDXDataset(_InMemoryImageDataset):
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
        self.split = _check_split(split, "IDXDataset")
        hint = FASHION_MNIST_HINT if self.root == Path(FASHION_MNIST_DIR) else None
        if not self.root.is_dir():
            raise _missing(self.root, "IDX dataset folder", hint)
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


# --------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickle version)
# --------------------------------------------------------------------------------------------

_CIFAR = {
    "cifar10": {"folder": "cifar-10-batches-py", "archive": "cifar-10-python.tar.gz",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "num_classes": {"fine": 10, "coarse": 10}},
    "cifar100": {"folder": "cifar-100-python", "archive": "cifar-100-python.tar.gz",
                 "train": ["train"], "test": ["test"], "meta": "meta",
                 "num_classes": {"fine": 100, "coarse": 20}},
}


def _cifar_dir_variant(folder: Path) -> str | None:
    """Which CIFAR variant's batch files sit directly in ``folder`` (None if neither)."""
    if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
        return "cifar10"
    if (folder / "meta").is_file() and ((folder / "train").is_file() or (folder / "test").is_file()):
        return "cifar100"
    return None


def _unpickle(data: bytes, source: str) -> dict:
    try:
        obj = pickle.loads(data, encoding="bytes")
    except Exception as exc:  # pickle raises many types on garbage input
        raise DatasetFormatError(f"{source}: cannot unpickle CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return obj


class CIFARDataset(_InMemoryImageDataset):
    """CIFAR-10 / CIFAR-100 in the "python version" pickle format.

    ``root`` may be: the extracted folder (``cifar-10-batches-py`` or ``cifar-100-python``); a folder
    containing one of those folders or the original archives (``cifar-10-python.tar.gz``,
    ``cifar-100-python.tar.gz``); or such a ``.tar.gz`` archive itself, which is read in one pass
    with ``tarfile`` (nothing is extracted to disk). CIFAR-10 reads ``data_batch_1..5`` /
    ``test_batch`` with key ``b"labels"``; CIFAR-100 reads ``train`` / ``test`` with key
    ``b"fine_labels"`` (or ``b"coarse_labels"`` with ``label_type="coarse"``). Class names come from
    ``batches.meta`` / ``meta`` when present. Pickles are loaded with ``encoding="bytes"``; only
    load archives you trust (pickle can execute code).

    Args:
        root: see above.
        split: ``"train"`` or ``"test"``.
        variant: ``"cifar10"``, ``"cifar100"`` or None to detect (an error if both are present).
        label_type: ``"fine"`` or ``"coarse"`` (CIFAR-100 only).
        channels, image_size, resize_mode, transform, max_samples: see the module docstring.

    Item: ``(image (C, 32, 32) float in [0, 1] before transform, label int)``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, variant: str | None = None,
                 label_type: str = "fine", channels: int | None = None,
                 image_size: int | Sequence[int] | None = None, resize_mode: str = "resize",
                 transform: Callable[[Tensor], Tensor] | None = None, max_samples: int | None = None):
        super().__init__(channels, image_size, resize_mode, transform, max_samples)
        self.root = Path(root)
        self.split = _check_split(split, "CIFARDataset")
        if variant not in (None, "cifar10", "cifar100"):
            raise ValueError(f"CIFARDataset: variant must be 'cifar10', 'cifar100' or None, got {variant!r}")
        if label_type not in ("fine", "coarse"):
            raise ValueError(f"CIFARDataset: label_type must be 'fine' or 'coarse', got {label_type!r}")
        if label_type == "coarse" and variant == "cifar10":
            raise ValueError("CIFARDataset: label_type='coarse' exists only for CIFAR-100")
        if not self.root.exists():
            raise _missing(self.root, "CIFAR dataset path")

        if self.root.is_file():
            self.variant, files = self._read_archive(self.root, variant)
        else:
            self.variant, location = self._locate(self.root, variant)
            if location.is_file():
                self.variant, files = self._read_archive(location, self.variant)
            else:
                files = self._read_folder(location, self.variant)
        if label_type == "coarse" and self.variant != "cifar100":
            raise ValueError(f"CIFARDataset: label_type='coarse' exists only for CIFAR-100, "
                             f"but {self.root} holds CIFAR-10")
        self.label_type = label_type
        spec = _CIFAR[self.variant]
        label_key = b"labels" if self.variant == "cifar10" else f"{label_type}_labels".encode()

        images, labels = [], []
        for name in spec[split]:
            source, blob = files[name]
            batch = _unpickle(blob, source)
            if b"data" not in batch or label_key not in batch:
                keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
                raise DatasetFormatError(f"{source}: CIFAR batch needs keys 'data' and "
                                         f"'{label_key.decode()}', found {keys}")
            data = np.asarray(batch[b"data"])
            lab = np.asarray(batch[label_key])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DatasetFormatError(f"{source}: CIFAR 'data' must be uint8 (N, 3072), got "
                                         f"{data.dtype} with shape {data.shape}")
            if lab.shape != (data.shape[0],) or lab.dtype.kind not in "iu":
                raise DatasetFormatError(f"{source}: expected {data.shape[0]} integer labels, got "
                                         f"{lab.dtype} with shape {lab.shape}")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(lab.astype(np.int64))
            if self.max_samples is not None and sum(len(x) for x in labels) >= self.max_samples:
                break

        if spec["meta"] in files:
            source, blob = files[spec["meta"]]
            meta = _unpickle(blob, source)
            key = b"label_names" if self.variant == "cifar10" else f"{label_type}_label_names".encode()
            if key in meta:
                self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]
        source = str(self.root)
        self._set_images(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
                         source, num_classes=spec["num_classes"][label_type]
                         if self.classes is None else len(self.classes))

    def _wanted(self, variant: str) -> list[str]:
        spec = _CIFAR[variant]
        return spec[self.split] + [spec["meta"]]

    def _locate(self, root: Path, variant: str | None) -> tuple[str, Path]:
        """Find the batch folder or archive under ``root``; returns ``(variant, path)``."""
        found: dict[str, Path] = {}
        direct = _cifar_dir_variant(root)
        if direct is not None:
            found[direct] = root
        for name, spec in _CIFAR.items():
            if name in found:
                continue
            if (root / spec["folder"]).is_dir() and _cifar_dir_variant(root / spec["folder"]) == name:
                found[name] = root / spec["folder"]
            elif (root / spec["archive"]).is_file():
                found[name] = root / spec["archive"]
        if variant is not None:
            if variant not in found:
                raise DatasetNotFoundError(
                    f"no {variant} data under {root}: expected its batch files, the folder "
                    f"'{_CIFAR[variant]['folder']}' or the archive '{_CIFAR[variant]['archive']}'")
            return variant, found[variant]
        if not found:
            raise DatasetNotFoundError(
                f"no CIFAR data under {root}: expected data_batch_1..5/test_batch (CIFAR-10), "
                f"train/test/meta (CIFAR-100), a folder cifar-10-batches-py or cifar-100-python, "
                f"or a cifar-*-python.tar.gz archive")
        if len(found) > 1:
            raise ValueError(f"both CIFAR-10 and CIFAR-100 found under {root}; pass "
                             f"variant='cifar10' or variant='cifar100'")
        return next(iter(found.items()))

    def _read_folder(self, folder: Path, variant: str) -> dict[str, tuple[str, bytes]]:
        files: dict[str, tuple[str, bytes]] = {}
        spec = _CIFAR[variant]
        for name in self._wanted(variant):
            path = folder / name
            if path.is_file():
                files[name] = (str(path), path.read_bytes())
            elif name != spec["meta"]:
                raise DatasetNotFoundError(f"CIFAR batch file does not exist: {path}")
        return files

    def _read_archive(self, archive: Path, variant: str | None) -> tuple[str, dict[str, tuple[str, bytes]]]:
        """One sequential pass over the (gzipped) tar, keeping only the needed members."""
        wanted = {v: set(self._wanted(v)) for v in _CIFAR if variant in (None, v)}
        found: dict[str, dict[str, tuple[str, bytes]]] = {v: {} for v in wanted}
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    parts = member.name.split("/")
                    base, parent = parts[-1], (parts[-2] if len(parts) > 1 else "")
                    for v, names in wanted.items():
                        # CIFAR-100's generic names (train/test/meta) only count inside its folder
                        # or at the archive root; CIFAR-10's names are unambiguous.
                        if base in names and (v == "cifar10" or parent in ("", _CIFAR[v]["folder"])):
                            f = tar.extractfile(member)
                            assert f is not None
                            found[v][base] = (f"{archive}:{member.name}", f.read())
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{archive}: cannot read CIFAR archive ({exc})") from None
        complete = [v for v in found if set(_CIFAR[v][self.split]) <= set(found[v])]
        if not complete:
            partial = {v: sorted(found[v]) for v in found if found[v]}
            raise DatasetFormatError(f"{archive}: no complete CIFAR '{self.split}' split in archive "
                                     f"(batches found: {partial or 'none'})")
        if len(complete) > 1:
            raise ValueError(f"{archive}: holds both CIFAR-10 and CIFAR-100; pass variant=")
        return complete[0], found[complete[0]]

    def _describe(self) -> str:
        return f"root={str(self.root)!r}, variant={self.variant!r}, split={self.split!r}, "


# --------------------------------------------------------------------------------------------
# Class-per-subfolder image trees
# --------------------------------------------------------------------------------------------

def _load_pil(path: Path, mode: str) -> np.ndarray:
    """Decode ``path`` fully with Pillow and convert to ``mode`` ("RGB" or "L"); ``(H, W[, 3])`` uint8."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.array(im.convert(mode))  # a writable copy


class ImageFolderDataset(_ImageDataset):
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
            raise _missing(self.root, "image folder")
        if not self.root.is_dir():
            raise ValueError(f"image folder root is not a directory: {self.root}")
        self._mode = "L" if channels == 1 else "RGB"
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(d.name for d in self.root.iterdir()
                              if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise ValueError(f"image folder has no class subfolders (expected root/<class>/<image>): {self.root}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        candidates: list[tuple[Path, int]] = []
        for cls in self.classes:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root / cls, followlinks=True):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                found += [Path(dirpath) / f for f in filenames
                          if not f.startswith(".") and f.lower().endswith(exts)]
            candidates += [(p, self.class_to_idx[cls]) for p in sorted(found)]
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
                    _load_pil(path, self._mode)
                except Exception:  # any decode failure marks the file corrupt
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
        try:
            arr = _load_pil(path, self._mode)
        except Exception as exc:
            raise DatasetFormatError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
        t = torch.from_numpy(arr)
        t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
        return t, label

    def _describe(self) -> str:
        return f"root={str(self.root)!r}, "


# --------------------------------------------------------------------------------------------
# .npz arrays
# --------------------------------------------------------------------------------------------

class NpzDataset(_InMemoryImageDataset):
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
            raise _missing(self.path, "npz file")
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


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------

def build_image_dataset(kind: str, root: str | os.PathLike | None = None, split: str | None = "train",
                        **opts) -> _ImageDataset:
    """Build a dataset by kind: ``"idx"``, ``"fashion_mnist"``, ``"cifar"``, ``"imagefolder"``, ``"npz"``.

    * ``idx`` / ``cifar``: ``split`` is ``"train"`` or ``"test"``.
    * ``fashion_mnist``: IDX with ``root`` defaulting to :data:`FASHION_MNIST_DIR` and the ten class
      names; a missing folder says how to install it.
    * ``imagefolder``: ``root/<split>`` (``"test"`` falls back to ``root/val``); ``split=None`` uses
      ``root`` itself as the class tree.
    * ``npz``: ``root`` a file is used as is; a folder means ``root/<split>.npz``; a path containing
      ``{split}`` is formatted with it.

    ``**opts`` go to the dataset class (``channels``, ``image_size``, ``resize_mode``,
    ``transform``, ``max_samples``, and the class's own options).
    """
    key = str(kind).lower().replace("-", "_")
    if key not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(DATASET_KINDS)}")
    if key == "fashion_mnist":
        opts.setdefault("classes", FASHION_MNIST_CLASSES)
        try:
            return IDXDataset(FASHION_MNIST_DIR if root is None else root, split or "train", **opts)
        except DatasetNotFoundError as exc:
            if FASHION_MNIST_HINT in str(exc):
                raise
            raise DatasetNotFoundError(f"{exc}; {FASHION_MNIST_HINT}") from None
    if root is None:
        raise ValueError(f"dataset kind {kind!r} needs a root path")
    root = Path(root)
    if key == "idx":
        return IDXDataset(root, split or "train", **opts)
    if key == "cifar":
        return CIFARDataset(root, split or "train", **opts)
    if key == "imagefolder":
        if split is None:
            return ImageFolderDataset(root, **opts)
        if not root.is_dir():
            raise _missing(root, "image folder")
        folder = root / split
        if not folder.is_dir() and split == "test" and (root / "val").is_dir():
            folder = root / "val"
        if not folder.is_dir():
            raise DatasetNotFoundError(f"image folder for split {split!r} does not exist: {folder} "
                                       f"(pass split=None to use {root} itself)")
        return ImageFolderDataset(folder, **opts)
    # npz
    if "{split}" in str(root):
        path = Path(str(root).replace("{split}", split or "train"))
    elif root.is_dir():
        path = root / f"{split or 'train'}.npz"
    else:
        path = root
    return NpzDataset(path, **opts)
