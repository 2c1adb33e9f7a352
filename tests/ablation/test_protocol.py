"""The results protocol of the ablation package (issue 24): fine-tunes per (label fraction, seed) with a validation
carve, the probe on the carve and vs pretraining epoch, committed stage summaries that a rerun on another machine
skips, sharding, and the results page with its claims."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

import part
from part.ablation import load_ablation_config, plan_cells
from part.ablation.page import judge, mean_ci, t95, welch_ci, write_page
from part.ablation.summaries import Summaries
from tests.ablation.golden import NUM_CLASSES, RECORDED_HEADS, tiny

PART_ROW = "part-cross_attention-p4"


def protocol(root, tmp, **top) -> dict:
    cfg = tiny(
        root,
        grid=[{"objectives": ["supervised"]}, {"objectives": ["part"], "heads": RECORDED_HEADS, "num_pairs": [4]}],
        objectives={"supervised": {"options": {"pos_embed": True}}},
        pretext=False,
        probe={"epochs": 5, "val_carve": 8, "curve": True},
        finetune={"num_classes": NUM_CLASSES, "fractions": [0.5, 1.0], "seeds": [0, 1],
                  "data": {"val_carve": 8}, "train": {"max_steps": 2, "val_every": 1.0},
                  "by_fraction": {0.5: {"train": {"batch_size": 4}}}},
        summaries=str(tmp / "summaries"), page=str(tmp / "docs" / "results.md"),
        claims=[{"name": "PART beats scratch at 50 %", "better": f"{PART_ROW}@0.5", "worse": "supervised@0.5"}],
    )
    cfg["pretrain"]["train"].update(max_steps=4, ckpt_every=2, keep_last=3)
    cfg.update(top)
    return cfg


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory, root):
    tmp = tmp_path_factory.mktemp("protocol")
    cfg = protocol(root, tmp)
    return tmp, cfg, part.ablate(cfg, out=tmp / "run", verbose=False, progress=False)


def test_plan_fine_tunes_every_fraction_and_seed(root, tmp_path):
    cells = plan_cells(load_ablation_config(protocol(root, tmp_path)))
    assert [c.name for c in cells] == ["supervised-s0", f"{PART_ROW}-s0"]
    for c in cells:
        assert [r.key for r in c.finetunes] == ["finetune-f0.5-s0", "finetune-f0.5-s1", "finetune-f1-s0",
                                                "finetune-f1-s1"]
        half = c.finetunes[0].config
        assert half.data.label_fraction == 0.5 and half.data.val_carve == 8 and half.train.batch_size == 4
        assert c.finetunes[2].config.data.label_fraction is None and c.finetunes[2].config.train.batch_size == 8
        assert c.finetunes[1].config.train.seed == 1


def test_stage_summaries_hold_spec_seeds_metrics_curves_and_machine(protocol_run):
    tmp, _, res = protocol_run
    summ = tmp / "summaries"
    part_cell = summ / f"{PART_ROW}-s0"
    assert sorted(p.name for p in part_cell.iterdir()) == [
        "finetune-f0.5-s0.json", "finetune-f0.5-s1.json", "finetune-f1-s0.json", "finetune-f1-s1.json",
        "pretrain.json", "pretrain.safetensors", "probe.json", "probe_curve.json"]
    kept = json.loads((part_cell / "pretrain.json").read_text())["weights"]
    assert kept["file"] == "pretrain.safetensors" and kept["bytes"] == (part_cell / "pretrain.safetensors").stat().st_size
    assert (part_cell / "pretrain.safetensors").read_bytes() == (
        tmp / "run" / "cells" / f"{PART_ROW}-s0" / "pretrain" / "weights.safetensors").read_bytes()
    ft = json.loads((part_cell / "finetune-f0.5-s1.json").read_text())
    assert ft["seeds"] == {"pretrain": 0, "finetune": 1} and ft["fraction"] == 0.5 and ft["row"] == PART_ROW
    assert 0 <= ft["metrics"]["finetune_top1"] <= 1 and 0 <= ft["metrics"]["val_top1"] <= 1
    assert ft["curve"] and all("val_top1" in c for c in ft["curve"])  # the validation learning curve
    assert len(ft["spec_hash"]) == 16 and ft["seconds"] > 0 and ft["spec"]["data"]["label_fraction"] == 0.5
    assert set(ft["machine"]) >= {"cpu", "cores", "torch", "load_avg"} and "commit" in ft
    probe = json.loads((part_cell / "probe.json").read_text())["metrics"]
    assert {"probe_top1", "knn_top1", "val_probe_top1", "val_knn_top1"} <= set(probe)
    curve = json.loads((part_cell / "probe_curve.json").read_text())["curve"]
    assert [c["step"] for c in curve] == [2, 4] and all("val_probe_top1" in c for c in curve)
    sup = json.loads((summ / "supervised-s0" / "finetune-f1-s0.json").read_text())
    assert sup["seeds"] == {"pretrain": None, "finetune": 0} and not (summ / "supervised-s0" / "probe.json").exists()


def test_labelled_subset_is_the_same_for_every_method_at_a_seed(protocol_run):
    tmp, _, _ = protocol_run
    cells = tmp / "run" / "cells"
    from part.engine import build_dataset
    from part.engine.runs import run_folder_config

    idx = [build_dataset(run_folder_config(cells / c / "finetune-f0.5-s1"), train=True).indices.tolist()
           for c in ("supervised-s0", f"{PART_ROW}-s0")]
    assert idx[0] == idx[1] and len(idx[0]) == 16  # half of each class of the 32 left by the carve of 8


def test_a_rerun_anywhere_skips_stages_whose_summaries_match(protocol_run, root):
    tmp, cfg, first = protocol_run
    fresh = tmp / "elsewhere"  # another machine: the committed summaries, no run folders
    res = part.ablate(cfg, out=fresh, verbose=False, progress=False)
    assert not (fresh / "cells" / f"{PART_ROW}-s0" / "pretrain").exists()  # nothing trained
    assert [r["probe_top1"] for r in res.rows] == [r["probe_top1"] for r in first.rows]
    # a new fine-tune recipe: only the fine-tunes run, on the pretraining's weights kept with the summaries
    import shutil

    shutil.copytree(tmp / "summaries", tmp / "summaries2")
    changed = dict(cfg, finetune={**cfg["finetune"], "optim": {"lr": 2e-3}}, summaries=str(tmp / "summaries2"),
                   page=None)
    res2 = part.ablate(changed, out=fresh, verbose=False, progress=False)
    cell = fresh / "cells" / f"{PART_ROW}-s0"
    assert (cell / "pretrain" / "weights.safetensors").is_file() and (cell / "finetune-f1-s1" / "results.json").is_file()
    assert not (cell / "pretrain" / "metrics.jsonl").exists()  # restored, not pretrained again
    probe = json.loads((tmp / "summaries2" / f"{PART_ROW}-s0" / "probe.json").read_text())
    assert probe["spec"]["val_carve"] == 8 and len(res2.rows) == 2
    ft = json.loads((tmp / "summaries2" / f"{PART_ROW}-s0" / "finetune-f1-s1.json").read_text())
    assert ft["spec"]["optim"]["lr"] == 2e-3


def _more_seeds(cfg, tmp, name):
    """``cfg`` with a third fine-tune seed, its summaries in a copy of the protocol run's (``tmp/name``)."""
    import shutil

    shutil.copytree(tmp / "summaries", tmp / name)
    return dict(cfg, finetune={**cfg["finetune"], "seeds": [0, 1, 2]}, summaries=str(tmp / name), page=None,
                claims=[])


def test_a_new_machine_fine_tunes_from_the_kept_weights_exactly_as_from_the_run(protocol_run):
    tmp, cfg, _ = protocol_run
    here = part.ablate(_more_seeds(cfg, tmp, "summ_here"), out=tmp / "run", verbose=False, progress=False)
    there = part.ablate(_more_seeds(cfg, tmp, "summ_there"), out=tmp / "there", verbose=False, progress=False)
    assert sorted(here.ran) == sorted(there.ran) == sorted(["supervised-s0", f"{PART_ROW}-s0"])
    pre = tmp / "there" / "cells" / f"{PART_ROW}-s0" / "pretrain"
    assert not (pre / "metrics.jsonl").exists() and not (pre / "checkpoints").exists()  # restored, not trained
    for key in ("finetune-f0.5-s2", "finetune-f1-s2"):
        a = json.loads((tmp / "summ_here" / f"{PART_ROW}-s0" / f"{key}.json").read_text())
        b = json.loads((tmp / "summ_there" / f"{PART_ROW}-s0" / f"{key}.json").read_text())
        assert a["metrics"] == b["metrics"] and a["curve"] == b["curve"]
        assert ((tmp / "run" / "cells" / f"{PART_ROW}-s0" / key / "weights.safetensors").read_bytes()
                == (tmp / "there" / "cells" / f"{PART_ROW}-s0" / key / "weights.safetensors").read_bytes())


def test_kept_weights_that_do_not_match_their_summary_are_not_used(protocol_run, capsys):
    tmp, cfg, _ = protocol_run
    more = _more_seeds(cfg, tmp, "summ_bad")
    kept = tmp / "summ_bad" / f"{PART_ROW}-s0" / "pretrain.safetensors"
    data = bytearray(kept.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    kept.write_bytes(bytes(data))
    more["finetune"] = {**more["finetune"], "fractions": [0.5], "seeds": [2]}
    part.ablate(more, out=tmp / "bad", verbose=True, progress=False)
    out = capsys.readouterr().out
    assert "does not match its recorded SHA-256" in out and "pretraining again" in out
    assert (tmp / "bad" / "cells" / f"{PART_ROW}-s0" / "pretrain" / "metrics.jsonl").is_file()  # trained again


def test_page_tables_claims_and_missing_stages(protocol_run, root, tmp_path):
    tmp, cfg, res = protocol_run
    text = (tmp / "docs" / "results.md").read_text()
    assert res.page == tmp / "docs" / "results.md"
    assert "Stages finished: 11 of 11 planned." in text and "not finished" not in text
    for heading in ("## The paper's claims", "## Fine-tuning, test top-1 (%)", "## Frozen features",
                    "## Linear probe vs pretraining epoch", "## Stages: wall time, code, machine"):
        assert heading in text
    assert "| PART beats scratch at 50 % |" in text and "(n=2)" in text
    assert f"{PART_ROW}@0.5 (n=2 from 1 pretraining)" in text and "supervised@0.5 (n=2) |" in text
    assert "test split" in text and (tmp / "docs" / "images" / "results" / "tiny" / "probe_vs_epoch.png").is_file()
    # the page from the summaries alone, with a stage planned that no summary has yet
    more = dict(cfg, finetune={**cfg["finetune"], "seeds": [0, 1, 2]}, page=str(tmp_path / "page.md"))
    part.ablate(more, report_only=True, verbose=False)
    page = (tmp_path / "page.md").read_text()
    assert "**The protocol is not finished**" in page and "`supervised-s0/finetune-f1-s2`" in page
    claims = dict(cfg, page=str(tmp_path / "claims.md"), claims=[
        {"name": "missing row", "better": f"{PART_ROW}@0.5", "worse": "mae@0.5"},
        {"name": "one run a side", "better": f"{PART_ROW}", "worse": f"{PART_ROW}", "metric": "probe_top1"}])
    part.ablate(claims, report_only=True, verbose=False)
    text = (tmp_path / "claims.md").read_text()
    assert "| missing row |" in text and "| not run yet |" in text
    assert "too few runs for an interval (n < 2)" in text  # the probe has one pretraining seed per row


def test_page_paired_section_is_computed_from_the_summaries(protocol_run, tmp_path):
    """paired: on the page: every row minus the baseline, run by run (same fraction and fine-tune seed), from the
    committed summaries alone; no section without paired:."""
    tmp, cfg, _ = protocol_run
    page = tmp_path / "paired.md"
    res = part.ablate(dict(cfg, page=str(page), paired={"baseline": "supervised", "metrics": ["finetune_top1", "val_top1"]}),
                      report_only=True, verbose=False)
    text = page.read_text()
    assert "## Paired differences against supervised (points; descriptive, not claims)" in text

    def top1(cell, stage, metric):
        return json.loads((tmp / "summaries" / cell / f"{stage}.json").read_text())["metrics"][metric]

    for metric in ("finetune_top1", "val_top1"):
        diffs = [top1(f"{PART_ROW}-s0", f"finetune-f0.5-s{k}", metric) - top1("supervised-s0", f"finetune-f0.5-s{k}", metric)
                 for k in (0, 1)]
        (r,) = [r for r in res.paired if r["fraction"] == 0.5 and r["metric"] == metric]
        assert r["row"] == PART_ROW and r["n"] == 2 and math.isclose(r["diff"], sum(diffs) / 2)
        assert f"| {PART_ROW}@0.5 | supervised@0.5 | {metric} | 2 | " in text
    assert "Paired differences" not in (tmp / "docs" / "results.md").read_text()  # the protocol has no paired:


def test_page_num_pairs_section_is_computed_from_the_summaries(tmp_path):
    """Fig. 8 on the page: a (label, head) pretrained with several num_pairs values gets a table (probe, kNN, each
    fine-tune fraction; "all" last) and a figure, from the summaries; a row with one value gets none."""
    summaries = Summaries(tmp_path / "summaries")
    probes = {"all": [0.80], 4: [0.70, 0.74]}  # written out of order: the page sorts them
    for label, sweep in (("part", probes), ("part_grid", {4: [0.5]})):
        for num_pairs, values in sweep.items():
            for seed, v in enumerate(values):
                row = f"{label}-cross_attention-p{num_pairs}"
                meta = dict(row=row, label=label, method=label, head="cross_attention", num_pairs=num_pairs)
                summaries.write(f"{row}-s{seed}", "probe", {},
                                {"probe_top1": v, "val_probe_top1": v - 0.01, "knn_top1": v - 0.02}, 1.0,
                                {"pretrain": seed}, meta=meta)
                summaries.write(f"{row}-s{seed}", "finetune-f0.1-s0", {},
                                {"finetune_top1": v + 0.1, "val_top1": v + 0.09}, 1.0,
                                {"pretrain": seed, "finetune": 0}, meta=dict(meta, fraction=0.1))
    acfg = SimpleNamespace(name="sweep", summaries=str(tmp_path / "summaries"), claims=[], paired=None)
    text = write_page(acfg, [], summaries, tmp_path / "docs" / "results.md").read_text()
    assert "## Number of pairs (paper Fig. 8)" in text and "part, head cross_attention:" in text
    assert "part_grid, head" not in text  # one num_pairs value: no sweep
    assert "| #pairs | probe test | probe val | kNN test | 10 % fine-tune test | 10 % fine-tune val |" in text
    m, h, _ = mean_ci([0.70, 0.74])
    four = f"| 4 | {100 * m:.2f} ± {100 * h:.2f} (n=2) | {100 * (m - 0.01):.2f} ± {100 * h:.2f} (n=2) | "
    assert four in text and "| all | 80.00 (n=1) | 79.00 (n=1) | 78.00 (n=1) | 90.00 (n=1) | 89.00 (n=1) |" in text
    assert text.index(four) < text.index("| all | 80.00")
    assert (tmp_path / "docs" / "images" / "results" / "sweep" / "num_pairs_part_cross_attention.png").is_file()


def test_shards_partition_the_cells(root, tmp_path):
    cfg = protocol(root, tmp_path)
    names = [c.name for c in part.ablate(cfg, dry_run=True, verbose=False).cells]
    halves = [[c.name for c in part.ablate(cfg, dry_run=True, verbose=False, shard=(k, 2)).cells] for k in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(names) and not set(halves[0]) & set(halves[1])



@pytest.mark.slow
def test_a_priority_pass_runs_only_the_named_fractions_and_the_next_call_the_rest(root, tmp_path):
    cfg = protocol(root, tmp_path, claims=[], page=None, grid=[{"objectives": ["part"], "heads": RECORDED_HEADS,
                                                                   "num_pairs": [4]}])
    cell = tmp_path / "summaries" / f"{PART_ROW}-s0"
    part.ablate(cfg, out=tmp_path / "run", verbose=False, progress=False, fractions=[0.5])
    first = {p.name: p.stat().st_mtime_ns for p in cell.iterdir()}
    assert sorted(n for n in first if n.startswith("finetune")) == ["finetune-f0.5-s0.json", "finetune-f0.5-s1.json"]
    part.ablate(cfg, out=tmp_path / "run", verbose=False, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in cell.iterdir()}
    assert {n: after[n] for n in first} == first  # nothing of the first pass ran again (pretraining included)
    assert sorted(set(after) - set(first)) == ["finetune-f1-s0.json", "finetune-f1-s1.json"]


@pytest.mark.bad_input
def test_a_fraction_the_plan_does_not_have_is_refused(root, tmp_path):
    with pytest.raises(ValueError, match=r"fractions: \[0.3\]"):
        part.ablate(protocol(root, tmp_path), dry_run=True, verbose=False, fractions=[0.3])


@pytest.mark.bad_input
@pytest.mark.parametrize("fractions", ["x", "0", "0.1,2", ""])
def test_bad_fractions_flag_is_one_line_exit_2(fractions):
    r = subprocess.run([sys.executable, "-m", "part", "ablate", "--config", "configs/results_fmnist.yaml",
                        "--fractions", fractions, "--dry-run"], capture_output=True, text=True)
    assert r.returncode == 2 and "--fractions" in r.stderr and "Traceback" not in r.stderr

@pytest.mark.bad_input
@pytest.mark.parametrize("top,match", [
    ({"finetune": {"num_classes": 4, "fractions": [0]}}, "fractions"),
    ({"finetune": {"num_classes": 4, "fractions": [1.5]}}, "fractions"),
    ({"claims": [{"name": "x", "better": "a", "worse": "b", "metric": "loss"}]}, "claims"),
    ({"claims": [{"name": "x", "better": "a"}]}, "claims"),
    ({"claims": [{"name": "x", "better": "a", "worse": "b", "margin": -1}]}, "margin"),
    ({"probe": {"val_carve": 1.5}}, "val_carve"),
])
def test_bad_protocol_settings_fail_before_training(root, tmp_path, top, match):
    cfg = protocol(root, tmp_path, **top)
    with pytest.raises(ValueError, match=match):
        part.ablate(cfg, dry_run=True, verbose=False)


@pytest.mark.bad_input
@pytest.mark.parametrize("shard", ["2/2", "x", "1/0", "-1/2"])
def test_bad_shard_is_one_line_exit_2(tmp_path, shard):
    r = subprocess.run([sys.executable, "-m", "part", "ablate", "--config", "configs/results_fmnist.yaml",
                        "--shard", shard, "--dry-run"], capture_output=True, text=True)
    assert r.returncode == 2 and "--shard" in r.stderr and "Traceback" not in r.stderr


def test_confidence_intervals_and_verdicts():
    m, h, n = mean_ci([0.8, 0.9, 1.0])
    assert n == 3 and math.isclose(m, 0.9) and math.isclose(h, t95(2) * 0.1 / math.sqrt(3))
    assert mean_ci([0.5]) == (0.5, None, 1) and mean_ci([]) == (None, None, 0)
    d, w = welch_ci([0.9, 0.91, 0.92], [0.8, 0.81, 0.82])
    assert math.isclose(d, 0.1) and 0 < w < 0.05
    assert judge(d, w) == "reproduced" and judge(-d, w) == "contradicted"
    assert judge(0.001, 0.01) == "inconclusive" and judge(0.1, None) == "inconclusive"
    assert judge(-0.01, 0.002, margin=0.015) == "reproduced"  # "within 1.5 points": diff > -margin at 95 %
    assert t95(1) > t95(2) > t95(30) > t95(1000) == 1.96
