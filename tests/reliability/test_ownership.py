"""Folder ownership and the journaled replace (part.engine.folders; issue 25, items 1 and 2).

``bad_input``: a folder ``part`` did not make is refused with one line and exit 2, and nothing in it changes.
``fault``: a kill at every step of a replace (``--overwrite`` of a run, an export replacing an earlier one)
leaves the old or the new complete folder, the next command reports and finishes or undoes it, and a user's
own files inside ``part``'s folders survive a replace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import part
from part.cli import main
from part.engine import checkpoint as ck

from .helpers import env, snapshot, tiny_raw, write_config

fault = pytest.mark.fault
bad_input = pytest.mark.bad_input
SIDE_NAMES = (".part-new", ".part-old", ".part-replace.json", ".part-lock")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Data, two configs (the old run's and a new one with another lr) and a finished run made by part."""
    tmp = tmp_path_factory.mktemp("own")
    from .helpers import write_data

    data = write_data(tmp / "data")
    old_cfg = write_config(tmp / "old.yaml", tiny_raw(data, max_steps=4, ckpt_every=2))
    raw = tiny_raw(data, max_steps=6, ckpt_every=3)
    raw["optim"]["lr"] = 2e-3
    new_cfg = write_config(tmp / "new.yaml", raw)
    finished = tmp / "finished"
    part.pretrain(str(old_cfg), out=finished, progress=False)
    return {"tmp": tmp, "data": data, "old": old_cfg, "new": new_cfg, "finished": finished}


def _copy_run(ws, name: str) -> Path:
    dst = ws["tmp"] / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(ws["finished"], dst)
    return dst


def _one_line(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    return [ln for ln in err if not ln.startswith(("warning:", "note:"))]


def _no_side_files(folder: Path) -> None:
    left = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.part-")]
    assert not left, left


# --- ownership: refuse a folder part did not make ----------------------------------------------------------
def _git_clone(ws) -> Path:
    """A git clone of an earlier hub export: the export's files plus .git and LICENSE, no marker."""
    clone = ws["tmp"] / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    shutil.copytree(ws["finished"] / "export", clone)
    (clone / ".part-export.json").unlink()
    (clone / ".git").mkdir()
    (clone / ".git" / "config").write_text("[core]\n")
    (clone / "LICENSE").write_text("MIT\n")
    return clone


def _user_metrics(ws) -> Path:
    u = ws["tmp"] / "mine"
    shutil.rmtree(u, ignore_errors=True)
    (u / "checkpoints").mkdir(parents=True)
    (u / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')  # a user's log, not part's
    (u / "checkpoints" / "model_best.pt").write_bytes(b"the user's weights")
    (u / "results.json").write_text('{"top1": 0.99}\n')
    return u


def _only_config(ws) -> Path:
    u = ws["tmp"] / "only_config"
    shutil.rmtree(u, ignore_errors=True)
    u.mkdir()
    shutil.copy(ws["old"], u / "config.yaml")  # even a config part could have written is not a run
    return u


def _foreign_ablation(ws) -> Path:
    u = ws["tmp"] / "paper_tables"
    shutil.rmtree(u, ignore_errors=True)
    u.mkdir()
    (u / "results.csv").write_text("method,top1\nmine,0.9\n")
    (u / "table.md").write_text("| method | top1 |\n")
    return u


def _run_with_git_export(ws) -> Path:
    run = _copy_run(ws, "git_export")
    (run / "export" / ".git").mkdir()
    (run / "export" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return run


def _ablation_cfg(ws) -> str:
    return str(write_config(ws["tmp"] / "ab.yaml", {
        "name": "own", "pretrain": tiny_raw(ws["data"], max_steps=2),
        "grid": {"objectives": ["part"], "num_pairs": [4], "seeds": [0]}}))


# id -> (argv, the folder that must stay unchanged, words the one line must contain)
REFUSED = {
    "export --out a git clone of an export": (
        lambda ws: (["export", "--run", str(ws["finished"]), "--out", str(_git_clone(ws))], ws["tmp"] / "clone"),
        ["clone", "did not make", ".git", "LICENSE", "choose another --out"]),
    "pretrain --out a folder with a user's metrics.jsonl": (
        lambda ws: (["pretrain", "--config", str(ws["new"]), "--out", str(_user_metrics(ws))], ws["tmp"] / "mine"),
        ["mine", "did not make", "metrics.jsonl", "choose another --out"]),
    "pretrain --resume auto into a user's folder": (
        lambda ws: (["pretrain", "--config", str(ws["new"]), "--out", str(_user_metrics(ws)), "--resume", "auto"],
                    ws["tmp"] / "mine"), ["did not make", "checkpoints"]),
    "--overwrite of a folder with only a config.yaml": (
        lambda ws: (["pretrain", "--config", str(ws["new"]), "--out", str(_only_config(ws)), "--overwrite"],
                    ws["tmp"] / "only_config"), ["only_config", "did not make", "config.yaml"]),
    "--resume of a folder with only a config.yaml": (
        lambda ws: (["pretrain", "--out", str(_only_config(ws)), "--resume"], ws["tmp"] / "only_config"),
        ["did not make", "config.yaml"]),
    "finetune --out a user's folder": (
        lambda ws: (["finetune", "--config", str(ws["new"]), "--init", "none", "--out", str(_user_metrics(ws))],
                    ws["tmp"] / "mine"), ["did not make", "metrics.jsonl"]),
    "ablate --out over a results.csv it did not write": (
        lambda ws: (["ablate", "--config", _ablation_cfg(ws), "--out", str(_foreign_ablation(ws))],
                    ws["tmp"] / "paper_tables"), ["paper_tables", "did not make", "results.csv"]),
    "export --out a run folder": (
        lambda ws: (["export", "--run", str(ws["finished"]), "--out", str(ws["finished"])], ws["finished"]),
        ["made for a run, not for an export"]),
    "--overwrite of a run whose export/ is a user's git repository": (
        lambda ws: (["pretrain", "--config", str(ws["new"]), "--out", str(_run_with_git_export(ws)), "--overwrite"],
                    ws["tmp"] / "git_export"), ["export", "did not make", ".git", "--overwrite would delete it", "move them out"]),
    "pretrain --out an export folder": (
        lambda ws: (["pretrain", "--config", str(ws["new"]), "--out", str(ws["finished"] / "export"), "--overwrite"],
                    ws["finished"]), ["made for an export, not for a run"]),
}


@bad_input
@pytest.mark.parametrize("case", list(REFUSED))
def test_folder_part_did_not_make_is_refused_and_untouched(ws, case, capsys):
    build, words = REFUSED[case]
    argv, folder = build(ws)
    before = snapshot(folder)
    capsys.readouterr()
    rc = main([*argv, "--no-progress"] if argv[0] in ("pretrain", "finetune") else argv)
    lines = _one_line(capsys)
    assert rc == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert snapshot(folder) == before
    assert not (folder / ".lock").exists() or folder.name in ("finished", "git_export")


# --- inside its own folders part replaces only what it wrote ---------------------------------------------------
@fault
def test_overwrite_keeps_the_users_own_files_in_a_run(ws, capsys):
    run = _copy_run(ws, "with_notes")
    (run / "notes.txt").write_text("why this run matters\n")
    (run / "analysis").mkdir()
    (run / "analysis" / "fig.png").write_bytes(b"png")
    assert main(["pretrain", "--config", str(ws["new"]), "--out", str(run), "--overwrite", "--no-progress"]) == 0
    assert (run / "notes.txt").read_text() == "why this run matters\n"
    assert (run / "analysis" / "fig.png").read_bytes() == b"png"
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 2e-3
    assert json.loads((run / "summary.json").read_text())["step"] == 6
    # the log written while the new run trained beside the old one, and the trackers started at the swap
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert list((run / "tb").iterdir())
    _no_side_files(run)


@fault
def test_export_replace_keeps_git_and_license_of_an_export_part_made(ws, tmp_path):
    hub = tmp_path / "hub"
    part.export_run(ws["finished"], hub)
    (hub / ".git").mkdir()
    (hub / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (hub / "LICENSE").write_text("MIT\n")
    assert main(["export", "--run", str(ws["finished"]), "--out", str(hub)]) == 0
    assert (hub / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n" and (hub / "LICENSE").read_text() == "MIT\n"
    assert {"config.json", "model.safetensors", "README.md", ".part-export.json"} <= {p.name for p in hub.iterdir()}
    _no_side_files(hub)


def test_run_folder_of_an_earlier_version_is_still_a_run(ws, capsys):
    """No marker: recognised by its complete layout (config.yaml + metrics.jsonl + checkpoints/)."""
    run = _copy_run(ws, "legacy")
    (run / ".part-run.json").unlink()
    (run / "export" / ".part-export.json").unlink()
    (run / "summary.json").unlink()  # killed during its final writes
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["finished"]
    assert (run / ".part-run.json").is_file()  # adopted
    assert main(["export", "--run", str(run)]) == 0
    assert main(["pretrain", "--config", str(ws["new"]), "--out", str(run), "--overwrite", "--no-progress"]) == 0


# --- kill -9 at every step of the --overwrite journal --------------------------------------------------------
_DRIVER = """
import os, sys
from part.engine.checkpointer import Checkpointer
where = sys.argv[1]
def crash(step):
    if step == where:
        os._exit(137)
try:
    import part.engine.folders as folders
    folders._crash_point = crash
except ImportError:  # a part before the journal: only the kills inside training apply
    pass
real = Checkpointer.save
def save(*a, **k):
    if where == "mid-build":
        os._exit(137)
    real(*a, **k)
    if where == "first checkpoint":
        os._exit(137)
Checkpointer.save = save
from part.cli import main
sys.exit(main(sys.argv[2:]))
"""

# where the kill lands -> (what is visible after it: the old run, the new one or None: nothing, between the
# renames; what the next command makes of it: undone -> the old run, finished -> the new one)
OVERWRITE_STEPS = {
    "building": ("old", "old"),          # journal written, the new folder not made yet
    "mid-build": ("old", "old"),         # training the new run, before its first checkpoint
    "first checkpoint": ("old", "old"),  # the new run has a verified checkpoint, the swap not journaled yet
    "swapping": ("old", "new"),          # swap journaled, nothing renamed
    "old aside": (None, "new"),          # the old run renamed away, the new one not yet in place
    "new in place": ("new", "new"),      # both renamed, journal not yet 'swapped'
    "swapped": ("new", "new"),           # the old run not yet deleted
}


def _killed(where: str, *argv: str) -> None:
    res = subprocess.run([sys.executable, "-c", _DRIVER, where, *argv], env=env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 137, (where, res.stderr[-2000:])


@fault
@pytest.mark.parametrize("where", list(OVERWRITE_STEPS))
def test_kill_at_each_step_of_overwrite_leaves_old_or_new_and_is_recovered(ws, where, capsys):
    run = _copy_run(ws, "victim")
    before = snapshot(run)
    _killed(where, "pretrain", "--config", str(ws["new"]), "--out", str(run), "--overwrite", "--no-progress")
    visible, after = OVERWRITE_STEPS[where]
    if visible == "old":
        assert snapshot(run) == before  # the old run, complete and unchanged
    elif visible == "new":
        assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 2e-3
        assert ck.verified_checkpoints(run / "checkpoints")
    else:
        assert not run.exists()
    # part info reports the interrupted replace (or, between the renames, says what the folder is waiting for)
    capsys.readouterr()
    rc = main(["info", str(run)])
    out = capsys.readouterr()
    assert ("interrupted replace" in out.out) if rc == 0 else (rc == 2 and "interrupted replace" in out.err), out
    # --resume finishes or undoes it, says so, and continues whichever run is now the visible one
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"a replace of {run}" in err and ("undone" in err if after == "old" else "finished" in err), err
    _no_side_files(run)
    if after == "old":
        assert snapshot(run) == before and "finished at step 4" in err
    else:
        assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 2e-3
        assert json.loads((run / "summary.json").read_text())["step"] == 6


@fault
def test_interrupted_overwrite_then_a_failing_overwrite_keeps_the_original(ws, capsys, monkeypatch):
    """The next --overwrite undoes the interrupted one first, and never deletes the original it was replacing;
    when this one fails before its first checkpoint, the original is still there."""
    run = _copy_run(ws, "twice")
    before = snapshot(run)
    _killed("mid-build", "pretrain", "--config", str(ws["new"]), "--out", str(run), "--overwrite", "--no-progress")
    from part.engine.checkpointer import Checkpointer

    def corrupt_image(*a, **k):
        raise ValueError("corrupt image found while training")

    monkeypatch.setattr(Checkpointer, "save", corrupt_image)
    capsys.readouterr()
    assert main(["pretrain", "--config", str(ws["new"]), "--out", str(run), "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "undone" in err and f"{run} still holds the run it was replacing" in err
    assert snapshot(run) == before
    _no_side_files(run)


@fault
def test_overwrite_by_an_earlier_version_interrupted_in_replaced_is_put_back(ws, capsys):
    """part <= 0.1 set the old run aside in <run>/.replaced/; a kill there left it hidden. Now it is reported
    and --resume puts it back."""
    run = _copy_run(ws, "old_style")
    before = snapshot(run)
    (run / ".replaced").mkdir()
    for name in ("config.yaml", "metrics.jsonl", "checkpoints", "weights.safetensors", "summary.json", "init.json",
                 "export", "plots", "tb"):
        if (run / name).exists():
            (run / name).rename(run / ".replaced" / name)
    shutil.copy(ws["new"], run / "config.yaml")  # the new run had started, no checkpoint yet
    (run / "init.json").write_text('{"source": null, "from_scratch": true}\n')
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    assert ".replaced/" in capsys.readouterr().out
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert "is back from .replaced/" in capsys.readouterr().err
    assert snapshot(run) == before


# --- a kill at every step of an export replace -----------------------------------------------------------------
EXPORT_STEPS = ["building", "built", "swapping", "old aside", "new in place", "swapped"]


@fault
@pytest.mark.parametrize("where", EXPORT_STEPS)
def test_kill_at_each_step_of_export_replace_is_reported_and_recovered(ws, where, capsys):
    run = _copy_run(ws, "exported")
    export_before = snapshot(run / "export")
    _killed(where, "export", "--run", str(run))
    assert snapshot(run / "export") == export_before or not (run / "export").exists() or where in (
        "new in place", "swapped")
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    assert "interrupted replace" in capsys.readouterr().out
    # --resume (of this finished run) finishes or undoes it; the export is complete afterwards
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert f"a replace of {run / 'export'}" in capsys.readouterr().err
    assert {"config.json", "model.safetensors", "README.md", ".part-export.json"} == {
        p.name for p in (run / "export").iterdir()}
    _no_side_files(run / "export")
    assert main(["info", str(run)]) == 0
    assert "interrupted" not in capsys.readouterr().out


def test_published_export_with_its_relative_encoder_is_one_folder(ws, tmp_path):
    """part export --relative-encoder: the encoder and config.yaml are written into the new export before the
    swap (one atomic folder), and a published folder of an earlier version (no marker) is replaced."""
    from part.engine.publish import export_with_encoder
    from part.engine.reference import is_published

    pub = export_with_encoder(ws["finished"], tmp_path / "pub")
    assert is_published(pub) and (pub / ".part-export.json").is_file()
    (pub / ".part-export.json").unlink()  # as published before markers
    assert main(["export", "--run", str(ws["finished"]), "--out", str(pub), "--relative-encoder"]) == 0
    assert is_published(pub) and (pub / ".part-export.json").is_file()
    _no_side_files(pub)
