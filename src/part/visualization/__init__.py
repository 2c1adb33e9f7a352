"""PART's capabilities (paper §5.1) as tools: off-grid reconstruction (Fig. 4), patch uncertainty
(Fig. 5), negative symmetry (Fig. 6). Tensors first, pictures second:

* :mod:`.reconstruct`, :mod:`.uncertainty`, :mod:`.symmetry` - the tensor functions of the same names
  (``from part.visualization.reconstruct import reconstruct``); the package attributes of those names are
  the modules, never hidden by their functions;
* :mod:`.plots` - the figures;
* :mod:`.api` - :func:`visualize` (also ``part.visualize`` and ``part visualize``): a run folder and image
  files (read by :mod:`part.data.images`) -> PNGs + one JSON of numbers.
"""

from . import reconstruct, symmetry, uncertainty
from .api import KINDS, PARTLike, VisualizationOutput, load_images, load_model, visualize
from .plots import Display, plot_reconstruction, plot_symmetry, plot_uncertainty
from .reconstruct import (
    Reconstruction,
    choose_reference,
    least_squares_centres,
    paint_patches,
    paint_values,
    place_from_reference,
    placement_errors,
    reconstruct_from_predictions,
    sample_and_predict,
)
from .symmetry import Symmetry, negative_symmetry_score, offdiag_corr, order_top_left, permute_matrix
from .uncertainty import Uncertainty, position_spread, predicted_positions, uncertainty_map

__all__ = [
    "KINDS", "PARTLike", "VisualizationOutput", "load_images", "load_model", "visualize",
    "Display", "plot_reconstruction", "plot_symmetry", "plot_uncertainty",
    "Reconstruction", "choose_reference", "least_squares_centres", "paint_patches", "paint_values",
    "place_from_reference", "placement_errors", "reconstruct_from_predictions", "sample_and_predict",
    "Symmetry", "negative_symmetry_score", "offdiag_corr", "order_top_left", "permute_matrix",
    "Uncertainty", "position_spread", "predicted_positions", "uncertainty_map",
    "reconstruct", "symmetry", "uncertainty",  # the modules
]
