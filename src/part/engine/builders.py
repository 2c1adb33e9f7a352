"""Build the pieces of a run from a :class:`part.config.Config`: backbone, objective, dataset.

This is the one place where config names turn into objects; the CLI, the engine, evaluation and the
capability tools all go through it, so a run folder's ``config.yaml`` always rebuilds the same model.
"""

from __future__ import annotations

import torch.nn as nn

from ..config import Config, DataConfig, ModelConfig
from ..models.vit import VIT_SIZES, ViTConfig, VisionTransformer

PART_SAMPLERS = {"part": "offgrid", "part_grid": "grid", "part_scale": "scale"}


def build_backbone(m: ModelConfig) -> nn.Module:
    """``ModelConfig`` -> backbone without position embeddings (pretraining form, paper §4)."""
    if m.arch.startswith("vit1d"):
        from ..models import vit1d

        return vit1d.build_vit1d(m)
    sizes = {f"vit_{k}": v for k, v in VIT_SIZES.items()}
    if m.arch in sizes:
        dims = dict(sizes[m.arch])
        for key in ("embed_dim", "depth", "num_heads"):
            if getattr(m, key) is not None:
                dims[key] = getattr(m, key)
    elif m.arch == "custom":
        missing = [k for k in ("embed_dim", "depth", "num_heads") if getattr(m, k) is None]
        if missing:
            raise ValueError(f"model.arch=custom needs model.{missing[0]} (and embed_dim, depth, num_heads)")
        dims = dict(embed_dim=m.embed_dim, depth=m.depth, num_heads=m.num_heads)
    else:
        raise ValueError(
            f"unknown model.arch {m.arch!r}; choose one of {sorted(sizes)}, 'custom', or a 1D preset (vit1d_*)"
        )
    img = m.img_size if isinstance(m.img_size, int) else tuple(m.img_size)
    return VisionTransformer(ViTConfig(
        img_size=img, patch_size=m.patch_size, in_chans=m.in_chans, mlp_ratio=m.mlp_ratio,
        class_token=m.class_token, drop_path_rate=m.drop_path_rate, **dims,
    ))


def build_objective(cfg: Config, backbone: nn.Module | None = None) -> nn.Module:
    """``Config`` -> pretext objective module (images in, loss + metrics out)."""
    backbone = backbone if backbone is not None else build_backbone(cfg.model)
    o = cfg.objective
    if o.name in PART_SAMPLERS:
        from ..objectives.part import PARTModel

        sampler = PART_SAMPLERS[o.name]
        if getattr(backbone, "spatial_dims", 2) == 1:  # 1D backbone: window samplers (paper §5.2)
            from ..sampling.windows1d import build_window_sampler

            kw = {"num_patches": o.num_patches}
            if sampler == "scale":
                kw["scale_range"] = tuple(o.scale_range)
            sampler = build_window_sampler(sampler, backbone.patch_size, **kw)
        return PARTModel(
            backbone, head=o.head, num_pairs=o.num_pairs, sampler=sampler, num_patches=o.num_patches,
            box_size=o.box_size, scale_range=tuple(o.scale_range), head_heads=o.head_heads,
            head_hidden=o.head_hidden, **o.options,
        )
    from ..objectives.registry import build_objective as build_baseline

    return build_baseline(o.name, backbone, **o.options)


def data_defaults(cfg: Config) -> DataConfig:
    """Fill data fields left unset (image size, channels, normalisation) from the model and dataset."""
    from ..data import transforms as T

    d = DataConfig(**{k: getattr(cfg.data, k) for k in DataConfig.__dataclass_fields__})
    if d.image_size is None:
        d.image_size = cfg.model.img_size
    if d.channels is None:
        d.channels = cfg.model.in_chans
    if d.mean is None and d.std is None:
        stats = {
            "fashion_mnist": (T.FASHION_MNIST_MEAN, T.FASHION_MNIST_STD),
            "idx": (T.FASHION_MNIST_MEAN, T.FASHION_MNIST_STD),
            "cifar": (T.CIFAR100_MEAN, T.CIFAR100_STD),
        }.get(d.kind, (T.IMAGENET_MEAN, T.IMAGENET_STD))
        mean, std = (list(s) for s in stats)
        if len(mean) != d.channels:  # grayscale stats for RGB input or vice versa
            mean, std = [sum(mean) / len(mean)] * d.channels, [sum(std) / len(std)] * d.channels
        d.mean, d.std = mean, std
    return d


def build_dataset(cfg: Config, train: bool = True, split: str | None = None):
    """The dataset of ``cfg.data`` with the paper's augmentation (train) or plain resize (eval).

    Items are ``(x, label)``; images ``(C, H, W)`` normalised, signals ``(C, T)``.
    """
    d = data_defaults(cfg)
    split = split or d.split
    if d.kind.startswith("sleep") or d.kind in ("physionet2018", "sleep_edf"):
        from ..data import sleep

        return sleep.build_sleep_dataset(d, split=split, seed=cfg.train.seed)
    from ..data.images import build_image_dataset
    from ..data.transforms import build_transforms

    tf = build_transforms(
        train=train and d.augment, image_size=d.image_size, mean=d.mean, std=d.std,
        rrc_scale=tuple(d.rrc_scale) if d.rrc_scale else None, hflip=d.hflip,
    )
    opts = dict(d.options)
    if d.kind == "imagefolder":
        opts["skip_corrupt"] = d.skip_corrupt
    return build_image_dataset(
        d.kind, d.root, split, channels=d.channels, image_size=d.image_size, transform=tf,
        max_samples=d.max_samples, **opts,
    )
