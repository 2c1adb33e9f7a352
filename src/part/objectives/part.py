"""The PART objective (paper §4): sample patches, embed them without position embeddings, predict the
relative transform of random (ref, tgt) pairs, regress with MSE.

    images (B, C, H, W)
      -> sampler           patches (B, N, C, P, P), boxes (B, N, 4)
      -> backbone          X' (B, N, d)                       (no position embeddings)
      -> sample_pairs      pairs (B, M, 2)
      -> relative encoder  pred (B, M, k)
      -> relative_targets  target (B, M, k)
      -> L_MSE = mean over pairs and components of (pred - target)^2

``PARTModel`` is a plain ``nn.Module``: images in, :class:`PARTOutput` out. It knows no files, loop or
config. The same class serves 1D signals when given a 1D sampler and a 1D backbone (anything with
``forward_patches`` and ``patch_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.heads import build_head
from ..sampling.samplers import build_sampler
from ..targets import relative_targets, resolve_num_pairs, sample_pairs, validate_num_pairs


@dataclass
class PARTOutput:
    """What one PART forward pass returns.

    loss: scalar MSE (paper's L_MSE). pred/target: ``(B, M, k)``. boxes: ``(B, N, 2D)``.
    pairs: ``(B, M, 2)``. metrics: detached floats-as-tensors: ``err_x``, ``err_y`` (mean squared error
    per component), ``err_euclid`` (mean l2 distance of the translation part), ``err_w``/``err_h`` when
    sizes vary; 1D uses ``err_t`` (and ``err_len``).
    """

    loss: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    boxes: torch.Tensor
    pairs: torch.Tensor
    metrics: dict = field(default_factory=dict)


def translation_metrics(pred: torch.Tensor, target: torch.Tensor, spatial_dims: int = 2) -> dict:
    """Per-component MSE and Euclidean error (paper Tab. 5 metrics), detached.

    ``pred``/``target`` ``(..., k)``; the first ``spatial_dims`` components are translations.
    """
    with torch.no_grad():
        dtype = torch.promote_types(pred.dtype, torch.float32)  # fp32 at least; float64 stays float64
        diff = (pred.detach().to(dtype) - target.to(dtype)).reshape(-1, target.shape[-1])
        sq = diff.pow(2).mean(dim=0)
        if spatial_dims == 2:
            names = ["err_x", "err_y", "err_w", "err_h"]
        else:
            names = ["err_t", "err_len"]
        out = {names[i]: sq[i] for i in range(min(len(names), diff.shape[-1]))}
        out["err_euclid"] = diff[:, :spatial_dims].norm(dim=-1).mean()
    return out


class PARTModel(nn.Module):
    """PART pretraining model: backbone + relative encoder + MSE on relative translations.

    Args:
        backbone: encoder with ``forward_patches(patches) -> tokens`` and ``patch_tokens(tokens)``,
            e.g. :func:`part.vit_tiny`. Its position embeddings are not used here.
        head: relative encoder name (``cross_attention``, ``pairwise_mlp``, ``mlp``, or a
            ``*_reference`` implementation) or a ready ``nn.Module``.
        num_pairs: #pairs M per image, or ``"all"`` for every ordered pair.
        sampler: ``"offgrid"`` (PART), ``"grid"`` (PART-grid) or ``"scale"`` (scale/aspect extension),
            or a sampler object.
        num_patches: N (default ``H * W / P^2``); fewer patches = more masking.
        box_size: side D of off-grid boxes (default P).
        scale_range: size range (in units of P) for the ``scale`` sampler.
        head_heads: attention heads of the cross-attention head (default: the backbone's).
        head_hidden: hidden width for the MLP heads.
        check_inputs: validate images (4D, finite) on every call.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: str | nn.Module = "cross_attention",
        num_pairs: int | str = 2048,
        sampler="offgrid",
        num_patches: int | None = None,
        box_size: float | None = None,
        scale_range: tuple[float, float] | None = None,
        head_heads: int | None = None,
        head_hidden: int | None = None,
        check_inputs: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        patch_size = backbone.patch_size
        if isinstance(sampler, str) and getattr(backbone, "spatial_dims", 2) == 1:
            from ..sampling.windows1d import build_window_sampler  # 1D windows (paper §5.2)

            sampler = build_window_sampler(
                sampler, patch_size, num_patches=num_patches, window_len=box_size,
                scale_range=scale_range if sampler == "scale" else None,
            )
        elif isinstance(sampler, str):
            sampler = build_sampler(
                sampler, patch_size, num_patches=num_patches, box_size=box_size,
                scale_range=scale_range if sampler == "scale" else None,
            )
        self.sampler = sampler
        self.target_dim = sampler.target_dim
        self.spatial_dims = getattr(sampler, "spatial_dims", 2)
        validate_num_pairs(num_pairs)
        self.num_pairs = num_pairs
        self.check_inputs = check_inputs
        n_fixed = self._fixed_num_patches()
        self.num_patches = n_fixed  # N per image for the backbone's input size (as the baselines expose it)
        if n_fixed is not None:
            resolve_num_pairs(num_pairs, n_fixed)  # fail at construction, not at the first step
        if isinstance(head, str):
            head = build_head(
                head, backbone.embed_dim, out_dim=self.target_dim,
                num_heads=head_heads or getattr(backbone, "num_heads", None),
                num_patches=n_fixed, hidden_dim=head_hidden,
            )
        self.head = head

    def _fixed_num_patches(self) -> int | None:
        size = getattr(self.backbone, "img_size", None)
        if size is None or not hasattr(self.sampler, "num_patches_for"):
            return None
        return self.sampler.num_patches_for(*size)

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """Patches ``(B, N, C, P, P)`` and boxes ``(B, N, 4)`` for a batch of images."""
        if self.check_inputs:
            self.sampler.check(images)
        return self.sampler(images, generator)

    def forward(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        pairs: torch.Tensor | None = None,
    ) -> PARTOutput:
        """One PART step on a batch.

        Args:
            images: ``(B, C, H, W)`` float (1D: ``(B, C, T)``).
            generator: optional ``torch.Generator`` for patch and pair sampling.
            pairs: optional fixed ``(B, M, 2)`` pairs (otherwise ``num_pairs`` random pairs per image).
        """
        patches, boxes = self.sample(images, generator)
        b, n = boxes.shape[:2]
        if pairs is None:
            resolve_num_pairs(self.num_pairs, n)  # clear error when too many pairs for N patches
            pairs = sample_pairs(b, n, self.num_pairs, generator, device=images.device)
        tokens = self.backbone.patch_tokens(self.backbone.forward_patches(patches, pos_embed=False))
        pred = self.head(tokens, pairs)
        target = relative_targets(boxes, pairs, with_scale=self.target_dim == 2 * self.spatial_dims)
        loss = F.mse_loss(pred.float(), target)
        return PARTOutput(loss, pred, target, boxes, pairs, translation_metrics(pred, target, self.spatial_dims))

    @torch.no_grad()
    def predict_matrix(self, patches: torch.Tensor) -> torch.Tensor:
        """Predictions for ALL ordered pairs of given patches: ``(B, N, ...)`` -> ``(B, N, N, k)``.

        Diagonal entries (i, i) are filled with the model's self-pair prediction when the head supports
        it; they carry no training signal. Used by the capability tools (reconstruction, symmetry).
        """
        tokens = self.backbone.patch_tokens(self.backbone.forward_patches(patches, pos_embed=False))
        b, n, _ = tokens.shape
        idx = torch.arange(n, device=tokens.device)
        grid = torch.stack(torch.meshgrid(idx, idx, indexing="ij"), dim=-1).reshape(1, n * n, 2).expand(b, -1, -1)
        return self.head(tokens, grid).reshape(b, n, n, -1)


__all__ = ["PARTModel", "PARTOutput", "translation_metrics"]
