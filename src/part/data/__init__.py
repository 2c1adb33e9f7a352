"""Data: one reader per file format, the transforms, and the errors they raise.

* :mod:`part.data.errors` - :class:`DatasetNotFoundError`, :class:`DatasetFormatError` (every reader's).
* :mod:`part.data.images` - image readers, one module per format: IDX, CIFAR pickles, image files and
  class folders (Pillow), ``.npz`` arrays; :func:`build_image_dataset` by ``data.kind``.
* :mod:`part.data.transforms` - tensor transforms for images (resize, crops, flips, normalisation, random
  erasing).
* :mod:`part.data.randaugment` - RandAugment on tensors (timm's ops and ``rand-m9-mstd0.5-inc1`` strings).
* :mod:`part.data.signal` - 1D signal preprocessing (band-pass, re-sampling, windows, instance
  normalisation) for any ``(C, T)`` signal, and the paper's EEG recipe :data:`part.data.signal.PAPER_EEG`.
* :mod:`part.data.signal_npz` - ``data.kind: signal_npz``: any set of ``(N, C, T)`` signals with labels,
  class names and groups as numpy arrays, your own train / val / test files or held-out groups, dataset-level
  normalisation (:class:`SignalDataset`).
* :mod:`part.data.sleep` - sleep-staging EEG (paper App. 8.1): WFDB, EDF and npz readers, subject splits,
  the window cache, and the datasets the engine builds for the sleep data kinds.
* :mod:`part.data.signal_options` - what every 1D kind shares: the one ``normalize`` vocabulary (``none`` /
  ``window`` / ``dataset``; the sleep kinds' old ``true`` / ``false`` read there), the one split vocabulary,
  the reader of a kind's typed options.
* :mod:`part.data.kinds` - the data-kind registry :data:`~part.data.kinds.DATA_KINDS`: per ``data.kind`` its
  builder, typed options, dimensionality, statistics, record and own rules; what the config and the engine
  ask instead of testing a kind's name.

Imports inside the package go one way: ``kinds`` uses the readers; ``images`` uses ``errors`` and
``transforms``; ``sleep`` uses ``errors``, ``signal``, ``signal_options`` and :mod:`part.io` (atomic cache
writes); ``signal_npz`` uses ``errors`` and ``signal_options``; ``transforms``
uses ``randaugment``; ``errors``, ``randaugment`` and ``signal`` import nothing of ``part``.
"""

from .errors import DatasetFormatError, DatasetNotFoundError
from .images import (
    DATASET_KINDS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    IMAGE_EXTENSIONS,
    CIFARDataset,
    IDXDataset,
    ImageFolderDataset,
    NpzDataset,
    build_image_dataset,
    convert_channels,
    fit_image_size,
    read_idx,
)
from .randaugment import RandAugment, parse_randaugment
from .transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    build_transforms,
)
