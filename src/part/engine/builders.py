"""Build the pieces of a run from a :class:`part.config.Config`: backbone, objective, dataset.

This is the one place where config names turn into objects; the CLI, the engine, evaluation and the
capability tools all go through it, so a run folder's ``config.yaml`` always rebuilds the same model.
"""

from __future__ import annotations

import torch.nn as nn

from ..config import Config, DataConfig, ModelConfig
from ..data.kinds import DataRequest, data_kind, data_options, published_stats
from ..data.signal_augment import SignalAugment
from ..models.vit import VIT_SIZES, ViTConfig, VisionTransformer
from ..objectives.registry import build_objective as build_named
from ..objectives.registry import objective_kwargs
from .loader import RepeatedAugmentation


def build_backbone(m: ModelConfig) -> nn.Module:
    """``ModelConfig`` -> backbone without position embeddings (pretraining form, paper §4).

    2D: ``vit_tiny``/``vit_small``/``vit_base``/``custom``. 1D (paper §5.2): ``vit1d_paper`` (12.9M),
    ``vit1d_tiny``, ``vit1d_custom``, with ``img_size`` = window length T and ``patch_size`` = L samples.
    """
    from ..models.vit1d import ViT1DConfig, VisionTransformer1D

    arch = backbone_config(m)
    return VisionTransformer1D(arch) if isinstance(arch, ViT1DConfig) else VisionTransformer(arch)


def check_model_fits(m: ModelConfig, weights, where: str, prefix: str = "backbone.") -> None:
    """Before building: the backbone of ``m`` must be the one whose weights are in the safetensors file
    ``weights`` (its header only is read; keys under ``prefix``), else a one-line ``ValueError`` naming
    ``where`` and the argument (:func:`part.models.shapes.check_against_shapes`)."""
    from ..models.shapes import check_against_shapes
    from .checkpoint import weight_shapes

    check_against_shapes(backbone_config(m).to_dict(), weight_shapes(weights), where, prefix)


def backbone_config(m: ModelConfig):
    """The architecture arguments (:class:`~part.models.vit.ViTConfig` or
    :class:`~part.models.vit1d.ViT1DConfig`) that :func:`build_backbone` builds from ``m``; nothing is built."""
    from ..models.vit1d import VIT1D_SIZES, ViT1DConfig

    one_d = m.arch.startswith("vit1d")
    sizes = {f"vit1d_{k}": v for k, v in VIT1D_SIZES.items()} if one_d else {f"vit_{k}": v for k, v in VIT_SIZES.items()}
    custom = "vit1d_custom" if one_d else "custom"
    if m.arch in sizes:
        dims = dict(sizes[m.arch])
        dims.update({k: getattr(m, k) for k in ("embed_dim", "depth", "num_heads") if getattr(m, k) is not None})
    elif m.arch == custom:
        missing = [k for k in ("embed_dim", "depth", "num_heads") if getattr(m, k) is None]
        if missing:
            raise ValueError(f"model.arch={custom} needs model.{missing[0]} (give embed_dim, depth, num_heads)")
        dims = dict(embed_dim=m.embed_dim, depth=m.depth, num_heads=m.num_heads)
    else:
        raise ValueError(
            f"unknown model.arch {m.arch!r}; choose one of {['vit_' + k for k in VIT_SIZES]}, "
            f"'custom', {[f'vit1d_{k}' for k in VIT1D_SIZES]} or 'vit1d_custom'"
        )
    common = dict(in_chans=m.in_chans, mlp_ratio=m.mlp_ratio, class_token=m.class_token,
                  drop_path_rate=m.drop_path_rate, **dims)
    if one_d:
        if not isinstance(m.img_size, int):
            raise ValueError(f"model.img_size must be the window length T (an int) for 1D models, got {m.img_size}")
        return ViT1DConfig(signal_len=m.img_size, patch_len=m.patch_size,
                           pos_embed_mask_ratio=m.pos_embed_mask_ratio, **common)
    img = m.img_size if isinstance(m.img_size, int) else tuple(m.img_size)
    return ViTConfig(img_size=img, patch_size=m.patch_size, **common)


def build_objective(cfg: Config, backbone: nn.Module | None = None) -> nn.Module:
    """``Config`` -> pretext objective module (images in, loss + metrics out), via the registry.

    ``cfg`` is read, never changed: its objective section was checked and resolved at load
    (:func:`part.config.validate_config`); an unset PART field is the constructor's default. The objective
    checks its own arguments (e.g. ``num_pairs`` against its number of patches).
    """
    backbone = backbone if backbone is not None else build_backbone(cfg.model)
    return build_named(cfg.objective.name, backbone, **objective_kwargs(cfg.objective))


def data_defaults(cfg: Config) -> DataConfig:
    """Fill data fields left unset (image size, channels, normalisation) from the model and the data kind
    (its published statistics, :func:`part.data.kinds.published_stats`; signals have none)."""
    d = DataConfig(**{k: getattr(cfg.data, k) for k in DataConfig.__dataclass_fields__})
    if d.image_size is None:
        d.image_size = cfg.model.img_size
    if d.channels is None:
        d.channels = cfg.model.in_chans
    if d.mean is None and d.std is None:
        stats = published_stats(d)
        if stats is not None:
            d.mean, d.std = stats
    return d


def build_dataset(cfg: Config, train: bool = True, split: str | None = None):
    """The dataset of ``cfg.data`` with the paper's augmentation (train) or plain resize (eval).

    The kind's builder (:data:`part.data.kinds.DATA_KINDS`) reads the split; a ``val`` split carved by
    ``data.val_carve`` is read from ``train``. Training with ``data.augment`` adds the fine-tuning pieces of
    DeiT's recipe when set (paper App. 8.1): ``data.randaugment`` and ``data.reprob`` in the image transform
    (:func:`part.data.transforms.build_transforms`), and ``data.repeated_aug`` > 1 wraps the dataset in
    :class:`part.engine.loader.RepeatedAugmentation` seeded with ``train.seed``, the trainer's sampler seed.

    Items are ``(x, label)``; images ``(C, H, W)`` normalised, signals ``(C, T)``.
    """
    d = data_defaults(cfg)
    kind = data_kind(d.kind)
    split = split or d.split
    augment = train and d.augment
    read = "train" if split == "val" and d.val_carve is not None else split
    dataset = kind.build(DataRequest(d, kind.options(d.options), read, train, augment, cfg.train.seed, cfg.data))
    if kind.stream:
        return dataset
    if d.val_carve is not None or d.label_fraction is not None:
        dataset = _subsets(cfg, d, dataset, split)
    if augment and d.repeated_aug > 1:
        dataset = RepeatedAugmentation(dataset, d.repeated_aug, seed=cfg.train.seed)
    return dataset


def _subsets(cfg: Config, d: DataConfig, dataset, split: str):
    """The validation carve / label fraction of ``data`` (:mod:`part.data.subsets`) on a train-split reader;
    other splits (``test``, a signal set's own ``val``) pass through."""
    from ..data.subsets import apply_subsets

    if split not in ("train", "val") or (split == "val" and d.val_carve is None):
        return dataset
    return apply_subsets(dataset, split, val_carve=d.val_carve, carve_seed=d.carve_seed,
                         label_fraction=d.label_fraction,
                         label_seed=cfg.train.seed if d.label_seed is None else d.label_seed)


def build_batch_augment(cfg: Config) -> SignalAugment | None:
    """The augmentation the trainer applies to every training batch, or None.

    A kind whose options carry ``augment`` (``signal_npz``'s ``data.options.augment``) with it set, and
    ``data.augment`` true (the switch of all training augmentation): a
    :class:`part.data.signal_augment.SignalAugment`, ``(B, C, T) -> (B, C, T)``, applied to the normalised
    batch. Image augmentation is per item, inside the dataset (:func:`build_dataset`); other kinds have no
    batch augmentation. Only the trainer calls this: evaluation,
    probing and the pretext-loss read-out build their data with :func:`build_dataset` and are never augmented.
    """
    if not cfg.data.augment:
        return None
    aug = SignalAugment(getattr(data_options(cfg.data), "augment", ()))  # checked at config load
    return aug if aug else None
