"""mean ± sample std over seeds, the Markdown table, the CSV."""

from __future__ import annotations

import math

import pytest

from part.ablation.report import aggregate, format_markdown, mean_std, read_csv


def test_table_mean_std_matches_the_csv(grid_run):
    rows = read_csv(grid_run.out / "results.csv")
    seeds = [float(r["probe_top1"]) for r in rows if r["num_pairs"] == "8"]
    assert len(seeds) == 2
    mean = (seeds[0] + seeds[1]) / 2
    std = abs(seeds[0] - seeds[1]) / math.sqrt(2)  # sample std of two values
    g = next(g for g in grid_run.groups if g["num_pairs"] == 8)
    assert g["seeds"] == 2
    assert g["probe_top1_mean"] == pytest.approx(mean) and g["probe_top1_std"] == pytest.approx(std)
    # the row whose #pairs column is 8 (not any "| 8 " cell: the time column can read "8 ± 6" on a slow machine)
    line = next(ln for ln in grid_run.table.splitlines() if ln.startswith("| part") and ln.split("|")[3].strip() == "8")
    assert f"{100 * mean:.2f} ± {100 * std:.2f}" in line


def test_mean_std_hand_checked():
    assert mean_std([0.5, 0.7, None, ""]) == (pytest.approx(0.6), pytest.approx(0.1 * math.sqrt(2)), 2)
    assert mean_std([1.0, 2.0, 6.0]) == (pytest.approx(3.0), pytest.approx(math.sqrt(7.0)), 3)  # (4+1+9)/2
    assert mean_std([0.25]) == (0.25, None, 1)
    assert mean_std([None, float("nan")]) == (None, None, 0)
    rows = [
        {"objective": "part", "method": "part", "head": "mlp", "num_pairs": 64, "seed": 0, "probe_top1": 0.5, "err_x": 1.0},
        {"objective": "part", "method": "part", "head": "mlp", "num_pairs": 64, "seed": 1, "probe_top1": 0.7, "err_x": 3.0},
        {"objective": "mae", "method": "mae", "head": None, "num_pairs": None, "seed": 0, "probe_top1": 0.8},
    ]
    groups = aggregate(rows)
    assert [(g["objective"], g["seeds"]) for g in groups] == [("part", 2), ("mae", 1)]
    assert groups[0]["err_x_mean"] == 2.0 and groups[0]["err_x_std"] == pytest.approx(math.sqrt(2))
    table = format_markdown(groups)
    part_line, mae_line = table.splitlines()[2:]
    assert "60.00 ± 14.14" in part_line and "2 ± 1.4" in part_line
    assert "80.00" in mae_line and "±" not in mae_line  # one seed: its value, no spread
    assert "fine-tune" not in table.splitlines()[0]  # columns without values are left out
