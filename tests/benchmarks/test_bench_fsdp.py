"""The CPU fsdp-vs-ddp benchmark (issue 27): a --quick run measures both strategies in one torchrun and
prints the ratio, the memory held per rank and the load average. No timing threshold (machines are noisy)."""

import pytest

from .scripts import load_script


@pytest.mark.slow
def test_quick_run_measures_both_strategies(tmp_path, capsys):
    bench = load_script("bench_fsdp")
    res = bench.main(["--quick", "--json", str(tmp_path / "f.json")])
    out = capsys.readouterr().out
    assert "fsdp / ddp step time" in out and "load average" in out
    assert res["ratio"] > 0 and len(res["ranks"]) == 2
    assert res["fsdp_held_mb"] < res["ddp_held_mb"]  # each rank holds half the sharded state


def test_bad_arguments():
    bench = load_script("bench_fsdp")
    for argv in (["--nproc", "1"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(argv)
        assert exc.value.code == 2
