"""1D patch sampling for multichannel signals (paper §5.2 "Time-series prediction", App. 8.1).

The 1D analogue of :mod:`part.sampling.samplers`: signals ``(B, C, T)`` in, ``(patches, boxes)`` out, with

* patches ``(B, N, C, L)``: N sub-windows, each resampled to the patch length L,
* boxes ``(B, N, 2)``: ``(t_centre, length)`` in samples, where sample ``i`` covers the continuous interval
  ``[i, i + 1)`` (centre ``i + 0.5``), exactly like the 2D pixel convention. A window starting at ``s`` with
  length ``W`` has centre ``s + W / 2``.

:func:`part.targets.relative_targets` turns these boxes into the 1D PART target
``dt = (t_tgt - t_ref) / L_ref`` (and ``L_tgt / L_ref`` with variable lengths).

Samplers (the paper's setting, App. 8.1: forty 1-second patches, L = 100, in a 30-s window, T = 3000, at
100 Hz; ``configs/sleep_*.yaml`` set ``num_patches: 40``. Without it N defaults to ``T // L``, the grid's
count, as ``H W / P^2`` in 2D):

* :class:`OffGridWindowSampler` ("offgrid", PART): N windows with uniform random starts so that each lies
  inside the record; unequally spaced, may overlap, need not cover the record ("randomly-sampled,
  unequally-spaced windows", §5.2).
* :class:`GridWindowSampler` ("grid", PART-grid ablation §5.3 and fine-tuning): the ``T / L`` consecutive
  windows that tile the record exactly (no interpolation).
* :class:`ScaleWindowSampler` ("scale", the §5.1 scale extension in 1D): window lengths uniform in
  ``[s0 L, s1 L]``, resampled to L with the anti-aliased crop (:func:`crop_windows_antialiased`).

Positions: off-grid windows start on whole samples by default (``positions="integer"``: with W = L the
patches are raw samples, as in the authors' code), as 2D boxes start on whole pixels; both take either mode
(``positions=``). The default follows the positions x head ablation of issue 18
(:data:`~part.sampling.boxes.POSITIONS`).

Cropping is one batched gather + linear interpolation (:func:`crop_windows`), with the same convention as
the 2D ``grid_sample(align_corners=False)`` crop: output sample ``k`` of a window ``(s, W)`` reads the signal at
the continuous point ``s + (k + 0.5) W / L``, i.e. at fractional sample index ``s + (k + 0.5) W / L - 0.5``.
For ``W = L`` and an integer ``s`` those are integer indices ``s + k``, so the crop returns the raw samples.
"""

from __future__ import annotations

import math

import torch

from .boxes import (
    SCALE_RANGE,
    all_finite,
    check_positions,
    check_scale_range,
    draw_uniform,
    integer_draw,
    integer_sizes,
)
from .crop import tent_weights, window_size, window_start

__all__ = [
    "OffGridWindowSampler", "GridWindowSampler", "ScaleWindowSampler", "build_window_sampler", "WINDOW_SAMPLERS",
    "check_signals", "crop_windows", "crop_windows_antialiased", "patchify1d", "unpatchify1d",
    "grid_windows", "offgrid_windows", "scale_windows",
]


# --- validation -----------------------------------------------------------------------------------
def check_signals(signals: torch.Tensor, check_finite: bool = True) -> None:
    """Validate a batch of signals ``(B, C, T)``; raises ``ValueError`` naming ``signals``."""
    if not isinstance(signals, torch.Tensor):
        raise ValueError(f"signals must be a torch.Tensor of shape (B, C, T), got {type(signals).__name__}")
    if signals.dim() != 3:
        raise ValueError(f"signals must be 3D (B, C, T), got shape {tuple(signals.shape)}")
    if not signals.is_floating_point():
        raise ValueError(f"signals must be a floating-point tensor, got dtype {signals.dtype}")
    if check_finite and not all_finite(signals):
        raise ValueError("signals contain NaN or infinite values")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_record_length(length: int, window: float, what: str) -> None:
    if window > length:
        raise ValueError(
            f"{what} ({window:g} samples) is longer than the record (signals have T={length} samples); "
            "use a shorter patch_len/window_len or longer signals"
        )


# --- window boxes (B, N, 2) = (t_centre, length) ---------------------------------------------------
def grid_windows(batch: int, length: int, patch_len: int, device=None) -> torch.Tensor:
    """The ``T / L`` consecutive non-overlapping windows, in time order. Returns ``(B, T / L, 2)``."""
    _check_record_length(length, patch_len, f"patch_len={patch_len}")
    if length % patch_len:
        raise ValueError(
            f"signal length T={length} is not divisible by patch_len={patch_len}, which grid sampling needs"
        )
    n = length // patch_len
    centres = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) * patch_len
    boxes = torch.stack([centres, torch.full_like(centres, float(patch_len))], dim=-1)
    return boxes.unsqueeze(0).expand(batch, -1, -1).contiguous()


def offgrid_windows(
    batch: int,
    length: int,
    num_patches: int,
    window_len: float,
    generator: torch.Generator | None = None,
    device=None,
    positions: str = "integer",
) -> torch.Tensor:
    """N windows of length ``window_len`` with uniform random starts so that each lies inside ``[0, T]``.

    ``positions="integer"`` draws the start uniformly from the integers ``0 .. floor(T - W)`` (windows then
    begin on a sample, and with ``W = L`` the crop returns raw samples); ``"continuous"`` draws it uniformly
    from the interval ``[0, T - W]`` like the 2D off-grid boxes. Returns ``(B, N, 2)``.
    """
    check_positions(positions)
    _check_positive_int("num_patches", num_patches)
    if not window_len > 0:
        raise ValueError(f"window_len must be positive, got {window_len}")
    _check_record_length(length, window_len, f"window_len={window_len:g}")
    u = draw_uniform((batch, num_patches), generator, device)
    if positions == "integer":
        start = integer_draw(u, math.floor(length - window_len) + 1)
    else:
        start = u * (length - window_len)
    w = torch.full_like(start, float(window_len))
    return torch.stack([start + w / 2, w], dim=-1)


def scale_windows(
    batch: int,
    length: int,
    num_patches: int,
    patch_len: int,
    scale_range: tuple[float, float] = SCALE_RANGE,
    generator: torch.Generator | None = None,
    device=None,
    positions: str = "continuous",
) -> torch.Tensor:
    """Windows with length uniform in ``[s0 L, s1 L]`` (capped at T) and a uniform start so the window lies
    inside the record (the §5.1 rule "between half and twice the patch size", in 1D). ``positions="integer"``
    draws whole-sample lengths ``ceil(s0 L) .. floor(s1 L)`` and whole-sample starts. Returns ``(B, N, 2)``."""
    lo, hi = check_scale_range(scale_range)
    check_positions(positions)
    _check_positive_int("num_patches", num_patches)
    _check_record_length(length, lo * patch_len, f"the shortest window (scale_range[0] * patch_len = {lo}*{patch_len})")
    u = draw_uniform((batch, num_patches, 2), generator, device)
    if positions == "integer":
        s_lo, s_hi = integer_sizes((lo, hi), patch_len)
        w = (s_lo + integer_draw(u[..., 0], s_hi - s_lo + 1)).clamp(max=float(length))
        start = integer_draw(u[..., 1], length - w + 1)
    else:
        w = ((lo + (hi - lo) * u[..., 0]) * patch_len).clamp(max=float(length))
        start = u[..., 1] * (length - w)
    return torch.stack([start + w / 2, w], dim=-1)


# --- cropping --------------------------------------------------------------------------------------
def crop_windows(signals: torch.Tensor, boxes: torch.Tensor, patch_len: int) -> torch.Tensor:
    """Cut every window out of its signal and resample it to ``patch_len`` samples in one batched op.

    Linear interpolation between the two neighbouring samples (gather + lerp), positions clamped to the
    record (border padding, like the 2D crop). Exact at integer positions. Shrinking a window (``W > L``)
    is plain linear resampling without an anti-alias filter, as bilinear ``grid_sample`` is in 2D.

    Args:
        signals: ``(B, C, T)`` float.
        boxes: ``(B, N, 2)`` as ``(t_centre, length)`` in samples.
        patch_len: output length L.
    Returns:
        ``(B, N, C, L)`` patches, same dtype as ``signals``.
    """
    b, c, t = signals.shape
    n = boxes.shape[1]
    boxes = boxes.to(device=signals.device, dtype=torch.float32)
    odd = 2 * torch.arange(patch_len, device=signals.device, dtype=torch.float32) + 1  # 2k + 1, (L,)
    start = boxes[..., 0] - boxes[..., 1] / 2
    # s + (k + 0.5) W / L - 0.5 written as s + ((2k + 1) W - L) / (2L): for W = L this is s + 2kL / 2L = s + k
    # with no rounding (the quotient is exact), so grid-aligned windows return raw samples for every L.
    pos = start[..., None] + (odd * boxes[..., 1:2] - patch_len) / (2 * patch_len)
    pos = pos.clamp_(0.0, float(t - 1))  # (B, N, L) fractional sample index; border padding
    i0 = pos.floor()
    frac = (pos - i0).to(signals.dtype).reshape(b, 1, n * patch_len)
    i0 = i0.long().reshape(b, 1, n * patch_len)
    i1 = (i0 + 1).clamp_(max=t - 1)
    x0 = torch.gather(signals, 2, i0.expand(b, c, -1))
    x1 = torch.gather(signals, 2, i1.expand(b, c, -1))
    out = torch.lerp(x0, x1, frac)  # x0 + frac * (x1 - x0); equals x0 where frac == 0
    return out.reshape(b, c, n, patch_len).permute(0, 2, 1, 3).contiguous()


def crop_windows_antialiased(
    signals: torch.Tensor, boxes: torch.Tensor, patch_len: int, max_len: float | None = None
) -> torch.Tensor:
    """Resample every window to ``patch_len`` with anti-aliasing when shrinking (``W > L``).

    The 1D form of :func:`part.sampling.crop.crop_patches_antialiased`: output sample k averages the samples
    i with triangle weights ``max(0, 1 - |i + 0.5 - c_k| / max(W / L, 1))``, ``c_k = s + (k + 0.5) W / L``,
    renormalised inside the record; for ``W <= L`` this is :func:`crop_windows` (linear interpolation).

    Args:
        signals: ``(B, C, T)`` float.
        boxes: ``(B, N, 2)`` as ``(t_centre, length)`` in samples.
        patch_len: L.
        max_len: an upper bound on the window lengths (default: read from ``boxes``).
    Returns:
        ``(B, N, C, L)``, same dtype as ``signals``.
    """
    b, c, t = signals.shape
    n = boxes.shape[1]
    dtype = torch.float64 if signals.dtype == torch.float64 else torch.float32
    boxes = boxes.to(device=signals.device, dtype=dtype)
    if max_len is None:
        max_len = float(boxes[..., 1].max()) if boxes.numel() else float(patch_len)
    k = window_size(max_len, patch_len)
    start = boxes[..., 0] - boxes[..., 1] / 2
    first = window_start(start, boxes[..., 1], patch_len)  # (B, N)
    wts = tent_weights(start, boxes[..., 1], patch_len, t, first, k)  # (B, N, L, K)
    idx = (first[..., None] + torch.arange(k, device=signals.device)).clamp(0, t - 1)  # (B, N, K)
    win = torch.gather(signals, 2, idx.reshape(b, 1, n * k).expand(b, c, -1)).reshape(b, c, n, k)
    out = torch.einsum("bnlk,bcnk->bncl", wts, win.to(dtype))
    return out.to(signals.dtype)


def patchify1d(signals: torch.Tensor, patch_len: int) -> torch.Tensor:
    """Exact consecutive windows: ``(B, C, T)`` -> ``(B, T / L, C, L)``; T must be a multiple of L."""
    b, c, t = signals.shape
    if t % patch_len:
        raise ValueError(
            f"signal length T={t} is not divisible by patch_len={patch_len}, which grid sampling needs"
        )
    return signals.reshape(b, c, t // patch_len, patch_len).permute(0, 2, 1, 3)


def unpatchify1d(patches: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`patchify1d`: ``(B, N, C, L)`` -> ``(B, C, N * L)``."""
    if patches.dim() != 4:
        raise ValueError(f"patches must be 4D (B, N, C, L), got shape {tuple(patches.shape)}")
    b, n, c, length = patches.shape
    return patches.permute(0, 2, 1, 3).reshape(b, c, n * length)


# --- samplers --------------------------------------------------------------------------------------
class _WindowSamplerBase:
    """Shared 1D sampler protocol: ``spatial_dims = 1``, ``patch_size`` (= ``patch_len``), ``check``."""

    spatial_dims = 1
    target_dim = 1

    def __init__(self, patch_len: int):
        self.patch_len = _check_positive_int("patch_len", patch_len)

    @property
    def patch_size(self) -> int:
        """The patch length L (named ``patch_size`` for the sampler protocol shared with 2D)."""
        return self.patch_len

    def min_length(self) -> float:
        """Shortest record (in samples) this sampler can draw from."""
        return float(self.patch_len)

    def _check_shape(self, signals: torch.Tensor) -> None:
        check_signals(signals, check_finite=False)
        _check_record_length(signals.shape[-1], self.min_length(), self._window_name())

    def _window_name(self) -> str:
        return f"patch_len={self.patch_len}"

    def check(self, signals: torch.Tensor) -> None:
        """Validate signals ``(B, C, T)``: a tensor, 3D, floating point, finite, and long enough for a window."""
        check_signals(signals, check_finite=True)
        self._check_shape(signals)


class OffGridWindowSampler(_WindowSamplerBase):
    """N random windows of length W (default L), resampled to L (PART in 1D, §5.2 / App. 8.1).

    The paper's setting is forty 1-second patches (L = 100 samples at 100 Hz) from a 30-s window (T = 3000):
    ``num_patches=40`` (set in ``configs/sleep_*.yaml``).

    Args:
        patch_len: the ViT patch length L in samples.
        num_patches: N; ``None`` (default) means ``T // L``, as many as the grid has (the 1D ``H W / P^2``).
            Fewer means more masking.
        window_len: W, the length of each sampled window in samples before resampling; default L.
        positions: ``"integer"`` (default, as in 2D: starts on whole samples; with W = L the patches are raw
            samples) or ``"continuous"`` (uniform real starts).

    Cropping: linear interpolation (:func:`crop_windows`; exact for integer starts and W = L), the
    anti-aliased crop for W > L.
    """

    target_dim = 1
    name = "offgrid"

    def __init__(
        self, patch_len: int = 100, num_patches: int | None = None, window_len: float | None = None,
        positions: str = "integer",
    ):
        super().__init__(patch_len)
        if num_patches is not None:
            _check_positive_int("num_patches", num_patches)
        if window_len is not None and not window_len > 0:
            raise ValueError(f"window_len must be positive, got {window_len}")
        self.num_patches = num_patches
        self.window_len = window_len
        self.positions = check_positions(positions)

    def min_length(self) -> float:
        return float(self.window_len or self.patch_len)

    def _window_name(self) -> str:
        return f"window_len={self.window_len:g}" if self.window_len else f"patch_len={self.patch_len}"

    def num_patches_for(self, length: int) -> int:
        return self.num_patches or max(1, length // self.patch_len)

    def boxes(self, signals: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, N, 2)`` window boxes for ``signals (B, C, T)``."""
        self._check_shape(signals)
        b, _, t = signals.shape
        return offgrid_windows(
            b, t, self.num_patches_for(t), self.min_length(), generator, signals.device, self.positions
        )

    def crop(self, signals: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)``, ``(B, N, 2)`` -> ``(B, N, C, L)`` with the crop that fits the windows."""
        if self.min_length() > self.patch_len:
            return crop_windows_antialiased(signals, boxes, self.patch_len, max_len=self.min_length())
        return crop_windows(signals, boxes, self.patch_len)

    def __call__(self, signals: torch.Tensor, generator: torch.Generator | None = None):
        """``signals (B, C, T)`` -> ``(patches (B, N, C, L), boxes (B, N, 2))``."""
        boxes = self.boxes(signals, generator)
        return self.crop(signals, boxes), boxes

    def __repr__(self) -> str:
        return (
            f"OffGridWindowSampler(patch_len={self.patch_len}, num_patches={self.num_patches}, "
            f"window_len={self.window_len}, positions={self.positions!r})"
        )


class GridWindowSampler(_WindowSamplerBase):
    """The ``T / L`` consecutive windows tiling the record (PART-grid §5.3; fine-tuning). Exact, no resampling."""

    target_dim = 1
    name = "grid"

    def __init__(self, patch_len: int = 100):
        super().__init__(patch_len)

    def num_patches_for(self, length: int) -> int:
        return length // self.patch_len

    def _check_shape(self, signals: torch.Tensor) -> None:
        super()._check_shape(signals)
        t = signals.shape[-1]
        if t % self.patch_len:
            raise ValueError(
                f"signal length T={t} is not divisible by patch_len={self.patch_len}, which grid sampling needs"
            )

    def boxes(self, signals: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check_shape(signals)
        b, _, t = signals.shape
        return grid_windows(b, t, self.patch_len, signals.device)

    def __call__(self, signals: torch.Tensor, generator: torch.Generator | None = None):
        """``signals (B, C, T)`` -> ``(patches (B, T/L, C, L), boxes (B, T/L, 2))``; ``generator`` is unused."""
        boxes = self.boxes(signals)
        return patchify1d(signals, self.patch_len), boxes

    def __repr__(self) -> str:
        return f"GridWindowSampler(patch_len={self.patch_len})"


class ScaleWindowSampler(OffGridWindowSampler):
    """Windows of variable length ``W ~ U[s0 L, s1 L]`` resampled to L with the anti-aliased crop (the §5.1
    scale extension in 1D). Starts are continuous by default; ``positions="integer"`` snaps lengths and
    starts to whole samples.

    The target has 2 components: ``(dt, L_tgt / L_ref)``.
    """

    target_dim = 2
    name = "scale"

    def __init__(
        self,
        patch_len: int = 100,
        num_patches: int | None = None,
        scale_range: tuple[float, float] = SCALE_RANGE,
        positions: str = "continuous",
    ):
        super().__init__(patch_len, num_patches, positions=positions)
        self.scale_range = check_scale_range(scale_range)
        if self.positions == "integer":
            integer_sizes(self.scale_range, self.patch_len)  # fails now, not at the first batch

    def min_length(self) -> float:
        return self.scale_range[0] * self.patch_len

    def _window_name(self) -> str:
        return f"the shortest window (scale_range[0] * patch_len = {self.scale_range[0]:g}*{self.patch_len})"

    def boxes(self, signals: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check_shape(signals)
        b, _, t = signals.shape
        return scale_windows(
            b, t, self.num_patches_for(t), self.patch_len, self.scale_range, generator, signals.device,
            self.positions,
        )

    def crop(self, signals: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """The anti-aliased crop, its window sized by the longest window ``s1 L``."""
        return crop_windows_antialiased(signals, boxes, self.patch_len, max_len=self.scale_range[1] * self.patch_len)

    def __repr__(self) -> str:
        return (
            f"ScaleWindowSampler(patch_len={self.patch_len}, num_patches={self.num_patches}, "
            f"scale_range={self.scale_range}, positions={self.positions!r})"
        )


WINDOW_SAMPLERS = {"offgrid": OffGridWindowSampler, "grid": GridWindowSampler, "scale": ScaleWindowSampler}


def build_window_sampler(name: str, patch_len: int, **kwargs):
    """Build a 1D sampler by name: ``"offgrid"``, ``"grid"`` or ``"scale"``; unset (None) options take defaults.

    Options: ``num_patches`` (offgrid, scale), ``window_len`` (offgrid), ``positions`` (offgrid, scale),
    ``scale_range`` (scale). Setting an option the named sampler does not use raises ``ValueError``.
    """
    if name not in WINDOW_SAMPLERS:
        raise ValueError(f"unknown 1D sampler {name!r}; choose one of {sorted(WINDOW_SAMPLERS)}")
    known = ("num_patches", "window_len", "positions", "scale_range")
    for key in kwargs:
        if key not in known:
            raise ValueError(f"unknown option {key!r} for a 1D sampler; options are {list(known)}")
    unused = {
        "grid": ("num_patches", "window_len", "positions", "scale_range"),
        "offgrid": ("scale_range",),
        "scale": ("window_len",),
    }
    for key in unused[name]:
        if kwargs.pop(key, None) is not None:
            raise ValueError(f"{key} is not used by the {name!r} 1D sampler; leave it unset (None)")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return WINDOW_SAMPLERS[name](patch_len, **kwargs)
