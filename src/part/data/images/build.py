"""One entry point over the image readers: :func:`build_image_dataset` by ``data.kind``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DatasetNotFoundError, missing_path
from ..transforms import (
    CIFAR100_MEAN,
    CIFAR100_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transforms,
)
from .base import ImageDataset
from .cifar import CIFARDataset
from .folder import ImageFolderDataset
from .idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_HINT, IDXDataset
from .npz import NpzDataset

__all__ = ["DATASET_KINDS", "IMAGE_KINDS", "IMAGE_OPTIONS", "ImageKind", "build_image_dataset", "build_images",
           "check_image_options", "image_kind", "image_transform"]

_STR, _OPT_STR, _STRS = "a string", "a string or null", "a list of strings"


def _root(kind: str, root) -> Path:
    if root is None:
        raise ValueError(f"dataset kind {kind!r} needs a root path")
    return Path(root)


def _fashion_mnist(kind: str, root, split, **opts) -> ImageDataset:
    opts.setdefault("classes", FASHION_MNIST_CLASSES)
    try:
        return IDXDataset(FASHION_MNIST_DIR if root is None else root, split or "train", **opts)
    except DatasetNotFoundError as exc:
        if FASHION_MNIST_HINT in str(exc):
            raise
        raise DatasetNotFoundError(f"{exc}; {FASHION_MNIST_HINT}") from None


def _folder(kind: str, root, split, **opts) -> ImageDataset:
    root = _root(kind, root)
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


def _npz(kind: str, root, split, **opts) -> ImageDataset:
    root = _root(kind, root)
    if "{split}" in str(root):
        path = Path(str(root).replace("{split}", split or "train"))
    elif root.is_dir():
        path = root / f"{split or 'train'}.npz"
    else:
        path = root
    return NpzDataset(path, **opts)


@dataclass(frozen=True)
class ImageKind:
    """An image data kind: its reader ``open(kind, root, split, **keyword arguments)``, the ``data.options`` it
    takes (name -> type rule; the reader checks the values), the published per-channel ``mean`` / ``std`` its
    images are normalised with unless the config sets them, and whether its reader takes ``skip_corrupt``."""

    open: Callable[..., ImageDataset]
    options: dict
    mean: tuple
    std: tuple
    skip_corrupt: bool = False


IMAGE_KINDS: dict[str, ImageKind] = {
    "idx": ImageKind(lambda kind, root, split, **o: IDXDataset(_root(kind, root), split or "train", **o),
                     {"resize_mode": _STR, "classes": _STRS}, FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    "fashion_mnist": ImageKind(_fashion_mnist, {"resize_mode": _STR, "classes": _STRS}, FASHION_MNIST_MEAN,
                               FASHION_MNIST_STD),
    "cifar": ImageKind(lambda kind, root, split, **o: CIFARDataset(_root(kind, root), split or "train", **o),
                       {"resize_mode": _STR, "variant": _OPT_STR, "label_type": _STR}, CIFAR100_MEAN, CIFAR100_STD),
    "imagefolder": ImageKind(_folder, {"resize_mode": _STR, "extensions": _STRS}, IMAGENET_MEAN, IMAGENET_STD,
                             skip_corrupt=True),
    "npz": ImageKind(_npz, {"resize_mode": _STR, "x_key": _OPT_STR, "y_key": _OPT_STR, "layout": _STR},
                     IMAGENET_MEAN, IMAGENET_STD),
}
"""The image ``data.kind`` values (the only place their names are written), served by :func:`build_image_dataset`."""

DATASET_KINDS = tuple(IMAGE_KINDS)
"""``data.kind`` values served by :func:`build_image_dataset`."""

IMAGE_OPTIONS = {name: k.options for name, k in IMAGE_KINDS.items()}
"""``data.options`` each image kind takes (keyword arguments of its reader), with the type of each."""


def image_kind(kind: str) -> ImageKind | None:
    """The :class:`ImageKind` of ``kind`` (case and ``-`` / ``_`` ignored, e.g. ``Fashion-MNIST``), or None."""
    return IMAGE_KINDS.get(str(kind).lower().replace("-", "_"))


def check_image_options(kind: str, options) -> None:
    """``data.options`` of an image kind: a mapping whose keys are the kind's options (:data:`IMAGE_OPTIONS`)
    with values of their types; ``ValueError`` naming ``data.options.<key>`` otherwise. Values are checked
    further by the reader (e.g. ``resize_mode`` must be ``resize`` or ``pad``)."""
    spec = image_kind(kind)
    if spec is None:
        return
    if not isinstance(options, dict):
        raise ValueError(f"data.options must be a mapping, got {options!r}")
    allowed = spec.options
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
    spec = image_kind(kind)
    if spec is None:
        raise ValueError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(DATASET_KINDS)}")
    return spec.open(kind, root, split, **opts)


def image_transform(d, augment: bool):
    """The image transform of a :class:`part.config.DataConfig` ``d`` whose ``image_size`` / ``mean`` / ``std``
    are filled: the paper's augmentation (with DeiT's ``randaugment`` / ``reprob`` when set) when ``augment``,
    else resize and normalise (:func:`part.data.transforms.build_transforms`)."""
    return build_transforms(train=augment, image_size=d.image_size, mean=d.mean, std=d.std,
                            rrc_scale=tuple(d.rrc_scale) if d.rrc_scale else None, hflip=d.hflip,
                            randaugment=d.randaugment, reprob=d.reprob)


def build_images(d, split: str, augment: bool, options=None) -> ImageDataset:
    """The ``split`` of the image kind ``d.kind`` of a filled :class:`part.config.DataConfig` ``d``, items
    ``(image (C, H, W) normalised, label)`` through :func:`image_transform`. ``options``: ``d.options`` as
    checked by :func:`check_image_options` (default ``d.options``)."""
    opts = dict(d.options if options is None else options)
    if image_kind(d.kind).skip_corrupt:
        opts["skip_corrupt"] = d.skip_corrupt
    return build_image_dataset(d.kind, d.root, split, channels=d.channels, image_size=d.image_size,
                               transform=image_transform(d, augment), max_samples=d.max_samples, **opts)
