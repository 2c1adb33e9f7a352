"""``data.kind: signal_npz`` - any labelled (or unlabelled) set of multichannel signals, with your own splits.

1D PART (paper §5.2 "Time-series prediction", App. 8.1) is not specific to sleep: any ``(C, T)`` signal can be
cut into windows of ``L`` samples. This reader takes the signals as plain numpy arrays.

Files. ``data.root`` is either

* a folder with ``train.npz`` and optionally ``val.npz`` and ``test.npz`` (``data.split`` = ``train`` /
  ``val`` / ``test`` reads that file), or
* one ``.npz`` file plus ``data.options.split_by: group`` and an explicit ``data.options.test_groups`` list
  (and optionally ``val_groups``): samples whose ``group`` is listed form the test (val) split, every other
  sample the train split. Nothing is drawn at random, so no seed can swap the roles of train and test.
  One file without ``split_by`` is a train split only.

Arrays of a file (any other name is an error, so that a typo such as ``labels`` for ``y`` is caught):

==================  ==========================================================================================
``x``               ``(N, C, T)`` numbers (stored as any float or integer dtype; read as float32), finite
``y``               ``(N,)`` integer class labels ``0..K-1`` (optional: pretraining needs no labels)
``class_names``     ``(K,)`` strings (optional): the names results are reported with
``channel_names``   ``(C,)`` strings (optional)
``fs``              scalar sampling rate in Hz (optional; recorded, not used for resampling)
``group``           ``(N,)`` subject / session / recording id of every sample (optional; needed by
                    ``split_by: group``; strings or integers, compared as strings)
==================  ==========================================================================================

Every file of a folder must agree on ``C``, ``T``, ``class_names``, ``channel_names`` and ``fs``.
The number of classes ``K`` is ``len(class_names)`` when the data names them, else the largest label of any
split + 1; :func:`part.engine.complete_config` puts it into ``objective.options.num_classes`` when unset.

Options (``data.options``; an unknown one is an error listing the valid ones):

* ``split_by``: ``null`` (default; the folder form) or ``group``;
* ``test_groups``, ``val_groups``: lists of group ids (``split_by: group``);
* ``normalize`` (the vocabulary of every 1D kind, :mod:`part.data.signal_options`): ``dataset`` (default:
  per-channel mean and std of the *train* split, over all its samples and time steps; the values go to
  ``data.mean`` / ``data.std`` of the run's config, so fine-tuning, probing, evaluation and export reuse
  them), ``window`` (zero mean, unit std per sample and channel, as the paper's instance normalisation of EEG
  windows, App. 8.1) or ``none``;
* ``length_policy``: how a data length ``T`` reaches the model's ``model.img_size``: ``none`` (default;
  they must be equal), ``crop`` (keep the first ``model.img_size`` samples; needs ``T >= img_size``) or
  ``pad`` (repeat each channel's last value at the end; needs ``T <= img_size``). Normalisation sees the
  data's own ``T`` samples; the length policy applies after it;
* ``augment``: training-time augmentation of the normalised batches, a mapping ``{name: magnitude}``
  (:mod:`part.data.signal_augment`: ``scale``, ``offset``, ``noise``, ``shift``, ``flip``,
  ``channel_dropout``); default off. The items of this dataset are never augmented: the trainer applies it
  to training batches (:func:`part.engine.builders.build_batch_augment`), so evaluation, probing and export
  read the signals as they are.

``data.max_samples`` keeps the first that many samples of a split. Items are ``(x float32 (C, img_size),
label int)``, label ``-1`` when the file has no ``y``. Every split knows what it holds
(:meth:`SignalDataset.record`: file, SHA-256, rows or groups, class counts), which runs write to
``data.json``.

Errors name the file and the array or option at fault: :class:`part.data.errors.DatasetNotFoundError` for a
missing file, :class:`part.data.errors.DatasetFormatError` for a malformed one, ``ValueError`` for options.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetFormatError, DatasetNotFoundError, check_label_range
from .signal_augment import parse_signal_augment
from .signal_options import NORMALIZE_MODES, normalize_mode, split_name

__all__ = [
    "SIGNAL_NPZ_KIND", "SIGNAL_SPLITS", "NORMALIZE_MODES", "LENGTH_POLICIES", "SIGNAL_ARRAYS",
    "SignalNpzOptions", "SignalArrays", "SignalNpzData", "SignalDataset",
    "signal_npz_options", "read_signal_npz", "channel_stats", "normalize_signals", "fit_length",
    "build_signal_dataset",
]

SIGNAL_NPZ_KIND = "signal_npz"
SIGNAL_SPLITS: tuple[str, ...] = ("train", "val", "test")
LENGTH_POLICIES: tuple[str, ...] = ("none", "crop", "pad")
SIGNAL_ARRAYS: tuple[str, ...] = ("x", "y", "class_names", "channel_names", "fs", "group")
_EPS = 1e-6


@dataclass(frozen=True)
class SignalNpzOptions:
    """``data.options`` of ``signal_npz`` (see the module docstring); the defaults are written here once."""

    split_by: str | None = None
    test_groups: tuple[str, ...] = ()
    val_groups: tuple[str, ...] = ()
    normalize: str = "dataset"
    length_policy: str = "none"
    augment: tuple = ()  # ((name, magnitude), ...) in the order of application; () = off


def _group_list(name: str, value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or any(isinstance(v, (list, dict, bool)) or v is None for v in value):
        raise ValueError(f"data.options.{name} must be a list of group ids, got {value!r}")
    return tuple(str(v) for v in value)


def signal_npz_options(given: dict | None) -> SignalNpzOptions:
    """``data.options`` -> :class:`SignalNpzOptions`; unknown names or bad values raise ``ValueError``
    naming ``data.options.<name>`` and the value."""
    given = dict(given or {})
    valid = list(SignalNpzOptions.__dataclass_fields__)
    unknown = sorted(set(given) - set(valid), key=str)
    if unknown:
        raise ValueError(f"unknown data.options {unknown} for data.kind='signal_npz'; valid options: {valid}")
    if "normalize" in given:
        given["normalize"] = normalize_mode(given["normalize"], SIGNAL_NPZ_KIND)
    o = SignalNpzOptions(**{**given, "test_groups": _group_list("test_groups", given.get("test_groups")),
                            "val_groups": _group_list("val_groups", given.get("val_groups")),
                            "augment": parse_signal_augment(given.get("augment"))})
    if o.split_by not in (None, "group"):
        raise ValueError(f"data.options.split_by must be null or 'group', got {o.split_by!r}")
    if o.length_policy not in LENGTH_POLICIES:
        raise ValueError(f"data.options.length_policy must be one of {list(LENGTH_POLICIES)}, "
                         f"got {o.length_policy!r}")
    if o.split_by is None and (o.test_groups or o.val_groups):
        which = "test_groups" if o.test_groups else "val_groups"
        raise ValueError(f"data.options.{which} needs data.options.split_by: group")
    if o.split_by == "group":
        if not o.test_groups:
            raise ValueError("data.options.split_by: group needs data.options.test_groups, the explicit list of "
                             "held-out groups")
        both = sorted(set(o.test_groups) & set(o.val_groups))
        if both:
            raise ValueError(f"data.options.test_groups and val_groups share group {both[0]!r}")
    return o


# ------------------------------------------------------------------------------------------ one file


@dataclass(frozen=True)
class SignalArrays:
    """The validated arrays of one file. ``x`` float32 ``(N, C, T)``; ``y`` int64 ``(N,)`` or None;
    ``group`` str ``(N,)`` or None; ``class_names`` / ``channel_names`` tuples or None; ``fs`` float or None;
    ``sha256`` of the file's bytes."""

    path: Path
    x: np.ndarray
    y: np.ndarray | None
    group: np.ndarray | None
    class_names: tuple[str, ...] | None
    channel_names: tuple[str, ...] | None
    fs: float | None
    sha256: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape)  # type: ignore[return-value]


def _names(path: Path, key: str, arr: np.ndarray, n: int | None, what: str) -> tuple[str, ...]:
    if arr.ndim != 1:
        raise DatasetFormatError(f"{path}: '{key}' must be a 1-D array of names, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DatasetFormatError(f"{path}: '{key}' has {arr.shape[0]} names but {what}")
    names = tuple(str(v) for v in arr.tolist())
    if len(set(names)) != len(names):
        raise DatasetFormatError(f"{path}: '{key}' names one entry twice")
    return names


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_signal_npz(path: str | os.PathLike) -> SignalArrays:
    """Read and validate one ``signal_npz`` file (arrays: see the module docstring).

    Memoised on (path, size, modification time), so the engine's repeated builds read a file once.
    Raises :class:`DatasetNotFoundError` (no such file) or :class:`DatasetFormatError` naming the file and
    the array: missing ``x``, wrong ``ndim``, non-numeric or non-finite ``x``, ``y`` of another length or
    dtype, negative labels, labels beyond ``class_names``, unknown array names, pickled object arrays.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetNotFoundError(f"signal_npz file does not exist: {p}")
    st = p.stat()
    return _read_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _read_cached(path_s: str, size: int, mtime_ns: int) -> SignalArrays:
    del size, mtime_ns  # cache key only
    path = Path(path_s)
    if not zipfile.is_zipfile(path):
        raise DatasetFormatError(f"{path}: cannot read npz (not a zip archive written by np.savez)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DatasetFormatError(f"{path}: holds an object (pickled) array; store numbers and strings only "
                                     "(e.g. names as np.array([...], dtype=str))") from None
        raise DatasetFormatError(f"{path}: cannot read npz ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, a truncated member ...
        raise DatasetFormatError(f"{path}: cannot read npz ({type(exc).__name__}: {exc})") from None
    unknown = sorted(set(arrays) - set(SIGNAL_ARRAYS))
    if "x" not in arrays:
        hint = " (rename 'X' to 'x')" if "X" in arrays else ""
        raise DatasetFormatError(f"{path}: no array 'x'{hint}; signal_npz needs x (N, C, T), found {sorted(arrays)}")
    if unknown:
        raise DatasetFormatError(f"{path}: unknown array {unknown[0]!r}; signal_npz arrays are {list(SIGNAL_ARRAYS)}")
    x = arrays["x"]
    if x.ndim != 3:
        hint = "; for one channel store x[:, None, :]" if x.ndim == 2 else ""
        raise DatasetFormatError(f"{path}: 'x' must be (N, C, T) (3-D), got shape {x.shape}{hint}")
    if x.dtype.kind not in "fiu":
        raise DatasetFormatError(f"{path}: 'x' must hold numbers (float or int), got dtype {x.dtype}")
    n, c, t = x.shape
    if n == 0 or c == 0 or t == 0:
        raise DatasetFormatError(f"{path}: 'x' is empty, shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        i, ch, k = (int(v[0]) for v in np.nonzero(bad))
        raise DatasetFormatError(f"{path}: 'x' holds {int(bad.sum())} NaN or infinite values (first: sample {i}, "
                                 f"channel {ch}, time {k})")
    class_names = channel_names = None
    if "class_names" in arrays:
        class_names = _names(path, "class_names", arrays["class_names"], None, "")
    if "channel_names" in arrays:
        channel_names = _names(path, "channel_names", arrays["channel_names"], c, f"'x' has C={c} channels")
    y = None
    if "y" in arrays:
        y = arrays["y"]
        if y.ndim != 1 or y.shape[0] != n:
            raise DatasetFormatError(f"{path}: 'y' must have shape ({n},) like the samples of 'x', got {y.shape}")
        if y.dtype.kind not in "iu":
            raise DatasetFormatError(f"{path}: 'y' must hold integer class labels 0..K-1, got dtype {y.dtype} "
                                     "(store y.astype(int))")
        y = y.astype(np.int64)
        if (y < 0).any():
            i = int(np.flatnonzero(y < 0)[0])
            raise DatasetFormatError(f"{path}: 'y' holds the negative label {int(y[i])} (sample {i}); labels are "
                                     "0..K-1 (leave 'y' out for unlabelled data)")
        check_label_range(y, f"{path}: 'y'", None if class_names is None else len(class_names))
        if class_names is not None and int(y.max()) >= len(class_names):
            i = int(np.argmax(y))
            raise DatasetFormatError(f"{path}: 'y' holds label {int(y[i])} (sample {i}) but 'class_names' names "
                                     f"{len(class_names)} classes")
    fs = None
    if "fs" in arrays:
        f = arrays["fs"]
        if f.size != 1 or f.dtype.kind not in "fiu" or not np.isfinite(f).all() or float(f.reshape(-1)[0]) <= 0:
            raise DatasetFormatError(f"{path}: 'fs' must be one positive number (Hz), got {f!r}")
        fs = float(f.reshape(-1)[0])
    group = None
    if "group" in arrays:
        g = arrays["group"]
        if g.ndim != 1 or g.shape[0] != n:
            raise DatasetFormatError(f"{path}: 'group' must have shape ({n},) like the samples of 'x', got {g.shape}")
        if g.dtype.kind not in "iuUS":
            raise DatasetFormatError(f"{path}: 'group' must hold strings or integers, got dtype {g.dtype}")
        group = g.astype(str)
    return SignalArrays(path, x, y, group, class_names, channel_names, fs, _sha256(path))


# ------------------------------------------------------------------------------------------ a dataset


class SignalNpzData:
    """The splits of one ``signal_npz`` root (folder or file + ``split_by: group``), checked for agreement.

    ``split_rows(split)`` -> ``(SignalArrays, rows int64)``: the file and its rows that form ``split``.
    Properties describe the whole data: ``num_channels``, ``length`` (T), ``class_names``, ``channel_names``,
    ``fs``, ``num_classes`` (``len(class_names)`` else the largest label of any readable split + 1, None
    without labels).
    """

    def __init__(self, root: str | os.PathLike | None, options: dict | SignalNpzOptions | None = None):
        if root is None:
            raise ValueError("data.kind=signal_npz needs data.root (a folder with train.npz, or one .npz file)")
        self.root = Path(root).expanduser()
        self.options = options if isinstance(options, SignalNpzOptions) else signal_npz_options(options)
        if not self.root.exists():
            raise DatasetNotFoundError(f"data.root does not exist: {self.root} (signal_npz: a folder with "
                                       "train.npz [val.npz, test.npz], or one .npz file)")
        self.single = self.root.is_file()
        if self.options.split_by == "group" and not self.single:
            raise ValueError(f"data.options.split_by: group needs data.root to be one .npz file, got the folder "
                             f"{self.root}")
        if not self.single and not (self.root / "train.npz").is_file():
            raise DatasetNotFoundError(f"{self.root / 'train.npz'} does not exist (data.kind=signal_npz with a "
                                       "folder as data.root needs train.npz)")
        first = self._file("train")
        self._check_agree(first)
        self.reference = first
        if self.single and self.options.split_by == "group":
            self._check_groups(first)

    # -- files and rows -------------------------------------------------------------------------------
    def _path(self, split: str) -> Path:
        return self.root if self.single else self.root / f"{split}.npz"

    def _file(self, split: str) -> SignalArrays:
        return read_signal_npz(self._path(split))

    def has_split(self, split: str) -> bool:
        """Whether ``split`` exists (its file, or ``split_by: group`` with groups listed for it)."""
        if split == "train":
            return True
        if self.single:
            return self.options.split_by == "group" and bool(
                self.options.test_groups if split == "test" else self.options.val_groups)
        return self._path(split).is_file()

    def _check_agree(self, a: SignalArrays) -> None:
        ref = getattr(self, "reference", None)
        if ref is None or ref is a:
            return
        for what, u, v in (("channels C", a.x.shape[1], ref.x.shape[1]), ("length T", a.x.shape[2], ref.x.shape[2]),
                           ("class_names", a.class_names, ref.class_names),
                           ("channel_names", a.channel_names, ref.channel_names), ("fs", a.fs, ref.fs)):
            if u is not None and v is not None and u != v:
                raise DatasetFormatError(f"{a.path}: {what} {u!r} differs from {ref.path}'s {v!r}; every split "
                                         "file must agree")

    def _check_groups(self, a: SignalArrays) -> None:
        if a.group is None:
            raise DatasetFormatError(f"{a.path}: data.options.split_by: group needs a 'group' array (N,) in the file")
        present = set(np.unique(a.group).tolist())
        for name in ("test_groups", "val_groups"):
            for g in getattr(self.options, name):
                if g not in present:
                    shown = sorted(present)[:10]
                    raise ValueError(f"data.options.{name}: group {g!r} is not in {a.path} (its groups: {shown}"
                                     f"{' ...' if len(present) > 10 else ''})")
        held = set(self.options.test_groups) | set(self.options.val_groups)
        if present <= held:
            raise ValueError(f"data.options.test_groups and val_groups hold every group of {a.path}: no train "
                             "samples are left")

    def split_rows(self, split: str) -> tuple[SignalArrays, np.ndarray]:
        """``(file arrays, rows int64 sorted)`` of ``split`` in ``train`` (= ``pretrain``) / ``val`` / ``test``."""
        split = split_name(split, SIGNAL_SPLITS, SIGNAL_NPZ_KIND)
        if self.single:
            a = self.reference
            if self.options.split_by is None:
                if split != "train":
                    raise ValueError(f"data.root {self.root} is one file, which is the train split only; the "
                                     f"{split} split needs data.options.split_by: group with test_groups, or a "
                                     f"folder with {split}.npz (part finetune evaluates on test; --no-eval skips it)")
                return a, np.arange(a.x.shape[0], dtype=np.int64)
            test, val = set(self.options.test_groups), set(self.options.val_groups)
            if split == "val" and not val:
                raise ValueError("the val split needs data.options.val_groups (split_by: group)")
            member = {"test": np.isin(a.group, list(test)), "val": np.isin(a.group, list(val)),
                      "train": ~np.isin(a.group, list(test | val))}[split]
            return a, np.flatnonzero(member).astype(np.int64)
        path = self._path(split)
        if not path.is_file():
            hint = (" (part finetune and part evaluate read the test split; pass --no-eval to skip it)"
                    if split == "test" else "")
            raise DatasetNotFoundError(f"{path} does not exist: data.kind=signal_npz has no {split} split in "
                                       f"{self.root}{hint}")
        a = self._file(split)
        self._check_agree(a)
        return a, np.arange(a.x.shape[0], dtype=np.int64)

    # -- what the data says about itself -------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        return int(self.reference.x.shape[1])

    @property
    def length(self) -> int:
        return int(self.reference.x.shape[2])

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self._first_of("class_names")

    @property
    def channel_names(self) -> tuple[str, ...] | None:
        return self._first_of("channel_names")

    @property
    def fs(self) -> float | None:
        return self._first_of("fs")

    def _files(self) -> list[SignalArrays]:
        if self.single:
            return [self.reference]
        out = [self.reference]
        for split in ("val", "test"):
            if self._path(split).is_file():
                a = self._file(split)
                self._check_agree(a)
                out.append(a)
        return out

    def _first_of(self, name: str):
        for a in self._files():
            if getattr(a, name) is not None:
                return getattr(a, name)
        return None

    @property
    def num_classes(self) -> int | None:
        """``len(class_names)`` when named, else the largest label over the split files + 1; None unlabelled."""
        names = self.class_names
        if names is not None:
            return len(names)
        labels = [a.y for a in self._files() if a.y is not None]
        return int(max(int(y.max()) for y in labels)) + 1 if labels else None

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel ``(mean, std)`` of the train split (:func:`channel_stats`)."""
        a, rows = self.split_rows("train")
        return channel_stats(a.x[rows])


# ------------------------------------------------------------------------------------------ transforms


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``x (N, C, T)`` over samples and time (float64 sums). A flat channel
    (std below 1e-6) gets std 1, so it is centred but not blown up. Returns two lists of ``C`` floats."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (N, C, T), got shape {x.shape}")
    mean = x.mean(axis=(0, 2), dtype=np.float64)
    std = x.std(axis=(0, 2), dtype=np.float64)
    std = np.where(std < _EPS, 1.0, std)
    return mean.tolist(), std.tolist()


def normalize_signals(x: np.ndarray, mode: str, mean=None, std=None) -> np.ndarray:
    """``x (N, C, T)`` normalised by ``mode``: ``none``; ``window`` (per sample and channel over time,
    paper App. 8.1's instance normalisation; a flat one becomes zeros); ``dataset`` (``(x - mean_c) / std_c``
    with the per-channel ``mean``, ``std`` of :func:`channel_stats`). Returns float32 ``(N, C, T)``."""
    x = np.asarray(x, dtype=np.float32)
    if mode == "none":
        return x
    if mode == "window":
        m = x.mean(axis=-1, keepdims=True, dtype=np.float64)
        s = x.std(axis=-1, keepdims=True, dtype=np.float64)
        return ((x - m) / (s + _EPS)).astype(np.float32)
    if mode == "dataset":
        m = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1)
        s = np.asarray(std, dtype=np.float64).reshape(1, -1, 1)
        return ((x - m) / s).astype(np.float32)
    raise ValueError(f"normalize must be one of {list(NORMALIZE_MODES)}, got {mode!r}")


def fit_length(x: np.ndarray, length: int, policy: str, where: str = "x") -> np.ndarray:
    """Bring ``x (..., T)`` to ``(..., length)`` by ``policy``: ``none`` (``T`` must equal ``length``),
    ``crop`` (first ``length`` samples; ``T >= length``), ``pad`` (each channel's last value repeated at the
    end; ``T <= length``). Errors name ``where``, both lengths and the options that would fit them."""
    t = x.shape[-1]
    if t == length:
        return x
    fix = (f"set model.img_size: {t}" if policy == "none" else
           "use data.options.length_policy: pad" if t < length else "use data.options.length_policy: crop")
    if policy == "none" or (policy == "crop" and t < length) or (policy == "pad" and t > length):
        raise ValueError(f"{where} has T={t} samples but model.img_size is {length} "
                         f"(data.options.length_policy: {policy}); {fix}")
    if policy == "crop":
        return np.ascontiguousarray(x[..., :length])
    return np.concatenate([x, np.repeat(x[..., -1:], length - t, axis=-1)], axis=-1)


class SignalDataset(Dataset):
    """One split of a ``signal_npz`` root, normalised and brought to the model's length, in memory.

    Item ``i``: ``(x float32 tensor (C, T_model), label int)`` (``-1`` without ``y``).

    Attributes: ``split``, ``file`` (Path), ``rows`` (int64 rows of the file), ``labels`` (int64 ``(n,)``,
    ``-1`` unlabelled), ``groups`` (str ``(n,)`` or None), ``classes`` (class names or None),
    ``num_classes``, ``channels`` (names or None), ``fs``, ``normalize``, ``mean``/``std`` (dataset mode).
    """

    def __init__(self, data: SignalNpzData, split: str = "train", length: int | None = None,
                 channels: int | None = None, mean=None, std=None, max_samples: int | None = None):
        split = split_name(split, SIGNAL_SPLITS, SIGNAL_NPZ_KIND)
        a, rows = data.split_rows(split)
        o = data.options
        if max_samples is not None:
            if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
                raise ValueError(f"data.max_samples must be a positive int, got {max_samples!r}")
            rows = rows[:max_samples]
        if rows.size == 0:
            raise ValueError(f"the {split} split of {data.root} is empty")
        c = a.x.shape[1]
        if channels is not None and channels != c:
            raise ValueError(f"{a.path}: 'x' has C={c} channels but model.in_chans (data.channels) is {channels}; "
                             "make them equal")
        if o.normalize == "dataset":
            if mean is None and std is None:
                mean, std = data.channel_stats()
            for key, v in (("data.mean", mean), ("data.std", std)):
                if v is None or len(v) != c:
                    raise ValueError(f"{key} must list one value per channel ({c}) with data.options.normalize: "
                                     f"dataset, got {v!r}")
            mean, std = [float(v) for v in mean], [float(v) for v in std]
        elif mean is not None or std is not None:
            raise ValueError(f"data.mean / data.std are set but data.options.normalize is {o.normalize!r}; they are "
                             "only used by normalize: dataset")
        x = normalize_signals(a.x[rows], o.normalize, mean, std)
        if length is not None:
            x = fit_length(x, int(length), o.length_policy, where=f"{a.path}: 'x'")
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        self.split, self.file, self.rows, self.root = split, a.path, rows, data.root
        self.file_samples = int(a.x.shape[0])
        self.labels = (a.y[rows] if a.y is not None else np.full(rows.size, -1)).astype(np.int64)
        self.groups = None if a.group is None else a.group[rows]
        self.classes = data.class_names
        self.num_classes = data.num_classes
        self.channels = data.channel_names
        self.fs = data.fs
        self.normalize, self.mean, self.std = o.normalize, mean, std
        self.length_policy, self.sha256, self.options = o.length_policy, a.sha256, o

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.labels[i])

    def record(self) -> dict:
        """What this split holds, for a run's ``data.json``: file, SHA-256, rows (``"all"``, ``"first N"`` or
        the held-out-group rule), groups, class counts, normalisation and length policy."""
        out: dict[str, Any] = {"kind": SIGNAL_NPZ_KIND, "split": self.split, "file": str(self.file),
                               "sha256": self.sha256, "num_samples": len(self)}
        if self.options.split_by == "group":
            out["rows"] = {"train": "groups not in test_groups / val_groups", "test": "groups in test_groups",
                           "val": "groups in val_groups"}[self.split]
            out["test_groups"], out["val_groups"] = list(self.options.test_groups), list(self.options.val_groups)
        else:
            out["rows"] = "all" if len(self) == self.file_samples else f"first {len(self)}"
        if self.groups is not None:
            out["groups"] = sorted(np.unique(self.groups).tolist())
        if (self.labels >= 0).any():
            counts = np.bincount(self.labels[self.labels >= 0], minlength=self.num_classes or 0)
            names = self.classes or tuple(str(k) for k in range(counts.size))
            out["class_counts"] = {names[k]: int(v) for k, v in enumerate(counts)}
        out.update(normalize=self.normalize, length_policy=self.length_policy, shape=list(self.x.shape))
        if self.mean is not None:
            out.update(mean=self.mean, std=self.std)
        return out

    def __repr__(self) -> str:
        return (f"SignalDataset(split={self.split!r}, samples={len(self)}, shape={tuple(self.x.shape[1:])}, "
                f"classes={self.num_classes}, normalize={self.normalize!r}, file={str(self.file)!r})")


def build_signal_dataset(d, split: str | None = None, options: SignalNpzOptions | None = None) -> SignalDataset:
    """The ``split`` (default ``d.split``) of a :class:`part.config.DataConfig` with ``kind: signal_npz``.

    Uses ``d.root``, ``d.options`` (or ``options``, the same already read by :func:`signal_npz_options`),
    ``d.image_size`` (the model's ``T``), ``d.channels`` (``C``), ``d.mean`` / ``d.std`` (``normalize:
    dataset``; computed from the train split when both are unset) and ``d.max_samples``.
    """
    data = SignalNpzData(d.root, d.options if options is None else options)
    length = d.image_size
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
        raise ValueError(f"model.img_size must be the signal length T (an int) for data.kind=signal_npz, got {length!r}")
    return SignalDataset(data, split or d.split, length=length, channels=d.channels, mean=d.mean, std=d.std,
                         max_samples=d.max_samples)
