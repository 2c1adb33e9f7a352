"""A published PART model: the timm export of a pretraining run plus what rebuilds the whole PART model.

``part export --run RUN --out DIR --relative-encoder`` (:func:`export_with_encoder`) writes, beside the timm Hub
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
import yaml

from ..io import atomic_write
from .checkpoint import load_state_dict_checked, load_weights, save_weights

ENCODER_FILE = "relative_encoder.safetensors"
BACKBONE_FILE = "model.safetensors"

__all__ = ["ENCODER_FILE", "export_with_encoder", "is_published", "load_published"]


def is_published(folder: str | Path) -> bool:
    """A folder written by :func:`export_with_encoder` (config.yaml, model.safetensors, relative encoder)."""
    f = Path(folder)
    return all((f / n).is_file() for n in ("config.yaml", BACKBONE_FILE, ENCODER_FILE))


def export_with_encoder(run: str | Path, out: str | Path) -> Path:
    """Export ``run``'s backbone to ``out`` in timm's layout, plus ``config.yaml`` and the relative encoder
    (module docstring). The run must be a PART pretraining (an objective with a relative encoder)."""
    from .export import export_run
    from .runs import load_run

    objective, cfg = load_run(run)
    head = getattr(objective, "head", None)
    if not isinstance(head, nn.Module) or not hasattr(objective, "sampler"):
        raise ValueError(f"--relative-encoder: {run} is a {cfg.objective.name} run, not a PART pretraining "
                         "(no relative encoder to publish)")
    out = export_run(run, out)
    save_weights({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, out / ENCODER_FILE)
    d = cfg.to_dict()
    if d["data"].get("root"):
        d["data"]["root"] = Path(str(d["data"]["root"])).name  # never the local directory layout
    atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(d, sort_keys=False)))
    return out


def load_published(folder: str | Path, objective: nn.Module) -> nn.Module:
    """Fill ``objective`` (built from the folder's ``config.yaml``) with ``model.safetensors`` (its backbone)
    and ``relative_encoder.safetensors`` (its head); every tensor must match (names and shapes)."""
    f = Path(folder)
    state = {f"backbone.{k}": v for k, v in load_weights(f / BACKBONE_FILE).items()}
    state.update({f"head.{k}": v for k, v in load_weights(f / ENCODER_FILE).items()})
    load_state_dict_checked(objective, state, what=f"{f / BACKBONE_FILE} + {f / ENCODER_FILE}")
    return objective
