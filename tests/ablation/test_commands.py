"""``part ablate`` is :func:`part.ablate` one to one; the package is importable by its module names."""

from __future__ import annotations

import argparse
import importlib

import pytest
import yaml

import part
from part.ablation.commands import register
from tests.ablation.golden import tiny


def _parser():
    p = argparse.ArgumentParser(prog="part")
    register(p.add_subparsers(dest="command", required=True))
    return p


@pytest.mark.slow
def test_cli_is_the_library_one_to_one(grid_run, tmp_path, root, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny(root)))
    args = _parser().parse_args(["ablate", "--config", str(path), "--out", str(grid_run.out), "--dry-run"])
    assert args.func(args) == f"planned 6 cells (nothing run; would write to {grid_run.out})"
    args = _parser().parse_args(["ablate", "--config", str(path), "--out", str(grid_run.out),
                                 "--set", "probe.epochs=5"])
    assert args.func(args) == f"wrote results.csv (6 cells: 0 run, 6 skipped), table.md and 3 plots to {grid_run.out}"
    printed = capsys.readouterr().out
    assert grid_run.table in printed and str(grid_run.out) in printed

    from part.cli import main

    assert main(["ablate", "--config", str(path), "--out", str(tmp_path / "x"), "--set", "grid.objectives=[dino]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid.objectives: unknown objective 'dino'" in err[0] and "part ablate" in err[0]
    assert main(["ablate", "--config", str(path), "--out", str(tmp_path / "x"), "--set", "grid.objectives.5=mae"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid.objectives.5" in err[0] and "no list entry 5" in err[0]
    assert not (tmp_path / "x").exists()


def test_modules_import_by_name_beside_the_function():
    for name in ("settings", "plan", "run", "report", "plots", "commands"):
        assert importlib.import_module(f"part.ablation.{name}").__name__ == f"part.ablation.{name}"
    assert callable(part.ablate) and part.ablate is part.ablation.ablate is part.ablation.run.ablate
