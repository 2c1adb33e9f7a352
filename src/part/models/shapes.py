"""Architecture arguments checked against the tensor shapes of the weights meant for them, before a model is
built: a config that claims ``depth: 100000`` (an edited ``config.json`` of an export, a run folder's
``config.yaml``) must fail in one line instead of building a model of that size first.

:func:`architecture_args` reads the ``part_config`` mapping of an export (keys and types of
:class:`~part.models.vit.ViTConfig` / :class:`~part.models.vit1d.ViT1DConfig`); :func:`check_against_shapes`
compares arguments with ``{name: shape}`` of a weights file (a safetensors header, read without the
tensors). Pure functions of mappings: no files, no tensors.
"""

from __future__ import annotations

import dataclasses
import re
import typing

from .vit import ViTConfig
from .vit1d import ViT1DConfig

_BLOCK = re.compile(r"blocks\.(\d+)\.")


def architecture_args(part_config, where: str, one_d: bool) -> dict:
    """``part_config`` (an export's architecture arguments) checked key by key against the fields of
    :class:`ViT1DConfig` (``one_d``) or :class:`ViTConfig`: an unknown key or a value of the wrong type raises
    ``ValueError`` naming ``where`` and the key. Returns the arguments (``img_size`` lists as tuples)."""
    if not isinstance(part_config, dict):
        raise ValueError(f"{where}: 'part_config' must be a mapping of architecture arguments, got "
                         f"{type(part_config).__name__}")
    cls = ViT1DConfig if one_d else ViTConfig
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    args = {}
    for key, value in part_config.items():
        if key not in fields:
            raise ValueError(f"{where}: unknown key part_config.{key} (valid keys: {', '.join(fields)})")
        args[key] = _typed(value, hints[key], f"{where}: part_config.{key}")
    return args


def _typed(value, hint, what: str):
    def bad(rule):
        return ValueError(f"{what} must be {rule}, got {value!r}")

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a non-negative integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
            raise bad("a non-negative number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    # img_size: an int or [H, W]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise bad("a positive integer or [H, W]")


def check_against_shapes(args: dict, shapes: dict, where: str, prefix: str = "", one_d: bool | None = None) -> None:
    """Raise ``ValueError`` (one line naming ``where`` and the argument) when the architecture ``args`` (the
    fields of :class:`ViTConfig` / :class:`ViT1DConfig`, whose defaults fill what ``args`` leaves out; ``one_d``
    default: ``signal_len`` in ``args``) cannot be the model whose
    weights have the tensor ``shapes`` (``{name: shape}``; the backbone's keys under ``prefix``).

    Checked: depth (the blocks present), embed_dim, in_chans and the patch size (the patch embedding),
    the MLP width (``mlp_ratio``), num_heads (divides embed_dim), num_classes (the classifier ``head``), the
    position embeddings (present when ``pos_embed`` is set, one per patch of the grid) and the class token."""
    sh = {k[len(prefix):]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}
    one_d = "signal_len" in args if one_d is None else one_d
    defaults = (ViT1DConfig if one_d else ViTConfig)()
    get = lambda k: args.get(k, getattr(defaults, k))  # noqa: E731

    def fail(key, value, found):
        raise ValueError(f"{where}: {key}={value!r} does not fit the weights ({found}); the architecture "
                         "arguments and the weights file are not from the same model")

    proj = sh.get("patch_embed.proj.weight")
    if proj is None:
        raise ValueError(f"{where}: the weights hold no {prefix}patch_embed.proj.weight (not a ViT backbone of "
                         "part)")
    depth = 1 + max((int(m.group(1)) for k in sh if (m := _BLOCK.match(k))), default=-1)
    if get("depth") != depth:
        fail("depth", get("depth"), f"{depth} blocks")
    embed = proj[0]
    if get("embed_dim") != embed:
        fail("embed_dim", get("embed_dim"), f"patch embedding of width {embed}")
    if get("in_chans") != proj[1]:
        fail("in_chans", get("in_chans"), f"{proj[1]} input channels")
    patch_key = "patch_len" if one_d else "patch_size"
    if tuple(proj[2:]) != (get(patch_key),) * (1 if one_d else 2):
        fail(patch_key, get(patch_key), f"patch embedding kernel {list(proj[2:])}")
    heads = get("num_heads")
    if not 1 <= heads <= embed or embed % heads:
        fail("num_heads", heads, f"embed_dim {embed} is not divisible by it")
    fc1 = sh.get("blocks.0.mlp.fc1.weight")
    if fc1 is not None and int(embed * get("mlp_ratio")) != fc1[0]:
        fail("mlp_ratio", get("mlp_ratio"), f"MLP width {fc1[0]} for embed_dim {embed}")
    head = sh.get("head.weight")
    classes = get("num_classes")
    if head is not None and classes not in (0, head[0]):
        fail("num_classes", classes, f"a classifier of {head[0]} classes")
    if head is None and classes:
        fail("num_classes", classes, "no classifier head")
    cls_token = "cls_token" in sh
    if get("class_token") != cls_token:
        fail("class_token", get("class_token"), "a class token" if cls_token else "no class token")
    pos = sh.get("pos_embed")
    if one_d:
        length = get("signal_len")
        grid = length // get("patch_len")
    else:
        size = get("img_size")
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        grid = (h // get("patch_size")) * (w // get("patch_size"))
    if get("pos_embed") and pos is None:
        fail("pos_embed", True, "no position embeddings")
    if pos is not None and pos[1] != grid + int(cls_token):
        key = "signal_len" if one_d else "img_size"
        fail(key, get(key), f"{pos[1] - int(cls_token)} position embeddings")


__all__ = ["architecture_args", "check_against_shapes"]
