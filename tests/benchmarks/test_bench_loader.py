"""The loader throughput benchmark (issue 14, item 4): a --quick run times the trainer's own loader on real
JPEG files for each worker count and recipe, times the model step, and prints the workers-needed table. No
timing thresholds (machines are noisy): only that every number is measured and the batches are right."""

import json

import pytest
from PIL import Image

from .scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_loader")


def test_synthesised_jpegs_are_real_jpegs_of_varied_size(bench, tmp_path):
    kib = bench.synthesise_jpegs(tmp_path, 6, seed=0, small=True)
    files = sorted((tmp_path / "train").rglob("*.jpg"))
    assert len(files) == 6 and kib > 0
    sizes = set()
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            sizes.add(im.size)
    assert len(sizes) > 1  # sizes drawn, not one fixed size


def test_quick_run_measures_every_setting(bench, tmp_path, capsys):
    out = tmp_path / "loader.json"
    res = bench.main(["--quick", "--json", str(out)])
    text = capsys.readouterr().out
    assert "workers to keep the model step fed" in text and "load average at start" in text
    assert [(r["recipe"], r["workers"]) for r in res["loader"]] == [
        ("pretrain", 0), ("pretrain", 1), ("finetune", 0), ("finetune", 1)]
    for r in res["loader"]:
        assert r["img_per_s"] > 0 and r["shape"] == [4, 3, 64, 64]
    assert res["model"][0]["img_per_s"] > 0 and set(res["per_worker"]) == {"pretrain", "finetune"}
    assert json.loads(out.read_text())["loader"][0]["recipe"] == "pretrain"


def test_quick_run_with_wds_times_the_shards_beside_the_folder(bench, capsys):
    pytest.importorskip("webdataset")
    res = bench.main(["--quick", "--wds", "--recipes", "pretrain", "--archs", ""])
    text = capsys.readouterr().out
    assert "wds/folder" in text
    assert [(r["kind"], r["workers"]) for r in res["wds"]] == [("wds", 0), ("wds", 1)]
    assert all(r["img_per_s"] > 0 and r["ratio"] > 0 and r["shape"] == [4, 3, 64, 64] for r in res["wds"])


def test_bad_arguments_are_one_line_errors(bench, capsys):
    for argv in (["--workers", "a"], ["--recipes", "nope"], ["--archs", "huge"], ["--workers", "-1"], ["--pairs", "x"]):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'nope'" in err and "--pairs takes a positive int or 'all', got 'x'" in err
