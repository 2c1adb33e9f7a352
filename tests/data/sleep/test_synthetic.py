"""The SYNTHETIC sleep-like generator: same structure as the real loaders, deterministic, stage-dependent
spectra in the textbook bands, hard enough that Cohen's kappa is informative, and generated as continuous
nights whose epochs are not stationary (stage changes and events inside epochs, an arrow of time), so a 1-s
window's position inside its 30-s epoch can be read off the content (what PART's pretext needs)."""

from pathlib import Path

import numpy as np
import pytest

from part.data.sleep import PHYSIONET2018_EEG, SleepRecording, SleepSource, SleepSplitDataset, subject_split
from part.data.sleep.synthetic import (
    TRANSITIONS,
    SyntheticNight,
    make_synthetic_sleep,
    synthetic_night,
    synthetic_stage_sequence,
)

BANDS = {"delta": (0.5, 2.0), "theta": (4.0, 7.0), "alpha": (8.0, 12.0), "sigma": (12.0, 15.0), "beta": (16.0, 30.0)}


@pytest.fixture(scope="module")
def night() -> SleepRecording:
    return make_synthetic_sleep(n_subjects=4, epochs_per_subject=120, seed=0)


def band_log_power(data: SleepRecording) -> dict[str, np.ndarray]:
    """Per window, log mean power in each band (averaged over channels) relative to the 0.5-30 Hz power, so the
    baseline drift below 0.5 Hz does not dilute the bands: name -> (W,)."""
    freqs = np.fft.rfftfreq(data.X.shape[-1], 1.0 / data.fs)
    power = (np.abs(np.fft.rfft(data.X, axis=-1)) ** 2).mean(axis=1)  # (W, F)
    total = np.log(power[:, (freqs >= 0.5) & (freqs < 30.0)].mean(axis=1))
    return {k: np.log(power[:, (freqs >= a) & (freqs < b)].mean(axis=1)) - total for k, (a, b) in BANDS.items()}


def cohen_kappa(y: np.ndarray, p: np.ndarray, k: int = 5) -> float:
    cm = np.zeros((k, k))
    np.add.at(cm, (y, p), 1)
    n = cm.sum()
    po, pe = np.trace(cm) / n, (cm.sum(0) * cm.sum(1)).sum() / n**2
    return float((po - pe) / (1 - pe))


@pytest.mark.slow
def test_structure_matches_the_loaders(night):
    assert isinstance(night, SleepRecording)
    assert night.X.shape == (480, 6, 3000) and night.X.dtype == np.float32
    assert night.y.dtype == np.int64 and night.y.min() >= 0 and night.y.max() <= 4
    assert night.channels == PHYSIONET2018_EEG and night.fs == 100.0 and night.window_s == 30.0
    assert night.subjects == ("synthetic-000", "synthetic-001", "synthetic-002", "synthetic-003")
    np.testing.assert_allclose(night.onset[:3], [0.0, 30.0, 60.0])
    np.testing.assert_allclose(night.X.mean(-1), 0.0, atol=1e-4)  # instance-normalised like the loaders
    np.testing.assert_allclose(night.X.std(-1), 1.0, atol=1e-3)
    assert np.all(night.stage_counts() > 0)  # every stage present
    x, label = SleepSplitDataset(SleepSource.from_recordings([night]))[7]
    assert tuple(x.shape) == (6, 3000) and label == night.y[7]


def test_deterministic_per_seed_and_subjects_independent_of_count():
    a = make_synthetic_sleep(2, 20, channels=3, seed=5)
    b = make_synthetic_sleep(2, 20, channels=3, seed=5)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = make_synthetic_sleep(2, 20, channels=3, seed=6)
    assert not np.array_equal(a.X, c.X)
    more = make_synthetic_sleep(3, 20, channels=3, seed=5)  # subject 1 is the same night
    np.testing.assert_array_equal(more.X[20:40], a.X[20:40])


def test_stage_spectra_peak_in_their_bands(night):
    bp = band_log_power(night)
    mean = {k: np.array([v[night.y == s].mean() for s in range(5)]) for k, v in bp.items()}
    W, N1, N2, N3, REM = range(5)
    assert mean["delta"].argmax() == N3 and mean["delta"][N3] > mean["delta"][W] + 1.0  # slow waves
    assert mean["alpha"].argmax() == W and mean["alpha"][W] > mean["alpha"][N3] + 1.0  # posterior alpha
    assert mean["theta"].argmax() in (N1, REM) and mean["theta"][REM] > mean["theta"][W]  # theta, sawtooth
    # spindles: N2 above the other sleep stages (awake, alpha and beta spill into 12-15 Hz)
    assert mean["sigma"][N2] > max(mean["sigma"][N1], mean["sigma"][N3], mean["sigma"][REM])
    assert mean["beta"].argmax() == W  # beta / EMG while awake


def test_kappa_is_informative_not_trivial(night):
    # nearest class centroid on standardised band log-powers, trained on 3 subjects, tested on the 4th
    feats = np.stack(list(band_log_power(night).values()), axis=1)
    test = night.subject == "synthetic-003"
    mu, sd = feats[~test].mean(0), feats[~test].std(0)
    z = (feats - mu) / sd
    centroids = np.stack([z[~test & (night.y == s)].mean(0) for s in range(5)])
    pred = ((z[test][:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    kappa = cohen_kappa(night.y[test], pred)
    assert 0.3 < kappa < 0.95


def test_windows_are_cut_from_one_continuous_night():
    e, fs = 40, 50.0
    night = synthetic_night(e, n_channels=2, fs=fs, window_s=30.0, seed=np.random.default_rng(
        np.random.SeedSequence(3).spawn(1)[0]))
    assert isinstance(night, SyntheticNight) and night.x.shape == (2, e * 1500) and night.y.shape == (e,)
    raw = make_synthetic_sleep(1, e, channels=2, fs=fs, seed=3, normalize=False)  # subject 0 of seed 3
    np.testing.assert_allclose(raw.X, night.epochs().astype(np.float32))
    np.testing.assert_array_equal(raw.y, night.y)
    # no jump where one epoch ends and the next begins: the step across an epoch boundary is as large as
    # any other step between consecutive samples (epochs drawn one by one would jump there)
    def boundary_vs_all(x: np.ndarray) -> float:  # x (E, C, T) -> mean |step| at boundaries / mean |step|
        flat = x.transpose(1, 0, 2).reshape(x.shape[1], -1)
        steps = np.abs(np.diff(flat, axis=1))
        at = np.arange(1, x.shape[0]) * x.shape[2] - 1
        return float(steps[:, at].mean() / steps.mean())
    assert 0.6 < boundary_vs_all(raw.X) < 1.6
    shuffled = raw.X[np.random.default_rng(0).permutation(e)]
    assert boundary_vs_all(shuffled) > 2.0  # the statistic does see a seam


def test_stage_changes_and_events_fall_inside_epochs():
    night = synthetic_night(240, n_channels=1, fs=50.0, seed=1)
    w = night.window_s
    # labels: the stage covering most of each epoch, recomputed here sample by sample from the stage path
    t = (np.arange(night.x.shape[1]) + 0.5) / night.fs
    per_sample = night.stages[np.searchsorted(night.change_s, t, side="right")]
    cover = np.stack([(per_sample.reshape(240, -1) == s).sum(1) for s in range(5)], axis=1)
    np.testing.assert_array_equal(night.y, cover.argmax(1))
    # stage changes anywhere inside an epoch (within 0.45 epoch of the boundary between the two labels)
    frac = (night.change_s % w) / w
    assert night.change_s.size >= 10 and np.all(np.diff(night.change_s) > 0)
    assert ((frac > 0.1) & (frac < 0.45)).any() and ((frac > 0.55) & (frac < 0.9)).any()
    assert not ((frac > 0.45) & (frac < 0.55)).any()
    # transient events at uniform positions inside epochs, not on a grid
    for name in ("spindle", "kcomplex", "arousal"):
        on = night.events[name]
        assert on.size >= 20 and np.all(np.diff(on) >= 0), name
        hist = np.histogram((on % w) / w, bins=5, range=(0, 1))[0]
        assert hist.min() >= 0.08 * on.size, (name, hist)
    # spindles and K-complexes where the textbook puts them: mostly in N2 (and N3), never awake
    stage_at = night.stages[np.searchsorted(night.change_s, night.events["spindle"], side="right")]
    assert (stage_at == 0).sum() == 0 and (stage_at == 2).mean() > 0.5


def test_epochs_have_an_arrow_of_time(night):
    """The position of a 1-s window inside its (instance-normalised) epoch is readable from its content: the
    baseline drift makes the window mean fall with time in NREM epochs and rise in W and REM ones."""
    means = night.X.mean(axis=1).reshape(len(night.X), 30, 100).mean(-1)  # (W, 30) 1-s window means
    centred = means - means.mean(1, keepdims=True)
    pos = np.arange(30) - 14.5
    corr = (centred * pos).sum(1) / (np.linalg.norm(centred, axis=1) * np.linalg.norm(pos))  # (W,)
    assert np.median(np.abs(corr)) > 0.4
    for s in (1, 2, 3):  # N1, N2, N3: downwards
        assert np.median(corr[night.y == s]) < -0.2, s
    for s in (0, 4):  # W, REM: upwards
        assert np.median(corr[night.y == s]) > 0.2, s


def test_hypnogram_is_plausible():
    z = synthetic_stage_sequence(900, np.random.default_rng(0))  # a 7.5 h night
    assert z[0] == 0 and set(np.unique(z)) == {0, 1, 2, 3, 4}
    changes = (np.diff(z) != 0).mean()
    assert 0.02 < changes < 0.3  # stages persist over several epochs
    first, second = z[:450], z[450:]
    assert (first == 3).sum() > (second == 3).sum()  # deep sleep early in the night
    assert (second == 4).sum() > (first == 4).sum()  # REM late
    np.testing.assert_allclose(TRANSITIONS.sum(axis=1), 1.0)


def test_pipeline_split_on_synthetic(night):
    split = subject_split(night.subject, n_finetune=1, n_test=1, seed=0)
    assert not set(night.subject[split.test]) & set(night.subject[split.pretrain])


def test_options_and_errors():
    raw = make_synthetic_sleep(1, 3, channels=["Fz", "Cz"], fs=128.0, seed=1, window_s=10.0, noise=0.0, normalize=False)
    assert raw.X.shape == (3, 2, 1280) and raw.channels == ("Fz", "Cz")
    assert raw.X.std() > 5.0  # microvolt scale when not normalised
    assert make_synthetic_sleep(1, 2, channels=8, seed=0).channels == tuple(f"ch{i}" for i in range(8))
    short = make_synthetic_sleep(2, 40, channels=2, seed=0, window_s=1.0)  # windows shorter than the events
    assert short.X.shape == (80, 2, 100) and np.isfinite(short.X).all()
    with pytest.raises(ValueError, match="n_subjects must be >= 1"):
        make_synthetic_sleep(0, 10)
    with pytest.raises(ValueError, match="epochs_per_subject.*1"):
        make_synthetic_sleep(1, 0)
    with pytest.raises(ValueError, match="fs.*least.*50"):
        make_synthetic_sleep(1, 2, fs=40.0)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        make_synthetic_sleep(1, 2, noise=-1.0)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        make_synthetic_sleep(1, 2, channels=0)
    with pytest.raises(ValueError, match="n_epochs.*1"):
        synthetic_night(0)
    with pytest.raises(ValueError, match="window_s=0.015"):
        synthetic_night(2, window_s=0.015)


REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "synthetic_night_ref.npz"
REFERENCE_CASES = {"a": dict(n_epochs=150, n_channels=2, fs=50.0, window_s=30.0, noise=1.0, seed=1),
                   "b": dict(n_epochs=90, n_channels=7, fs=100.0, window_s=10.0, noise=0.5, seed=2)}


@pytest.mark.parametrize("case", sorted(REFERENCE_CASES))
def test_night_is_the_recorded_reference(case):
    """``synthetic_night`` gives what it gave before it was split into steps (``tests/fixtures/
    synthetic_night_ref.npz``, written by the one-function version of 2026-12-06): every random draw in the
    same order. Stored: a strided sample of ``x`` (float32), per-channel sums and sums of squares, labels, the
    stage path and every event list. Case ``b`` passes a ``Generator`` as seed."""
    kw = dict(REFERENCE_CASES[case])
    if case == "b":
        kw["seed"] = np.random.default_rng(kw["seed"])
    night = synthetic_night(**kw)
    with np.load(REFERENCE) as ref:
        r = {k[2:]: ref[k] for k in ref.files if k.startswith(f"{case}_")}
    assert night.x.shape == tuple(r["shape"])
    np.testing.assert_allclose(night.x[:, ::211].astype(np.float32), r["x_sub"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(night.x.sum(axis=1), r["x_sum"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose((night.x * night.x).sum(axis=1), r["x_sq"], rtol=1e-9)
    np.testing.assert_array_equal(night.y, r["y"])
    np.testing.assert_array_equal(night.stages, r["stages"])
    np.testing.assert_allclose(night.change_s, r["change_s"], rtol=1e-12)
    assert sorted(night.events) == sorted(k[len("event_"):] for k in r if k.startswith("event_"))
    for name, times in night.events.items():
        np.testing.assert_allclose(times, r[f"event_{name}"], rtol=1e-12, err_msg=name)
