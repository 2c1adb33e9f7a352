"""Tensor augmentations: shapes, exact flips/normalisation, crop bounds, and seeded determinism."""

import pytest
import torch
import torch.nn.functional as F

from part.data.randaugment import RandAugment
from part.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    build_transforms,
    seeded_cpu_rng,
)


def ramp(c: int = 3, h: int = 12, w: int = 20) -> torch.Tensor:
    """A (C, H, W) image in [0, 1] whose every pixel is distinct."""
    return torch.arange(c * h * w, dtype=torch.float32).view(c, h, w) / (c * h * w - 1)


@pytest.mark.parametrize("shape,size", [((3, 12, 20), 8), ((1, 28, 28), (16, 24)), ((3, 5, 40), 32)])
def test_rrc_output_shape_and_range(shape, size):
    img = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    rrc = RandomResizedCrop(size, generator=torch.Generator().manual_seed(1))
    expected = (size, size) if isinstance(size, int) else size
    for _ in range(5):
        out = rrc(img)
        assert out.shape == (shape[0], *expected)
        # Antialiased bilinear weights are a convex combination: no overshoot.
        assert out.min() >= img.min() - 1e-6 and out.max() <= img.max() + 1e-6


@pytest.mark.parametrize("height,width", [(32, 32), (10, 40), (224, 160), (7, 3)])
def test_rrc_boxes_stay_inside_the_image(height, width):
    g = torch.Generator().manual_seed(0)
    scale = (0.2, 1.0)
    for _ in range(200):
        top, left, h, w = RandomResizedCrop.get_params(height, width, scale, (3 / 4, 4 / 3), g)
        assert 0 < h and 0 < w
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width


def test_rrc_area_and_ratio_follow_the_ranges():
    g = torch.Generator().manual_seed(3)
    areas, ratios = [], []
    for _ in range(300):
        _, _, h, w = RandomResizedCrop.get_params(200, 200, (0.3, 0.6), (0.5, 2.0), g)
        areas.append(h * w / 200**2)
        ratios.append(w / h)
    areas_t, ratios_t = torch.tensor(areas), torch.tensor(ratios)
    assert areas_t.min() > 0.28 and areas_t.max() < 0.62  # rounding of h and w only
    assert ratios_t.min() > 0.48 and ratios_t.max() < 2.05
    assert areas_t.std() > 0.05 and ratios_t.std() > 0.2  # actually random


def test_rrc_falls_back_to_a_central_crop():
    # An area larger than the image never fits: after 10 attempts, a central crop whose aspect
    # ratio is clamped to `ratio`.
    g = torch.Generator().manual_seed(0)
    assert RandomResizedCrop.get_params(30, 30, (1.5, 2.0), (3 / 4, 4 / 3), g) == (0, 0, 30, 30)
    # 10 x 40 is wider than 4/3: keep full height, width round(10 * 4/3) = 13, centred at (40-13)//2.
    assert RandomResizedCrop.get_params(10, 40, (1.5, 2.0), (3 / 4, 4 / 3), g) == (0, 13, 10, 13)
    # 40 x 10 is taller than 3/4: keep full width, height round(10 / (3/4)) = 13.
    assert RandomResizedCrop.get_params(40, 10, (1.5, 2.0), (3 / 4, 4 / 3), g) == (13, 0, 13, 10)


def test_rrc_output_is_the_resized_box():
    img = ramp(3, 16, 16)
    rrc = RandomResizedCrop(8, generator=torch.Generator().manual_seed(5))
    out = rrc(img)
    top, left, h, w = RandomResizedCrop.get_params(16, 16, rrc.scale, rrc.ratio,
                                                   torch.Generator().manual_seed(5))
    ref = F.interpolate(img[None, :, top:top + h, left:left + w], size=(8, 8), mode="bilinear",
                        align_corners=False, antialias=True)[0]
    torch.testing.assert_close(out, ref)
    # A full-image box at the input size is the identity.
    whole = RandomResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(whole(img), img)


def test_horizontal_flip_exact():
    img = ramp(2, 3, 4)
    torch.testing.assert_close(RandomHorizontalFlip(p=1.0)(img), img[:, :, [3, 2, 1, 0]])
    assert RandomHorizontalFlip(p=1.0)(img)[1, 2, 0] == img[1, 2, 3]
    torch.testing.assert_close(RandomHorizontalFlip(p=0.0)(img), img)
    flip = RandomHorizontalFlip(p=0.5, generator=torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(flip(img), img.flip(-1))) for _ in range(64)]
    assert 10 < sum(flipped) < 54  # both outcomes happen at p = 0.5


def test_normalize_numbers():
    img = torch.full((3, 2, 2), 0.5)
    out = Normalize((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))(img)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.0, 1.0, 0.5]))
    gray = Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)(torch.zeros(1, 2, 2))
    torch.testing.assert_close(gray, torch.full((1, 2, 2), -FASHION_MNIST_MEAN[0] / FASHION_MNIST_STD[0]))
    with pytest.raises(ValueError, match="Normalize.*3.*1"):
        Normalize(IMAGENET_MEAN, IMAGENET_STD)(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="Normalize std must be positive"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="mean and std must be non-empty and of equal length"):
        Normalize((0.5, 0.5), (0.2,))


def test_dataset_statistics_constants_are_consistent():
    for mean, std, c in [(FASHION_MNIST_MEAN, FASHION_MNIST_STD, 1), (CIFAR10_MEAN, CIFAR10_STD, 3),
                         (CIFAR100_MEAN, CIFAR100_STD, 3), (IMAGENET_MEAN, IMAGENET_STD, 3)]:
        assert len(mean) == len(std) == c
        assert all(0 < m < 1 for m in mean) and all(0 < s < 0.5 for s in std)


def test_global_seed_makes_the_pipeline_reproducible():
    img = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    tf = build_transforms(True, 8, CIFAR100_MEAN, CIFAR100_STD)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return torch.stack([tf(img) for _ in range(6)])

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # An explicit generator gives the same stream irrespective of the global RNG.
    g1 = build_transforms(True, 8, generator=torch.Generator().manual_seed(3))
    g2 = build_transforms(True, 8, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    x = g1(img)
    torch.manual_seed(1)
    assert torch.equal(x, g2(img))


def test_seeded_cpu_rng_is_manual_seed_on_the_cpu_and_restores_the_state(monkeypatch):
    """The per-item seeding of the loaders: the CPU stream of ``torch.manual_seed(seed)``, the state before
    restored after, and ``torch.manual_seed`` (which seeds, or queues with a stack trace, every accelerator
    backend) never called."""
    img = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    tf = build_transforms(True, 8, CIFAR100_MEAN, CIFAR100_STD)
    expected = []
    for seed in (0, 7, 2**40 + 3):
        torch.manual_seed(seed)
        expected.append((tf(img), torch.rand(2)))

    def forbidden(seed):
        raise AssertionError("torch.manual_seed called")

    monkeypatch.setattr(torch, "manual_seed", forbidden)
    torch.random.default_generator.manual_seed(123)
    outside = torch.random.get_rng_state()
    for seed, (out, after) in zip((0, 7, 2**40 + 3), expected):
        with seeded_cpu_rng(seed):
            assert torch.equal(tf(img), out)
            assert torch.equal(torch.rand(2), after)
        assert torch.equal(torch.random.get_rng_state(), outside)


def test_build_transforms_train_and_eval():
    img = torch.rand(3, 32, 24, generator=torch.Generator().manual_seed(0))
    train = build_transforms(True, (16, 12), CIFAR10_MEAN, CIFAR10_STD, rrc_scale=(0.5, 1.0), hflip=True)
    kinds = [type(t) for t in train.transforms]
    assert kinds == [RandomResizedCrop, RandomHorizontalFlip, Normalize]
    assert train.transforms[0].scale == (0.5, 1.0) and train.transforms[1].p == 0.5
    assert train(img).shape == (3, 16, 12)
    plain = build_transforms(True, 16, rrc_scale=None, hflip=False)
    assert [type(t) for t in plain.transforms] == [Resize]

    same = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(1))
    ev = build_transforms(False, 28, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    torch.testing.assert_close(ev(same), (same - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0])
    crop = build_transforms(False, 16, eval_crop_ratio=0.5)
    out = crop(img)  # shorter side 24 -> 32, then the central 16 x 16
    assert out.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="give both mean and std, or neither"):
        build_transforms(True, 8, mean=CIFAR10_MEAN)
    with pytest.raises(ValueError, match="eval_crop_ratio"):
        build_transforms(False, 8, eval_crop_ratio=1.5)


def test_resize_centercrop_and_compose():
    img = ramp(1, 10, 20)
    assert Resize(5)(img).shape == (1, 5, 10)  # shorter side to 5, aspect kept
    assert Resize((7, 3))(img).shape == (1, 7, 3)
    cc = CenterCrop(4)(img)
    torch.testing.assert_close(cc, img[:, 3:7, 8:12])
    padded = CenterCrop((12, 20))(img)  # taller than the image: zero rows above and below
    assert padded.shape == (1, 12, 20) and padded[:, 0].abs().sum() == 0 and padded[:, -1].abs().sum() == 0
    torch.testing.assert_close(padded[:, 1:11], img)
    order = Compose([lambda x: x + 1, lambda x: x * 2])
    torch.testing.assert_close(order(torch.zeros(1, 1, 1)), torch.full((1, 1, 1), 2.0))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="RandomResizedCrop: expected one image tensor of shape"):
        RandomResizedCrop(8)(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="RandomResizedCrop scale must be"):
        RandomResizedCrop(8, scale=(0.8, 0.2))
    with pytest.raises(ValueError, match="RandomResizedCrop size must be a positive int"):
        RandomResizedCrop(0)
    with pytest.raises(ValueError, match="RandomHorizontalFlip p must be in"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match=r"Compose: transforms\[1\] is not callable"):
        Compose([lambda x: x, 3])


# ---------------------------------------------------------------------------------------------------------
# random erasing (DeiT's recipe, timm semantics)
# ---------------------------------------------------------------------------------------------------------
def test_random_erasing_box_follows_the_ranges_and_fills_normal_pixels():
    img = torch.full((3, 40, 40), 7.0)  # far from the N(0, 1) fill, so the erased box is visible
    er = RandomErasing(p=1.0, generator=torch.Generator().manual_seed(0))
    areas, ratios, fills = [], [], []
    for _ in range(200):
        out = er(img)
        assert out.shape == img.shape and torch.isfinite(out).all()
        erased = (out != 7.0).any(0)
        rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert erased.sum() == h * w and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # one box
        assert h < 40 and w < 40
        areas.append(h * w / 1600)
        ratios.append(h / w)
        fills.append(out[:, erased].flatten())
    areas_t, ratios_t, values = torch.tensor(areas), torch.tensor(ratios), torch.cat(fills)
    assert areas_t.min() >= 0.015 and areas_t.max() <= 0.36  # [0.02, 1/3] up to rounding of h and w
    assert ratios_t.min() >= 0.25 and ratios_t.max() <= 4.0 and ratios_t.min() < 0.6 and ratios_t.max() > 1.7
    assert abs(values.mean().item()) < 0.05 and abs(values.std().item() - 1) < 0.05  # per-pixel N(0, 1)
    assert torch.equal(img, torch.full((3, 40, 40), 7.0))  # never in place


def test_random_erasing_probability_modes_and_determinism():
    img = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0)) + 5
    assert all(torch.equal(RandomErasing(p=0.0)(img), img) for _ in range(20))
    g = torch.Generator().manual_seed(1)
    hits = sum(not torch.equal(RandomErasing(p=0.25, generator=g)(img), img) for _ in range(400))
    assert 70 <= hits <= 130  # p = 0.25
    rand = RandomErasing(p=1.0, mode="rand", generator=torch.Generator().manual_seed(2))(img)
    box = (rand != img).any(0)
    assert all(rand[c, box].unique().numel() == 1 for c in range(3))  # one value per channel
    const = RandomErasing(p=1.0, mode="const", generator=torch.Generator().manual_seed(2))(img)
    assert (const == 0).any(0).sum() > 0 and torch.equal(const[:, (const == 0).any(0)], torch.zeros(3, int((const == 0).any(0).sum())))
    a = [RandomErasing(generator=torch.Generator().manual_seed(9))(img) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    torch.manual_seed(4)
    first = [RandomErasing(p=0.5)(img) for _ in range(6)]
    torch.manual_seed(4)
    assert all(torch.equal(f, RandomErasing(p=0.5)(img)) for f in first)
    tiny = torch.rand(1, 1, 1)  # no box fits strictly inside a 1 x 1 image
    assert torch.equal(RandomErasing(p=1.0)(tiny), tiny)
    for kwargs, words in ((dict(p=1.5), "p must be in"), (dict(mode="noise"), "mode must be one of"),
                          (dict(scale=(0.5, 0.1)), "scale must be"), (dict(ratio=(0, 1)), "ratio must be")):
        with pytest.raises(ValueError, match=words):
            RandomErasing(**kwargs)


def test_build_transforms_deit_finetune_pipeline():
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    tf = build_transforms(True, 32, CIFAR100_MEAN, CIFAR100_STD, rrc_scale=(0.08, 1.0),
                          randaugment="rand-m9-mstd0.5-inc1", reprob=0.25)
    kinds = [type(t) for t in tf.transforms]
    assert kinds == [RandomResizedCrop, RandomHorizontalFlip, RandAugment, Normalize, RandomErasing]
    assert tf.transforms[2].fill == CIFAR100_MEAN and tf.transforms[2].spec.magnitude == 9
    assert tf.transforms[4].p == 0.25 and tf.transforms[4].mode == "pixel"
    torch.manual_seed(0)
    outs = torch.stack([tf(img) for _ in range(8)])
    torch.manual_seed(0)
    assert torch.equal(outs, torch.stack([tf(img) for _ in range(8)]))
    assert outs.shape == (8, 3, 32, 32) and torch.isfinite(outs).all()
    ev = build_transforms(False, 32, CIFAR100_MEAN, CIFAR100_STD, randaugment="rand-m9", reprob=1.0)
    assert [type(t) for t in ev.transforms] == [Resize, CenterCrop, Normalize]  # training only
