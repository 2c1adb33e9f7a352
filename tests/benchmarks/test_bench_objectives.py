"""The objective benchmark: its CPU memory measure on hand cases, and a smoke run of the whole script."""


import pytest
import torch

from .scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_objectives")


def test_saved_activation_bytes_hand_case(bench):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    x = torch.rand(2, 4)

    def run(seed):
        y = m(x)
        (y * y).sum().backward()  # mul saves y twice: one storage, counted once

    # Linear saves its input (2x4 float32 = 32 B; its weight is a parameter, excluded);
    # ReLU saves its output (2x8 float32 = 64 B), which is also the y saved by mul.
    assert bench.saved_activation_bytes(m, run) == 32 + 64


def test_quick_run_reports_ratios(bench, tmp_path):
    out = tmp_path / "bench.json"
    res = bench.main(["--quick", "--repeats", "1", "--warmup", "0", "--threads", "1", "--batch", "2",
                      "--only", "mp3,supervised", "--json", str(out)])
    rows = {r["item"]: r for r in res["rows"]}
    assert list(rows) == ["backbone", "mp3", "supervised"]
    assert rows["backbone"]["time_ratio"] == 1.0 and rows["backbone"]["memory_ratio"] == 1.0
    assert all(r["step_ms"] > 0 and r["memory_bytes"] > 0 for r in rows.values())
    assert out.exists() and res["config"]["repeats"] == 1 and res["config"]["batch"] == 2
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--only", "byol"])
