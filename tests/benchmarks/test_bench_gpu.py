"""The GPU benchmark (issue 27, item 5) run on the CPU: its FLOP count and MFU arithmetic, not its speed."""

import json

import pytest

from .scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_gpu")


def test_counted_flops_of_the_plain_step_equal_the_closed_form(bench, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    res = bench.main(["--quick", "--device", "cpu", "--no-bf16", "--peak-tflops", "1", "--json", str(out)])
    rows = {r["step"]: r for r in res["rows"]}
    plain = rows["plain"]
    # the yardstick d=32, depth 2, 32 px / patch 8 (T = 16), 1000 classes, batch 4, attention not counted on CPU
    assert plain["closed_form_flops"] == bench.plain_step_flops(4, 32, 8, 32, 2, 4.0, 3, 1000, attention=False)
    assert plain["flops_per_step"] == plain["closed_form_flops"] == 11_778_048
    for r in res["rows"]:  # MFU = FLOPs per step / step time / peak
        assert r["mfu"] == pytest.approx(r["flops_per_step"] / r["step_s"] / 1e12)
        assert r["img_per_s"] == pytest.approx(4 / r["step_s"])
    assert rows["part"]["flops_per_step"] > 0
    assert "MFU" in capsys.readouterr().out and json.loads(out.read_text())["rows"][0]["step"] == "part"


def test_mfu_without_a_peak_is_none(bench):
    assert bench.mfu(1e12, 1.0, None) is None
    assert bench.mfu(1e12, 0.5, 4.0) == pytest.approx(0.5)


def test_bad_arguments(bench, capsys):
    for argv in (["--modes", "jit"], ["--which", "mae"], ["--batch", "0"]):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(argv + ["--device", "cpu"])
        assert exc.value.code == 2
