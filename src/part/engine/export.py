"""Export the backbone alone with timm's parameter names (``export/model.safetensors`` + ``config.json``).

``config.json`` follows the layout timm reads for Hub models (``architecture``, ``num_classes``,
``num_features``, ``pretrained_cfg``) plus ``model_args``: the keyword arguments of
``timm.models.vision_transformer.VisionTransformer`` that rebuild this network, e.g.::

    import json, timm, safetensors.torch
    cfg = json.load(open("export/config.json"))
    net = timm.models.vision_transformer.VisionTransformer(**cfg["model_args"])
    net.load_state_dict(safetensors.torch.load_file("export/model.safetensors"))

A PART-pretrained backbone has no position embeddings (``pos_embed="none"``); fine-tuned ones do.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from .checkpoint import load_weights, save_weights, write_json


def timm_model_args(backbone: nn.Module) -> dict:
    c = backbone.config
    img = c.img_size if isinstance(c.img_size, int) else list(c.img_size)
    return {
        "img_size": img, "patch_size": c.patch_size, "in_chans": c.in_chans, "num_classes": c.num_classes,
        "global_pool": c.global_pool, "embed_dim": c.embed_dim, "depth": c.depth, "num_heads": c.num_heads,
        "mlp_ratio": c.mlp_ratio, "qkv_bias": c.qkv_bias, "class_token": c.class_token,
        "pos_embed": "learn" if backbone.pos_embed is not None else "none", "no_embed_class": False,
        "fc_norm": False,
    }


def export_backbone(backbone: nn.Module, out_dir: str | Path, mean=None, std=None,
                    preprocessing: dict | None = None) -> Path:
    """Write ``model.safetensors`` (backbone state dict, timm names) and ``config.json`` into ``out_dir``.

    ``preprocessing``: what inputs went through before the backbone (e.g. a signal run's normalisation and
    per-channel statistics), written as ``config.json["preprocessing"]``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = backbone.state_dict()
    save_weights(state, out / "model.safetensors", {"format": "pt"})
    config = {"part_config": backbone.config.to_dict(), "num_features": backbone.embed_dim}
    if hasattr(backbone.config, "signal_len"):  # 1D backbones: no timm equivalent, keep our own args
        config["architecture"] = "part_vit1d"
    else:
        args = timm_model_args(backbone)
        size = backbone.img_size
        config.update({
            "architecture": "vit_custom", "num_classes": args["num_classes"], "model_args": args,
            "pretrained_cfg": {"input_size": [args["in_chans"], size[0], size[1]],
                               "mean": list(mean) if mean else None, "std": list(std) if std else None,
                               "num_classes": args["num_classes"], "classifier": "head"},
        })
    if preprocessing is not None:
        config["preprocessing"] = dict(preprocessing)
    write_json(out / "config.json", config)
    return out


def load_exported(out_dir: str | Path) -> tuple[dict, dict]:
    """``(state_dict, config)`` of an export folder."""
    import json

    out = Path(out_dir)
    if not (out / "model.safetensors").is_file():
        raise ValueError(f"no exported weights in {out} (model.safetensors missing)")
    return load_weights(out / "model.safetensors"), json.loads((out / "config.json").read_text())
