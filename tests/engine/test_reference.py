"""part export --relative-encoder (issue 24's reference model): a timm export that also rebuilds the whole PART
model for part probe / part visualize, with no local paths."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

import part
from part.engine import load_run
from part.engine.publish import export_with_encoder
from part.engine.reference import ENCODER_FILE, is_published

from .conftest import tiny_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    import numpy as np

    tmp = tmp_path_factory.mktemp("ref")
    rng = np.random.default_rng(0)
    np.savez(tmp / "tiny.npz", x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8), y=rng.integers(0, 4, 64))
    return part.pretrain(tiny_config(tmp / "tiny.npz", max_steps=3), out=tmp / "run", progress=False).run_dir


def test_published_folder_rebuilds_the_part_model(pretrained, tmp_path):
    out = export_with_encoder(pretrained, tmp_path / "ref")
    assert is_published(out) and (out / "config.json").is_file() and (out / "README.md").is_file()
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["root"] == "tiny.npz"  # the basename only: no local directory layout
    assert str(tmp_path) not in (out / "config.yaml").read_text()
    a, _ = load_run(pretrained)
    b, _ = load_run(out)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(2, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    pa = a(x, generator=g).pred
    pb = b(x, generator=torch.Generator().manual_seed(0)).pred
    assert torch.equal(pa, pb)


def test_probe_and_visualize_read_it(pretrained, tmp_path):
    out = export_with_encoder(pretrained, tmp_path / "ref")
    res = part.probe(out, config=pretrained / "config.yaml", out=tmp_path / "probe.json", epochs=2, verbose=False)
    assert 0 <= res.linear["top1"] <= 1
    from part.visualization.api import load_model

    model, settings, _ = load_model(out)
    assert settings["image_size"] == 8 and hasattr(model, "predict_matrix")


@pytest.mark.bad_input
def test_relative_encoder_of_a_non_part_run_is_one_line(tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((16, 8, 8), np.uint8), y=np.arange(16) % 4)
    cfg = tiny_config(tmp_path / "d.npz", max_steps=1)
    cfg["objective"] = {"name": "mae", "options": {"mask_ratio": 0.5}}
    run = part.pretrain(cfg, out=tmp_path / "mae", progress=False).run_dir
    r = subprocess.run([sys.executable, "-m", "part", "export", "--run", str(run), "--out", str(tmp_path / "x"),
                        "--relative-encoder"], capture_output=True, text=True)
    assert r.returncode == 2 and "not a PART pretraining" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x" / ENCODER_FILE).exists()
