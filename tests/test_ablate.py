"""``part ablate``: grids of (objective x head x #pairs x seed) on a tiny real .npz dataset, resumability,
mean ± std aggregation, error messages, CLI."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

import numpy as np
import pytest

import part  # noqa: F401  (the package; part.ablate is the function)
from part.ablate_commands import register

A = sys.modules["part.ablate"]

NUM_CLASSES = 4


def write_splits(folder):
    """``train.npz`` (40) / ``test.npz`` (16): 8x8 uint8 images, class c = noise + brightness 60 c."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 16)):
        y = np.arange(n) % NUM_CLASSES
        rng.shuffle(y)
        x = rng.integers(0, 50, (n, 8, 8)) + 60 * y[:, None, None]
        np.savez(folder / f"{split}.npz", x=x.astype(np.uint8), y=y.astype(np.int64))
    return folder


def tiny(root, **top) -> dict:
    """2 objectives (part, mp3) x 2 #pairs x 2 seeds, 2 steps each, 4 patches of 4x4 per 8x8 image."""
    cfg = {
        "name": "tiny",
        "pretrain": {
            "model": {"arch": "custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 8, "patch_size": 4,
                      "in_chans": 1},
            "objective": {"name": "part", "num_pairs": 4},
            "data": {"kind": "npz", "root": str(root), "rrc_scale": [0.5, 1.0]},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"max_steps": 2, "batch_size": 8, "log_every": 1, "ckpt_every": 100, "device": "cpu"},
        },
        "grid": {"objectives": ["part", "mp3"], "num_pairs": [4, 8], "seeds": [0, 1]},
        "pretext": {"max_samples": 8},
        "probe": {"epochs": 5},
    }
    cfg.update(top)
    return cfg


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory, root):
    out = tmp_path_factory.mktemp("abl") / "tiny"
    return A.ablate(tiny(root), out=out, verbose=False)


NAMES = ["part-cross_attention-p4-s0", "part-cross_attention-p8-s0", "mp3-s0",
         "part-cross_attention-p4-s1", "part-cross_attention-p8-s1", "mp3-s1"]


def test_grid_runs_and_writes_csv_table_plots(grid_run):
    res = grid_run
    assert res.ran == NAMES and res.skipped == []  # seed-major order; mp3 collapses #pairs to one cell per seed
    with open(res.out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == A.CSV_COLUMNS
        rows = list(reader)
    assert [r["cell"] for r in rows] == NAMES
    for r in rows:
        assert r["status"] == "ok"
        assert 0.0 <= float(r["probe_top1"]) <= 1.0 and 0.0 <= float(r["knn_top1"]) <= 1.0
        assert r["pretrain_steps"] == "2" and float(r["wall_s"]) > 0
        assert r["finetune_top1"] == ""  # fine-tuning is off in this grid
        if r["method"] == "mp3":
            assert r["head"] == "" and r["num_pairs"] == "" and r["err_x"] == ""
            assert 0.0 <= float(r["pretext_acc"]) <= 1.0  # position-classification accuracy on the test split
        else:
            assert r["head"] == "cross_attention" and r["num_pairs"] in ("4", "8")
            assert float(r["err_x"]) > 0 and float(r["err_euclid"]) > 0 and r["pretext_acc"] == ""
    # each stage wrote its own file; the pretraining run folder is a normal run folder
    cell = res.out / "cells" / "part-cross_attention-p8-s1"
    for rel in ("pretrain/weights.safetensors", "pretrain/config.yaml", "pretext.json", "probe.json", "result.json"):
        assert (cell / rel).is_file(), rel
    assert json.loads((cell / "pretrain" / "summary.json").read_text())["finished"]
    import yaml

    run_cfg = yaml.safe_load((cell / "pretrain" / "config.yaml").read_text())
    assert run_cfg["objective"]["num_pairs"] == 8 and run_cfg["train"]["seed"] == 1
    table = (res.out / "table.md").read_text()
    assert res.table in table
    lines = [ln for ln in res.table.splitlines() if ln.startswith("| part") or ln.startswith("| mp3")]
    assert len(lines) == 3  # (part, 4), (part, 8), mp3
    for name in ("accuracy_vs_pairs.png", "accuracy_by_objective.png", "pretext_errors.png"):
        path = res.out / "plots" / name
        assert path in res.plots
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert (res.out / "ablation.yaml").is_file()


def test_rerun_skips_finished_cells(grid_run, root):
    out = grid_run.out
    watched = [out / "cells" / n / f for n in NAMES for f in ("result.json", "probe.json", "pretrain/weights.safetensors")]
    before = {p: p.stat().st_mtime_ns for p in watched}
    csv_before = (out / "results.csv").read_text()
    # an execution-only setting (log interval) does not invalidate finished cells
    res = A.ablate(tiny(root), out=out, verbose=False, overrides=["pretrain.train.log_every=2"])
    assert res.ran == [] and res.skipped == NAMES
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert (out / "results.csv").read_text() == csv_before


def test_table_mean_std_matches_the_csv(grid_run):
    rows = A.read_csv(grid_run.out / "results.csv")
    seeds = [float(r["probe_top1"]) for r in rows if r["num_pairs"] == "8"]
    assert len(seeds) == 2
    mean = (seeds[0] + seeds[1]) / 2
    std = abs(seeds[0] - seeds[1]) / math.sqrt(2)  # sample std of two values
    g = next(g for g in grid_run.groups if g["num_pairs"] == 8)
    assert g["seeds"] == 2
    assert g["probe_top1_mean"] == pytest.approx(mean) and g["probe_top1_std"] == pytest.approx(std)
    line = next(ln for ln in grid_run.table.splitlines() if "| 8 " in ln)
    assert f"{100 * mean:.2f} ± {100 * std:.2f}" in line


def test_mean_std_hand_checked():
    assert A.mean_std([0.5, 0.7, None, ""]) == (pytest.approx(0.6), pytest.approx(0.1 * math.sqrt(2)), 2)
    assert A.mean_std([1.0, 2.0, 6.0]) == (pytest.approx(3.0), pytest.approx(math.sqrt(7.0)), 3)  # (4+1+9)/2
    assert A.mean_std([0.25]) == (0.25, None, 1)
    assert A.mean_std([None, float("nan")]) == (None, None, 0)
    rows = [
        {"objective": "part", "method": "part", "head": "mlp", "num_pairs": 64, "seed": 0, "probe_top1": 0.5, "err_x": 1.0},
        {"objective": "part", "method": "part", "head": "mlp", "num_pairs": 64, "seed": 1, "probe_top1": 0.7, "err_x": 3.0},
        {"objective": "mae", "method": "mae", "head": None, "num_pairs": None, "seed": 0, "probe_top1": 0.8},
    ]
    groups = A.aggregate(rows)
    assert [(g["objective"], g["seeds"]) for g in groups] == [("part", 2), ("mae", 1)]
    assert groups[0]["err_x_mean"] == 2.0 and groups[0]["err_x_std"] == pytest.approx(math.sqrt(2))
    table = A.format_markdown(groups)
    part_line, mae_line = table.splitlines()[2:]
    assert "60.00 ± 14.14" in part_line and "2 ± 1.4" in part_line
    assert "80.00" in mae_line and "±" not in mae_line  # one seed: its value, no spread
    assert "fine-tune" not in table.splitlines()[0]  # columns without values are left out


def test_half_finished_cell_resumes_from_its_checkpoint(tmp_path, root):
    cfg = tiny(root, grid={"objectives": ["part"], "num_pairs": [4], "seeds": [0]})
    cfg["pretrain"]["train"].update(max_steps=3, ckpt_every=1, keep_last=2)
    out = tmp_path / "abl"
    first = A.ablate(cfg, out=out, verbose=False)
    cell = out / "cells" / "part-cross_attention-p4-s0"
    run = cell / "pretrain"
    # simulate a stop after the step-2 checkpoint: newer files and the finished cell's records are gone
    for rel in ("result.json", "stages.json", "pretext.json", "probe.json", "pretrain/weights.safetensors",
                "pretrain/summary.json", "pretrain/checkpoints/step_0000003.pt",
                "pretrain/checkpoints/step_0000003.safetensors"):
        (cell / rel).unlink()
    kept = run / "checkpoints" / "step_0000002.pt"
    kept_mtime = kept.stat().st_mtime_ns
    again = A.ablate(cfg, out=out, verbose=False)
    assert again.ran == [cell.name]
    assert kept.stat().st_mtime_ns == kept_mtime  # resumed (a restart would have replaced the folder)
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    for key in ("train_loss", "pretext_loss", "err_x", "err_y", "probe_top1", "knn_top1"):
        assert again.rows[0][key] == pytest.approx(first.rows[0][key], rel=1e-5), key  # exact resume

    # the same folder with other training settings is refused, naming the key
    with pytest.raises(ValueError, match=r"other settings \(optim\.lr: 0\.001 -> 0\.005\)"):
        A.ablate(cfg, out=out, verbose=False, overrides=["pretrain.optim.lr=5e-3"])
    # resume=False reruns every cell from scratch
    fresh = A.ablate(cfg, out=out, resume=False, verbose=False, overrides=["pretrain.optim.lr=5e-3"])
    assert fresh.ran == [cell.name] and kept.stat().st_mtime_ns != kept_mtime
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["lr"] == pytest.approx(5e-3)


def test_supervised_is_the_from_scratch_finetune_row(tmp_path, root):
    cfg = tiny(
        root,
        grid={"objectives": ["part", "mae", "supervised_nopos"], "num_pairs": [4], "seeds": [0]},
        objectives={"supervised_nopos": {"objective": "supervised", "options": {"pos_embed": False}}},
        finetune={"num_classes": NUM_CLASSES, "options": {"label_smoothing": 0.1}, "train": {"max_steps": 2}},
    )
    res = A.ablate(cfg, out=tmp_path / "abl", verbose=False)
    rows = {r["objective"]: r for r in res.rows}
    sup, prt, mae = rows["supervised_nopos"], rows["part"], rows["mae"]
    # MAE's pretext row: its masked-pixel loss on the test split, no translation errors
    assert mae["pretext_loss"] > 0 and mae["err_x"] is None and mae["pretext_acc"] is None
    pretext = json.loads((res.out / "cells" / "mae-s0" / "pretext.json").read_text())
    assert pretext["num_samples"] == 8 and pretext["loss"] == mae["pretext_loss"] and 0 < pretext["mask_ratio"] < 1
    assert sup["method"] == "supervised" and sup["probe_top1"] is None and sup["pretrain_s"] is None
    assert 0.0 <= sup["finetune_top1"] <= 1.0 and 0.0 <= prt["finetune_top1"] <= 1.0
    sup_dir = res.out / "cells" / "supervised_nopos-s0"
    assert not (sup_dir / "pretrain").exists()
    assert json.loads((sup_dir / "finetune" / "init.json").read_text())["from_scratch"] is True
    import yaml

    ft_cfg = yaml.safe_load((sup_dir / "finetune" / "config.yaml").read_text())
    assert ft_cfg["objective"]["name"] == "supervised"
    assert ft_cfg["objective"]["options"] == {"num_classes": 4, "label_smoothing": 0.1, "pos_embed": False}
    assert ft_cfg["train"]["max_steps"] == 2
    part_dir = res.out / "cells" / "part-cross_attention-p4-s0"
    part_init = json.loads((part_dir / "finetune" / "init.json").read_text())
    assert part_init["source"].endswith("part-cross_attention-p4-s0/pretrain/weights.safetensors")

    # a new fine-tune recipe reuses the pretrained weights and fine-tunes again
    weights = part_dir / "pretrain" / "weights.safetensors"
    mtime = weights.stat().st_mtime_ns
    again = A.ablate(cfg, out=res.out, verbose=False, overrides=["finetune.optim.lr=0.002"])
    assert again.ran == ["part-cross_attention-p4-s0", "mae-s0", "supervised_nopos-s0"]
    assert weights.stat().st_mtime_ns == mtime
    assert yaml.safe_load((part_dir / "finetune" / "config.yaml").read_text())["optim"]["lr"] == 0.002
    assert again.rows[0]["probe_top1"] == res.rows[0]["probe_top1"]  # unchanged stages are not redone


@pytest.mark.parametrize("change, match", [
    ({"grid": {"objectives": ["part", "byol"]}}, r"grid\.objectives: unknown objective 'byol'"),
    ({"grid": {"objectives": ["mp3"]}, "objectives": {"mp3": {"heads": ["mlp"]}}},
     r"objectives\.mp3\.heads: heads only vary for the PART objectives .*'mp3' \(mp3\) has no relative encoder"),
    ({"grid": {"objectives": ["mp3", "mae"], "heads": ["mlp"]}},
     r"grid\.heads: heads only vary for the PART objectives .*none of \['mp3', 'mae'\] is one"),
    ({"grid": {"objectives": ["part"], "heads": ["transformer"]}}, r"grid\.heads: unknown head 'transformer'"),
    ({"grid": {"objectives": ["part"], "num_pairs": [0]}}, r"grid\.num_pairs: num_pairs must be positive"),
    ({"grid": {"objectives": ["part"], "num_pairs": [100]}},
     r"cell part-cross_attention-p100-s0: pretrain objective 'part': num_pairs=100 exceeds the 12"),
    ({"grid": {"objectives": ["mae"]}, "objectives": {"mae": {"options": {"mask_raito": 0.5}}}},
     r"cell mae-s0: pretrain objective 'mae': unknown option\(s\) \['mask_raito'\]"),
    ({"grid": {"objectives": ["supervised"]}}, r"'supervised' is the from-scratch fine-tune row; enable finetune"),
    ({"grid": {"objectives": ["part"], "seeds": [0, 0]}}, r"grid\.seeds lists a value twice"),
    ({"grid": {"objectives": ["part"]}, "objectives": {"v": {"objective": "simclr"}}},
     r"objectives\.v\.objective: unknown objective 'simclr'"),
    ({"grid": {"objectives": ["part"]}, "probe": {"pool": "max"}}, r"probe\.pool must be 'avg' or 'token'"),
    ({"grid": {"objectives": ["part"]}, "probe": {"epoch": 3}}, r"unknown ablation config key probe\.epoch"),
    ({"grid": {"objectives": ["part"]}, "probe": {"epochs": 0}}, r"probe\.epochs must be a positive int, got 0"),
    ({"grid": {"objectives": ["part"]}, "pretext": {"max_samples": -1}},
     r"pretext\.max_samples must be a positive int or null, got -1"),
    ({"grid": {"objectives": ["part"]}, "finetune": {"train": {"max_steps": 2}}}, r"finetune\.num_classes must be"),
    ({"grid": {"objectives": ["part"]}, "seed": [1]}, r"unknown ablation config key 'seed'"),
    ({"grid": {"objectives": ["part"]}, "base": "nowhere.yaml"}, r"base: pretraining config file not found: nowhere\.yaml"),
])
def test_invalid_entries_are_named(tmp_path, root, change, match):
    with pytest.raises(ValueError, match=match):
        A.ablate(tiny(root, **change), out=tmp_path / "never", verbose=False)
    assert not (tmp_path / "never").exists()  # validated before anything is written


def test_pretrain_typo_is_named(root):
    cfg = tiny(root)
    cfg["pretrain"]["optim"]["learning_rate"] = 1e-3
    with pytest.raises(ValueError, match=r"ablation config pretrain: unknown config key optim\.learning_rate"):
        A.load_ablation_config(cfg)


def test_overrides_lists_and_base_file(tmp_path, root):
    import yaml

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny(root)["pretrain"]))
    cfg = tiny(root, grid=[{"objectives": ["part"], "num_pairs": [4, 8]}, {"objectives": ["mp3"]}], seeds=[0, 1])
    del cfg["pretrain"], cfg["name"]  # the name defaults to the file's stem
    cfg["base"] = "base.yaml"
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump(cfg))
    acfg = A.load_ablation_config(tmp_path / "abl.yaml", ["grid.0.seeds=[5]", "pretrain.optim.lr=0.01"])
    cells = A.plan_cells(acfg)
    assert [c.name for c in cells] == ["mp3-s0", "mp3-s1", "part-cross_attention-p4-s5", "part-cross_attention-p8-s5"]
    assert acfg.name == "abl" and cells[-1].pretrain.optim.lr == 0.01 and cells[-1].pretrain.data.root == str(root)
    with pytest.raises(ValueError, match=r"override 'grid\.7\.seeds': no list entry 7"):
        A.load_ablation_config(tmp_path / "abl.yaml", ["grid.7.seeds=[5]"])


def _parser():
    p = argparse.ArgumentParser(prog="part")
    register(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_is_the_library_one_to_one(grid_run, tmp_path, root, capsys):
    import yaml

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
    assert len(err) == 1 and "part ablate: error: grid.objectives: unknown objective 'dino'" in err[0]


def test_shipped_configs_plan():
    """The shipped grids load and every cell's configs resolve and build (without any data or training)."""
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    cells = A.plan_cells(A.load_ablation_config(configs / "ablate_fmnist_cpu.yaml"))
    assert len(cells) == 24 and len({c.key() for c in cells}) == 12 and {c.seed for c in cells} == {0, 1}
    rows = {(c.label, c.head, c.num_pairs) for c in cells}
    assert {("part", "cross_attention", p) for p in (32, 64, 128, "all")} <= rows
    assert {("part", "pairwise_mlp", 128), ("part", "mlp", 128), ("part_grid", "cross_attention", 128)} <= rows
    assert {("mp3", None, None), ("droppos", None, None), ("mae", None, None)} <= rows
    sup = [c for c in cells if c.method == "supervised"]
    assert len(sup) == 4 and all(c.pretrain is None for c in sup)
    assert {c.finetune.objective.options["pos_embed"] for c in sup} == {True, False}
    assert all(c.finetune.train.max_steps == 150 for c in cells)
    heads = A.plan_cells(A.load_ablation_config(configs / "ablate_cifar100_heads.yaml"))
    assert [(c.head, c.num_pairs) for c in heads] == [(h, 2048) for h in ("cross_attention", "pairwise_mlp", "mlp")]
    assert heads[0].pretrain.model.arch == "vit_small" and heads[0].pretrain.train.epochs == 1000
    assert heads[0].finetune.train.epochs == 400 and heads[0].finetune.optim.lr == 5e-4
    pairs = A.plan_cells(A.load_ablation_config(configs / "ablate_cifar100_pairs.yaml"))
    assert [c.num_pairs for c in pairs] == [512, 1024, 2048, "all"]
