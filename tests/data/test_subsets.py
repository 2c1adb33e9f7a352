"""Validation carve and label fractions (issue 24): stratified, seeded, disjoint, >= 2 per class, the same subset
for every method at a seed, and the data options checked at load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from part.config import ConfigError, load_config
from part.data.subsets import MIN_PER_CLASS, carve_indices, fraction_indices
from part.engine import build_dataset


@st.composite
def labelled(draw):
    k = draw(st.integers(2, 6))
    counts = draw(st.lists(st.integers(3, 40), min_size=k, max_size=k))
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    rng = np.random.default_rng(draw(st.integers(0, 10)))
    return rng.permutation(labels)


@settings(max_examples=60, deadline=None)
@given(labels=labelled(), frac=st.floats(0.01, 1.0), seed=st.integers(0, 1000))
def test_fraction_is_stratified_with_at_least_two_per_class(labels, frac, seed):
    idx = fraction_indices(labels, frac, seed)
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels)
    got = np.bincount(labels[idx], minlength=len(counts))
    for c, n in enumerate(counts):
        assert got[c] == min(n, max(MIN_PER_CLASS, int(round(frac * n))))
    np.testing.assert_array_equal(idx, fraction_indices(labels, frac, seed))  # pure function of (labels, seed)


@settings(max_examples=60, deadline=None)
@given(labels=labelled(), share=st.floats(0.05, 0.5), seed=st.integers(0, 1000))
def test_carve_is_proportional_and_leaves_every_class_on_both_sides(labels, share, seed):
    total = max(len(np.unique(labels)), int(round(share * labels.size)))
    idx = carve_indices(labels, total, seed)
    assert idx.size == total
    counts = np.bincount(labels)
    got = np.bincount(labels[idx], minlength=len(counts))
    assert np.all(got >= 1) and np.all(counts - got >= 1)
    exact = total * counts / labels.size
    if np.all(exact >= 1) and np.all(exact <= counts - 1):  # no bound binds: within one of proportional
        assert np.all(np.abs(got - exact) < 1 + 1e-9)


def test_carve_refuses_sizes_that_empty_a_class():
    labels = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="val_carve"):
        carve_indices(labels, 2, 0)  # fewer than one per class
    with pytest.raises(ValueError, match="val_carve"):
        carve_indices(labels, 4, 0)  # leaves a class with nothing to train on


def _cfg(root, *extra):
    return load_config(None, ["data.kind=npz", f"data.root={root}", "model.img_size=8", "model.patch_size=4",
                              "model.in_chans=1", "data.augment=false", *extra])


def test_splits_are_disjoint_and_fixed_across_methods(tiny_npz):
    cfg = _cfg(tiny_npz, "data.val_carve=8", "data.label_fraction=0.5")
    train, val = build_dataset(cfg, train=True), build_dataset(cfg, train=False, split="val")
    assert len(val) == 8 and not set(train.indices) & set(val.indices)
    assert train.record()["subset"].startswith("train without the val carve 8")
    # another method (another objective / model) at the same seed reads the same images
    other = _cfg(tiny_npz, "data.val_carve=8", "data.label_fraction=0.5", "objective.name=mae")
    np.testing.assert_array_equal(build_dataset(other, train=True).indices, train.indices)
    # another seed: another labelled subset, the same carve
    seed1 = _cfg(tiny_npz, "data.val_carve=8", "data.label_fraction=0.5", "train.seed=1")
    assert not np.array_equal(build_dataset(seed1, train=True).indices, train.indices)
    np.testing.assert_array_equal(build_dataset(seed1, train=False, split="val").indices, val.indices)
    # the item behind a subset index is the reader's item
    x, y = val[0]
    x0, y0 = val.dataset[int(val.indices[0])]
    assert y == y0 and (x == x0).all()


@pytest.mark.bad_input
@pytest.mark.parametrize("key,value", [("data.val_carve", "1.5"), ("data.val_carve", "0"), ("data.val_carve", "-3"),
                                       ("data.label_fraction", "0"), ("data.label_fraction", "1.2"),
                                       ("data.label_seed", "-1"), ("data.carve_seed", "x")])
def test_bad_subset_options_fail_at_load(key, value):
    with pytest.raises(ConfigError, match=key.split(".")[1]):
        load_config(None, [f"{key}={value}"])


def test_val_split_without_a_carve_is_one_clear_line(tiny_npz):
    from part.data.images.base import check_split

    with pytest.raises(ValueError, match="data.val_carve"):  # IDX / CIFAR / Fashion-MNIST have no val split
        check_split("val", "idx")
    with pytest.raises(Exception, match="val.npz"):  # npz and image folders may have their own val split
        build_dataset(_cfg(tiny_npz), train=False, split="val")


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("test", 12)):
        y = np.arange(n) % 3
        x = rng.integers(0, 255, (n, 8, 8)).astype(np.uint8)
        np.savez(tmp_path / f"{split}.npz", x=x, y=y.astype(np.int64))
    return tmp_path
