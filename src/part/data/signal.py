"""Biosignal preprocessing for 1D PART (paper §5.2 "Time-series prediction", Appendix 8.1
"1D time series classification").

The paper's recipe for the PhysioNet 2018 EEG is, in this order:

1. band-pass filter with cut-offs 0.1-30 Hz (:func:`bandpass`, zero-phase Butterworth),
2. re-sample to 100 Hz (:func:`resample`, rational-ratio polyphase),
3. cut into 30-second windows (:func:`make_windows`),
4. instance-normalise every window (:func:`instance_normalize`, per window and channel).

Those numbers are written once, in :data:`PAPER_EEG`; every default of a rate, band, filter order or window
length in :mod:`part.data` reads it. :func:`preprocess` chains steps 1-2 on a continuous record;
:mod:`part.data.sleep` windows and labels it. Nothing here is specific to sleep: any ``(C, T)`` signal works.

Signals are numpy arrays shaped ``(C, T)`` (channels first, time last; any leading shape ``(..., T)`` is
accepted by the filters). Functions returning signals return ``float32``; filtering runs in ``float64``.

Backends. When SciPy is installed (the ``part[sleep]`` extra) ``backend="auto"`` uses
``scipy.signal.butter(..., output="sos")`` + ``scipy.signal.sosfiltfilt`` for the band-pass and
``scipy.signal.resample_poly`` for re-sampling. Without SciPy the numpy backend runs instead:

* band-pass: the same digital Butterworth filter applied forward and backward has the zero-phase gain
  ``|H(f)|^2 = 1 / (1 + nu(f)^(2 * order))`` with ``nu = (W^2 - W1 W2) / (W (W2 - W1))`` and
  ``W = tan(pi f / fs)`` (bilinear transform with pre-warping, exactly as ``scipy.signal.butter``
  designs it), so the numpy backend multiplies the spectrum of an odd-extended copy of the signal by that
  gain. Away from the record's ends it equals the SciPy result (tested).
* re-sampling: Fourier re-sampling (an ideal low-pass at the lower Nyquist frequency) of an odd-extended
  copy, which agrees with the polyphase result in the pass band away from the ends (tested).

The two backends differ only near a record's ends (edge handling: SciPy's 0.1 Hz high-pass start-up
transient takes tens of seconds to die out). FFT lengths are padded to ``2^a 3^b 5^c``; on a 2-hour
200 Hz record the numpy backend is about as fast as SciPy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "EEGPreprocessing",
    "PAPER_EEG",
    "bandpass",
    "bandpass_gain",
    "resample",
    "resample_ratio",
    "instance_normalize",
    "make_windows",
    "window_length",
    "preprocess",
    "has_scipy",
]

_BACKENDS = ("auto", "scipy", "numpy")


@dataclass(frozen=True)
class EEGPreprocessing:
    """The EEG preprocessing recipe of paper App. 8.1 ("bandpass filtered with cutoffs 0.1-30 Hz",
    "re-sampled to have a 100 Hz sampling rate", "Thirty-second windows are instance normalized").

    Attributes:
        fs: sampling rate after re-sampling, Hz.
        band: ``(low, high)`` band-pass cut-offs, Hz.
        order: Butterworth order of the band-pass design (applied forward and backward).
        window_s: window length, seconds (``T = fs * window_s`` samples).
        normalize: instance-normalise every window.
    """

    fs: float = 100.0
    band: tuple[float, float] = (0.1, 30.0)
    order: int = 4
    window_s: float = 30.0
    normalize: bool = True


PAPER_EEG = EEGPreprocessing()
"""The one home of the EEG defaults (100 Hz, 0.1-30 Hz, order 4, 30-s windows, instance normalisation)."""


def has_scipy() -> bool:
    """True when ``scipy.signal`` can be imported (the ``part[sleep]`` extra)."""
    try:
        import scipy.signal  # noqa: F401
    except ImportError:
        return False
    return True


def _scipy_signal():
    try:
        import scipy.signal as sps
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='scipy' needs SciPy, which is part of the optional sleep extra: "
            "pip install 'part[sleep]' (or use backend='numpy')"
        ) from err
    return sps


def _use_scipy(backend: str) -> bool:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "numpy":
        return False
    if backend == "scipy":
        _scipy_signal()
        return True
    return has_scipy()


def _as_signal(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a time axis (shape (C, T) or (T,)), got a scalar")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _odd_extend(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Odd (point-symmetric) extension of the last axis, as ``scipy.signal``'s ``padtype='odd'``."""
    parts = [x]
    if left > 0:
        parts.insert(0, 2.0 * x[..., :1] - x[..., left:0:-1])
    if right > 0:
        parts.append(2.0 * x[..., -1:] - x[..., -2 : -right - 2 : -1])
    return np.concatenate(parts, axis=-1)


def _fast_len(n: int) -> int:
    """Smallest ``2^a 3^b 5^c >= n`` (FFT-friendly length; a long prime length is several times slower)."""
    if n <= 6:
        return max(n, 1)
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = -(-n // p35)
            best = min(best, (1 << (q - 1).bit_length()) * p35)
            p35 *= 3
        p5 *= 5
    return best


def _zero_pad_to(x: np.ndarray, length: int) -> np.ndarray:
    extra = length - x.shape[-1]
    return x if extra <= 0 else np.concatenate([x, np.zeros(x.shape[:-1] + (extra,))], axis=-1)


def _tapered_extension(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Odd extension by ``left``/``right`` samples whose added parts fade to zero with a half-Hann taper,
    so the circular wrap-around of an FFT sees no jump. Padding longer than ``T - 1`` continues with zeros.
    """
    n = x.shape[-1]
    lo, ro = min(left, n - 1), min(right, n - 1)
    ext = _odd_extend(x, lo, ro)
    zeros = [np.zeros(x.shape[:-1] + (k,)) for k in (left - lo, right - ro)]
    ext = np.concatenate([zeros[0], ext, zeros[1]], axis=-1)
    taper = np.ones(ext.shape[-1])
    if left:
        taper[:left] = np.sin(0.5 * np.pi * (np.arange(left) + 0.5) / left) ** 2
    if right:
        taper[-right:] = np.cos(0.5 * np.pi * (np.arange(right) + 0.5) / right) ** 2
    return ext * taper


# ----------------------------------------------------------------------------------------- band-pass


def _check_band(fs: float, low: float, high: float, order: int) -> None:
    if fs <= 0:
        raise ValueError(f"fs must be positive, got {fs}")
    if not (0 < low < high):
        raise ValueError(f"band cut-offs must satisfy 0 < low < high, got low={low}, high={high}")
    if high >= fs / 2:
        raise ValueError(
            f"high={high} Hz must be below the Nyquist frequency fs/2 = {fs / 2:g} Hz (fs={fs:g} Hz)"
        )
    if order < 1 or int(order) != order:
        raise ValueError(f"order must be a positive integer, got {order}")


def bandpass_gain(
    freqs,
    fs: float,
    low: float = PAPER_EEG.band[0],
    high: float = PAPER_EEG.band[1],
    order: int = PAPER_EEG.order,
) -> np.ndarray:
    """Amplitude gain of the forward-backward Butterworth band-pass, ``|H(f)|^2`` (``H``: one pass).

    ``freqs``: frequencies in Hz, any shape, within ``[0, fs/2]``. Returns float64 of the same shape, in
    ``[0, 1]``: 0 at DC and at Nyquist, 0.5 at ``low`` and ``high`` (-3 dB per pass, -6 dB in all).
    """
    _check_band(fs, low, high, order)
    f = np.asarray(freqs, dtype=np.float64)
    w = np.tan(np.pi * np.clip(f, 0.0, fs / 2) / fs)
    w1, w2 = math.tan(math.pi * low / fs), math.tan(math.pi * high / fs)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        nu = (w * w - w1 * w2) / (w * (w2 - w1))
        gain = 1.0 / (1.0 + np.abs(nu) ** (2 * order))
    return np.where(np.isfinite(gain) & (w > 0), gain, 0.0)


def _min_bandpass_len(order: int) -> int:
    # scipy.signal.sosfiltfilt's default padlen for `order` second-order sections is 3 * (2 * order + 1)
    # and the signal must be longer than that; the numpy backend uses the same minimum.
    return 3 * (2 * order + 1) + 1


def bandpass(
    x,
    fs: float,
    low: float = PAPER_EEG.band[0],
    high: float = PAPER_EEG.band[1],
    order: int = PAPER_EEG.order,
    backend: str = "auto",
) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (paper App. 8.1: "bandpass filtered with
    cutoffs 0.1-30 Hz").

    Args:
        x: ``(C, T)`` (or ``(..., T)``) signal sampled at ``fs`` Hz.
        fs: sampling rate in Hz.
        low, high: -3 dB cut-offs (per pass) in Hz, ``0 < low < high < fs / 2``.
        order: Butterworth order of the band-pass design (``scipy.signal.butter(order, [low, high], "band")``);
            applied forward and backward, so the magnitude is squared and the phase is zero.
        backend: ``"auto"`` (SciPy ``sosfiltfilt`` when installed, else numpy), ``"scipy"`` or ``"numpy"``.

    Returns:
        ``float32`` array with the shape of ``x``.
    """
    _check_band(fs, low, high, order)
    arr = _as_signal(x)
    n = arr.shape[-1]
    if n < _min_bandpass_len(order):
        raise ValueError(
            f"x has {n} samples along its last axis; an order-{order} zero-phase band-pass needs at least "
            f"{_min_bandpass_len(order)}"
        )
    if _use_scipy(backend):
        sps = _scipy_signal()
        sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
        return sps.sosfiltfilt(sos, arr, axis=-1).astype(np.float32)
    # numpy backend: spectral multiplication by the forward-backward gain on an odd extension long enough
    # for the slowest transient (a few periods of the low cut-off) to die out before the record starts.
    pad = min(n - 1, int(math.ceil(3.0 * fs / low)))
    ext = _tapered_extension(arr - arr.mean(axis=-1, keepdims=True), pad, pad)  # DC gain is 0 anyway
    ext = _zero_pad_to(ext, _fast_len(ext.shape[-1]))
    spec = np.fft.rfft(ext, axis=-1)
    spec *= bandpass_gain(np.fft.rfftfreq(ext.shape[-1], d=1.0 / fs), fs, low, high, order)
    out = np.fft.irfft(spec, n=ext.shape[-1], axis=-1)[..., pad : pad + n]
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------------ resample


def resample_ratio(fs_in: float, fs_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)`` with ``fs_out / fs_in == up / down`` in lowest terms.

    Raises ``ValueError`` when the ratio is not a rational number with denominator ``<= max_denominator``
    (e.g. 173.61 Hz -> 100 Hz), or when ``fs_in < fs_out`` (the paper only ever re-samples *down* to 100 Hz;
    up-sampling a low-rate record would invent a band the model is meant to see).
    """
    if fs_in <= 0 or fs_out <= 0:
        raise ValueError(f"sampling rates must be positive, got fs_in={fs_in}, fs_out={fs_out}")
    if fs_in < fs_out:
        raise ValueError(
            f"sampling rate {fs_in:g} Hz is below the target {fs_out:g} Hz; up-sampling is refused "
            "(choose a target rate at or below the record's rate)"
        )
    ratio = (Fraction(fs_out).limit_denominator(10**6) / Fraction(fs_in).limit_denominator(10**6))
    approx = ratio.limit_denominator(max_denominator)
    if abs(float(approx) - fs_out / fs_in) > 1e-9 * fs_out / fs_in:
        raise ValueError(
            f"cannot re-sample {fs_in:g} Hz to {fs_out:g} Hz with a rational ratio up/down whose down <= "
            f"{max_denominator}"
        )
    return approx.numerator, approx.denominator


def resample(x, fs_in: float, fs_out: float, backend: str = "auto") -> np.ndarray:
    """Re-sample along the last axis from ``fs_in`` to ``fs_out`` Hz (paper App. 8.1: "re-sampled to have a
    100 Hz sampling rate").

    Args:
        x: ``(C, T)`` (or ``(..., T)``) signal at ``fs_in``.
        fs_in, fs_out: rates in Hz with ``fs_out <= fs_in`` and a rational ratio ``up / down``.
        backend: ``"auto"`` (``scipy.signal.resample_poly(x, up, down)`` when SciPy is installed, else
            numpy Fourier re-sampling), ``"scipy"`` or ``"numpy"``.

    Returns:
        ``float32`` array ``(..., ceil(T * up / down))``; output sample ``n`` is at time ``n / fs_out``
        (sample 0 stays at time 0). Content above the new Nyquist frequency is removed (anti-aliasing).
    """
    up, down = resample_ratio(fs_in, fs_out)
    arr = _as_signal(x)
    n = arr.shape[-1]
    if n < 2:
        raise ValueError(f"x has {n} samples along its last axis; re-sampling needs at least 2")
    if up == down:
        return arr.astype(np.float32)
    n_out = -(-n * up // down)  # ceil(n * up / down)
    if _use_scipy(backend):
        return _scipy_signal().resample_poly(arr, up, down, axis=-1).astype(np.float32)
    # numpy backend: Fourier re-sampling of a tapered odd extension whose total length is a multiple of
    # `down` (left pad a multiple of `down` too), so the output grid lands exactly on input sample 0.
    pad = min(n - 1, max(down, int(math.ceil(2.0 * fs_in))))
    left = (pad // down) * down
    right = pad + (-(n + left + pad)) % down
    mean = arr.mean(axis=-1, keepdims=True)  # taper around the mean, add it back at the end
    ext = _tapered_extension(arr - mean, left, right)
    ext = _zero_pad_to(ext, down * _fast_len(ext.shape[-1] // down))
    m = ext.shape[-1]
    m_out = m * up // down
    spec = np.fft.rfft(ext, axis=-1)
    keep = min(spec.shape[-1], m_out // 2 + 1)
    out_spec = np.zeros(spec.shape[:-1] + (m_out // 2 + 1,), dtype=np.complex128)
    out_spec[..., :keep] = spec[..., :keep]
    if m_out % 2 == 0:
        out_spec[..., -1] = 0.0  # the new Nyquist bin is ambiguous for a real signal: drop it
    out = np.fft.irfft(out_spec, n=m_out, axis=-1) * (m_out / m)
    start = left * up // down
    return (out[..., start : start + n_out] + mean).astype(np.float32)


# ------------------------------------------------------------------------------------------- windows


def window_length(fs: float, window_s: float) -> int:
    """Samples in a window of ``window_s`` seconds at ``fs`` Hz; ``ValueError`` unless it is a whole number."""
    if fs <= 0 or window_s <= 0:
        raise ValueError(f"fs and window_s must be positive, got fs={fs}, window_s={window_s}")
    t_w = fs * window_s
    if abs(t_w - round(t_w)) > 1e-6:
        raise ValueError(f"window_s={window_s} s at fs={fs:g} Hz is not a whole number of samples ({t_w})")
    return int(round(t_w))


def make_windows(x, fs: float, window_s: float = PAPER_EEG.window_s, start: int = 0) -> np.ndarray:
    """Cut a continuous ``(C, T)`` record into consecutive non-overlapping windows (paper App. 8.1:
    "Thirty-second windows").

    Window ``k`` covers samples ``[start + k * T_w, start + (k + 1) * T_w)`` with ``T_w = fs * window_s``;
    a trailing partial window is dropped. Returns ``float32`` ``(W, C, T_w)``.
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"x must be shaped (C, T), got shape {arr.shape}")
    t_w = window_length(fs, window_s)
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    n = arr.shape[1] - start
    if n < t_w:
        raise ValueError(
            f"window of {window_s:g} s ({t_w} samples at {fs:g} Hz) is longer than the record "
            f"({max(n, 0)} samples = {max(n, 0) / fs:g} s after start={start})"
        )
    n_win = n // t_w
    c = arr.shape[0]
    seg = arr[:, start : start + n_win * t_w].reshape(c, n_win, t_w)
    return np.ascontiguousarray(seg.transpose(1, 0, 2), dtype=np.float32)


def instance_normalize(windows, eps: float = 1e-6) -> np.ndarray:
    """Zero-mean, unit-std per window and per channel (paper App. 8.1: "Thirty-second windows are instance
    normalized").

    ``windows``: ``(W, C, T)`` (or any ``(..., T)``); statistics are taken over the last axis only.
    A flat channel (std 0) becomes all zeros. Returns ``float32`` of the same shape.
    """
    arr = np.asarray(windows, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] < 2:
        raise ValueError(f"windows must have a time axis of length >= 2, got shape {arr.shape}")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    mean = arr.mean(axis=-1, keepdims=True)
    std = arr.std(axis=-1, keepdims=True)
    return ((arr - mean) / (std + eps)).astype(np.float32)


def preprocess(
    x,
    fs: float,
    fs_out: float = PAPER_EEG.fs,
    low: float = PAPER_EEG.band[0],
    high: float = PAPER_EEG.band[1],
    order: int = PAPER_EEG.order,
    backend: str = "auto",
) -> np.ndarray:
    """Band-pass at the native rate, then re-sample to ``fs_out`` (paper App. 8.1, steps 1-2).

    ``x``: ``(C, T)`` at ``fs``. Returns ``float32`` ``(C, ceil(T * fs_out / fs))``. The rate check runs
    first, so a record below the target rate fails with the re-sampling message, not a filter one.
    """
    resample_ratio(fs, fs_out)
    if high >= fs_out / 2:
        raise ValueError(
            f"high={high} Hz must be below the target Nyquist frequency fs_out/2 = {fs_out / 2:g} Hz"
        )
    return resample(bandpass(x, fs, low, high, order, backend=backend), fs, fs_out, backend=backend)
