import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

# Tests use tiny tensors: one thread avoids oversubscription (2 threads were ~40x slower on a busy 2-core
# machine) and keeps results repeatable.
torch.set_num_threads(1)


def load_fixture_images() -> tuple[np.ndarray, np.ndarray]:
    """16 real Fashion-MNIST images (uint8, (16, 28, 28)) and labels from the IDX fixture."""
    raw = (FIXTURES / "fmnist16-images-idx3-ubyte").read_bytes()
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    assert magic == 0x803
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)
    labels = np.frombuffer((FIXTURES / "fmnist16-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    return images, labels


@pytest.fixture
def real_images() -> torch.Tensor:
    """(16, 1, 28, 28) float in [0, 1]: real Fashion-MNIST images."""
    images, _ = load_fixture_images()
    return torch.from_numpy(images.copy()).float().div(255).unsqueeze(1)


@pytest.fixture
def npz_data(tmp_path):
    """64 random 8x8 grayscale uint8 images with labels, as a real .npz file."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8), y=rng.integers(0, 4, 64))
    return path
