"""``part export --relative-encoder``: publish a PART pretraining as a folder that timm and ``part`` both read.

The layout and its loader are :mod:`part.engine.reference`; this module writes it (it reads the run with
:func:`part.engine.load_run`, which reads published folders, so writer and reader live apart).
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn
import yaml

from ..io import atomic_write
from .checkpoint import save_weights
from .reference import ENCODER_FILE

__all__ = ["export_with_encoder"]


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
    d = cfg.to_dict()
    if d["data"].get("root"):
        d["data"]["root"] = Path(str(d["data"]["root"])).name  # never the local directory layout

    def extra(folder: Path) -> None:  # written into the new export before it is swapped in: one atomic folder
        save_weights({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, folder / ENCODER_FILE)
        atomic_write(folder / "config.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(d, sort_keys=False)))

    return export_run(run, out, extra=extra)
