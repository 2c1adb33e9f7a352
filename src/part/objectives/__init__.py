"""Pretext objectives: each a pure nn.Module, images in, loss + diagnostics out.

PART (paper §4) and its ablations (PART-grid, scale/aspect), and the baselines the paper compares
against (MP3, DropPos, MAE, supervised), all built by name with :func:`build_objective`.
"""

from ..models.pos_embed import sincos_pos_embed_2d
from .droppos import DropPosObjective, DropPosOutput, smoothing_matrix
from .mae import MAEObjective, MAEOutput, random_masking
from .mp3 import MP3Objective, MP3Output
from .part import PARTModel, PARTOutput, translation_metrics
from .registry import OBJECTIVES, build_objective, objective_names, objective_options
from .supervised import SupervisedObjective, SupervisedOutput

__all__ = [
    "DropPosObjective", "DropPosOutput", "smoothing_matrix", "MAEObjective", "MAEOutput", "random_masking",
    "sincos_pos_embed_2d", "MP3Objective", "MP3Output", "PARTModel", "PARTOutput", "translation_metrics",
    "OBJECTIVES", "build_objective", "objective_names", "objective_options", "SupervisedObjective", "SupervisedOutput",
]
