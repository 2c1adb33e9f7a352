"""The ablation package reproduces the results the single-module implementation recorded on the two tiny
grids (``fixtures/``; see :mod:`tests.ablation.golden`): every value of ``results.csv`` and every cell of
``table.md`` except wall-clock seconds. Text is compared exactly; numbers to 1e-6 relative in the CSV (the last
bits of float32 training differ between CPUs: AVX-512 and AVX2 machines give e.g. 0.26557491625782625 and
0.2655749082606468) and to one unit of the last printed digit in the table."""

from __future__ import annotations

import pytest

import part
from tests.ablation.golden import FIXTURES, GRIDS, comparable_csv, comparable_table, same_csv, same_table, write_splits


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GRIDS))
def test_tiny_grid_reproduces_the_recorded_results(tmp_path, name):
    root = write_splits(tmp_path / "data")
    res = part.ablate(GRIDS[name](root), out=tmp_path / name, verbose=False)
    same_csv(comparable_csv((res.out / "results.csv").read_text()), (FIXTURES / f"{name}_results.csv").read_text())
    same_table(comparable_table((res.out / "table.md").read_text()), (FIXTURES / f"{name}_table.md").read_text())


def test_the_comparison_tolerates_only_the_last_bits():
    same_csv("a,b\nx,0.26557491625782625\n", "a,b\nx,0.2655749082606468\n")
    with pytest.raises(AssertionError):
        same_csv("a,b\nx,0.2656\n", "a,b\nx,0.2655749082606468\n")
    with pytest.raises(AssertionError):
        same_csv("a,b\ny,0.5\n", "a,b\nx,0.5\n")
    same_table("| 64.17 ± 0.12 | part |\n", "| 64.18 ± 0.12 | part |\n")
    with pytest.raises(AssertionError):
        same_table("| 64.15 ± 0.12 | part |\n", "| 64.18 ± 0.12 | part |\n")
