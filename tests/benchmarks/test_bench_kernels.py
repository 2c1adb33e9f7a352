"""The kernel benchmark behind ROWS_COST and UNFOLD_MIN_PATCH (issue 14): a --quick run times both paths of
each kernel, checks the two copy gathers give the same bits, and reports the rule's choice. No timing
thresholds (machines are noisy)."""

import pytest

from .scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_kernels")


def test_quick_run_times_both_paths_of_each_kernel(bench, capsys):
    res = bench.main(["--quick", "--threads", "1", "--clock", "cpu"])
    text = capsys.readouterr().out
    assert "PickPairs fwd+bwd" in text and "copy_patches" in text and "load average at end" in text
    assert [r["M"] for r in res["pick_pairs"]] == [16, 64]
    for r in res["pick_pairs"]:
        assert r["table"] > 0 and r["rows"] > 0 and r["rule"] in ("table", "rows")
    assert [(r["P"], r["rule"]) for r in res["copy"]] == [(4, "pixels"), (8, "windows")]
    assert "pair sampling" in text
    assert [(r["M"], r["rule"]) for r in res["pairs"]] == [(8, "draws"), (64, "keys")]  # 240 pairs: 8 * 8 <= 240
    assert all(r["keys"] > 0 and r["draws"] > 0 for r in res["pairs"])


def test_bad_arguments_exit_2(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--reps", "0"])
    assert exc.value.code == 2 and "--reps and --heads must be positive" in capsys.readouterr().err


def test_only_times_the_named_kernels(bench, capsys):
    res = bench.main(["--quick", "--threads", "1", "--only", "pairs"])
    text = capsys.readouterr().out
    assert "pair sampling" in text and "PickPairs" not in text and "copy_patches" not in text
    assert res["pick_pairs"] == [] and res["copy"] == [] and len(res["pairs"]) == 2
