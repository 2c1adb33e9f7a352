"""SYNTHETIC sleep-like multichannel EEG - a stand-in for the PhysioNet 2018 data of paper §5.2 / App. 8.1.

THIS IS NOT REAL EEG. It exists so that the 1D PART pipeline (windows -> pretraining -> fine-tuning ->
Cohen's kappa) runs end to end without downloads, on a CPU, in tests and demos. Numbers measured on it say
nothing about sleep staging; they only show that the code learns *something* stage-dependent.

What it imitates (textbook AASM descriptions, amplitudes in microvolts before normalisation):

* W (wake): posterior alpha (8-12 Hz; blocked during eyes-open spells) + beta (15-30 Hz)
  and EMG-like broadband high-frequency noise.
* N1: low-amplitude theta (4-7 Hz), alpha fading.
* N2: theta background + sleep spindles (11-16 Hz, 0.5-2 s bursts) + K-complexes (sharp, high-amplitude,
  biphasic waves of ~1 s, frontal maximum).
* N3: high-amplitude delta (0.5-2 Hz), frontal maximum.
* REM: sawtooth-wave bursts (2-6 Hz) + mixed theta, low EMG.

Each subject is one **continuous night**, generated as a whole and only then cut into epochs, so the signal
runs on across epoch boundaries and anything can fall anywhere inside an epoch (or span two):

* the stage path: a Markov chain over 30-s epochs (realistic persistence, starting awake, N3 more likely
  early in the night and REM late) whose changes happen at a uniform time inside one of the two epochs
  around each change; an epoch's label is the stage that covers most of it, as for the real loaders.
  Towards deeper sleep the rhythms change gradually (10-30 s ramps); towards lighter sleep or waking
  abruptly (0.5-2 s), like an arousal;
* rhythms: band-limited Gaussian noise (Gaussian spectral bumps on a ``1/f`` background) times band
  envelopes that evolve in time: the stage's gains, a slow random wander, bursts that wax within 0.3 s and
  wane over 2-6 s, eyes-open spells while awake (alpha blocked), and arousals (3-15 s of alpha / beta / EMG,
  delta suppressed, abrupt onset, gradual fade);
* transients at continuous Poisson times by stage: spindles, K-complexes (half of them followed by a spindle
  0.4-1.2 s later), sawtooth waves, movement artefacts (also at a third of the arousals);
* a baseline drift: a creep, downwards in NREM (faster in deeper sleep) and upwards in W and REM, that jumps
  back to rest at movements, arousals and random resets.

Why the drift: PART predicts where 1-s windows sit relative to each other inside one 30-s epoch (paper §5.2,
App. 8.1). If an epoch is statistically the same at every time and under time reversal (the first version
of this generator: every epoch drawn on its own as stationary, circular noise, events at uniform times),
its content says nothing about position, and for any pair the MSE-optimal prediction is ``dt = 0``: the
pretext loss stays at its chance level ``E[dt^2]`` (~140 for forty 1-s windows in 30 s) unless the model
matches the samples that overlapping windows share. Slow evolutions (transition ramps, wandering envelopes)
tell which windows are *near* each other but not in which *order*; an ordering needs something that is not
symmetric in time: abrupt-onset / slow-fade events, K-complex -> spindle, and above all the drift, a ramp
inside most epochs. Its sign depends on the stage (an invented rule), so ordering the windows needs the
stage, and the pretext rewards stage-relevant features; a drift of one sign everywhere is learnt from the
window means alone, and then the PART encoder fine-tuned worse than a random one (kappa 0.25 vs 0.52).
Real recordings have slow drifts below the 0.1 Hz band-pass of App. 8.1; here nothing is filtered. Three regional sources (frontal, central, occipital) are mixed into the channels.

Subject-level variation: overall amplitude, band centre frequencies, drift speed, noise level and the
channel mixing matrix; together with the evolving envelopes, transitions and artefacts the stages overlap
(N1 is the hardest, as in real data), so a classifier's kappa is informative rather than 1.

Output: a :class:`part.data.sleep.SleepRecording` exactly like the real-data loaders return (instance-
normalised ``float32 (W, C, T)`` windows, ``int64`` stages 0..4, per-window subject / record / onset).
Generation is deterministic in ``seed``, and subject ``k`` does not depend on ``n_subjects``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..signal import PAPER_EEG, instance_normalize, window_length
from .physionet import PHYSIONET2018_EEG
from .recording import SleepRecording
from .stages import STAGES

__all__ = ["make_synthetic_sleep", "synthetic_night", "SyntheticNight", "synthetic_stage_sequence", "TRANSITIONS",
           "BANDS"]

BANDS: dict[str, tuple[float, float]] = {
    # name: (centre Hz, width Hz = std of the Gaussian spectral bump)
    "delta": (1.0, 0.45),
    "theta": (5.5, 1.0),
    "alpha": (10.0, 0.9),
    "sigma": (13.5, 1.0),
    "beta": (21.0, 4.0),
    "emg": (38.0, 7.0),
}
_BAND_NAMES = tuple(BANDS)

# RMS amplitude (uV) of every band per stage (rows W, N1, N2, N3, REM), on top of a common 1/f background.
_STAGE_GAIN = np.array(
    [
        # delta theta alpha sigma beta emg
        [9.0, 7.0, 24.0, 3.0, 9.0, 8.0],   # W
        [11.0, 15.0, 8.0, 3.0, 5.0, 3.0],   # N1
        [18.0, 15.0, 5.0, 5.0, 3.5, 1.5],   # N2
        [55.0, 13.0, 3.0, 3.0, 2.5, 1.0],   # N3
        [10.0, 14.0, 7.0, 2.5, 5.5, 0.6],   # REM
    ]
)
# Regional gains per band (rows frontal, central, occipital).
_REGION_GAIN = np.array(
    [
        [1.25, 1.0, 0.55, 0.9, 1.0, 1.3],
        [1.0, 1.05, 0.8, 1.1, 1.0, 1.0],
        [0.75, 0.9, 1.45, 0.6, 0.9, 0.8],
    ]
)
_PINK_RMS = 8.0  # uV, 1/f background present in every stage

TRANSITIONS = np.array(
    [
        # to: W     N1    N2    N3    REM       (from, per 30-s epoch)
        [0.900, 0.080, 0.015, 0.000, 0.005],  # W
        [0.080, 0.560, 0.300, 0.000, 0.060],  # N1
        [0.020, 0.040, 0.870, 0.050, 0.020],  # N2
        [0.015, 0.005, 0.080, 0.900, 0.000],  # N3
        [0.030, 0.040, 0.030, 0.000, 0.900],  # REM
    ]
)
"""Epoch-to-epoch stage transition probabilities before the time-of-night modulation."""

# Event rates per 30 s of the continuous night, by the stage at the event's time (W, N1, N2, N3, REM).
_SPINDLE_RATE = np.array([0.0, 0.2, 3.0, 0.7, 0.0])
_KCOMPLEX_RATE = np.array([0.0, 0.1, 1.2, 0.4, 0.0])
_SPINDLE_AFTER_K = 0.5  # a K-complex is followed by a spindle 0.4-1.2 s later with this probability
_SAWTOOTH_RATE = np.array([0.0, 0.1, 0.0, 0.0, 1.3])
_ARTEFACT_RATE = np.array([0.08, 0.04, 0.015, 0.01, 0.02])
_ARTEFACT_AT_AROUSAL = 0.3  # share of arousals that start with a movement artefact
_EYES_OPEN_RATE = np.array([0.6, 0.0, 0.0, 0.0, 0.0])  # eyes-open spells (3-20 s, alpha blocked) while awake
_AROUSAL_RATE = np.array([0.0, 0.5, 0.3, 0.1, 0.3])
_AROUSAL_GAIN = np.log(np.array([0.6, 1.0, 3.0, 1.2, 2.5, 4.0]))  # band amplitude factors while aroused
_AROUSAL_S = (3.0, 15.0)  # duration at full strength; onset within 0.5 s, then a fade with time constant:
_AROUSAL_DECAY_S = 3.0

# Transitions: towards deeper sleep (depth W 0 < N1 = REM 1 < N2 2 < N3 3) the rhythms change gradually over
# 10-30 s (alpha fades, slow waves build up); towards lighter sleep or waking within 0.5-2 s (an arousal).
_DEPTH = np.array([0, 1, 2, 3, 1])
_RAMP_DEEPER_S = (10.0, 30.0)
_RAMP_LIGHTER_S = (0.5, 2.0)

# Evolving rhythms: every band's log-amplitude wanders slowly (Lorentzian spectrum, correlation time
# _WANDER_TAU_S, standard deviation _WANDER_SD) and has bursts that wax within _BURST_RISE_S and wane with a
# time constant in _BURST_DECAY_S (log-amplitude jump in _BURST_SIZE, _BURST_RATE per second and band).
_WANDER_TAU_S = 20.0
_WANDER_SD = 0.35
_BURST_RATE = 0.08
_BURST_RISE_S = 0.3
_BURST_DECAY_S = (2.0, 6.0)
_BURST_SIZE = (0.3, 0.9)

# Baseline drift (electrode polarisation / sweating, which DC-coupled or weakly high-passed recordings keep):
# the baseline creeps at _DRIFT_UV_S[stage] uV/s - downwards in NREM (N1-N3, faster in deeper sleep), upwards
# in W and REM (an invented rule, not physiology) - and jumps back to rest at movement artefacts, arousals and
# otherwise _RESET_RATE times per 30 s. Inside an epoch it is a ramp whose sign follows the stage: an arrow of
# time that a stationary 30-s epoch lacks and that can only be read by recognising the stage (module docstring).
_DRIFT_UV_S = np.array([-1.5, 2.0, 2.5, 3.0, -2.0])
_RESET_RATE = 0.25

_ENV_FS = 10.0  # Hz: band envelopes are computed at this rate, then interpolated to fs
_PAD_S = 20.0  # s generated beyond the night's end and dropped (the FFT noise is circular)


def synthetic_stage_sequence(n_epochs: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible hypnogram: ``int64 (n_epochs,)`` stages 0..4 from the Markov chain :data:`TRANSITIONS`,
    starting in W, with entries into N3 favoured early in the night and into REM late."""
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    u = rng.random(n_epochs)
    z = np.empty(n_epochs, dtype=np.int64)
    z[0] = 0
    for e in range(1, n_epochs):
        p = e / n_epochs  # fraction of the night elapsed
        row = TRANSITIONS[z[e - 1]].copy()
        row[3] *= max(0.05, 1.9 * (1.0 - p) ** 2)  # deep sleep early
        row[4] *= 0.3 + 1.6 * p  # REM late
        cdf = np.cumsum(row / row.sum())
        z[e] = min(int(np.searchsorted(cdf, u[e], side="right")), len(STAGES) - 1)
    return z


def _bumps(freqs: np.ndarray, centres: np.ndarray, widths: np.ndarray, fs: float) -> np.ndarray:
    """``(B, F)`` Gaussian power bumps scaled so white noise shaped by ``sqrt(bump)`` has unit variance
    (analytically normalised over ``[0, fs/2]``, so a band above Nyquist simply carries no power)."""
    g = np.exp(-0.5 * ((freqs[None, :] - centres[:, None]) / widths[:, None]) ** 2)
    return g / (widths[:, None] * np.sqrt(2.0 * np.pi)) * (fs / 2.0)


def _shaped_noise(rng: np.random.Generator, power: np.ndarray, n: int) -> np.ndarray:
    """Real Gaussian noise ``(..., n)`` whose one-sided power spectrum is ``power (..., n // 2 + 1)``.

    The FFT makes it circular (its end continues into its start); callers generate a longer stretch and drop
    the tail so that the night's two ends are unrelated."""
    # the rFFT of white noise drawn directly: complex Gaussian, variance n per bin (real at DC and Nyquist)
    shape = power.shape[:-1] + (n // 2 + 1,)
    white = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    white *= np.sqrt(n / 2.0)
    white[..., 0] = white[..., 0].real * np.sqrt(2.0)
    if n % 2 == 0:
        white[..., -1] = white[..., -1].real * np.sqrt(2.0)
    return np.fft.irfft(white * np.sqrt(power), n=n, axis=-1)


def _fast_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n`` (FFT lengths with large prime factors are many times slower)."""
    best = 1 << max(int(n - 1).bit_length(), 0)
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35 * (1 << max(int(-(-n // p35) - 1).bit_length(), 0))
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def _stage_path(z: np.ndarray, t_w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Continuous-time stage path from the epoch hypnogram ``z (E,)``: every change of stage between epochs
    ``e - 1`` and ``e`` happens at a uniform time in ``(e - 0.45, e + 0.45)`` epochs, i.e. inside one of the
    two epochs. Returns change times in samples ``float (K,)`` (increasing) and ``stages (K + 1,)``: the stage
    before the first change, then after each change."""
    e = np.flatnonzero(z[1:] != z[:-1]) + 1
    change = (e + rng.uniform(-0.45, 0.45, e.size)) * t_w
    return change, np.concatenate([z[:1], z[e]])


def _stage_at(t: np.ndarray, change: np.ndarray, stages: np.ndarray) -> np.ndarray:
    """Stage of the path at times ``t`` (samples, any shape)."""
    return stages[np.searchsorted(change, t, side="right")]


def _majority_labels(change: np.ndarray, stages: np.ndarray, n_epochs: int, t_w: int) -> np.ndarray:
    """``int64 (E,)``: per epoch, the stage that covers most of it (as a scorer labels an epoch, and as the
    real loaders label a window: :mod:`part.data.sleep.windowing`)."""
    bounds = np.concatenate([[0.0], change, [float(n_epochs * t_w)]])
    cover = np.zeros((n_epochs, len(STAGES)))
    for a, b, s in zip(bounds[:-1], bounds[1:], stages):
        ep = np.arange(int(a // t_w), min(int(np.ceil(b / t_w)), n_epochs))
        cover[ep, s] += np.minimum(b, (ep + 1) * t_w) - np.maximum(a, ep * t_w)
    return cover.argmax(axis=1).astype(np.int64)


def _poisson_times(rng: np.random.Generator, rate: np.ndarray, change: np.ndarray, stages: np.ndarray,
                   n: int, per: float) -> np.ndarray:
    """Sorted event times in samples ``float (k,)`` of a Poisson process over ``[0, n)`` whose rate is
    ``rate[stage]`` events per ``per`` samples, the stage read off the continuous path (thinning)."""
    top = float(rate.max())
    if top <= 0:
        return np.zeros(0)
    t = np.sort(rng.uniform(0.0, n, rng.poisson(top * n / per)))
    return t[rng.random(t.size) < rate[_stage_at(t, change, stages)] / top]


def _pulses(te: np.ndarray, on: np.ndarray, hold: np.ndarray, rise: float, decay: np.ndarray,
            size: np.ndarray | None = None) -> np.ndarray:
    """Sum over events of a pulse on the regular time grid ``te (n,)`` (seconds): it rises within ``rise``
    seconds after ``on (k,)``, holds for ``hold (k,)`` seconds, then decays with time constant ``decay (k,)``;
    height ``size (k,)`` (default 1). Rise and decay differ, so a pulse is not symmetric in time. ``(n,)``."""
    out = np.zeros(te.size)
    dt = te[1] - te[0] if te.size > 1 else 1.0
    span = int(np.ceil((rise + hold.max(initial=0.0) + 6.0 * decay.max(initial=0.0)) / dt)) + 1
    if on.size == 0:
        return out
    i0 = np.searchsorted(te, on)  # (k,)
    idx = i0[:, None] + np.arange(span)[None, :]  # (k, span)
    ok = idx < te.size
    u = te[np.minimum(idx, te.size - 1)] - on[:, None]  # seconds since onset
    up = 1.0 - np.exp(-np.maximum(u, 0.0) / (rise / 3.0))
    down = np.exp(-np.maximum(u - rise - hold[:, None], 0.0) / decay[:, None])
    h = up * down if size is None else up * down * size[:, None]
    np.add.at(out, idx[ok], h[ok])
    return out


def _place(night: np.ndarray, start: np.ndarray, wave: np.ndarray) -> None:
    """Add ``wave (k, L)`` into ``night (n,)`` at integer sample ``start (k,)``, in place; cut at the end."""
    if start.size == 0:
        return
    cols = start.astype(np.int64)[:, None] + np.arange(wave.shape[1])[None, :]
    ok = cols < night.size
    np.add.at(night, cols[ok], wave[ok])


@dataclass(frozen=True)
class SyntheticNight:
    """One SYNTHETIC subject's continuous night (not real EEG), before it is cut into epochs.

    Attributes:
        x: ``float64 (C, E * T)`` raw signal in microvolts, continuous over the whole night.
        y: ``int64 (E,)`` epoch labels: the stage covering most of each epoch.
        change_s: ``float (K,)`` times (s) at which the stage changes, increasing.
        stages: ``int64 (K + 1,)`` the stage before the first change, then after each change.
        events: onset times (s), sorted, of ``spindle``, ``kcomplex``, ``sawtooth``, ``arousal``,
            ``artefact`` and ``reset`` (baseline-drift restarts).
        fs: sampling rate (Hz); window_s: epoch length (s).
    """

    x: np.ndarray
    y: np.ndarray
    change_s: np.ndarray
    stages: np.ndarray
    events: dict[str, np.ndarray]
    fs: float
    window_s: float

    def epochs(self) -> np.ndarray:
        """``(E, C, T)`` view: the night cut into consecutive epochs of ``window_s`` seconds."""
        n_epochs = self.y.size
        return self.x.reshape(self.x.shape[0], n_epochs, -1).transpose(1, 0, 2)


def synthetic_night(
    n_epochs: int, n_channels: int = len(PHYSIONET2018_EEG), fs: float = PAPER_EEG.fs,
    window_s: float = PAPER_EEG.window_s, noise: float = 1.0, seed: int | np.random.Generator = 0,
) -> SyntheticNight:
    """One subject's SYNTHETIC continuous night (see the module docstring; not real data), raw microvolts.

    ``seed``: an int or a ``numpy.random.Generator`` (consumed); the same seed gives the same night.
    :func:`make_synthetic_sleep` calls it once per subject and instance-normalises ``epochs()``.
    The steps below draw from ``rng`` in this order (the order is part of the output).
    """
    if n_epochs < 1 or n_channels < 1:
        raise ValueError(f"n_epochs and n_channels must be >= 1, got n_epochs={n_epochs}, n_channels={n_channels}")
    if fs < 50:
        raise ValueError(f"fs must be at least 50 Hz for the synthetic rhythms (up to 16 Hz spindles), got {fs}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t_w = window_length(fs, window_s)
    z = synthetic_stage_sequence(n_epochs, rng)
    change, stages = _stage_path(z, t_w, rng)
    y = _majority_labels(change, stages, n_epochs, t_w)
    g = _night_grid(n_epochs * t_w, fs, change, stages)
    traits = _subject_traits(rng, noise)
    env, arousal_on = _band_envelopes(rng, g, traits.amp)  # (B, n_env) band RMS in uV
    t_art, resets, drift = _baseline_drift(rng, g, traits.amp, arousal_on)
    src = _rhythms(rng, g, traits, env) + np.interp(np.arange(g.n) / fs, g.te, drift)[None, :]  # (R, n)
    t_sp, t_k, t_saw = _add_transients(rng, g, traits, src)
    x = _mix_channels(rng, src, n_channels)  # (C, n)
    del src
    _add_sensor_noise(rng, g, x, traits.noise_rms, t_art)
    events = {"spindle": t_sp / fs, "kcomplex": t_k / fs, "sawtooth": t_saw / fs, "arousal": arousal_on,
              "artefact": np.sort(t_art) / fs, "reset": resets}
    return SyntheticNight(x, y, change / fs, stages, events, float(fs), float(window_s))


@dataclass(frozen=True)
class _Grid:
    """The time grids of one night: ``n`` samples at ``fs``; the stage path (``change`` in samples,
    ``stages``); the FFT length ``n_fft`` (longer than ``n``: the tail is dropped, so the night's ends are not
    joined) and its ``freqs``; the coarse envelope grid ``te`` (seconds, ``n_env`` points at ``_ENV_FS``) and
    ``ts`` (the same in samples); ``per_30s`` samples (event rates are per 30 s whatever the epoch length)."""

    n: int
    fs: float
    change: np.ndarray
    stages: np.ndarray
    n_fft: int
    freqs: np.ndarray
    n_env: int
    te: np.ndarray
    ts: np.ndarray
    per_30s: float


def _night_grid(n: int, fs: float, change: np.ndarray, stages: np.ndarray) -> _Grid:
    n_fft = _fast_length(n + int(round(_PAD_S * fs)))
    n_env = _fast_length(int(np.ceil(n / fs * _ENV_FS)) + 1)
    te = np.arange(n_env) / _ENV_FS
    return _Grid(n, fs, change, stages, n_fft, np.fft.rfftfreq(n_fft, d=1.0 / fs), n_env, te, te * fs, 30.0 * fs)


@dataclass(frozen=True)
class _Traits:
    """A subject's traits: overall amplitude ``amp``, band ``centres`` / ``widths`` (Hz, ``(B,)``), spindle
    frequency, sensor noise RMS (uV) and the regional gains ``(3, B)``."""

    amp: float
    centres: np.ndarray
    widths: np.ndarray
    spindle_f: float
    noise_rms: float
    region_gain: np.ndarray


def _subject_traits(rng: np.random.Generator, noise: float) -> _Traits:
    amp = np.exp(rng.normal(0.0, 0.2))
    centres = np.array([c for c, _ in BANDS.values()])
    widths = np.array([w for _, w in BANDS.values()])
    centres = centres + np.array([rng.normal(0, 0.15), rng.normal(0, 0.5), rng.normal(0, 0.7),
                                  rng.normal(0, 0.6), rng.normal(0, 1.5), 0.0])
    centres = np.clip(centres, [0.6, 4.2, 8.3, 11.5, 15.0, 30.0], [1.6, 7.0, 11.8, 15.5, 28.0, 45.0])
    noise_rms = noise * rng.uniform(8.0, 18.0)
    region_gain = _REGION_GAIN * np.exp(rng.normal(0.0, 0.1, _REGION_GAIN.shape))
    return _Traits(amp, centres, widths, centres[3], noise_rms, region_gain)


def _band_envelopes(rng: np.random.Generator, g: _Grid, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """``(env (B, n_env) band RMS in uV, arousal onsets (s))``: band log-amplitudes on the coarse grid - the
    stage's gains smoothed into ramps at changes, eyes-open spells, a slow wander, bursts, arousals."""
    n_bands = len(BANDS)
    log_gain = np.log(_STAGE_GAIN)  # (S, B)
    lg = log_gain[_stage_at(g.ts, g.change, g.stages)].T.copy()  # step function of the stage path
    deeper = _DEPTH[g.stages[1:]] > _DEPTH[g.stages[:-1]]
    ramp_s = np.where(deeper, rng.uniform(*_RAMP_DEEPER_S, g.change.size), rng.uniform(*_RAMP_LIGHTER_S, g.change.size))
    for c, a, b, r in zip(g.change, g.stages[:-1], g.stages[1:], ramp_s):  # smooth each step into a ramp
        w = r * g.fs / 4.4  # logistic scale: 10 % -> 90 % of the change takes r seconds
        lo, hi = np.searchsorted(g.ts, [c - 10 * w, c + 10 * w])
        u = g.ts[lo:hi] - c
        lg[:, lo:hi] += (log_gain[b] - log_gain[a])[:, None] * (_sigmoid(u / w) - (u >= 0))
    # eyes-open spells while awake: alpha blocked, more beta, with abrupt edges
    on = _poisson_times(rng, _EYES_OPEN_RATE, g.change, g.stages, g.n, g.per_30s) / g.fs
    spell = np.minimum(_pulses(g.te, on, rng.uniform(3.0, 20.0, on.size), 0.3, np.full(on.size, 0.3)), 1.0)
    lg[2] += np.log(0.3) * spell
    lg[4] += np.log(1.4) * spell
    # evolving rhythms: a slow random modulation of every band (Lorentzian spectrum) ...
    f_env = np.fft.rfftfreq(g.n_env, d=1.0 / _ENV_FS)
    slow = _shaped_noise(rng, np.broadcast_to(1.0 / (1.0 + (2 * np.pi * f_env * _WANDER_TAU_S) ** 2),
                                              (n_bands, f_env.size)), g.n_env)
    lg += _WANDER_SD * slow / slow.std(axis=1, keepdims=True).clip(1e-12)
    # ... and bursts that wax within a fraction of a second and wane over seconds
    for b in range(n_bands):
        on = np.sort(rng.uniform(0.0, g.te[-1], rng.poisson(_BURST_RATE * g.te[-1])))
        p = _pulses(g.te, on, np.zeros(on.size), _BURST_RISE_S, rng.uniform(*_BURST_DECAY_S, on.size),
                    rng.uniform(*_BURST_SIZE, on.size))
        lg[b] += p - p.mean()
    # arousals: an abrupt shift to faster rhythms (alpha, beta, EMG up, delta down) for 3-15 s, fading out
    arousal_on = _poisson_times(rng, _AROUSAL_RATE, g.change, g.stages, g.n, g.per_30s) / g.fs
    lg += _AROUSAL_GAIN[:, None] * _pulses(g.te, arousal_on, rng.uniform(*_AROUSAL_S, arousal_on.size), 0.5,
                                            np.full(arousal_on.size, _AROUSAL_DECAY_S))
    return np.exp(lg) * amp, arousal_on


def _baseline_drift(rng: np.random.Generator, g: _Grid, amp: float,
                    arousal_on: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(artefact times (samples), reset times (s), drift (n_env,) uV)``: a creep at the stage's rate,
    restarted at movement artefacts, at arousals and at random resets."""
    t_art = np.concatenate([_poisson_times(rng, _ARTEFACT_RATE, g.change, g.stages, g.n, g.per_30s),
                            arousal_on[rng.random(arousal_on.size) < _ARTEFACT_AT_AROUSAL] * g.fs])
    resets = np.sort(np.concatenate([t_art / g.fs, arousal_on, rng.uniform(0.0, g.te[-1], rng.poisson(
        _RESET_RATE * g.te[-1] / 30.0))]))
    creep = np.cumsum(amp * rng.uniform(0.6, 1.4) * _DRIFT_UV_S[_stage_at(g.ts, g.change, g.stages)]) / _ENV_FS
    last = np.searchsorted(g.te, resets)  # env index of each reset
    since = np.searchsorted(last, np.arange(g.n_env), side="right") - 1  # the reset in force at each index
    base = creep[last[since].clip(max=g.n_env - 1)] if last.size else np.zeros(g.n_env)
    base = np.where(since >= 0, base, 0.0)
    return t_art, resets, -(creep - base)


def _rhythms(rng: np.random.Generator, g: _Grid, traits: _Traits, env: np.ndarray) -> np.ndarray:
    """``(3, n)`` regional sources: a 1/f background plus, per band, unit-variance band-limited noise times
    its envelope ``env (B, n_env)`` and the region's gain."""
    t_s = np.arange(g.n) / g.fs
    bumps = _bumps(g.freqs, traits.centres, traits.widths, g.fs)  # (B, F)
    src = _PINK_RMS * _shaped_noise(rng, np.broadcast_to(_pink(g.freqs), (3, g.freqs.size)), g.n_fft)[:, :g.n]
    for b in range(len(BANDS)):
        band = _shaped_noise(rng, np.broadcast_to(bumps[b], (3, g.freqs.size)), g.n_fft)[:, :g.n]
        src += traits.region_gain[:, b : b + 1] * np.interp(t_s, g.te, env[b])[None, :] * band
    return src


def _pink(freqs: np.ndarray) -> np.ndarray:
    """A ``1/f`` spectrum (flat below 0.5 Hz) of mean 1."""
    pink = 1.0 / np.maximum(freqs, 0.5)
    return pink / pink.mean()


def _spindles(rng: np.random.Generator, k: int, fs: float, amp: float, spindle_f: float) -> np.ndarray:
    length = int(2.0 * fs)
    tt = np.arange(length) / fs
    dur = rng.uniform(0.5, 2.0, (k, 1))
    env = np.where(tt < dur, np.sin(np.pi * np.minimum(tt / dur, 1.0)) ** 2, 0.0)
    f = spindle_f + rng.normal(0.0, 0.5, (k, 1))
    return amp * rng.uniform(20.0, 45.0, (k, 1)) * env * np.sin(2 * np.pi * f * tt + rng.uniform(0, 2 * np.pi, (k, 1)))


def _k_complexes(rng: np.random.Generator, k: int, fs: float, amp: float) -> np.ndarray:
    length = int(1.5 * fs)
    tt = np.arange(length) / fs
    s = rng.uniform(0.8, 1.2, (k, 1))
    a = amp * rng.uniform(60.0, 140.0, (k, 1))
    return -a * np.exp(-(((tt - 0.35 * s) / (0.07 * s)) ** 2)) + 0.6 * a * np.exp(-(((tt - 0.8 * s) / (0.2 * s)) ** 2))


def _sawtooth(rng: np.random.Generator, k: int, fs: float, amp: float) -> np.ndarray:
    length = int(3.0 * fs)
    tt = np.arange(length) / fs
    dur = rng.uniform(1.0, 3.0, (k, 1))
    env = np.where(tt < dur, np.sin(np.pi * np.minimum(tt / dur, 1.0)) ** 2, 0.0)
    phase = rng.uniform(2.0, 6.0, (k, 1)) * tt + rng.uniform(0, 1, (k, 1))
    saw = 2.0 * (phase - np.floor(phase)) - 1.0  # slow rise, sharp fall
    return amp * rng.uniform(15.0, 35.0, (k, 1)) * env * saw


def _add_transients(rng: np.random.Generator, g: _Grid, traits: _Traits,
                    src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spindles, K-complexes (half followed by a spindle) and sawtooth waves at continuous times, so they fall
    anywhere inside an epoch (or across two), added into ``src (3, n)`` in place. Returns their times
    (samples)."""
    t_k = _poisson_times(rng, _KCOMPLEX_RATE, g.change, g.stages, g.n, g.per_30s)
    after_k = t_k[rng.random(t_k.size) < _SPINDLE_AFTER_K]
    follow = after_k + rng.uniform(0.4, 1.2, after_k.size) * g.fs  # K-complex, then spindle
    t_sp = np.sort(np.concatenate([_poisson_times(rng, _SPINDLE_RATE, g.change, g.stages, g.n, g.per_30s), follow]))
    t_saw = _poisson_times(rng, _SAWTOOTH_RATE, g.change, g.stages, g.n, g.per_30s)
    amp = traits.amp
    for times, make, region_w in (
        (t_sp, lambda k: _spindles(rng, k, g.fs, amp, traits.spindle_f), np.array([0.8, 1.0, 0.35])),
        (t_k, lambda k: _k_complexes(rng, k, g.fs, amp), np.array([1.2, 1.0, 0.5])),
        (t_saw, lambda k: _sawtooth(rng, k, g.fs, amp), np.array([0.8, 1.0, 0.5])),
    ):
        ev = np.zeros(g.n)
        if times.size:
            _place(ev, times, make(times.size))
        src += region_w[:, None] * ev[None, :]
    return t_sp, t_k, t_saw


def _mix_channels(rng: np.random.Generator, src: np.ndarray, n_channels: int) -> np.ndarray:
    """``(C, n)``: channel ``c`` mostly sees region ``round(c * 3 / C)`` of ``src (3, n)``, with leakage and a
    subject perturbation."""
    region_of = np.minimum((np.arange(n_channels) * 3) // max(n_channels, 1), 2)
    mix = np.full((n_channels, 3), 0.25)
    mix[np.arange(n_channels), region_of] = 1.0
    mix = np.abs(mix + rng.normal(0.0, 0.12, mix.shape))
    return mix @ src


def _add_sensor_noise(rng: np.random.Generator, g: _Grid, x: np.ndarray, noise_rms: float, t_art: np.ndarray) -> None:
    """Per-channel sensor noise (white + 1/f) and movement artefacts at ``t_art`` (samples), into ``x (C, n)``."""
    n_channels = x.shape[0]
    x += noise_rms * _shaped_noise(rng, np.broadcast_to(0.5 + 0.5 * _pink(g.freqs), (n_channels, g.freqs.size)),
                                   g.n_fft)[:, :g.n]
    for t0, dur in zip(t_art.astype(np.int64), rng.uniform(1.0, 4.0, t_art.size)):
        t1 = min(g.n, t0 + int(dur * g.fs))
        x[:, t0:t1] += rng.normal(0.0, 1.0, (n_channels, t1 - t0)) * rng.uniform(40, 120, (n_channels, 1))


def make_synthetic_sleep(
    n_subjects: int,
    epochs_per_subject: int,
    channels: int | Sequence[str] = len(PHYSIONET2018_EEG),
    fs: float = PAPER_EEG.fs,
    seed: int = 0,
    window_s: float = PAPER_EEG.window_s,
    noise: float = 1.0,
    normalize: bool = True,
) -> SleepRecording:
    """SYNTHETIC sleep-like EEG windows with stage labels (see the module docstring; not real data).

    Args:
        n_subjects: number of synthetic subjects (one night each).
        epochs_per_subject: 30-s epochs per subject (a real night has ~800-1000).
        channels: a count (names are the PhysioNet 2018 EEG derivations when ``<= 6``, else ``ch0..``) or a
            list of names.
        fs: sampling rate in Hz (100 as in the paper's preprocessing; at least 50).
        seed: everything is a deterministic function of ``seed``; subject ``k`` uses the ``k``-th child of
            ``numpy.random.SeedSequence(seed)`` and so does not depend on ``n_subjects``.
        window_s: epoch length in seconds.
        noise: multiplier of the per-channel sensor noise (1.0 = moderate; 0 = none).
        normalize: instance-normalise windows like the real-data loaders (default).

    Returns:
        :class:`SleepRecording`: ``X`` ``float32 (n_subjects * epochs_per_subject, C, fs * window_s)``,
        ``y`` ``int64`` in 0..4, ``subject`` / ``record`` ``"synthetic-000"``..., ``onset`` in seconds.
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    if epochs_per_subject < 1:
        raise ValueError(f"epochs_per_subject must be >= 1, got {epochs_per_subject}")
    if fs < 50:
        raise ValueError(f"fs must be at least 50 Hz for the synthetic rhythms (up to 16 Hz spindles), got {fs}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if isinstance(channels, (int, np.integer)):
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        names = PHYSIONET2018_EEG[:channels] if channels <= len(PHYSIONET2018_EEG) else tuple(
            f"ch{i}" for i in range(channels)
        )
    else:
        names = tuple(str(c) for c in channels)
        if not names:
            raise ValueError("channels must name at least one channel")
    window_length(fs, window_s)  # a whole number of samples, checked before any night is drawn
    xs, ys, subj = [], [], []
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_subjects)):
        night = synthetic_night(epochs_per_subject, len(names), fs, window_s, noise, np.random.default_rng(child))
        x = night.epochs()
        xs.append(instance_normalize(x) if normalize else x.astype(np.float32))
        ys.append(night.y)
        subj.append(np.full(epochs_per_subject, f"synthetic-{k:03d}"))
    subject = np.concatenate(subj)
    onset = np.tile(np.arange(epochs_per_subject) * float(window_s), n_subjects)
    return SleepRecording(np.concatenate(xs), np.concatenate(ys), subject, subject.copy(), onset, names, fs)
