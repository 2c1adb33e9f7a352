"""The blur-cue probe of ``experiments/blur_probe.py`` (issue 18) on white noise: the analytic blur of a
bilinear crop, a readable offset with continuous positions, no gap with integer ones."""


import pytest
import torch

from .scripts import load_script

pytestmark = pytest.mark.slow  # end to end: several runs of the CLI or a benchmark script


@pytest.fixture(scope="module")
def probe():
    return load_script("blur_probe")


def test_noise_std_is_the_bilinear_blur(probe):
    """A bilinear sample at fraction f in both axes mixes 4 pixels: std = (f^2 + (1-f)^2) for unit noise."""
    std = probe.noise_std(4, offsets=(0.0, 0.25, 0.5), n=8000)
    assert abs(std["0"] - 1.0) < 0.03
    assert abs(std["0.25"] - (0.25**2 + 0.75**2)) < 0.03  # 0.625
    assert abs(std["0.5"] - 0.5) < 0.03


def test_grid_distance(probe):
    boxes = torch.tensor([[[0.25 + 3.5, 2.0 + 3.5, 7.0, 7.0], [0.75 + 3.5, 1.5 + 3.5, 7.0, 7.0]]])
    torch.testing.assert_close(probe.grid_distance(boxes, 7), torch.tensor([[[0.25, 0.0], [0.25, 0.5]]]))


def test_white_noise_probe(probe):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(800, 1, 28, 28, generator=g), torch.randn(300, 1, 28, 28, generator=g)
    cont = probe.measure(tr, te, 7, "continuous", steps=150, seed=0)
    integer = probe.measure(tr, te, 7, "integer", steps=150, seed=0)
    assert cont["offset_r2"] > 0.2 and cont["gap_accuracy"] > 0.8  # the blur tells the offset and the domain
    assert integer["offset_r2"] != integer["offset_r2"]  # NaN: every target is 0, nothing to read
    assert abs(integer["gap_accuracy"] - 0.5) < 0.06  # exact copies of noise: no distribution gap
