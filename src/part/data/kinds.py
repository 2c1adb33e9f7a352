"""The data kinds: one table, :data:`DATA_KINDS`, with a row per ``data.kind`` saying everything the rest of
``part`` asks about a kind, so that nothing above this module tests a kind's name.

A row (:class:`DataKind`) holds

* ``name`` - the ``data.kind`` value; each name is written once, beside its reader
  (:data:`part.data.images.build.IMAGE_KINDS`, :data:`part.data.signal_npz.SIGNAL_NPZ_KIND`,
  :data:`part.data.sleep.SLEEP_KINDS`, :data:`part.data.wds.WDS_KIND`);
* ``dims`` - 2 for images ``(C, H, W)``, 1 for signals ``(C, T)``, None when the data says (``wds`` shards);
* ``options`` - ``data.options`` -> the kind's typed options (a frozen dataclass; the image kinds: their
  reader's keyword arguments, type-checked), raising ``ValueError`` naming ``data.options.<field>`` and the
  value. :func:`data_options` is the one place a config's options are read;
* ``build`` - a :class:`DataRequest` -> the dataset of one split (``(x, label)`` items);
* ``stream`` - its dataset is a stream (no length or index: no subsets, no repeated augmentation);
* ``stats`` - the published per-channel ``(mean, std)`` its items are normalised with unless the config sets
  them (images), or None: signals are normalised by ``data.options.normalize``, whose ``dataset`` statistics
  are the train split's, written into the config before training (:func:`part.engine.complete_config`);
* ``records`` - its datasets say which samples they hold (``record()``, written to a run's ``data.json``);
* ``describe`` - ``describe(root, options)``: what the data says about itself before training (classes,
  channels, train-split statistics), for the kinds whose config leaves values to the data (``signal_npz``);
* ``check`` - the kind's own rules on the rest of the ``data`` section (e.g. a stream has no index to carve;
  every signal kind: no image augmentation, from ``dims``);
* ``own_val`` - whether its options define a validation split of its own;
* ``preprocessing`` - what an export records that a user must do to raw arrays (``signal_npz``).

:func:`check_data_kind` is what the config's data check (:func:`part.config_checks.check_data`) calls for
the data section's kind rules.
A new data kind is its reader module plus one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from .images.build import IMAGE_KINDS, build_images, check_image_options, image_kind
from .signal_npz import SIGNAL_NPZ_KIND, SignalNpzData, build_signal_dataset, signal_npz_options
from .sleep.dataset import SLEEP_KINDS, build_sleep_dataset
from .sleep.options import sleep_options
from .transforms import IMAGENET_MEAN, IMAGENET_STD
from .wds import WDS_KIND, build_wds_dataset, wds_options

__all__ = ["DataKind", "DataRequest", "DATA_KINDS", "data_kind", "data_options", "data_normalize",
           "published_stats", "check_data_kind"]


@dataclass(frozen=True)
class DataRequest:
    """What a kind's builder gets: ``data``, the config's data section with its defaults filled
    (:func:`part.engine.data_defaults`); ``options``, its typed ``data.options``; the reader's ``split``;
    ``train`` (a training run reads it) and ``augment`` (training with ``data.augment``); ``seed``
    (``train.seed``); ``given``, the data section as the config wrote it."""

    data: Any
    options: Any
    split: str
    train: bool
    augment: bool
    seed: int
    given: Any


def _no_val(options) -> bool:
    return False


@dataclass(frozen=True)
class DataKind:
    """One ``data.kind`` (see the module docstring for each field)."""

    name: str
    dims: int | None
    options: Callable[[Any], Any]
    build: Callable[[DataRequest], Any]
    stats: tuple | None = None
    records: bool = False
    describe: Callable[[Any, Any], Any] | None = None
    check: Callable[[Any], None] | None = None
    own_val: Callable[[Any], bool] = _no_val
    preprocessing: Callable[[Any], dict] | None = None
    stream: bool = False


# ------------------------------------------------------------------------------------------ the rules


def _need(ok: bool, key: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"{key} must be {rule}, got {value!r}")


def _check_signals(d) -> None:
    """A signal kind takes no image augmentation."""
    _need(d.randaugment is None, "data.randaugment", d.randaugment,
          f"null for the signal source {d.kind} (an image augmentation)")
    _need(d.reprob == 0, "data.reprob", d.reprob, f"0 for the signal source {d.kind} (an image augmentation)")


def _check_stream(d) -> None:
    """A stream of shards has no length and no index: no ``max_samples``, repeats or carved subsets."""
    _need(d.max_samples is None, "data.max_samples", d.max_samples,
          "null for data.kind wds (use data.options.epoch_size)")
    _need(d.repeated_aug == 1, "data.repeated_aug", d.repeated_aug, "1 for data.kind wds")
    carve = d.val_carve is not None
    key, value = ("data.val_carve", d.val_carve) if carve else ("data.label_fraction", d.label_fraction)
    _need(d.val_carve is None and d.label_fraction is None, key, value,
          "null for data.kind wds (a stream has no index to carve)")


# ------------------------------------------------------------------------------------------ the builders


def _images(r: DataRequest):
    return build_images(r.data, r.split, r.augment, r.options)


def _signals(r: DataRequest):
    return build_signal_dataset(r.data, r.split, r.options)


def _sleep(r: DataRequest):
    return build_sleep_dataset(r.data, r.split, options=r.options)


def _wds(r: DataRequest):
    return build_wds_dataset(r.data, r.split, train=r.train, augment=r.augment, seed=r.seed, mean=r.given.mean,
                             std=r.given.std, options=r.options)


def _image_options(kind: str, given) -> dict:
    check_image_options(kind, given)
    return dict(given)


def _signal_npz_preprocessing(o) -> dict:
    return {"normalize": o.normalize, "length_policy": o.length_policy}


def _table(*kinds: DataKind) -> dict[str, DataKind]:
    return {k.name: k for k in kinds}


DATA_KINDS: dict[str, DataKind] = _table(
    *(DataKind(name, 2, partial(_image_options, name), _images, stats=(spec.mean, spec.std))
      for name, spec in IMAGE_KINDS.items()),
    DataKind(SIGNAL_NPZ_KIND, 1, signal_npz_options, _signals, records=True, describe=SignalNpzData,
             own_val=lambda o: bool(o.val_groups), preprocessing=_signal_npz_preprocessing),
    *(DataKind(name, 1, partial(sleep_options, spec.options, kind=name), _sleep, records=True)
      for name, spec in SLEEP_KINDS.items()),
    DataKind(WDS_KIND, None, wds_options, _wds, stats=(IMAGENET_MEAN, IMAGENET_STD), check=_check_stream,
             stream=True),
)
"""Every ``data.kind``, by name."""


# ------------------------------------------------------------------------------------------ lookups


def data_kind(kind: str) -> DataKind:
    """The row of ``kind`` (an image kind also under another case or ``-`` for ``_``, e.g. ``Fashion-MNIST``);
    ``ValueError`` listing the kinds otherwise."""
    row = DATA_KINDS.get(kind)
    if row is None and image_kind(kind) is not None:
        row = DATA_KINDS[str(kind).lower().replace("-", "_")]
    if row is None:
        raise ValueError(f"data.kind={kind!r} is not a data kind; choose one of {list(DATA_KINDS)}")
    return row


def data_options(d) -> Any:
    """``d.options`` (``d``: a :class:`part.config.DataConfig`) as the typed options of ``d.kind``: the one
    reader of a config's ``data.options``. ``ValueError`` naming ``data.options.<field>`` and the value."""
    return data_kind(d.kind).options(d.options)


def data_normalize(d) -> str | None:
    """``data.options.normalize`` of a signal kind in the one vocabulary (``none`` / ``window`` / ``dataset``,
    :mod:`part.data.signal_options`), or None for the kinds without it (images, ``wds``)."""
    return getattr(data_options(d), "normalize", None) if data_kind(d.kind).dims == 1 else None


def published_stats(d) -> tuple[list, list] | None:
    """The per-channel ``(mean, std)`` items of ``d.kind`` are normalised with when the config sets none (the
    kind's published statistics, averaged over the channels when their count is not ``d.channels``: grayscale
    statistics for RGB input or vice versa), or None for the kinds that have none (signals)."""
    stats = data_kind(d.kind).stats
    if stats is None:
        return None
    mean, std = (list(s) for s in stats)
    if len(mean) != d.channels:
        mean, std = [sum(mean) / len(mean)] * d.channels, [sum(std) / len(std)] * d.channels
    return mean, std


def check_data_kind(d) -> None:
    """The data section's kind rules (:func:`part.config_checks.check_data` calls it): a known ``data.kind``, its
    typed ``data.options``, no image augmentation for signals, and the kind's own rules. ``ValueError``
    naming the field and the value."""
    kind = data_kind(d.kind)
    if kind.dims == 1:
        _check_signals(d)
    kind.options(d.options)
    if kind.check is not None:
        kind.check(d)
