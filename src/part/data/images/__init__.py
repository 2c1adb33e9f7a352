"""Image dataset readers, one module per file format: IDX (:mod:`.idx`, MNIST family), CIFAR pickles
(:mod:`.cifar`), image files and class folders (:mod:`.folder`), ``.npz`` arrays (:mod:`.npz`);
:func:`build_image_dataset` (:mod:`.build`) picks one by ``data.kind``.

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
:class:`part.data.errors.DatasetNotFoundError` (a ``FileNotFoundError`` and a ``ValueError``), a
malformed file :class:`part.data.errors.DatasetFormatError` (a ``ValueError``).
"""

from ..errors import DatasetFormatError, DatasetNotFoundError
from .base import ImageDataset, InMemoryImageDataset, convert_channels, fit_image_size, to_unit_float
from .build import DATASET_KINDS, IMAGE_OPTIONS, build_image_dataset, check_image_options
from .cifar import CIFARDataset
from .folder import IMAGE_EXTENSIONS, ImageFolderDataset, find_images, read_image
from .idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IDXDataset, read_idx
from .npz import NpzDataset

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "DATASET_KINDS",
    "IMAGE_OPTIONS",
    "check_image_options",
    "DatasetNotFoundError",
    "DatasetFormatError",
    "ImageDataset",
    "InMemoryImageDataset",
    "read_idx",
    "read_image",
    "find_images",
    "convert_channels",
    "fit_image_size",
    "to_unit_float",
    "IDXDataset",
    "CIFARDataset",
    "ImageFolderDataset",
    "NpzDataset",
    "build_image_dataset",
]
