"""Training-time augmentation of multichannel signals (``data.options.augment`` of ``data.kind: signal_npz``).

The paper trains 1D PART without augmentation (App. 8.1); this is an option beside it, off by default. The
transforms are the standard EEG ones compared by Rommel et al. 2022 ("Data augmentation for learning
predictive models on EEG: a systematic comparison", J. Neural Eng. 2022, arXiv:2206.14483):
sign flip and channel dropout as named there, amplitude scaling, a per-channel level (DC) offset, additive
Gaussian noise and a time shift. Each is named with one magnitude; they act on the *normalised* batch the
model sees (after ``data.options.normalize``), in this fixed order, whatever order the mapping gives:

=====================  ===================================================================================
``scale: m``           every sample and channel: ``x <- mu + a (x - mu)``, ``a ~ U(1 - m, 1 + m)``, ``mu``
                       the channel's mean over time (the within-trial amplitude changes, the level not);
                       ``0 <= m < 1``
``offset: m``          every sample and channel: ``x <- x + b``, ``b ~ U(-m, m)`` (a level shift, in the
                       normalised units); ``m >= 0``
``noise: m``           ``x <- x + m * N(0, 1)`` independently per value; ``m >= 0``
``shift: m``           every sample: ``x[t] <- x[clamp(t - k, 0, T - 1)]``, integer ``k`` uniform in
                       ``[-round(m T), round(m T)]`` (the content moves by ``k`` samples, the edge value
                       fills the gap); ``0 <= m < 1``
``flip: p``            every sample: ``x <- -x`` with probability ``p`` (Rommel et al.'s SignFlip); ``0 <= p <= 1``
``channel_dropout: p`` every sample and channel: zeroed with probability ``p`` (ChannelsDropout); ``0 <= p < 1``
=====================  ===================================================================================

:func:`augment_signals` is the vectorised batch path (one random draw per transform for the whole batch,
:func:`draw_params`); :func:`augment_signals_reference` applies the same draws sample by sample and channel by
channel (the plain reference the fast path is tested against). The trainer applies the augmentation to each
training batch with a generator seeded from ``(train.seed, step, micro-batch, rank)``, so a resumed run sees
the same augmented batches; evaluation, probing and the pretext-loss read-out never augment.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

__all__ = ["AUGMENT_TRANSFORMS", "parse_signal_augment", "draw_params", "augment_signals",
           "augment_signals_reference", "SignalAugment"]

# name -> (low, high, high_inclusive, what the magnitude is); the order is the order of application
AUGMENT_TRANSFORMS: dict[str, tuple[float, float, bool, str]] = {
    "scale": (0.0, 1.0, False, "the amplitude factor's half-range, in [0, 1)"),
    "offset": (0.0, math.inf, False, "the level offset's half-range, >= 0"),
    "noise": (0.0, math.inf, False, "the noise standard deviation, >= 0"),
    "shift": (0.0, 1.0, False, "the largest shift as a fraction of T, in [0, 1)"),
    "flip": (0.0, 1.0, True, "a probability in [0, 1]"),
    "channel_dropout": (0.0, 1.0, False, "a probability in [0, 1)"),
}
FIELD = "data.options.augment"


def parse_signal_augment(value) -> tuple[tuple[str, float], ...]:
    """``data.options.augment`` -> ``((name, magnitude), ...)`` in the order of application.

    ``None``, ``{}``, ``"none"`` and ``false`` mean off (``()``). Otherwise a mapping ``{name: magnitude}``
    with names from :data:`AUGMENT_TRANSFORMS`. Raises ``ValueError`` naming ``data.options.augment`` (and
    the transform) and the value."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("none", "off")):
        return ()
    if not isinstance(value, dict):
        raise ValueError(f"{FIELD} must be a mapping {{name: magnitude}} (e.g. {{scale: 0.5, offset: 0.5}}) or "
                         f"null, got {value!r}")
    unknown = [k for k in value if k not in AUGMENT_TRANSFORMS]
    if unknown:
        raise ValueError(f"{FIELD}: unknown transform {unknown[0]!r}; valid: {list(AUGMENT_TRANSFORMS)}")
    out = []
    for name, (lo, hi, hi_in, what) in AUGMENT_TRANSFORMS.items():
        if name not in value:
            continue
        m = value[name]
        ok = isinstance(m, Real) and not isinstance(m, bool) and math.isfinite(m) and lo <= m and (
            m <= hi if hi_in else m < hi)
        if not ok:
            raise ValueError(f"{FIELD}.{name} must be {what}, got {m!r}")
        out.append((name, float(m)))
    return tuple(out)


def _spec(spec) -> tuple[tuple[str, float], ...]:
    return spec if isinstance(spec, tuple) else parse_signal_augment(spec)


def draw_params(shape: tuple[int, int, int], spec, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The random draws of one batch of shape ``(B, C, T)``, in the order of application: ``scale`` ``(B, C)``
    factors, ``offset`` ``(B, C)``, ``noise`` ``(B, C, T)`` standard normals, ``shift`` ``(B,)`` int64,
    ``flip`` ``(B,)`` signs +-1, ``channel_dropout`` ``(B, C)`` keep-masks 0/1. Only the transforms in
    ``spec`` draw, so adding one leaves the draws of those before it unchanged."""
    b, c, t = shape
    kw = dict(generator=generator, device=device)
    p: dict[str, torch.Tensor] = {}
    for name, m in _spec(spec):
        if name == "scale":
            p[name] = 1.0 + m * (2.0 * torch.rand(b, c, **kw) - 1.0)
        elif name == "offset":
            p[name] = m * (2.0 * torch.rand(b, c, **kw) - 1.0)
        elif name == "noise":
            p[name] = torch.randn(b, c, t, **kw)
        elif name == "shift":
            k = round(m * t)
            p[name] = torch.randint(-k, k + 1, (b,), **kw)
        elif name == "flip":
            p[name] = torch.where(torch.rand(b, **kw) < m, -1.0, 1.0)
        elif name == "channel_dropout":
            p[name] = (torch.rand(b, c, **kw) >= m).float()
    return p


def augment_signals(x: torch.Tensor, spec, generator: torch.Generator | None = None,
                    params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Augment a batch ``x`` ``(B, C, T)`` float -> ``(B, C, T)`` (a new tensor; ``x`` is not changed).

    ``spec``: ``data.options.augment`` (a mapping) or :func:`parse_signal_augment`'s tuple. Draws with
    ``generator`` (on ``x``'s device) unless ``params`` (from :func:`draw_params`) are given."""
    spec = _spec(spec)
    if not spec:
        return x
    if x.ndim != 3:
        raise ValueError(f"augment_signals takes (B, C, T) signals, got shape {tuple(x.shape)}")
    p = params if params is not None else draw_params(tuple(x.shape), spec, generator, x.device)
    b, c, t = x.shape
    for name, m in spec:
        v = p[name].to(x.dtype) if name != "shift" else p[name]
        if name == "scale":
            mu = x.mean(dim=-1, keepdim=True)
            x = mu + v[..., None] * (x - mu)
        elif name == "offset":
            x = x + v[..., None]
        elif name == "noise":
            x = x + m * v
        elif name == "shift":
            idx = (torch.arange(t, device=x.device)[None, :] - v[:, None]).clamp_(0, t - 1)  # (B, T)
            x = torch.gather(x, 2, idx[:, None, :].expand(b, c, t))
        elif name == "flip":
            x = x * v[:, None, None]
        elif name == "channel_dropout":
            x = x * v[..., None]
    return x


def augment_signals_reference(x: torch.Tensor, spec, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The plain reference of :func:`augment_signals`: the same ``params``, applied one sample and channel at
    a time with Python loops over time for the shift. ``(B, C, T)`` -> ``(B, C, T)``."""
    spec = _spec(spec)
    out = x.clone()
    b, c, t = x.shape
    for i in range(b):
        for name, m in spec:
            if name == "shift":
                k = int(params[name][i])
                out[i] = torch.stack([out[i, :, min(max(s - k, 0), t - 1)] for s in range(t)], dim=-1)
                continue
            for ch in range(c):
                row = out[i, ch]
                if name == "scale":
                    mu = row.mean()
                    row = mu + float(params[name][i, ch]) * (row - mu)
                elif name == "offset":
                    row = row + float(params[name][i, ch])
                elif name == "noise":
                    row = row + m * params[name][i, ch]
                elif name == "flip":
                    row = row * float(params[name][i])
                elif name == "channel_dropout":
                    row = row * float(params[name][i, ch])
                out[i, ch] = row
    return out


class SignalAugment:
    """``data.options.augment`` as a batch transform: ``aug(x (B, C, T), generator) -> (B, C, T)``.
    ``spec`` is the parsed tuple; ``bool(aug)`` is whether any transform is on."""

    def __init__(self, spec):
        self.spec = _spec(spec)

    def __bool__(self) -> bool:
        return bool(self.spec)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return augment_signals(x, self.spec, generator)

    def __repr__(self) -> str:
        return f"SignalAugment({dict(self.spec)})"
