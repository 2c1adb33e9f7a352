"""The decomposed step benchmark (issue 14): a --quick run prints the table and writes its JSON; the reference
encoder beside the fast one; the CPU peak-memory measure on a hand case. No timing thresholds. (The plain ViT
it divides by is tests/benchmarks/test_yardstick.py's.)"""

import json

import pytest
import torch

from .scripts import load_script

ROWS = ["patch sampling + crop", "pair sampling", "backbone fwd+bwd", "relative encoder fwd+bwd", "targets + loss",
        "optimizer (AdamW)", "other (step - parts)", "relative encoder path", "PART step / plain step",
        "peak memory PART / plain"]


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_decomposed")


def test_quick_run_prints_the_decomposed_table(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    plot = tmp_path / "scaling.png"
    res = bench.main(["--quick", "--threads", "1", "--json", str(out), "--plot", str(plot)])
    text = capsys.readouterr().out
    for row in ROWS:
        assert row in text, row
    assert "load average at start" in text and "load average at end" in text and "goals of issue 14" in text
    assert "per round, min - max" in text  # (the goal lines add it for 2048 pairs, not in this quick run)
    (r,) = res["results"]
    assert (r["arch"], r["N"], r["batch"]) == ("quick", 16, 4)
    assert list(r["columns"]) == ["64", "all"] and r["columns"]["all"]["pairs"] == 16 * 15
    for col in r["columns"].values():
        assert col["part_step"] > 0 and col["encoder"] > 0 and col["backbone"] > 0 and col["part_bytes"] > 0
        lo, hi = col["part_step_rounds"]  # a_r >= lo b_r in every round, so median(a) >= lo median(b); same for hi
        assert 0 < lo <= col["part_step"] <= hi
        assert col["part_gflop"] > r["plain_gflop"] * 0.5  # counted, not zero
    assert r["plain_bytes"] > 0
    saved = json.loads(out.read_text())
    assert saved["results"][0]["columns"]["64"]["pairs"] == 64 and plot.stat().st_size > 0


def test_quick_run_bf16_cpu_clock_and_head_path(bench, capsys):
    """bf16 autocast on the CPU, the per-thread CPU clock, a forced head path (rows at all pairs)."""
    res = bench.main(["--quick", "--threads", "1", "--bf16", "--clock", "cpu", "--no-memory", "--head-path", "rows",
                      "--pairs", "all"])
    col = res["results"][0]["columns"]["all"]
    assert col["head_path"] == "rows" and col["part_step"] > 0 and "memory" not in col
    assert "bf16 autocast on" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_run_compiled(bench, capsys):
    """torch.compile of both steps, traced by dynamo with the aot_eager backend (~15 s here; inductor's C++
    compilation takes minutes on this CPU, so the GPU command's default backend is not run in tests)."""
    res = bench.main(["--quick", "--threads", "1", "--compile", "--compile-backend", "aot_eager", "--no-memory",
                      "--pairs", "64"])
    assert res["config"]["warmup"] == 1  # compilation is never timed
    assert res["results"][0]["columns"]["64"]["part_step"] > 0


def test_bad_flags_exit(bench):
    for argv in (["--shapes", "30/4"], ["--archs", "huge"], ["--pairs", "0"], ["--clock", "cpu"]):
        with pytest.raises(SystemExit):
            bench.main(argv)


def test_reference_encoder_is_timed_beside_the_fast_one(bench, capsys):
    """--reference: the head's plain reference implementation (the fast head's test oracle) on the same tokens
    and pairs, and the fast head's speed-up over it; an unknown reference is one line."""
    res = bench.main(["--quick", "--threads", "1", "--no-memory", "--pairs", "64", "--reference"])
    col = res["results"][0]["columns"]["64"]
    assert col["reference_encoder"] > 0 and col["reference_speedup"] == pytest.approx(
        res["results"][0]["times_s"]["reference:64"] / res["results"][0]["times_s"]["encoder:64"])
    text = capsys.readouterr().out
    assert "reference encoder fwd+bwd" in text and "fast encoder speed-up" in text
    with pytest.raises(SystemExit, match="no plain reference"):
        bench.main(["--quick", "--threads", "1", "--no-memory", "--pairs", "64", "--reference", "--head", "mlp"])


def test_cpu_peak_bytes_hand_case(bench):
    def fn():
        a = torch.ones(1 << 18)  # 1 MiB
        b = torch.ones(1 << 18)  # 1 MiB more while a lives
        del a, b
        torch.ones(1 << 17)  # 0.5 MiB after both are freed: not a new peak

    peak = bench.cpu_peak_bytes(fn)
    assert 2 * 2**20 <= peak < 2 * 2**20 + 4096


def test_pair_counts_beyond_a_shapes_universe_are_skipped_there(bench, tmp_path, capsys):
    """--pairs 8192 with N = 16 (240 pairs): that column is skipped with a note, the others run and plot."""
    res = bench.main(["--archs", "quick", "--shapes", "32/8", "--batch", "2", "--threads", "1", "--reps", "1",
                      "--warmup", "0", "--no-memory", "--pairs", "64,8192,all", "--plot", str(tmp_path / "p.png")])
    assert "skipping #pairs [8192]" in capsys.readouterr().out
    assert list(res["results"][0]["columns"]) == ["64", "all"]
    assert (tmp_path / "p.png").stat().st_size > 0


def test_goal_lines_judge_the_median_and_say_whether_every_round_met_it(bench):
    def result(n, key, step, rounds):
        col = {"encoder": 0.05, "part_step": step, "part_step_rounds": rounds, "memory": 1.05}
        return {"arch": "tiny", "img_size": 384, "patch_size": 16, "N": n, "columns": {key: col}}

    lines = bench.goal_lines([result(576, "2048", 1.095, [1.090, 1.104]), result(196, "2048", 1.08, [1.07, 1.09]),
                              result(196, "all", 1.25, [1.2, 1.3]), result(576, "all", 1.3, [1.2, 1.4])])
    assert "step 1.095x (met, goal <= 1.10x)" in lines[0] and "1.090-1.104x (not met in every round)" in lines[0]
    assert "(met in every round)" in lines[1]
    assert "step 1.250x (MISSED, goal <= 1.20x)" in lines[2]
    assert "step" not in lines[3]  # no step goal for all pairs at N 576
