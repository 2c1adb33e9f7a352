"""Read a run folder back: config + weights -> the objective module."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ..config import Config, load_config
from .builders import build_objective
from .checkpoint import list_checkpoints, load_state_dict_checked, load_weights


def load_run(run_dir: str | Path, checkpoint: str | None = None) -> tuple[nn.Module, Config]:
    """Rebuild the objective of a run from its ``config.yaml`` and load its weights (eval mode).

    Uses ``weights.safetensors`` (finished runs) or, if absent or ``checkpoint="last"``, the newest
    checkpoint. Raises ``ValueError`` naming the folder when there is nothing to load.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"run folder not found: {run}")
    if not (run / "config.yaml").is_file():
        raise ValueError(f"{run} is not a part run folder (no config.yaml)")
    cfg = load_config(run / "config.yaml")
    path = run / "weights.safetensors"
    if checkpoint == "last" or not path.is_file():
        ckpts = list_checkpoints(run / "checkpoints")
        if not ckpts:
            raise ValueError(f"run folder {run} has no weights (no weights.safetensors and no checkpoints)")
        path = ckpts[-1].with_suffix(".safetensors")
    objective = build_objective(cfg)
    load_state_dict_checked(objective, load_weights(path), what=str(path))
    return objective.eval(), cfg
