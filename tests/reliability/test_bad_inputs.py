"""Bad inputs: each is answered with exactly one line naming the field, value or file, exit code 2, and no
change to any run folder (validate, then destroy). Most cases aim ``--overwrite`` at a finished run, so a
command that deleted before validating would be caught."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

import part
from part.cli import main

from .helpers import finished_run, snapshot, tiny_raw, write_config


@dataclass
class W:
    """A workspace: data, a good config, a finished run to aim ``--overwrite`` at."""

    tmp: Path
    data: Path
    good: Path
    existing: Path

    def yaml(self, name: str, text: str) -> str:
        p = self.tmp / name
        p.write_text(text)
        return str(p)

    def cfg(self, name: str, mutate) -> str:
        raw = tiny_raw(self.data, max_steps=2)
        mutate(raw)
        return str(write_config(self.tmp / name, raw))

    def over(self, *sets: str, init: str | None = None) -> list[str]:
        """pretrain the good config into the finished run with --overwrite and ``--set`` overrides."""
        argv = ["pretrain", "--config", str(self.good), "--out", str(self.existing), "--overwrite", "--no-progress"]
        for s in sets:
            argv += ["--set", s]
        return argv + (["--init", init] if init else [])


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    return W(tmp, *finished_run(tmp, "existing"))


def _file(w: W, name: str, content: bytes) -> str:
    p = w.tmp / name
    p.write_bytes(content)
    return str(p)


def _foreign_weights(w: W) -> str:
    p = w.tmp / "foreign.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(3, 3)}, str(p))
    return str(p)


def _bigger_run(w: W) -> str:
    raw = tiny_raw(w.data, max_steps=1)
    raw["model"]["embed_dim"] = 32
    out = w.tmp / "bigger"
    if not (out / "weights.safetensors").is_file():
        part.pretrain(raw, out=out, progress=False)
    return str(out)


def _corrupt_imagefolder(w: W) -> str:
    from PIL import Image

    root = w.tmp / "imgs"
    for cls in ("a", "b"):
        (root / "train" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            Image.fromarray(np.full((8, 8), i * 20, np.uint8)).save(root / "train" / cls / f"{i}.png")
    (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return w.cfg("imgs.yaml", lambda r: (r["data"].update(kind="imagefolder", root=str(root), num_workers=2),
                                         r["model"].update(in_chans=1)))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch EVIL_MARKER",))


def _evil_cifar(w: W) -> str:
    root = w.tmp / "cifar-10-batches-py"
    root.mkdir(exist_ok=True)
    good = {b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 10}
    for name in ("data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (root / name).write_bytes(pickle.dumps(good, protocol=2))
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2))
    return w.cfg("cifar.yaml", lambda r: (r["data"].update(kind="cifar", root=str(root)),
                                          r["model"].update(in_chans=3)))


def _ft(w: W, name: str, mutate=lambda r: None) -> str:
    def m(r):
        r["objective"] = {"name": "supervised", "options": {"num_classes": 4}}
        mutate(r)
    return w.cfg(name, m)


# id -> (argv builder, words the one line must contain, folder that must stay unchanged: "existing" or a path)
CASES = {
    "yaml syntax error": (lambda w: ["pretrain", "--config", w.yaml("syn.yaml", "model:\n  arch: custom\n  img_size: [8\n"),
                                     "--out", str(w.existing), "--overwrite"], ["syn.yaml:", "YAML syntax error"]),
    "yaml top level is a list": (lambda w: ["pretrain", "--config", w.yaml("list.yaml", "- a\n- b\n"),
                                            "--out", str(w.existing), "--overwrite"], ["list.yaml", "mapping"]),
    "config file missing": (lambda w: ["pretrain", "--config", str(w.tmp / "nope.yaml"), "--out", str(w.existing),
                                       "--overwrite"], ["nope.yaml", "not found"]),
    "config not utf-8": (lambda w: ["pretrain", "--config", _file(w, "bin.yaml", b"\xff\xfe\x00bad"), "--out",
                                    str(w.existing), "--overwrite"], ["bin.yaml"]),
    "unknown key": (lambda w: w.over("optim.learning_rate=1"), ["optim.learning_rate"]),
    "override without =": (lambda w: w.over("optim.lr"), ["optim.lr", "key=value"]),
    "max_steps=abc": (lambda w: w.over("train.max_steps=abc"), ["train.max_steps", "abc"]),
    "max_steps=1.5": (lambda w: w.over("train.max_steps=1.5"), ["train.max_steps", "1.5"]),
    "lr=abc": (lambda w: w.over("optim.lr=abc"), ["optim.lr", "abc"]),
    "lr=0": (lambda w: w.over("optim.lr=0"), ["optim.lr", "0"]),
    "batch_size: sixteen": (lambda w: ["pretrain", "--config", w.cfg("b16.yaml", lambda r: r["train"].update(batch_size="sixteen")),
                                       "--out", str(w.existing), "--overwrite"], ["train.batch_size", "sixteen"]),
    "batch_size=0": (lambda w: w.over("train.batch_size=0"), ["train.batch_size", "0"]),
    "batch_size=true": (lambda w: w.over("train.batch_size=true"), ["train.batch_size", "True"]),
    "threads=-1": (lambda w: w.over("train.threads=-1"), ["train.threads", "-1"]),
    "ckpt_every=0": (lambda w: w.over("train.ckpt_every=0"), ["train.ckpt_every", "0"]),
    "log_every=0": (lambda w: w.over("train.log_every=0"), ["train.log_every", "0"]),
    "keep_last=0": (lambda w: w.over("train.keep_last=0"), ["train.keep_last", "0"]),
    "seed=-3": (lambda w: w.over("train.seed=-3"), ["train.seed", "-3"]),
    "weight_decay=-1": (lambda w: w.over("optim.weight_decay=-1"), ["optim.weight_decay", "-1"]),
    "clip_grad=-1": (lambda w: w.over("optim.clip_grad=-1"), ["optim.clip_grad", "-1"]),
    "min_lr above lr": (lambda w: w.over("optim.min_lr=1"), ["optim.min_lr", "1"]),
    "betas=[0.9]": (lambda w: w.over("optim.betas=[0.9]"), ["optim.betas", "0.9"]),
    "warmup_steps=-5": (lambda w: w.over("optim.warmup_steps=-5"), ["optim.warmup_steps", "-5"]),
    "accum_steps=0": (lambda w: w.over("optim.accum_steps=0"), ["optim.accum_steps", "0"]),
    "amp=fp8": (lambda w: w.over("train.amp=fp8"), ["train.amp", "fp8"]),
    "device=gpu": (lambda w: w.over("train.device=gpu"), ["train.device", "gpu"]),
    "nan_policy=ignore": (lambda w: w.over("train.nan_policy=ignore"), ["train.nan_policy", "ignore"]),
    "hflip=2": (lambda w: w.over("data.hflip=2"), ["data.hflip", "2"]),
    "rrc_scale reversed": (lambda w: w.over("data.rrc_scale=[0.9, 0.1]"), ["data.rrc_scale", "0.9"]),
    "num_workers=-1": (lambda w: w.over("data.num_workers=-1"), ["data.num_workers", "-1"]),
    "max_samples=0": (lambda w: w.over("data.max_samples=0"), ["data.max_samples", "0"]),
    "std=0": (lambda w: w.over("data.std=[0]"), ["data.std", "0"]),
    "num_pairs=0": (lambda w: w.over("objective.num_pairs=0"), ["objective.num_pairs", "0"]),
    "num_pairs=some": (lambda w: w.over("objective.num_pairs=some"), ["objective.num_pairs", "some"]),
    "scale_range reversed": (lambda w: w.over("objective.scale_range=[2, 1]"), ["objective.scale_range", "2"]),
    "img_size=0": (lambda w: w.over("model.img_size=0"), ["model.img_size", "0"]),
    "drop_path_rate=1.5": (lambda w: w.over("model.drop_path_rate=1.5"), ["model.drop_path_rate", "1.5"]),
    "model.arch unknown": (lambda w: w.over("model.arch=vit_gigantic"), ["model.arch", "vit_gigantic"]),
    "data.kind unknown": (lambda w: w.over("data.kind=parquet"), ["parquet"]),
    "data.root typo": (lambda w: w.over("data.root=/typo/tiny.npz"), ["/typo/tiny.npz"]),
    "batch larger than dataset": (lambda w: w.over("train.batch_size=1000"), ["1000"]),
    "--init missing": (lambda w: w.over(init=str(w.tmp / "nowhere.safetensors")), ["nowhere.safetensors"]),
    "--init text file": (lambda w: w.over(init=_file(w, "notes.safetensors", b"just some text\n")), ["notes.safetensors"]),
    "--init a .pt state": (lambda w: w.over(init=str(sorted((w.existing / "checkpoints").glob("*.pt"))[-1])), [".pt"]),
    "--init matches no key": (lambda w: w.over(init=_foreign_weights(w)), ["foreign.safetensors", "none of its"]),
    "--init another size": (lambda w: w.over(init=_bigger_run(w)), ["bigger", "do not fit"]),
    "--resume with --init": (lambda w: ["pretrain", "--out", str(w.existing), "--resume", "--init", str(w.existing)],
                             ["--resume", "--init"]),
    "--resume of nothing": (lambda w: ["pretrain", "--out", str(w.tmp / "empty_dir"), "--resume"], ["no run to resume"]),
    "existing run, no flag": (lambda w: ["pretrain", "--config", str(w.good), "--out", str(w.existing)],
                              ["already holds a finished run", "--overwrite"]),
    "--resume auto, other config": (lambda w: ["pretrain", "--config", w.cfg("other.yaml", lambda r: r["optim"].update(lr=0.1)),
                                               "--out", str(w.existing), "--resume", "auto"], ["another config", "optim.lr"]),
    "--out is a file": (lambda w: ["pretrain", "--config", str(w.good), "--out", _file(w, "plain.txt", b"x")],
                        ["plain.txt", "not a folder"]),
    "--out inside a file": (lambda w: ["pretrain", "--config", str(w.good), "--out", str(w.tmp / "plain2.txt" / "run")]
                            if _file(w, "plain2.txt", b"x") else None, ["plain2.txt"]),
    "corrupt image, num_workers=2": (lambda w: ["pretrain", "--config", _corrupt_imagefolder(w), "--out",
                                                str(w.existing), "--overwrite"], ["broken.png"]),
    "malicious CIFAR pickle": (lambda w: ["pretrain", "--config", _evil_cifar(w), "--out", str(w.existing),
                                          "--overwrite"], ["data_batch_1", "refusing", "system"]),
    "finetune --resume with --init": (lambda w: ["finetune", "--out", str(w.existing), "--resume", "--init",
                                                 str(w.existing)], ["--resume", "--init"]),
    "finetune --init text file": (lambda w: ["finetune", "--config", _ft(w, "ft.yaml"), "--out", str(w.existing),
                                             "--overwrite", "--init", _file(w, "t.safetensors", b"text")], ["t.safetensors"]),
    "finetune without num_classes": (lambda w: ["finetune", "--config", _ft(w, "ft2.yaml", lambda r: r["objective"].update(options={})),
                                                "--out", str(w.existing), "--overwrite", "--init", "none"], ["num_classes"]),
    "probe of a missing run": (lambda w: ["probe", "--run", str(w.tmp / "ghost")], ["ghost"]),
    "evaluate of a missing run": (lambda w: ["evaluate", "--run", str(w.tmp / "ghost")], ["ghost"]),
    "export of a missing run": (lambda w: ["export", "--run", str(w.tmp / "ghost"), "--out", str(w.tmp / "exp")],
                                ["ghost"]),
}


# its two DataLoader workers take ~20 s to go away after the error (billed to the case that runs next)
SLOW_CASES = {"corrupt image, num_workers=2"}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(ws, case, capsys, monkeypatch):
    build, words = CASES[case]
    monkeypatch.chdir(ws.tmp)  # a malicious pickle would create EVIL_MARKER here
    argv = build(ws)
    before = snapshot(ws.existing)
    capsys.readouterr()
    rc = main([*argv, "--no-progress"] if argv[0] in ("pretrain", "finetune") and "--no-progress" not in argv else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    lines = [ln for ln in err if not ln.startswith(("warning:", "note:"))]
    assert len(lines) == 1 and "Traceback" not in lines[0], err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert snapshot(ws.existing) == before
    assert not (ws.tmp / "EVIL_MARKER").exists()
    assert not (ws.tmp / "empty_dir").exists()  # a refused command leaves no half-made run folder
