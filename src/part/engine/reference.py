"""A published PART model: the timm export of a pretraining run plus what rebuilds the whole PART model.

``part export --run RUN --out DIR --relative-encoder`` (:func:`part.engine.publish.export_with_encoder`) writes, beside the timm Hub
files of :func:`part.engine.export.export_run` (``config.json``, ``model.safetensors``, ``README.md``):

* ``config.yaml``: the run's resolved config, with ``data.root`` reduced to its last component (nothing of the
  local directory layout is published);
* ``relative_encoder.safetensors``: the relative encoder's weights (``head.*`` of the objective, a few hundred
  KB), so the folder rebuilds the full PART model (paper §4: ViT + relative encoder).

timm reads the backbone (``timm.create_model("local-dir:DIR", pretrained=True)``); ``part probe``, ``part
visualize`` and :func:`part.engine.load_run` read the whole model: :func:`load_published` joins
``model.safetensors`` (the backbone, timm's names are the backbone's own) and the relative encoder.
``assets/reference/fmnist_part/`` is such a folder (docs/results.md).
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from .checkpoint import load_state_dict_checked, load_weights

ENCODER_FILE = "relative_encoder.safetensors"
BACKBONE_FILE = "model.safetensors"

__all__ = ["ENCODER_FILE", "BACKBONE_FILE", "is_published", "load_published"]


def is_published(folder: str | Path) -> bool:
    """A folder written by :func:`export_with_encoder` (config.yaml, model.safetensors, relative encoder)."""
    f = Path(folder)
    return all((f / n).is_file() for n in ("config.yaml", BACKBONE_FILE, ENCODER_FILE))


def load_published(folder: str | Path, objective: nn.Module) -> nn.Module:
    """Fill ``objective`` (built from the folder's ``config.yaml``) with ``model.safetensors`` (its backbone)
    and ``relative_encoder.safetensors`` (its head); every tensor must match (names and shapes)."""
    f = Path(folder)
    state = {f"backbone.{k}": v for k, v in load_weights(f / BACKBONE_FILE).items()}
    state.update({f"head.{k}": v for k, v in load_weights(f / ENCODER_FILE).items()})
    load_state_dict_checked(objective, state, what=f"{f / BACKBONE_FILE} + {f / ENCODER_FILE}")
    return objective
