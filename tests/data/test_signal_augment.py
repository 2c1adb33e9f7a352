"""``data.options.augment`` (:mod:`part.data.signal_augment`): parsing and its one-line errors, the batch path
against the per-sample reference, determinism under a seed, and what each transform does."""

from __future__ import annotations

import pytest
import torch

from part.data.signal_augment import (
    AUGMENT_TRANSFORMS, SignalAugment, augment_signals, augment_signals_reference, draw_params,
    parse_signal_augment,
)
from part.data.signal_npz import signal_npz_options

ALL = {"channel_dropout": 0.3, "flip": 0.5, "shift": 0.2, "noise": 0.1, "offset": 0.5, "scale": 0.5}


def batch(b=5, c=3, t=16, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, t, generator=g) + torch.arange(c, dtype=torch.float32)[None, :, None]


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("off", [None, {}, "none", False])
def test_off_forms_parse_to_nothing(off):
    assert parse_signal_augment(off) == ()
    x = batch()
    assert augment_signals(x, off, gen()) is x
    assert not SignalAugment(off)


def test_parse_puts_transforms_in_the_order_of_application():
    spec = parse_signal_augment(ALL)
    assert [n for n, _ in spec] == list(AUGMENT_TRANSFORMS)
    assert dict(spec) == ALL
    assert signal_npz_options({"augment": {"offset": 1, "scale": 0.25}}).augment == (("scale", 0.25), ("offset", 1.0))
    assert signal_npz_options({}).augment == ()


@pytest.mark.parametrize("value,words", [
    ({"scal": 0.5}, ["data.options.augment", "'scal'", "scale"]),
    ({"scale": 1.5}, ["data.options.augment.scale", "1.5"]),
    ({"scale": -0.1}, ["data.options.augment.scale", "-0.1"]),
    ({"noise": -1}, ["data.options.augment.noise", "-1"]),
    ({"flip": 2}, ["data.options.augment.flip", "2"]),
    ({"channel_dropout": 1.0}, ["data.options.augment.channel_dropout", "1.0"]),
    ({"shift": "a"}, ["data.options.augment.shift", "'a'"]),
    ({"offset": True}, ["data.options.augment.offset", "True"]),
    ({"offset": float("nan")}, ["data.options.augment.offset", "nan"]),
    (["scale"], ["data.options.augment", "mapping", "['scale']"]),
])
def test_bad_values_name_the_field_and_value(value, words):
    with pytest.raises(ValueError) as err:
        parse_signal_augment(value)
    assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(ValueError, match="data.options.augment"):
        signal_npz_options({"augment": value})


# --- the batch path -----------------------------------------------------------------------------
def test_batch_path_equals_the_per_sample_reference():
    x = batch(b=6, c=3, t=16)
    spec = parse_signal_augment(ALL)
    p = draw_params(tuple(x.shape), spec, gen(3))
    fast = augment_signals(x, spec, params=p)
    ref = augment_signals_reference(x, spec, p)
    assert fast.shape == x.shape == (6, 3, 16) and fast.dtype == x.dtype
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert not torch.equal(fast, x)


def test_same_seed_same_batch_other_seed_other_batch_input_unchanged():
    x = batch()
    keep = x.clone()
    a, b, c = (augment_signals(x, ALL, gen(s)) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, keep)


def test_adding_a_later_transform_keeps_the_earlier_draws():
    x = batch()
    only = augment_signals(x, {"scale": 0.5}, gen(1))
    both = draw_params(tuple(x.shape), {"scale": 0.5, "flip": 0.0}, gen(1))  # flip 0: a no-op that draws
    assert torch.equal(augment_signals(x, {"scale": 0.5, "flip": 0.0}, params=both), only)


def test_what_each_transform_does():
    x = batch(b=64, c=3, t=32)
    mean, std = x.mean(-1), x.std(-1)
    # scale: within-trial amplitude changes by a factor in [1-m, 1+m], the level (time mean) stays
    y = augment_signals(x, {"scale": 0.5}, gen())
    torch.testing.assert_close(y.mean(-1), mean, rtol=0, atol=1e-5)
    ratio = y.std(-1) / std
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.5 + 1e-5 and ratio.std() > 0.1
    # offset: the level moves by at most m, per sample and channel; the waveform stays
    y = augment_signals(x, {"offset": 0.5}, gen())
    d = y - x
    assert torch.allclose(d, d[..., :1].expand_as(d), atol=1e-5) and d.abs().max() <= 0.5 and d[:, :, 0].std() > 0.1
    # noise: additive with standard deviation m
    y = augment_signals(x, {"noise": 0.2}, gen())
    assert abs(float((y - x).std()) - 0.2) < 0.01
    # shift: the content moves by k samples, the edge value fills the gap
    p = draw_params(tuple(x.shape), {"shift": 0.25}, gen())
    y = augment_signals(x, {"shift": 0.25}, params=p)
    k = p["shift"]
    assert k.abs().max() <= 8 and len(set(k.tolist())) > 3
    for i in range(x.shape[0]):
        s = int(k[i])
        if s >= 0:
            assert torch.equal(y[i, :, s:], x[i, :, : 32 - s]) and torch.equal(y[i, :, :s], x[i, :, :1].expand(3, s))
        else:
            assert torch.equal(y[i, :, : 32 + s], x[i, :, -s:])
    # flip 1: every sample negated; flip 0 and channel_dropout 0: identity
    assert torch.equal(augment_signals(x, {"flip": 1.0}, gen()), -x)
    assert torch.equal(augment_signals(x, {"flip": 0.0, "channel_dropout": 0.0}, gen()), x)
    # channel_dropout: whole channels zeroed, the others unchanged
    y = augment_signals(x, {"channel_dropout": 0.5}, gen())
    zero = (y == 0).all(-1)
    assert 0.3 < zero.float().mean() < 0.7
    assert torch.equal(y[~zero], x[~zero])


def test_wrong_rank_is_refused():
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        augment_signals(torch.zeros(3, 16), {"noise": 0.1}, gen())
