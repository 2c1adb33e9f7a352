"""The committed stage summaries under ``results/`` stay valid: every summary of a protocol config
(``configs/results_*.yaml``) holds the spec today's code plans for that stage, so rerunning the protocol
skips it (issue 24: a protocol spread over sessions and machines). A change to the config schema, its
defaults or the spec's normal form that would silently rerun hours of finished stages fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from part.ablation.plan import plan_cells
from part.ablation.specs import cell_spec, same
from part.ablation.settings import load_ablation_config

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted((ROOT / "configs").glob("results_*.yaml"))


def _summaries(folder: Path) -> dict:
    return {(p.parent.name, p.stem): json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))}


@pytest.mark.parametrize("config", PROTOCOLS, ids=lambda p: p.stem)
def test_every_committed_summary_matches_todays_plan(config):
    acfg = load_ablation_config(config)
    assert acfg.summaries, f"{config.name} names no summaries folder"
    folder = ROOT / acfg.summaries
    found = _summaries(folder) if folder.is_dir() else {}
    planned = {c.name: cell_spec(c, acfg) for c in plan_cells(acfg)}
    stale = []
    for (cell, stage), summ in found.items():
        spec = planned.get(cell, {}).get(stage)
        if spec is None:
            stale.append(f"{cell}/{stage}: not in today's plan")
        elif not same(stage, summ["spec"], spec):
            stale.append(f"{cell}/{stage}: spec differs")
    assert not stale, f"{len(stale)} of {len(found)} summaries in {folder} would be rerun: {stale[:5]}"


def test_the_protocols_are_found():
    assert {p.stem for p in PROTOCOLS} >= {"results_fmnist", "results_blink", "results_fingermovements"}


@pytest.mark.parametrize("config", PROTOCOLS, ids=lambda p: p.stem)
def test_a_gpu_machine_plans_the_stages_a_cpu_finished(config):
    """The device, threads and data workers decide how a stage runs, not what it computes: a GPU session's
    ``RESULTS_ARGS`` (Makefile) plans the same specs, so it skips what CPUs finished and its summaries count."""
    gpu = ("pretrain.train.device=cuda", "pretrain.train.threads=8", "pretrain.data.num_workers=8")
    cpu, cuda = load_ablation_config(config), load_ablation_config(config, gpu)
    assert cuda.pretrain["train"]["device"] == "cuda"
    assert {c.name: cell_spec(c, cpu) for c in plan_cells(cpu)} == {c.name: cell_spec(c, cuda) for c in plan_cells(cuda)}


@pytest.mark.parametrize("config", PROTOCOLS, ids=lambda p: p.stem)
def test_every_kept_pretraining_matches_the_sha256_its_summary_records(config):
    """A later session continues from ``<cell>/pretrain.safetensors`` instead of pretraining again: each must be
    the file its pretraining summary describes."""
    from part.ablation.summaries import Summaries

    summaries = Summaries(ROOT / load_ablation_config(config).summaries)
    kept = sorted(summaries.folder.glob("*/pretrain.safetensors")) if summaries.folder.is_dir() else []
    bad = [f"{p.parent.name}: {why}" for p in kept for path, why in [summaries.verified_weights(p.parent.name)]
           if path is None]
    assert not bad, bad


@pytest.mark.parametrize("config", PROTOCOLS, ids=lambda p: p.stem)
def test_no_kept_pretraining_is_over_the_cap(config):
    """Kept weights are committed with the code: none may exceed the cap :meth:`Summaries.keep_weights` applies."""
    from part.ablation.summaries import KEEP_WEIGHTS_MAX_BYTES

    folder = ROOT / load_ablation_config(config).summaries
    big = [f"{p.parent.name}: {p.stat().st_size} bytes" for p in sorted(folder.glob("*/pretrain.safetensors"))
           if p.stat().st_size > KEEP_WEIGHTS_MAX_BYTES]
    assert not big, big


def test_weights_over_the_cap_are_not_kept(tmp_path, monkeypatch):
    from part.ablation import summaries as sm

    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"\0" * 100)
    s = sm.Summaries(tmp_path / "summaries")
    assert s.verified_weights("cell") == (None, "no pretraining summary")
    s.write("cell", "pretrain", {}, {"loss": 1.0}, 1.0, {"pretrain": 0})
    assert s.verified_weights("cell") == (None, "its pretraining summary records no weights")
    monkeypatch.setattr(sm, "KEEP_WEIGHTS_MAX_BYTES", 99)
    assert s.keep_weights("cell", weights) == {"kept": False, "bytes": 100}
    assert not s.weights_path("cell").exists()
    s.write("cell", "pretrain", {}, {"loss": 1.0}, 1.0, {"pretrain": 0}, weights={"kept": False, "bytes": 100})
    assert s.verified_weights("cell") == (None, "its weights (100 bytes) are over the 0 MiB a protocol keeps")
    monkeypatch.setattr(sm, "KEEP_WEIGHTS_MAX_BYTES", 100)
    assert s.keep_weights("cell", weights)["bytes"] == 100 and s.weights_path("cell").is_file()


DIAGNOSES = ("results-pilot", "results-probe-flat", "results-diag-pos-init")


@pytest.mark.parametrize("target", DIAGNOSES)
def test_the_makefiles_protocol_subsets_load(target, tmp_path, monkeypatch, capsys):
    """The Makefile's pilot and diagnoses run the protocol config with their own ``--set`` overrides: each such
    ``part ablate`` command plans (``--dry-run``) with today's config, so an entry added to the config (such as
    ``paired:``, whose baseline the pilot's grid lacks) cannot break a target nobody ran since."""
    import shlex
    import shutil
    import subprocess

    from part.cli import main

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shown = subprocess.run(["make", "-n", "-s", target, "VPY=python", f"RUNS={tmp_path}"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    commands = [shlex.split(line) for line in shown.splitlines() if "-m part ablate" in line]
    assert commands, f"make -n {target} shows no part ablate command"
    monkeypatch.chdir(ROOT)
    for argv in commands:
        args = argv[argv.index("ablate"):] + ["--dry-run"]
        assert main(args) == 0, f"{target}: {shlex.join(args)}: {capsys.readouterr().err.strip()}"
        assert "nothing run" in capsys.readouterr().out
