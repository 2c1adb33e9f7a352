"""Preprocessing of paper App. 8.1: 0.1-30 Hz zero-phase band-pass, re-sampling to 100 Hz, 30-s windows,
instance normalisation. The numpy backend always runs; the SciPy backend runs when SciPy is installed."""

import sys

import numpy as np
import pytest

from part.data.signal import (
    bandpass,
    bandpass_gain,
    has_scipy,
    instance_normalize,
    make_windows,
    preprocess,
    resample,
    resample_ratio,
)

BACKENDS = [
    "numpy",
    pytest.param("scipy", marks=pytest.mark.skipif(not has_scipy(), reason="scipy not installed")),
]


def sine(freq: float, fs: float, seconds: float, amp: float = 1.0, phase: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return amp * np.sin(2 * np.pi * freq * t + phase)


def amplitude(x: np.ndarray) -> float:
    return float(np.sqrt(2.0) * np.std(x))


# ------------------------------------------------------------------------------------------ band-pass


@pytest.mark.parametrize("backend", BACKENDS)
def test_bandpass_keeps_in_band_and_removes_out_of_band(backend):
    fs = 100.0
    x = np.stack([sine(10, fs, 200), sine(45, fs, 200), 50.0 + 3.0 * sine(0.02, fs, 200)])  # (3, 20000)
    y = bandpass(x, fs, 0.1, 30.0, order=4, backend=backend)
    assert y.shape == x.shape and y.dtype == np.float32
    inner = slice(int(60 * fs), -int(60 * fs))  # away from the edges, where the two backends differ
    assert amplitude(y[0, inner]) == pytest.approx(1.0, rel=0.05)  # 10 Hz kept within 5%
    assert 20 * np.log10(amplitude(y[1, inner]) / 1.0) < -20.0  # 45 Hz attenuated by more than 20 dB
    assert np.abs(y[2, inner]).max() < 0.01 * 3.0  # 0.02 Hz drift and the DC offset removed


@pytest.mark.parametrize("backend", BACKENDS)
def test_bandpass_is_zero_phase(backend):
    fs = 100.0
    x = sine(5, fs, 60)[None]
    y = bandpass(x, fs, backend=backend)
    inner = slice(2000, 4000)
    # a zero-phase filter leaves an in-band sine in place: no lag
    np.testing.assert_allclose(y[0, inner], x[0, inner], atol=0.02)


def test_numpy_gain_matches_scipy_design():
    sps = pytest.importorskip("scipy.signal")
    fs, low, high, order = 200.0, 0.1, 30.0, 4
    sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    freqs = np.linspace(0.01, 99.0, 500)
    _, h = sps.sosfreqz(sos, worN=freqs, fs=fs)
    np.testing.assert_allclose(bandpass_gain(freqs, fs, low, high, order), np.abs(h) ** 2, atol=1e-9)
    assert bandpass_gain(np.array([low, high]), fs, low, high, order) == pytest.approx([0.5, 0.5])


def test_numpy_backend_equals_scipy_backend_away_from_edges():
    pytest.importorskip("scipy.signal")
    fs = 100.0
    x = np.random.default_rng(0).normal(20.0, 10.0, size=(2, 20000))
    a = bandpass(x, fs, backend="scipy")
    b = bandpass(x, fs, backend="numpy")
    inner = slice(int(70 * fs), -int(70 * fs))  # edge transients of the 0.1 Hz high-pass decay by then
    np.testing.assert_allclose(a[:, inner], b[:, inner], atol=1e-3 * np.abs(a).max())


def test_bandpass_rejects_bad_band_and_short_signal():
    x = np.zeros((1, 1000))
    with pytest.raises(ValueError, match=r"high=30\.0.*Nyquist.*25"):
        bandpass(x, 50.0)
    with pytest.raises(ValueError, match="0 < low < high"):
        bandpass(x, 100.0, low=10.0, high=5.0)
    with pytest.raises(ValueError, match="order.*positive"):
        bandpass(x, 100.0, order=0)
    with pytest.raises(ValueError, match="needs at least 28"):
        bandpass(np.zeros((1, 10)), 100.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        bandpass(np.full((1, 1000), np.nan), 100.0)
    with pytest.raises(ValueError, match="backend.*one of"):
        bandpass(x, 100.0, backend="cuda")


def test_without_scipy_auto_uses_numpy_and_scipy_backend_explains(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.signal", None)
    assert not has_scipy()
    x = sine(10, 100.0, 30)[None]
    np.testing.assert_allclose(bandpass(x, 100.0), bandpass(x, 100.0, backend="numpy"))
    with pytest.raises(ImportError, match=r"pip install 'part\[sleep\]'"):
        bandpass(x, 100.0, backend="scipy")
    with pytest.raises(ImportError, match=r"pip install 'part\[sleep\]'"):
        resample(x, 200.0, 100.0, backend="scipy")


# ------------------------------------------------------------------------------------------- resample


def test_resample_ratio():
    assert resample_ratio(200, 100) == (1, 2)
    assert resample_ratio(256, 100) == (25, 64)
    assert resample_ratio(100, 100) == (1, 1)
    with pytest.raises(ValueError, match="rate.*50.*target.*100"):
        resample_ratio(50, 100)
    with pytest.raises(ValueError, match="rational ratio"):
        resample_ratio(100 * np.pi, 100)
    with pytest.raises(ValueError, match="must be positive"):
        resample_ratio(0, 100)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fs_in", [200.0, 256.0, 500.0])
def test_resample_keeps_sine_on_the_output_grid(backend, fs_in):
    x = sine(7.0, fs_in, 40, amp=2.0)[None]
    y = resample(x, fs_in, 100.0, backend=backend)
    n_out = int(np.ceil(x.shape[1] * 100.0 / fs_in))
    assert y.shape == (1, n_out) and y.dtype == np.float32
    expected = sine(7.0, 100.0, n_out / 100.0, amp=2.0)  # sample n of the output is at time n / 100
    np.testing.assert_allclose(y[0, 200:-200], expected[200:-200], atol=0.02)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample_removes_content_above_new_nyquist(backend):
    x = np.stack([sine(10, 200.0, 40), sine(70, 200.0, 40)])  # 70 Hz would alias to 30 Hz at 100 Hz
    y = resample(x, 200.0, 100.0, backend=backend)
    assert amplitude(y[0, 200:-200]) == pytest.approx(1.0, rel=0.05)
    assert 20 * np.log10(amplitude(y[1, 200:-200])) < -20.0


def test_resample_same_rate_is_identity_and_upsampling_is_refused():
    x = np.random.default_rng(1).normal(size=(3, 500))
    np.testing.assert_allclose(resample(x, 100.0, 100.0), x.astype(np.float32))
    with pytest.raises(ValueError, match="rate.*50.*target.*100"):
        resample(x, 50.0, 100.0)


# ------------------------------------------------------------------------------- windows + normalising


def test_make_windows_cuts_consecutive_windows_and_drops_the_tail():
    fs = 10.0
    x = np.arange(2 * 95, dtype=np.float64).reshape(2, 95)  # 9.5 s at 10 Hz
    w = make_windows(x, fs, window_s=3.0, start=2)  # (95 - 2) // 30 = 3 windows
    assert w.shape == (3, 2, 30) and w.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(w[k], x[:, 2 + 30 * k : 2 + 30 * (k + 1)])


def test_make_windows_errors():
    x = np.zeros((6, 2000))
    with pytest.raises(ValueError, match=r"30 s.*3000 samples.*longer"):
        make_windows(x, 100.0, 30.0)
    with pytest.raises(ValueError, match="not a whole number of samples"):
        make_windows(x, 100.0, 0.125)
    with pytest.raises(ValueError, match=r"shaped \(C, T\)"):
        make_windows(np.zeros(3000), 100.0, 30.0)


def test_instance_normalize_per_window_and_channel():
    rng = np.random.default_rng(2)
    w = rng.normal(loc=[[5.0], [-3.0]], scale=[[10.0], [0.5]], size=(4, 2, 300))
    w[1, 0] = 7.0  # a flat channel
    z = instance_normalize(w)
    assert z.shape == w.shape and z.dtype == np.float32
    live = np.ones((4, 2), dtype=bool)
    live[1, 0] = False
    np.testing.assert_allclose(z.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(-1)[live], 1.0, atol=1e-4)
    np.testing.assert_array_equal(z[1, 0], 0.0)
    with pytest.raises(ValueError, match="time axis of length >= 2"):
        instance_normalize(np.zeros((3, 1)))


def test_preprocess_band_passes_then_resamples():
    fs = 200.0
    x = np.stack([sine(10, fs, 120), sine(45, fs, 120)])
    y = preprocess(x, fs, 100.0, backend="numpy")
    assert y.shape == (2, 12000) and y.dtype == np.float32
    inner = slice(3000, -3000)
    assert amplitude(y[0, inner]) == pytest.approx(1.0, rel=0.05)
    assert amplitude(y[1, inner]) < 0.1


def test_preprocess_rate_check_comes_first():
    # at 50 Hz the 30 Hz cut-off is also above Nyquist; the rate message is the one users need to see
    with pytest.raises(ValueError, match="rate.*50.*target.*100"):
        preprocess(np.zeros((1, 5000)), 50.0, 100.0)
    with pytest.raises(ValueError, match="target Nyquist"):
        preprocess(np.zeros((1, 5000)), 100.0, 50.0)


def test_fft_length_helper_matches_brute_force():
    from part.data.signal import _fast_len

    def smooth(m: int) -> bool:
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 800):
        expected = next(m for m in range(n, 2 * n + 2) if smooth(m))
        assert _fast_len(n) == expected
