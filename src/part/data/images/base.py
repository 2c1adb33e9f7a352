"""What every image reader shares: the ``(image, label)`` item contract and its post-processing.

A reader subclasses :class:`ImageDataset` (images decoded on access, e.g. :class:`ImageFolderDataset`) or
:class:`InMemoryImageDataset` (one ``(N, C, H, W)`` tensor, e.g. IDX, CIFAR, npz) and implements ``_raw``;
the base class turns the raw image into ``float32 (C, H, W)`` in [0, 1], converts channels
(:func:`convert_channels`), brings it to ``image_size`` (:func:`fit_image_size`) and applies ``transform``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DatasetFormatError, check_label_range
from ..transforms import size_pair

__all__ = [
    "ImageDataset", "InMemoryImageDataset", "convert_channels", "fit_image_size", "to_unit_float",
    "check_split", "check_max_samples",
]

_LUMA = (0.299, 0.587, 0.114)


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


def to_unit_float(raw: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; float input is taken as already in [0, 1]."""
    if raw.dtype == torch.uint8:
        return raw.to(torch.float32).div_(255.0)
    return raw.to(torch.float32)


def check_split(split: str, who: str) -> str:
    if split not in ("train", "test"):
        hint = " (a validation split of this kind is a carve of train: set data.val_carve)" if split == "val" else ""
        raise ValueError(f"{who}: split must be 'train' or 'test', got {split!r}{hint}")
    return split


def check_max_samples(max_samples: int | None) -> int | None:
    if max_samples is None:
        return None
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples <= 0:
        raise ValueError(f"max_samples must be a positive int or None, got {max_samples!r}")
    return max_samples




class ImageDataset(Dataset):
    """Shared post-processing: to [0, 1] float -> channels -> size -> ``transform``."""

    def __init__(self, channels: int | None, image_size: int | Sequence[int] | None,
                 resize_mode: str, transform: Callable[[Tensor], Tensor] | None,
                 max_samples: int | None):
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {channels!r} (image readers; for (N, C, T) "
                             "signals use data.kind: signal_npz)")
        if resize_mode not in ("resize", "pad"):
            raise ValueError(f"resize_mode must be 'resize' or 'pad', got {resize_mode!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable, got {transform!r}")
        self.channels = channels
        self.image_size = None if image_size is None else size_pair(image_size, "image_size")
        self.resize_mode = resize_mode
        self.transform = transform
        self.max_samples = check_max_samples(max_samples)
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
        img = to_unit_float(raw)
        img = convert_channels(img, self.channels)
        img = fit_image_size(img, self.image_size, self.resize_mode)
        if self.transform is not None:
            img = self.transform(img)
        return img, label

    def _set_labels(self, labels: Tensor | None, n: int, num_classes: int | None = None,
                    where: str | None = None) -> None:
        if labels is None:
            self.labels = torch.full((n,), -1, dtype=torch.int64)
            self.num_classes = None
        else:
            self.labels = labels.to(torch.int64)
            if num_classes is not None:
                self.num_classes = num_classes
            elif self.classes is not None:
                self.num_classes = len(self.classes)
            else:  # as many classes as the largest label says, within MAX_CLASSES
                check_label_range(self.labels, f"{where or type(self).__name__}: labels")
                self.num_classes = int(self.labels.max().item()) + 1 if n else None

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._describe()}n={len(self)}, channels={self.channels}, "
                f"image_size={self.image_size}, resize_mode={self.resize_mode!r}, "
                f"num_classes={self.num_classes})")


class InMemoryImageDataset(ImageDataset):
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
        self._set_labels(labels, n, num_classes, source)

    def _raw(self, index: int) -> tuple[Tensor, int]:
        return self._images[index], int(self.labels[index])

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the stored images, before channel conversion and resizing."""
        return tuple(self._images.shape[1:])  # type: ignore[return-value]

