"""SYNTHETIC sleep-like multichannel EEG - a stand-in for the PhysioNet 2018 data of paper §5.2 / App. 8.1.

THIS IS NOT REAL EEG. It exists so that the 1D PART pipeline (windows -> pretraining -> fine-tuning ->
Cohen's kappa) runs end to end without downloads, on a CPU, in tests and demos. Numbers measured on it say
nothing about sleep staging; they only show that the code learns *something* stage-dependent.

What it imitates (textbook AASM descriptions, amplitudes in microvolts before normalisation):

* W (wake): posterior alpha (8-12 Hz; blocked in a third of the epochs, "eyes open") + beta (15-30 Hz)
  and EMG-like broadband high-frequency noise.
* N1: low-amplitude theta (4-7 Hz), alpha fading.
* N2: theta background + sleep spindles (11-16 Hz, 0.5-2 s bursts) + K-complexes (sharp, high-amplitude,
  biphasic waves of ~1 s, frontal maximum).
* N3: high-amplitude delta (0.5-2 Hz), frontal maximum.
* REM: sawtooth-wave bursts (2-6 Hz) + mixed theta, low EMG.

Rhythms are band-limited Gaussian noise shaped in the frequency domain (Gaussian bumps on a ``1/f``
background), transients are templates added at random times; three regional sources (frontal, central,
occipital) are mixed into the channels. Subject-level variation: overall amplitude, alpha / spindle / theta /
delta centre frequencies, noise level and the channel mixing matrix. Epoch-level variation: log-normal band
gains, transitional epochs that blend in the previous stage's spectrum, and occasional movement artefacts, so
the stages overlap (N1 is the hardest, as in real data) and a classifier's kappa is informative rather than 1.

The stage sequence is a Markov chain over 30-s epochs with realistic persistence, starting awake, with N3
more likely early in the night and REM more likely late.

Output: a :class:`part.data.sleep.SleepRecording` exactly like the real-data loaders return (instance-
normalised ``float32 (W, C, T)`` windows, ``int64`` stages 0..4, per-window subject / record / onset).
Generation is deterministic in ``seed``, and subject ``k`` does not depend on ``n_subjects``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..signal import PAPER_EEG, instance_normalize, window_length
from .physionet import PHYSIONET2018_EEG
from .recording import SleepRecording
from .stages import STAGES

__all__ = ["make_synthetic_sleep", "synthetic_stage_sequence", "TRANSITIONS", "BANDS"]

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

# Transient events: Poisson rate per epoch and stage (W, N1, N2, N3, REM).
_SPINDLE_RATE = np.array([0.0, 0.2, 3.0, 0.7, 0.0])
_KCOMPLEX_RATE = np.array([0.0, 0.1, 1.2, 0.4, 0.0])
_SAWTOOTH_RATE = np.array([0.0, 0.1, 0.0, 0.0, 1.3])
_ARTEFACT_PROB = np.array([0.08, 0.04, 0.015, 0.01, 0.02])


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
    """Real Gaussian noise ``(..., n)`` whose one-sided power spectrum is ``power (..., n // 2 + 1)``."""
    white = np.fft.rfft(rng.standard_normal(power.shape[:-1] + (n,)), axis=-1)
    return np.fft.irfft(white * np.sqrt(power), n=n, axis=-1)


def _place_events(
    rng: np.random.Generator, target: np.ndarray, rate: np.ndarray, stages: np.ndarray, waveforms
) -> None:
    """Add Poisson-many events per epoch into ``target (E, T)`` in place. ``waveforms(k) -> (k, L)``."""
    counts = rng.poisson(rate[stages])
    n = int(counts.sum())
    if n == 0:
        return
    wave = waveforms(n)[:, : target.shape[1]]  # (n, L); an event longer than the window is cut
    length = wave.shape[1]
    epoch = np.repeat(np.arange(stages.size), counts)
    start = rng.integers(0, target.shape[1] - length + 1, size=n)
    cols = start[:, None] + np.arange(length)[None, :]
    np.add.at(target, (epoch[:, None], cols), wave)


def _subject(
    rng: np.random.Generator, n_epochs: int, n_channels: int, fs: float, t_w: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """One subject's night: raw ``(E, C, T)`` float64 in uV and stages ``(E,)``."""
    z = synthetic_stage_sequence(n_epochs, rng)
    freqs = np.fft.rfftfreq(t_w, d=1.0 / fs)
    t = np.arange(t_w) / fs

    # subject-level traits
    amp = np.exp(rng.normal(0.0, 0.2))
    centres = np.array([c for c, _ in BANDS.values()])
    widths = np.array([w for _, w in BANDS.values()])
    centres = centres + np.array([rng.normal(0, 0.15), rng.normal(0, 0.5), rng.normal(0, 0.7),
                                  rng.normal(0, 0.6), rng.normal(0, 1.5), 0.0])
    centres = np.clip(centres, [0.6, 4.2, 8.3, 11.5, 15.0, 30.0], [1.6, 7.0, 11.8, 15.5, 28.0, 45.0])
    spindle_f = centres[3]
    noise_rms = noise * rng.uniform(8.0, 18.0)
    region_gain = _REGION_GAIN * np.exp(rng.normal(0.0, 0.1, _REGION_GAIN.shape))

    # epoch-level band gains: stage profile x log-normal jitter, with transitional epochs blended towards the
    # previous epoch's stage (the scorer picks the majority, the signal is mixed)
    gains = _STAGE_GAIN[z] * np.exp(rng.normal(0.0, 0.4, (n_epochs, len(BANDS))))
    eyes_open = (z == 0) & (rng.random(n_epochs) < 0.35)  # eyes-open wake: alpha blocked, more beta
    gains[eyes_open, 2] *= 0.3
    gains[eyes_open, 4] *= 1.4
    prev = np.concatenate([z[:1], z[:-1]])
    blend = np.where((prev != z) | (rng.random(n_epochs) < 0.1), rng.uniform(0.0, 0.5, n_epochs), 0.0)
    gains = np.sqrt((1 - blend)[:, None] * gains**2 + blend[:, None] * _STAGE_GAIN[prev] ** 2)
    gains *= amp

    bumps = _bumps(freqs, centres, widths, fs)  # (B, F)
    pink = 1.0 / np.maximum(freqs, 0.5)
    pink = pink / pink.mean() * _PINK_RMS**2
    power = np.einsum("eb,rb,bf->erf", gains**2, region_gain**2, bumps) + pink  # (E, R, F)
    src = _shaped_noise(rng, power, t_w)  # (E, R, T)

    # transients: spindles (central / frontal), K-complexes (frontal), sawtooth waves (central)
    def spindles(k: int) -> np.ndarray:
        length = int(2.0 * fs)
        tt = np.arange(length) / fs
        dur = rng.uniform(0.5, 2.0, (k, 1))
        env = np.where(tt < dur, np.sin(np.pi * np.minimum(tt / dur, 1.0)) ** 2, 0.0)
        f = spindle_f + rng.normal(0.0, 0.5, (k, 1))
        return amp * rng.uniform(20.0, 45.0, (k, 1)) * env * np.sin(2 * np.pi * f * tt + rng.uniform(0, 2 * np.pi, (k, 1)))

    def k_complexes(k: int) -> np.ndarray:
        length = int(1.5 * fs)
        tt = np.arange(length) / fs
        s = rng.uniform(0.8, 1.2, (k, 1))
        a = amp * rng.uniform(60.0, 140.0, (k, 1))
        return -a * np.exp(-(((tt - 0.35 * s) / (0.07 * s)) ** 2)) + 0.6 * a * np.exp(-(((tt - 0.8 * s) / (0.2 * s)) ** 2))

    def sawtooth(k: int) -> np.ndarray:
        length = int(3.0 * fs)
        tt = np.arange(length) / fs
        dur = rng.uniform(1.0, 3.0, (k, 1))
        env = np.where(tt < dur, np.sin(np.pi * np.minimum(tt / dur, 1.0)) ** 2, 0.0)
        phase = rng.uniform(2.0, 6.0, (k, 1)) * tt + rng.uniform(0, 1, (k, 1))
        saw = 2.0 * (phase - np.floor(phase)) - 1.0  # slow rise, sharp fall
        return amp * rng.uniform(15.0, 35.0, (k, 1)) * env * saw

    for rate, make, region_w in (
        (_SPINDLE_RATE, spindles, np.array([0.8, 1.0, 0.35])),
        (_KCOMPLEX_RATE, k_complexes, np.array([1.2, 1.0, 0.5])),
        (_SAWTOOTH_RATE, sawtooth, np.array([0.8, 1.0, 0.5])),
    ):
        ev = np.zeros((n_epochs, t_w))
        _place_events(rng, ev, rate, z, make)
        src += ev[:, None, :] * region_w[None, :, None]

    # channel mixing: channel c mostly sees region round(c * 3 / C), with leakage and a subject perturbation
    region_of = np.minimum((np.arange(n_channels) * 3) // max(n_channels, 1), 2)
    mix = np.full((n_channels, 3), 0.25)
    mix[np.arange(n_channels), region_of] = 1.0
    mix = np.abs(mix + rng.normal(0.0, 0.12, mix.shape))
    x = np.einsum("cr,ert->ect", mix, src)

    # per-channel sensor noise (white + 1/f) and movement artefacts
    chan_power = np.broadcast_to(0.5 + 0.5 * pink / pink.mean(), (n_epochs, n_channels, freqs.size))
    x += noise_rms * _shaped_noise(rng, chan_power, t_w)
    art = rng.random(n_epochs) < _ARTEFACT_PROB[z]
    if art.any():
        k = int(art.sum())
        on = rng.uniform(0, max(t[-1] - 1.0, 0.0), (k, 1))
        dur = rng.uniform(1.0, 4.0, (k, 1))
        env = ((t[None, :] >= on) & (t[None, :] < on + dur)).astype(float)
        burst = rng.normal(0.0, 1.0, (k, n_channels, t_w)) * rng.uniform(40, 120, (k, n_channels, 1))
        x[art] += burst * env[:, None, :]
    return x, z


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
    t_w = window_length(fs, window_s)
    xs, ys, subj = [], [], []
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_subjects)):
        x, z = _subject(np.random.default_rng(child), epochs_per_subject, len(names), fs, t_w, noise)
        xs.append(instance_normalize(x) if normalize else x.astype(np.float32))
        ys.append(z)
        subj.append(np.full(epochs_per_subject, f"synthetic-{k:03d}"))
    subject = np.concatenate(subj)
    onset = np.tile(np.arange(epochs_per_subject) * float(window_s), n_subjects)
    return SleepRecording(np.concatenate(xs), np.concatenate(ys), subject, subject.copy(), onset, names, fs)
