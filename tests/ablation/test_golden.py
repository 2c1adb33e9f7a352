"""The ablation package reproduces, bit for bit, the results the single-module implementation recorded on
the two tiny grids (``fixtures/``; see :mod:`tests.ablation.golden`): every value of ``results.csv`` and
every cell of ``table.md`` except wall-clock seconds."""

from __future__ import annotations

import pytest

import part
from tests.ablation.golden import FIXTURES, GRIDS, comparable_csv, comparable_table, write_splits


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GRIDS))
def test_tiny_grid_reproduces_the_recorded_results(tmp_path, name):
    root = write_splits(tmp_path / "data")
    res = part.ablate(GRIDS[name](root), out=tmp_path / name, verbose=False)
    assert comparable_csv((res.out / "results.csv").read_text()) == (FIXTURES / f"{name}_results.csv").read_text()
    assert comparable_table((res.out / "table.md").read_text()) == (FIXTURES / f"{name}_table.md").read_text()
