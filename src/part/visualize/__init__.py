"""PART's capabilities (paper §5.1) as tools: off-grid reconstruction (Fig. 4), patch uncertainty
(Fig. 5), negative symmetry (Fig. 6). Tensors first (:func:`reconstruct`, :func:`uncertainty`,
:func:`symmetry`), pictures second (:func:`visualize`, ``part visualize``)."""

from .api import KINDS, VisualizationOutput, load_images, load_model, visualize
from .plots import Display, plot_reconstruction, plot_symmetry, plot_uncertainty
from .reconstruct import (
    Reconstruction,
    choose_reference,
    least_squares_centres,
    paint_patches,
    paint_values,
    place_from_reference,
    placement_errors,
    reconstruct,
    reconstruct_from_predictions,
    sample_and_predict,
)
from .symmetry import Symmetry, negative_symmetry_score, offdiag_corr, order_top_left, permute_matrix, symmetry
from .uncertainty import Uncertainty, position_spread, predicted_positions, uncertainty, uncertainty_map

__all__ = [
    "KINDS", "VisualizationOutput", "load_images", "load_model", "visualize",
    "Display", "plot_reconstruction", "plot_symmetry", "plot_uncertainty",
    "Reconstruction", "choose_reference", "least_squares_centres", "paint_patches", "paint_values",
    "place_from_reference", "placement_errors", "reconstruct", "reconstruct_from_predictions", "sample_and_predict",
    "Symmetry", "negative_symmetry_score", "offdiag_corr", "order_top_left", "permute_matrix", "symmetry",
    "Uncertainty", "position_spread", "predicted_positions", "uncertainty", "uncertainty_map",
]
