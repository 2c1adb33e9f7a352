"""Running grids: every stage's files, skipping finished cells, resuming half-finished ones exactly, the
from-scratch supervised row, every objective's pretext metrics through part.evaluation."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

import part
from part.ablation.report import CSV_COLUMNS
from tests.ablation.golden import finetune_grid, tiny

NAMES = ["part-cross_attention-p4-s0", "part-cross_attention-p8-s0", "mp3-s0",
         "part-cross_attention-p4-s1", "part-cross_attention-p8-s1", "mp3-s1"]


def test_grid_runs_and_writes_csv_table_plots(grid_run):
    res = grid_run
    assert res.ran == NAMES and res.skipped == []  # seed-major order; mp3 collapses #pairs to one cell per seed
    with open(res.out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
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
    res = part.ablate(tiny(root), out=out, verbose=False, overrides=["pretrain.train.log_every=2"])
    assert res.ran == [] and res.skipped == NAMES
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert (out / "results.csv").read_text() == csv_before


@pytest.mark.slow
def test_half_finished_cell_resumes_from_its_checkpoint(tmp_path, root):
    cfg = tiny(root, grid={"objectives": ["part"], "num_pairs": [4], "seeds": [0]})
    cfg["pretrain"]["train"].update(max_steps=3, ckpt_every=1, keep_last=2)
    out = tmp_path / "abl"
    first = part.ablate(cfg, out=out, verbose=False)
    cell = out / "cells" / "part-cross_attention_paper-p4-s0"  # the default head
    assert [r["cell"] for r in first.rows] == [cell.name]
    run = cell / "pretrain"
    # simulate a stop after the step-2 checkpoint: newer files and the finished cell's records are gone
    for rel in ("result.json", "stages.json", "pretext.json", "probe.json", "pretrain/weights.safetensors",
                "pretrain/summary.json", "pretrain/checkpoints/step_0000003.pt",
                "pretrain/checkpoints/step_0000003.safetensors"):
        (cell / rel).unlink()
    kept = run / "checkpoints" / "step_0000002.pt"
    kept_mtime = kept.stat().st_mtime_ns
    again = part.ablate(cfg, out=out, verbose=False)
    assert again.ran == [cell.name]
    assert kept.stat().st_mtime_ns == kept_mtime  # resumed (a restart would have replaced the folder)
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    for key in ("train_loss", "pretext_loss", "err_x", "err_y", "probe_top1", "knn_top1"):
        assert again.rows[0][key] == pytest.approx(first.rows[0][key], rel=1e-5), key  # exact resume

    # the same folder with other training settings is refused, naming the key
    with pytest.raises(ValueError, match=r"other settings \(optim\.lr: 0\.001 -> 0\.005\)"):
        part.ablate(cfg, out=out, verbose=False, overrides=["pretrain.optim.lr=5e-3"])
    # resume=False reruns every cell from scratch
    fresh = part.ablate(cfg, out=out, resume=False, verbose=False, overrides=["pretrain.optim.lr=5e-3"])
    assert fresh.ran == [cell.name] and kept.stat().st_mtime_ns != kept_mtime
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["lr"] == pytest.approx(5e-3)


@pytest.mark.slow
def test_supervised_is_the_from_scratch_finetune_row(tmp_path, root):
    res = part.ablate(finetune_grid(root), out=tmp_path / "abl", verbose=False)
    rows = {r["objective"]: r for r in res.rows}
    sup, prt, mae = rows["supervised_nopos"], rows["part"], rows["mae"]
    # MAE's pretext row: its masked-pixel loss on the test split (part.evaluation.evaluate), no translation errors
    assert mae["pretext_loss"] > 0 and mae["err_x"] is None and mae["pretext_acc"] is None
    pretext = json.loads((res.out / "cells" / "mae-s0" / "pretext.json").read_text())
    assert pretext["task"] == "pretext" and pretext["objective"] == "mae" and pretext["split"] == "test"
    assert pretext["num_samples"] == 8 and pretext["loss"] == mae["pretext_loss"] and 0 < pretext["mask_ratio"] < 1
    assert sup["method"] == "supervised" and sup["probe_top1"] is None and sup["pretrain_s"] is None
    assert 0.0 <= sup["finetune_top1"] <= 1.0 and 0.0 <= prt["finetune_top1"] <= 1.0
    sup_dir = res.out / "cells" / "supervised_nopos-s0"
    assert not (sup_dir / "pretrain").exists()
    assert json.loads((sup_dir / "finetune" / "init.json").read_text())["from_scratch"] is True
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
    again = part.ablate(finetune_grid(root), out=res.out, verbose=False, overrides=["finetune.optim.lr=0.002"])
    assert again.ran == ["part-cross_attention-p4-s0", "mae-s0", "supervised_nopos-s0"]
    assert weights.stat().st_mtime_ns == mtime
    assert yaml.safe_load((part_dir / "finetune" / "config.yaml").read_text())["optim"]["lr"] == 0.002
    assert again.rows[0]["probe_top1"] == res.rows[0]["probe_top1"]  # unchanged stages are not redone
