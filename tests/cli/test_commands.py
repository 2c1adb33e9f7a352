"""The CLI is thin over the library: each command runs, prints where it wrote, and fails in one line."""

import json

import pytest

import part
from part.cli import main

from ..engine.conftest import tiny_config


@pytest.fixture
def pretrained(tmp_path, npz_data):
    return part.pretrain(tiny_config(npz_data, max_steps=2), out=tmp_path / "pre", progress=False).run_dir


@pytest.mark.slow
def test_visualize_each_kind(tmp_path, pretrained, npz_data, capsys):
    for kind in ("reconstruct", "uncertainty", "symmetry"):
        out = tmp_path / kind
        assert main(["visualize", kind, "--run", str(pretrained), "--images", str(npz_data), "--out", str(out),
                     "--num-images", "2"]) == 0
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert last == f"wrote 2 figures and {kind}.json to {out}"
        assert len(list(out.glob("*.png"))) == 2
        assert json.loads((out / f"{kind}.json").read_text())


def test_visualize_informative_flags(tmp_path, pretrained, npz_data, capsys):
    out = tmp_path / "rec"
    assert main(["visualize", "reconstruct", "--run", str(pretrained), "--images", str(npz_data), "--out", str(out),
                 "--num-images", "2", "--informative-std", "0.25", "--reference", "informative"]) == 0
    data = json.loads((out / "reconstruct.json").read_text())
    assert data["settings"]["informative_std"] == 0.25 and data["settings"]["reference"] == "informative"
    assert "error_px_informative" in data["summary"]
    assert main(["visualize", "symmetry", "--run", str(pretrained), "--images", str(npz_data),
                 "--out", str(tmp_path / "v"), "--informative-std", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "informative_std" in err[0] and "-1" in err[0]


def test_visualize_errors(tmp_path, pretrained, npz_data, capsys):
    assert main(["visualize", "symmetry", "--run", str(tmp_path / "nope"), "--images", str(npz_data),
                 "--out", str(tmp_path / "v")]) == 2
    assert "nope" in capsys.readouterr().err
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    assert main(["visualize", "symmetry", "--run", str(pretrained), "--images", str(bad), "--out", str(tmp_path / "v")]) == 2
    assert "notes.txt" in capsys.readouterr().err


def test_pretrain_needs_config(capsys):
    assert main(["pretrain"]) == 2
    assert "needs --config" in capsys.readouterr().err
