"""PART in 1D (paper §5.2, App. 8.1): the shared PARTModel with 1D samplers and the 1D ViT, end to end."""

import pytest
import torch

from part.data.sleep import make_synthetic_sleep
from part.models.vit1d import vit1d_custom, vit1d_paper
from part.objectives import PARTModel
from part.sampling.windows1d import GridWindowSampler, OffGridWindowSampler, ScaleWindowSampler, build_window_sampler
from part.targets import relative_targets


def small_backbone(signal_len=120, patch_len=10, chans=3):
    return vit1d_custom(32, 2, 2, signal_len=signal_len, patch_len=patch_len, in_chans=chans)


SAMPLERS = {
    "offgrid": (lambda: OffGridWindowSampler(10, num_patches=16), 16, 1),
    "grid": (lambda: GridWindowSampler(10), 12, 1),
    "scale": (lambda: ScaleWindowSampler(10, num_patches=16), 16, 2),
}


@pytest.mark.parametrize("head", ["cross_attention", "pairwise_mlp", "mlp"])
@pytest.mark.parametrize("sampler", ["offgrid", "grid", "scale"])
def test_heads_and_samplers_end_to_end(head, sampler):
    make, n, k = SAMPLERS[sampler]
    torch.manual_seed(0)
    model = PARTModel(small_backbone(), head=head, num_pairs=30, sampler=make())
    x = torch.randn(2, 3, 120)
    out = model(x, torch.Generator().manual_seed(0))
    assert out.pred.shape == out.target.shape == (2, 30, k)
    assert out.boxes.shape == (2, n, 2) and out.pairs.shape == (2, 30, 2)
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, ((out.pred - out.target) ** 2).mean())
    out.loss.backward()
    g = model.backbone.patch_embed.proj.weight.grad
    assert g is not None and g.abs().sum() > 0
    expected = {"err_t", "err_euclid"} | ({"err_len"} if k == 2 else set())
    assert set(out.metrics) == expected and all(torch.isfinite(v) for v in out.metrics.values())


def test_target_is_dt_of_the_sampled_windows():
    """target[b, m] = (t_tgt - t_ref) / L_ref (+ L_tgt / L_ref) read off the returned boxes."""
    model = PARTModel(small_backbone(), num_pairs=20, sampler=ScaleWindowSampler(10, num_patches=8))
    out = model(torch.randn(2, 3, 120), torch.Generator().manual_seed(1))
    b = torch.arange(2)[:, None]
    ref, tgt = out.boxes[b, out.pairs[..., 0]], out.boxes[b, out.pairs[..., 1]]  # (2, 20, 2)
    torch.testing.assert_close(out.target[..., 0], (tgt[..., 0] - ref[..., 0]) / ref[..., 1])
    torch.testing.assert_close(out.target[..., 1], tgt[..., 1] / ref[..., 1])
    torch.testing.assert_close(out.target, relative_targets(out.boxes, out.pairs, with_scale=True))
    d = out.pred.detach() - out.target
    torch.testing.assert_close(out.metrics["err_t"], d[..., 0].pow(2).mean())
    torch.testing.assert_close(out.metrics["err_euclid"], d[..., 0].abs().mean())


def test_mlp_head_uses_sampler_patch_count():
    model = PARTModel(small_backbone(), head="mlp", num_pairs="all", sampler=OffGridWindowSampler(10, num_patches=7))
    assert model.head.num_patches == 7
    out = model(torch.randn(1, 3, 120))
    assert out.pred.shape == (1, 42, 1)


def test_reproducible_with_generator_and_predict_matrix():
    model = PARTModel(small_backbone(), num_pairs=10, sampler=build_window_sampler("offgrid", 10, num_patches=6))
    x = torch.randn(2, 3, 120)
    a = model(x, torch.Generator().manual_seed(4))
    b = model(x, torch.Generator().manual_seed(4))
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.pairs, b.pairs)
    torch.testing.assert_close(a.loss, b.loss)
    patches, _ = model.eval().sample(x)
    assert model.predict_matrix(patches).shape == (2, 6, 6, 1)


def test_paper_configuration_one_step():
    """The paper's setting: 12.9M 1D ViT, forty 1-s windows from a 30-s 6-channel EEG window at 100 Hz."""
    torch.manual_seed(0)
    model = PARTModel(vit1d_paper(), num_pairs=64, sampler=OffGridWindowSampler(100, 40))
    out = model(torch.randn(1, 6, 3000), torch.Generator().manual_seed(0))
    out.loss.backward()
    assert out.boxes.shape == (1, 40, 2) and out.pred.shape == (1, 64, 1)
    assert torch.isfinite(out.loss) and model.backbone.pos_embed is None


def test_bad_inputs():
    model = PARTModel(small_backbone(), num_pairs=10, sampler=OffGridWindowSampler(10, num_patches=8))
    with pytest.raises(ValueError, match=r"signals.*shape \(3, 120\)"):
        model(torch.randn(3, 120))
    x = torch.randn(1, 3, 120)
    x[0, 0, 5] = float("inf")
    with pytest.raises(ValueError, match="signals contain NaN or infinite values"):
        model(x)
    with pytest.raises(ValueError, match="patch_len=10.*T=6"):
        model(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match="T=125.*patch_len=10"):
        PARTModel(small_backbone(), num_pairs=10, sampler=GridWindowSampler(10))(torch.randn(1, 3, 125))
    with pytest.raises(ValueError, match="num_pairs=100.*56"):
        PARTModel(small_backbone(), num_pairs=100, sampler=OffGridWindowSampler(10, num_patches=8))
    with pytest.raises(ValueError, match="patches.*C=2.*10.*C=3"):
        model(torch.randn(1, 2, 120))


@pytest.mark.parametrize("head,steps", [("cross_attention", 60), ("cross_attention_paper", 300)])
def test_overfit_synthetic_sleep_windows(head, steps):
    """CPU steps on 4 SYNTHETIC sleep-like windows (2 channels, 30 s at 100 Hz), the same 16 windows and
    128 pairs every step (seed reset), so the model can memorise where each window sits.

    Initial MSE is ~ Var(dt) ~ 140 (dt in units of L over a 30-window span). Measured: cross_attention (the 1D
    configs' head) 140.8 -> 5.4 (3.9% of the start) in 60 steps; cross_attention_paper (the library default)
    is slower on these large targets, 35.5% after 60 steps, 139.6 -> 9.2 (6.6%) after 200. At a constant lr of
    2e-3 Adam oscillates: on an AMD EPYC with one thread (2026-12-08) the same run's last 5 steps were 11.0% at step
    200 after lower values a few steps earlier, and 5.4% at 300 (lowest 3.9%; `pytest -s -k overfit` prints
    both). So the paper head gets 300 steps, and we require the lowest 5-step mean of the run below 10% of the
    first: the model memorised the positions.
    """
    rec = make_synthetic_sleep(n_subjects=1, epochs_per_subject=4, channels=2, seed=0)
    x = torch.from_numpy(rec.X)
    assert x.shape == (4, 2, 3000)
    torch.manual_seed(0)
    model = PARTModel(
        vit1d_custom(32, 2, 2, signal_len=3000, patch_len=100, in_chans=2), head=head,
        num_pairs=128, sampler=OffGridWindowSampler(100, num_patches=16),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    g = torch.Generator()
    losses = []
    for _ in range(steps):
        g.manual_seed(0)
        out = model(x, g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    means = [sum(losses[i - 5:i]) / 5 for i in range(5, steps + 1)]
    start, end, low = means[0], means[-1], min(means)
    print(f"1D PART overfit on synthetic sleep windows, {head}: loss {start:.3f} -> {end:.3f} ({end / start:.1%}; "
          f"lowest {low / start:.1%})")
    assert low < 0.10 * start
