"""One entry point over the image readers: :func:`build_image_dataset` by ``data.kind``."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DatasetNotFoundError, missing_path
from .base import ImageDataset
from .cifar import CIFARDataset
from .folder import ImageFolderDataset
from .idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_HINT, IDXDataset
from .npz import NpzDataset

__all__ = ["DATASET_KINDS", "IMAGE_OPTIONS", "build_image_dataset", "check_image_options"]

DATASET_KINDS = ("idx", "fashion_mnist", "cifar", "imagefolder", "npz")
"""``data.kind`` values served by :func:`build_image_dataset`."""


_STR, _OPT_STR, _STRS = "a string", "a string or null", "a list of strings"
IMAGE_OPTIONS = {
    "idx": {"resize_mode": _STR, "classes": _STRS},
    "fashion_mnist": {"resize_mode": _STR, "classes": _STRS},
    "cifar": {"resize_mode": _STR, "variant": _OPT_STR, "label_type": _STR},
    "imagefolder": {"resize_mode": _STR, "extensions": _STRS},
    "npz": {"resize_mode": _STR, "x_key": _OPT_STR, "y_key": _OPT_STR, "layout": _STR},
}
"""``data.options`` each image kind takes (keyword arguments of its reader), with the type of each."""


def check_image_options(kind: str, options) -> None:
    """``data.options`` of an image kind: a mapping whose keys are the kind's options (:data:`IMAGE_OPTIONS`)
    with values of their types; ``ValueError`` naming ``data.options.<key>`` otherwise. Values are checked
    further by the reader (e.g. ``resize_mode`` must be ``resize`` or ``pad``)."""
    key = str(kind).lower().replace("-", "_")
    if key not in IMAGE_OPTIONS:
        return
    if not isinstance(options, dict):
        raise ValueError(f"data.options must be a mapping, got {options!r}")
    allowed = IMAGE_OPTIONS[key]
    for name, value in options.items():
        if name not in allowed:
            raise ValueError(f"unknown option data.options.{name} for data.kind {kind}; valid options: "
                             f"{', '.join(allowed) or 'none'}")
        rule = allowed[name]
        ok = (isinstance(value, str) if rule == _STR else value is None or isinstance(value, str) if rule == _OPT_STR
              else isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
        if not ok:
            raise ValueError(f"data.options.{name} must be {rule}, got {value!r}")


def build_image_dataset(kind: str, root: str | os.PathLike | None = None, split: str | None = "train",
                        **opts) -> ImageDataset:
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
            raise missing_path(root, "image folder")
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
