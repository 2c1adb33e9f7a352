"""One writer per run folder also for the commands that read a run and write next to it: ``part evaluate``
(``results.json``), ``part probe`` (``probe.json``), ``part visualize`` and ``part export`` (tests/engine/
test_export.py). Inside the run folder they hold its lock and fail at once, naming the holder, while another
process holds it; written elsewhere they need no lock."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from part.cli import main
from part.engine import RunFolderError, writes_into
from part.evaluation import evaluate, finetune, probe
from part.visualization import visualize

from .conftest import finetune_config


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory, npz_root, pretrain_run):
    out = tmp_path_factory.mktemp("runs") / "finetune"
    return finetune(finetune_config(npz_root), init=pretrain_run, out=out, progress=False).run_dir


def hold_lock(run):
    """Another process holding ``run``'s lock (as a training run does), until killed."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; from part.engine import RunLock; "
                               f"RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_writes_into_locks_only_inside_the_run(tmp_path, pretrain_run):
    holder = hold_lock(pretrain_run)
    try:
        with pytest.raises(RunFolderError, match=f"in use by another part process \\(pid {holder.pid}"):
            with writes_into(pretrain_run, pretrain_run / "plots" / "x.json"):
                pass
        with writes_into(pretrain_run, tmp_path / "x.json"), writes_into(None, pretrain_run / "y.json"):
            pass  # outside the folder, or no run folder: no lock taken
    finally:
        holder.kill()
        holder.wait()


def test_evaluate_probe_visualize_refuse_a_run_in_use_before_working(tmp_path, pretrain_run, finetune_run):
    def files(run):  # what the command could change (the lock file is the holder's)
        return {p: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file() and p.name != ".lock"}

    before = files(finetune_run)
    holders = [hold_lock(pretrain_run), hold_lock(finetune_run)]
    try:
        with pytest.raises(RunFolderError, match="finetune is in use"):
            evaluate(finetune_run, verbose=False)
        assert files(finetune_run) == before
        with pytest.raises(RunFolderError, match="pretrain is in use"):
            probe(pretrain_run, max_train=16, max_test=8, verbose=False)
        with pytest.raises(RunFolderError, match="pretrain is in use"):
            visualize("reconstruct", pretrain_run, torch.rand(1, 1, 8, 8), pretrain_run / "plots", num_images=1)
        assert not (pretrain_run / "probe.json").exists() and not (pretrain_run / "plots" / "reconstruct.json").exists()
        # written elsewhere, the same commands run while the runs train
        assert evaluate(finetune_run, out=tmp_path / "results.json", verbose=False)["path"] == str(tmp_path / "results.json")
        assert probe(pretrain_run, out=tmp_path, max_train=16, max_test=8, verbose=False).path == tmp_path / "probe.json"
        assert visualize("reconstruct", pretrain_run, torch.rand(1, 1, 8, 8), tmp_path / "viz", num_images=1).json_path.is_file()
    finally:
        for h in holders:
            h.kill()
            h.wait()
    # the lock is free again: the defaults write into the run folders
    assert evaluate(finetune_run, verbose=False)["path"] == str(finetune_run / "results.json")
    assert probe(pretrain_run, max_train=16, max_test=8, verbose=False).path == pretrain_run / "probe.json"


def test_cli_evaluate_on_a_run_in_use_is_one_line_exit_2(finetune_run, capsys):
    holder = hold_lock(finetune_run)
    try:
        code = main(["evaluate", "--run", str(finetune_run)])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "in use by another part process" in err[0]
