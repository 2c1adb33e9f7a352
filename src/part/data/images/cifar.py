"""CIFAR-10 / CIFAR-100 in the "python version" pickle format (folder, parent folder or ``.tar.gz``)."""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetFormatError, DatasetNotFoundError, missing_path
from ..safe_pickle import safe_loads
from .base import InMemoryImageDataset, check_split

__all__ = ["CIFARDataset"]

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
        obj = safe_loads(data, encoding="bytes")
    except Exception as exc:  # pickle raises many types on garbage input
        raise DatasetFormatError(f"{source}: cannot unpickle CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return obj


class CIFARDataset(InMemoryImageDataset):
    """CIFAR-10 / CIFAR-100 in the "python version" pickle format.

    ``root`` may be: the extracted folder (``cifar-10-batches-py`` or ``cifar-100-python``); a folder
    containing one of those folders or the original archives (``cifar-10-python.tar.gz``,
    ``cifar-100-python.tar.gz``); or such a ``.tar.gz`` archive itself, which is read in one pass
    with ``tarfile`` (nothing is extracted to disk). CIFAR-10 reads ``data_batch_1..5`` /
    ``test_batch`` with key ``b"labels"``; CIFAR-100 reads ``train`` / ``test`` with key
    ``b"fine_labels"`` (or ``b"coarse_labels"`` with ``label_type="coarse"``). Class names come from
    ``batches.meta`` / ``meta`` when present. Pickles are loaded with ``encoding="bytes"`` by a
    restricted unpickler (:mod:`part.data.safe_pickle`): plain containers, numbers, bytes and NumPy arrays
    only, so a malicious file is refused instead of running code.

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
        self.split = check_split(split, "CIFARDataset")
        if variant not in (None, "cifar10", "cifar100"):
            raise ValueError(f"CIFARDataset: variant must be 'cifar10', 'cifar100' or None, got {variant!r}")
        if label_type not in ("fine", "coarse"):
            raise ValueError(f"CIFARDataset: label_type must be 'fine' or 'coarse', got {label_type!r}")
        if label_type == "coarse" and variant == "cifar10":
            raise ValueError("CIFARDataset: label_type='coarse' exists only for CIFAR-100")
        if not self.root.exists():
            raise missing_path(self.root, "CIFAR dataset path")

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

