"""Per-image augmentations on torch tensors (no torchvision).

Every transform takes one image as a float tensor ``(C, H, W)`` (values in [0, 1] before
:class:`Normalize`) and returns a tensor ``(C, H', W')``.

The pretraining recipe follows the paper's implementation note (Appendix, "Image classification":
"our pretraining and finetuning configurations closely align with the pipeline outlined in MP3 [21],
which itself builds upon ... DeiT [74]"): a ``RandomResizedCrop`` with scale (0.2, 1.0) and the
usual aspect-ratio range (3/4, 4/3), a horizontal flip with p = 0.5, then per-channel
normalisation. PART itself samples patches *inside* the augmented image (Sec. 3, Fig. 2: "data
augmentations are complementary and applied at the image level"), so nothing here knows about
patches.

Randomness: each random transform draws from the ``torch.Generator`` it was built with, or from the
global torch RNG when none was given. With the global RNG the stream is fixed by
``torch.manual_seed`` (and, inside ``DataLoader`` workers, by the per-worker seeds the loader derives
from it), which exact resume relies on. A per-item seed goes through :func:`seeded_cpu_rng`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .randaugment import RandAugment

__all__ = [
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "Resize",
    "CenterCrop",
    "Normalize",
    "RandomErasing",
    "ERASE_MODES",
    "build_transforms",
    "seeded_cpu_rng",
]

# Published per-channel statistics of the training splits (images scaled to [0, 1]).
FASHION_MNIST_MEAN: tuple[float, ...] = (0.2860,)
FASHION_MNIST_STD: tuple[float, ...] = (0.3530,)
CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN: tuple[float, ...] = (0.5071, 0.4865, 0.4409)
CIFAR100_STD: tuple[float, ...] = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)


@contextlib.contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Run the block with the global CPU generator seeded by ``seed``; its state before is restored after.

    The CPU state inside is the one ``torch.manual_seed(seed)`` gives, but no other device is touched:
    ``torch.manual_seed`` also seeds every accelerator backend, and where one is not initialised (a CPU machine)
    it queues the call with a formatted stack trace, several milliseconds per call. Per image that was
    most of the data loading time of a 28 x 28 training step; where CUDA is initialised it reseeded the
    GPU generator (dropout, drop path) at every image.
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(seed))
        yield


def _check_image(img: Tensor, who: str) -> None:
    if not isinstance(img, Tensor) or img.ndim != 3:
        shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
        raise ValueError(f"{who}: expected one image tensor of shape (C, H, W), got {shape}")


def size_pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """``size`` as ``(H, W)``; an int means a square."""
    if isinstance(size, bool):
        raise ValueError(f"{name} must be an int or (H, W), got {size!r}")
    if isinstance(size, int):
        pair = (size, size)
    else:
        try:
            pair = tuple(int(s) for s in size)
        except TypeError:
            raise ValueError(f"{name} must be an int or (H, W), got {size!r}") from None
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{name} must be a positive int or (H, W) of positive ints, got {size!r}")
    return pair  # type: ignore[return-value]


def _resize(img: Tensor, size: tuple[int, int], antialias: bool = True) -> Tensor:
    """Bilinear resize of ``(C, H, W)`` to ``(C, *size)``; a no-op when the size already matches."""
    if tuple(img.shape[-2:]) == size:
        return img
    out = F.interpolate(img.unsqueeze(0), size=size, mode="bilinear", align_corners=False,
                        antialias=antialias)
    return out.squeeze(0)


class Compose:
    """Apply ``transforms`` in order: ``Compose([a, b])(x) == b(a(x))``."""

    def __init__(self, transforms: Sequence[Callable[[Tensor], Tensor]]):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise ValueError(f"Compose: transforms[{i}] is not callable: {t!r}")

    def __call__(self, img: Tensor) -> Tensor:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomResizedCrop:
    """Crop a random area/aspect-ratio box and resize it to ``size`` (torchvision semantics).

    Box sampling (:meth:`get_params`) is torchvision's: up to 10 attempts drawing the area fraction
    uniformly from ``scale`` and the aspect ratio w/h log-uniformly from ``ratio``; the first box
    that fits is placed uniformly at random. If none fits, fall back to a central crop whose aspect
    ratio is clamped to ``ratio``. The crop is resized with bilinear interpolation (antialiased).

    Args:
        size: output ``(H, W)`` or an int for a square.
        scale: range of the crop area as a fraction of the image area (MP3/MAE pretraining: 0.2-1.0).
        ratio: range of the crop aspect ratio w/h.
        antialias: antialias when downsampling.
        generator: RNG to draw from; ``None`` uses the global torch RNG.

    Shapes: ``(C, H, W) -> (C, size[0], size[1])``.
    """

    def __init__(self, size: int | Sequence[int], scale: Sequence[float] = (0.2, 1.0),
                 ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0), antialias: bool = True,
                 generator: torch.Generator | None = None):
        self.size = size_pair(size, "RandomResizedCrop size")
        scale = tuple(float(s) for s in scale)
        ratio = tuple(float(r) for r in ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomResizedCrop scale must be (min, max) with 0 < min <= max, got {scale}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop ratio must be (min, max) with 0 < min <= max, got {ratio}")
        self.scale, self.ratio = scale, ratio
        self.antialias = antialias
        self.generator = generator

    @staticmethod
    def get_params(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
                   generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
        """Sample a crop box ``(top, left, h, w)`` inside a ``height x width`` image."""
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
            aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator).item())
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
                return top, left, h, w
        # Fallback: central crop with the aspect ratio clamped into `ratio`.
        in_ratio = width / height
        if in_ratio < min(ratio):
            w = width
            h = int(round(w / min(ratio)))
        elif in_ratio > max(ratio):
            h = height
            w = int(round(h * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Tensor) -> Tensor:
        _check_image(img, "RandomResizedCrop")
        top, left, h, w = self.get_params(img.shape[-2], img.shape[-1], self.scale, self.ratio,
                                          self.generator)
        return _resize(img[:, top:top + h, left:left + w], self.size, self.antialias)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``. Shapes: ``(C, H, W) -> (C, H, W)``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = generator

    def __call__(self, img: Tensor) -> Tensor:
        _check_image(img, "RandomHorizontalFlip")
        # Always draw, so the RNG stream does not depend on p's value being 0 or 1.
        if torch.rand(1, generator=self.generator).item() < self.p:
            return img.flip(-1)
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Deterministic bilinear (antialiased) resize.

    ``size`` an int resizes the shorter side to ``size`` keeping the aspect ratio (torchvision
    semantics); ``(H, W)`` resizes to exactly that. Shapes: ``(C, H, W) -> (C, H', W')``.
    """

    def __init__(self, size: int | Sequence[int], antialias: bool = True):
        if isinstance(size, int) and not isinstance(size, bool):
            if size <= 0:
                raise ValueError(f"Resize size must be positive, got {size}")
            self.size: int | tuple[int, int] = size
        else:
            self.size = size_pair(size, "Resize size")
        self.antialias = antialias

    def __call__(self, img: Tensor) -> Tensor:
        _check_image(img, "Resize")
        if isinstance(self.size, int):
            h, w = img.shape[-2:]
            if h <= w:
                target = (self.size, max(1, int(self.size * w / h)))
            else:
                target = (max(1, int(self.size * h / w)), self.size)
        else:
            target = self.size
        return _resize(img, target, self.antialias)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class CenterCrop:
    """Crop the central ``size`` box (zero-padding first where the image is smaller).

    Shapes: ``(C, H, W) -> (C, size[0], size[1])``.
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = size_pair(size, "CenterCrop size")

    def __call__(self, img: Tensor) -> Tensor:
        _check_image(img, "CenterCrop")
        th, tw = self.size
        h, w = img.shape[-2:]
        if h < th or w < tw:
            ph, pw = max(th - h, 0), max(tw - w, 0)
            img = F.pad(img, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            h, w = img.shape[-2:]
        top, left = (h - th) // 2, (w - tw) // 2
        return img[:, top:top + th, left:left + tw]

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class Normalize:
    """Per-channel ``(x - mean) / std``. Shapes: ``(C, H, W) -> (C, H, W)``.

    ``mean``/``std`` must have one entry per channel (or a single entry, broadcast to all).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) == 0 or len(self.mean) != len(self.std):
            raise ValueError(f"Normalize mean and std must be non-empty and of equal length, "
                             f"got mean={self.mean}, std={self.std}")
        if min(self.std) <= 0.0:
            raise ValueError(f"Normalize std must be positive, got std={self.std}")
        self._mean = torch.tensor(self.mean).view(-1, 1, 1)
        self._std = torch.tensor(self.std).view(-1, 1, 1)

    def __call__(self, img: Tensor) -> Tensor:
        _check_image(img, "Normalize")
        c = img.shape[0]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize has {len(self.mean)} channel statistics but the image has "
                             f"{c} channels (mean={self.mean})")
        mean = self._mean.to(device=img.device, dtype=img.dtype)
        std = self._std.to(device=img.device, dtype=img.dtype)
        return (img - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


ERASE_MODES = ("pixel", "rand", "const")


class RandomErasing:
    """Erase one random rectangle with probability ``p`` (Zhong et al. 2020; timm's ``RandomErasing``, which
    DeiT's recipe uses after normalisation with ``p = 0.25``, ``mode = "pixel"``; paper App. 8.1 via DeiT).

    Up to 10 attempts draw an area fraction uniformly from ``scale`` and an aspect ratio h/w log-uniformly
    from ``ratio``; the first ``h x w`` box strictly smaller than the image (``h < H``, ``w < W``) is placed
    uniformly and filled: ``pixel`` with per-pixel standard normal values (the normalised space's scale),
    ``rand`` with one standard normal value per channel, ``const`` with zeros (the normalised mean). If no
    attempt fits, the image is unchanged. The input is never modified in place.

    Shapes: ``(C, H, W) -> (C, H, W)``.
    """

    def __init__(self, p: float = 0.25, scale: Sequence[float] = (0.02, 1.0 / 3.0),
                 ratio: Sequence[float] = (0.3, 1.0 / 0.3), mode: str = "pixel",
                 generator: torch.Generator | None = None):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomErasing p must be in [0, 1], got {p}")
        scale = tuple(float(s) for s in scale)
        ratio = tuple(float(r) for r in ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"RandomErasing scale must be (min, max) with 0 < min <= max <= 1, got {scale}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomErasing ratio must be (min, max) with 0 < min <= max, got {ratio}")
        if mode not in ERASE_MODES:
            raise ValueError(f"RandomErasing mode must be one of {list(ERASE_MODES)}, got {mode!r}")
        self.p, self.scale, self.ratio, self.mode = float(p), scale, ratio, mode
        self.generator = generator

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """A box ``(top, left, h, w)`` inside a ``height x width`` image, or None when no attempt fits."""
        g = self.generator
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            u = torch.rand(2, generator=g, dtype=torch.float64)
            area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[0].item())
            aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1].item())
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, (1,), generator=g).item())
                left = int(torch.randint(0, width - w + 1, (1,), generator=g).item())
                return top, left, h, w
        return None

    def __call__(self, img: Tensor) -> Tensor:
        _check_image(img, "RandomErasing")
        # always draw the coin, so the stream does not depend on p being 0 or 1
        if torch.rand(1, generator=self.generator).item() >= self.p:
            return img
        box = self.get_params(img.shape[-2], img.shape[-1])
        if box is None:
            return img
        top, left, h, w = box
        c = img.shape[0]
        if self.mode == "pixel":
            patch = torch.randn(c, h, w, generator=self.generator, dtype=img.dtype)
        elif self.mode == "rand":
            patch = torch.randn(c, 1, 1, generator=self.generator, dtype=img.dtype).expand(c, h, w)
        else:
            patch = torch.zeros(c, h, w, dtype=img.dtype)
        out = img.clone()
        out[:, top:top + h, left:left + w] = patch.to(img.device)
        return out

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, mode={self.mode!r})"


def build_transforms(train: bool, image_size: int | Sequence[int],
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     rrc_scale: Sequence[float] | None = (0.2, 1.0),
                     rrc_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
                     hflip: float | bool = 0.5, eval_crop_ratio: float = 1.0,
                     randaugment: str | None = None, reprob: float = 0.0,
                     generator: torch.Generator | None = None) -> Compose:
    """The per-image pipeline for pretraining (``train=True``) or evaluation (``train=False``).

    Train (MP3/DeiT-style pretraining augmentation, paper Appendix):
    ``RandomResizedCrop(image_size, rrc_scale, rrc_ratio)`` (or a plain resize when ``rrc_scale`` is
    None) -> ``RandomHorizontalFlip(hflip)`` (skipped when 0/False; True means 0.5) -> ``Normalize``.
    Fine-tuning adds DeiT's pieces (paper App. 8.1), in timm's order: ``RandAugment(randaugment)`` (a timm
    string such as ``"rand-m9-mstd0.5-inc1"``; geometric ops fill with ``mean``, bicubic) after the flip, and
    ``RandomErasing(reprob, mode="pixel")`` after ``Normalize``; both are off by default and in eval.

    Eval: ``Resize`` of the shorter side to ``image_size / eval_crop_ratio`` (a non-square
    ``image_size`` resizes exactly to ``image_size / eval_crop_ratio``) -> ``CenterCrop(image_size)``
    -> ``Normalize``; with the default ratio 1.0 an image already at ``image_size`` passes through
    unchanged. ``Normalize`` is skipped when ``mean`` and ``std`` are both None.

    Shapes: ``(C, H, W)`` in [0, 1] -> ``(C, *image_size)``.
    """
    size = size_pair(image_size, "build_transforms image_size")
    if (mean is None) != (std is None):
        raise ValueError("build_transforms: give both mean and std, or neither")
    steps: list[Callable[[Tensor], Tensor]] = []
    if train:
        if rrc_scale is None:
            steps.append(Resize(size))
        else:
            steps.append(RandomResizedCrop(size, scale=rrc_scale, ratio=rrc_ratio, generator=generator))
        p = 0.5 if hflip is True else float(hflip)
        if p > 0.0:
            steps.append(RandomHorizontalFlip(p, generator=generator))
        if randaugment:
            fill = tuple(mean) if mean is not None else 0.5
            steps.append(RandAugment(randaugment, fill=fill, generator=generator))
    else:
        if not 0.0 < eval_crop_ratio <= 1.0:
            raise ValueError(f"build_transforms eval_crop_ratio must be in (0, 1], got {eval_crop_ratio}")
        if size[0] == size[1]:  # shorter side to size / ratio, keeping the aspect ratio
            steps.append(Resize(int(round(size[0] / eval_crop_ratio))))
        else:  # a non-square target: resize exactly to size / ratio
            steps.append(Resize((int(round(size[0] / eval_crop_ratio)),
                                 int(round(size[1] / eval_crop_ratio)))))
        steps.append(CenterCrop(size))
    if mean is not None and std is not None:
        steps.append(Normalize(mean, std))
    if train and reprob > 0.0:
        steps.append(RandomErasing(reprob, mode="pixel", generator=generator))
    return Compose(steps)
