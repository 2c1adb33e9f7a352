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

from ..models.registry import build_head, head_options
from ..sampling.samplers import build_sampler
from ..sampling.windows1d import build_window_sampler
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
        head: relative encoder name (:data:`part.models.registry.HEADS`: ``cross_attention``,
            ``cross_attention_paper``, ``cross_attention_index``, ``pairwise_mlp``, ``pairwise_linear``,
            ``mlp``, or a ``*_reference`` implementation) or a ready ``nn.Module``. Default
            ``cross_attention_paper``, the §4 equation: in the positions x head grid of issue 18 it gives the
            best frozen features (linear probe +1.4, kNN +1.7 points over ``cross_attention``, both position
            modes, 2 seeds) and fine-tunes within the seed spread of the others; it is also the cheapest
            cross-attention head (docs/relative_encoders_and_positions.md).
        num_pairs: #pairs M per image, or ``"all"`` for the whole pair universe.
        sampler: ``"offgrid"`` (PART), ``"grid"`` (PART-grid) or ``"scale"`` (scale/aspect extension),
            or a sampler object.
        num_patches: N (default: the grid's count, ``H * W / P^2`` in 2D, ``T // L`` in 1D); fewer patches =
            more masking.
        box_size: side D of off-grid boxes (1D: window length W; default P).
        scale_range: size range (in units of P) for the ``scale`` sampler (default
            :data:`part.sampling.boxes.SCALE_RANGE`).
        head_heads: attention heads of the ``cross_attention`` head (default: the backbone's).
        head_hidden: hidden width of the ``pairwise_mlp``/``mlp`` heads (0: a single linear map).
        self_pairs: draw pairs from all ``N^2`` ordered pairs, ``(i, i)`` included, as the paper's #pairs
            imply (4096 = 64^2 in Fig. 8); default: the ``N (N - 1)`` pairs of distinct patches.
        positions: ``"continuous"`` or ``"integer"`` box positions of the off-grid/scale samplers (default:
            the sampler's: integer for the off-grid samplers in 2D and 1D, continuous for the scale ones;
            the measurement behind it: :data:`part.sampling.boxes.POSITIONS`).
        check_inputs: validate images (4D, finite) on every call.

    Options that the chosen sampler or head does not use raise ``ValueError`` naming them.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: str | nn.Module = "cross_attention_paper",
        num_pairs: int | str = 2048,
        sampler="offgrid",
        num_patches: int | None = None,
        box_size: float | None = None,
        scale_range: tuple[float, float] | None = None,
        head_heads: int | None = None,
        head_hidden: int | None = None,
        self_pairs: bool = False,
        positions: str | None = None,
        check_inputs: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        patch_size = backbone.patch_size
        options = dict(num_patches=num_patches, scale_range=scale_range, positions=positions)
        if isinstance(sampler, str) and getattr(backbone, "spatial_dims", 2) == 1:
            sampler = build_window_sampler(sampler, patch_size, window_len=box_size, **options)  # 1D (§5.2)
        elif isinstance(sampler, str):
            sampler = build_sampler(sampler, patch_size, box_size=box_size, **options)
        elif any(v is not None for v in (*options.values(), box_size)):
            raise ValueError("num_patches, box_size, scale_range and positions configure a named sampler; "
                             "set them on the sampler object instead")
        self.sampler = sampler
        self.target_dim = sampler.target_dim
        self.spatial_dims = getattr(sampler, "spatial_dims", 2)
        if not isinstance(self_pairs, bool):
            raise ValueError(f"self_pairs must be true or false, got {self_pairs!r}")
        self.num_pairs = num_pairs
        self.self_pairs = self_pairs
        self.check_inputs = check_inputs
        n_fixed = self._fixed_num_patches()
        self.num_patches = n_fixed  # N per image for the backbone's input size (as the baselines expose it)
        if n_fixed is None:  # num_pairs checked once, at construction (:mod:`part.targets` holds the rule)
            validate_num_pairs(num_pairs)
        else:  # and against the fixed N: fail now, not at the first step
            resolve_num_pairs(num_pairs, n_fixed, self_pairs)
        if isinstance(head, str):
            head = build_head(head, backbone.embed_dim, out_dim=self.target_dim,
                              **self._head_options(head, head_heads, head_hidden, n_fixed))
        elif head_heads is not None or head_hidden is not None:
            raise ValueError("head_heads and head_hidden configure a named head; build the head module with them")
        self.head = head

    def _head_options(self, head: str, head_heads, head_hidden, n_fixed) -> dict:
        """The registry options of head ``head`` from PARTModel's arguments (unused ones raise)."""
        valid = head_options(head)
        opts = {}
        for arg, value, option in (("head_heads", head_heads, "num_heads"), ("head_hidden", head_hidden, "hidden_dim")):
            if option in valid:
                opts[option] = value
            elif value is not None:
                raise ValueError(f"{arg}={value} is not used by head {head!r}; leave it unset")
        if "num_heads" in valid and opts["num_heads"] is None:
            opts["num_heads"] = getattr(self.backbone, "num_heads", None)
        if "num_patches" in valid:
            opts["num_patches"] = n_fixed
        return opts

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
            pairs = sample_pairs(b, n, self.num_pairs, generator, device=images.device, self_pairs=self.self_pairs)
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
