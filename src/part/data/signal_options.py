"""What every 1D data kind shares (``signal_npz`` and the sleep kinds): one ``normalize`` vocabulary, one split
vocabulary, and the one reader of a kind's typed ``data.options``.

``data.options.normalize`` is read here and nowhere else (:func:`normalize_mode`); each kind writes its default
once, in its options dataclass (``signal_npz``: ``dataset``; the raw sleep recordings and the synthetic nights:
``window``; ``sleep_npz``: ``none``):

==========  =====================================================================================================
``none``    the signals as they are
``window``  zero mean and unit std per sample and channel, over time (the paper's instance normalisation of EEG
            windows, App. 8.1)
``dataset`` ``(x - mean_c) / std_c`` with the per-channel statistics of the train split (``data.mean`` /
            ``data.std`` of the run's config, filled before training: :func:`part.engine.complete_config`)
==========  =====================================================================================================

The sleep kinds used to spell it as a bool (``true``: instance-normalise each window); old configs and run
folders keep loading: ``true`` reads as ``window`` and ``false`` as ``none``, here, once.

Splits (``data.split``): ``train``, ``val``, ``test``, and ``finetune`` (the low-label subjects of the sleep
kinds, paper App. 8.1); ``pretrain`` is another name of ``train`` (:func:`split_name`). Each kind offers some
of them; a ``val`` split can also be carved from ``train`` by ``data.val_carve`` (:mod:`part.data.subsets`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

__all__ = ["NORMALIZE_MODES", "SPLITS", "SPLIT_ALIASES", "normalize_mode", "split_name", "typed_options"]

NORMALIZE_MODES: tuple[str, ...] = ("none", "window", "dataset")
SPLITS: tuple[str, ...] = ("train", "val", "test", "finetune")
SPLIT_ALIASES: dict[str, str] = {"pretrain": "train"}


def normalize_mode(value, kind: str, offered: tuple[str, ...] = NORMALIZE_MODES) -> str:
    """``data.options.normalize`` as one of :data:`NORMALIZE_MODES` (the old bool spelling translated: ``true``
    -> ``window``, ``false`` -> ``none``); ``ValueError`` naming the option, the value and ``kind`` when the
    kind does not offer it."""
    mode = ("window" if value else "none") if isinstance(value, bool) else value
    if mode not in offered:
        extra = "" if offered == NORMALIZE_MODES else f" for data.kind={kind!r}"
        raise ValueError(f"data.options.normalize must be one of {list(offered)}{extra}, got {value!r}")
    return mode


def split_name(split: str, offered: tuple[str, ...], kind: str) -> str:
    """``data.split`` in the one vocabulary (``pretrain`` -> ``train``); ``ValueError`` naming it and the
    splits ``kind`` offers (aliases included) otherwise."""
    name = SPLIT_ALIASES.get(split, split)
    if name not in offered:
        names = [a for a, s in SPLIT_ALIASES.items() if s in offered] + list(offered)
        raise ValueError(f"data.split={split!r} is not a split of data.kind={kind!r}; choose one of {names}")
    return name


def _type_ok(value, hint) -> bool:
    if hint is Any:
        return True
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint) or hint
    if origin in (tuple, list):
        item = (args or (Any,))[0]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    return isinstance(value, origin)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               type(None): "null"}


def _describe(hint) -> str:
    args = typing.get_args(hint)
    if args and typing.get_origin(hint) not in (tuple, list):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) in (tuple, list):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    return _TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def typed_options(cls, given, kind: str, sort_valid: bool = False):
    """``data.options`` (a mapping, or None for the defaults) as the kind's options dataclass ``cls``.

    Unknown names raise ``ValueError`` listing the valid ones; a value not of its field's type (as annotated:
    ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``X | None``, ``tuple[X, ...]`` (a list)) raises
    ``ValueError`` naming ``data.options.<field>``, what it must be (the type, or ``cls.RULES[field]``) and the
    value. A ``normalize`` field is read by
    :func:`normalize_mode`. Lists are kept as tuples, so the options are hashable. Range checks are the
    kind's own."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ValueError(f"data.options must be a mapping, got {given!r}")
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(given) - set(fields), key=str)
    if unknown:
        valid = sorted(fields) if sort_valid else fields
        raise ValueError(f"unknown data.options {unknown} for data.kind={kind!r}; valid options: {valid}")
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in given.items():
        if name == "normalize":
            out[name] = normalize_mode(value, kind, getattr(cls, "NORMALIZE", NORMALIZE_MODES))
            continue
        if not _type_ok(value, hints[name]):
            rule = getattr(cls, "RULES", {}).get(name) or _describe(hints[name])
            raise ValueError(f"data.options.{name} must be {rule}, got {value!r}")
        out[name] = tuple(value) if isinstance(value, list) else value
    return cls(**out)
