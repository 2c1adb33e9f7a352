"""Shared helpers for the capability-tool tests: an oracle PART model and a tiny random one."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

import part
from part.sampling import GridSampler, OffGridSampler
from part.targets import relative_matrix


class Oracle(nn.Module):
    """Same interface as PARTModel (``sample``, ``predict_matrix``, ``backbone``, ``sampler``; see
    :class:`part.visualization.PARTLike`), but predicts the TRUE transforms.

    It remembers the boxes of the last ``sample`` call and answers ``relative_matrix(boxes)``; it also
    keeps the images it was given so tests can check what the model saw. Its backbone takes images of any
    size and channel count (``img_size`` and ``in_chans`` are ``None``).
    """

    def __init__(self, sampler, with_scale: bool = False):
        super().__init__()
        self.sampler = sampler
        self.backbone = SimpleNamespace(patch_size=sampler.patch_size, img_size=None,
                                        patch_embed=SimpleNamespace(in_chans=None))
        self.with_scale = with_scale
        self.seen_images = None
        self._boxes = None

    def sample(self, images, generator=None):
        self.seen_images = images
        patches, boxes = self.sampler(images, generator)
        self._boxes = boxes
        return patches, boxes

    def predict_matrix(self, patches):
        assert patches.shape[1] == self._boxes.shape[1]
        return relative_matrix(self._boxes, with_scale=self.with_scale)


@pytest.fixture
def oracle_offgrid():
    return Oracle(OffGridSampler(7, num_patches=12))


@pytest.fixture
def oracle_grid():
    return Oracle(GridSampler(7))


@pytest.fixture
def random_model():
    """An untrained tiny PART model for 28x28 grayscale images (patch 7, 12 off-grid patches)."""
    torch.manual_seed(0)
    backbone = part.vit_custom(32, 2, 2, img_size=28, patch_size=7, in_chans=1)
    return part.PARTModel(backbone, num_pairs=20, num_patches=12)


@pytest.fixture
def fmnist(real_images):
    """4 real Fashion-MNIST images (4, 1, 28, 28) in [0, 1]."""
    return real_images[:4]
