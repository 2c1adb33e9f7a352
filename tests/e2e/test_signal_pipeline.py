"""``data.kind: signal_npz`` end to end through the CLI, the five commands of docs/signals.md: pretrain PART
on your own ``x``, fine-tune (classes counted from the data, dataset statistics reused from the pretraining
run), evaluate, probe and export; what each run records (``config.yaml``, ``data.json``, ``results.json``);
explicit held-out groups; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from part.cli import main
from part.config import load_config
from part.data.signal_npz import channel_stats

pytestmark = pytest.mark.slow  # end to end: several runs of the CLI or a benchmark script

C, T, L = 3, 20, 5
NAMES = ("low", "mid", "high")


def signals(n: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, C, T)`` with a class-dependent level and noise, ``y (n,)`` in 0..2."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = scale * (rng.normal(size=(n, C, T)) + 10.0 + 2.0 * y[:, None, None])
    return x.astype(np.float32), y.astype(np.int64)


def write_folder(root, scale: float = 1.0, test: bool = True):
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 24, 0), ("test", 12, 1))[: 2 if test else 1]:
        x, y = signals(n, seed, scale)
        np.savez(root / f"{split}.npz", x=x, y=y, class_names=np.array(NAMES), fs=np.array(50.0))
    return root


MODEL = {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": T, "patch_size": L,
         "in_chans": C}
TRAIN = {"max_steps": 2, "batch_size": 8, "log_every": 1, "ckpt_every": 100, "keep_last": 1, "device": "cpu",
         "amp": "none"}


def write_config(path, root, objective: dict, **data) -> str:
    cfg = {"model": MODEL, "objective": objective, "data": {"kind": "signal_npz", "root": str(root), **data},
           "optim": {"lr": 1e-3, "warmup_steps": 1}, "train": TRAIN}
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


PART = {"name": "part", "num_pairs": 6}
SUPERVISED = {"name": "supervised", "options": {"pos_embed": True}}  # num_classes left to the data


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    """The five commands of docs/signals.md on a folder of train.npz + test.npz."""
    tmp = tmp_path_factory.mktemp("signals")
    root = write_folder(tmp / "mydata")
    pre_cfg = write_config(tmp / "pre.yaml", root, PART)
    ft_cfg = write_config(tmp / "ft.yaml", root, SUPERVISED)
    pre, ft = tmp / "runs" / "pre", tmp / "runs" / "ft"
    codes = [
        main(["pretrain", "--config", pre_cfg, "--out", str(pre), "--no-progress"]),
        main(["finetune", "--config", ft_cfg, "--init", str(pre), "--out", str(ft), "--no-progress"]),
        main(["evaluate", "--run", str(ft)]),
        main(["probe", "--run", str(pre), "--epochs", "5", "--k", "3"]),
        main(["export", "--run", str(ft), "--out", str(tmp / "model")]),
    ]
    return {"tmp": tmp, "root": root, "pre": pre, "ft": ft, "codes": codes}


def test_five_commands_succeed(five):
    assert five["codes"] == [0, 0, 0, 0, 0]


def test_pretrain_records_train_statistics_and_samples(five):
    cfg = load_config(five["pre"] / "config.yaml")
    x = np.load(five["root"] / "train.npz")["x"]
    mean, std = channel_stats(x)
    assert cfg.data.mean == pytest.approx(mean) and cfg.data.std == pytest.approx(std)
    rec = json.loads((five["pre"] / "data.json").read_text())
    train = rec["splits"]["train"]
    assert rec["kind"] == "signal_npz" and list(rec["splits"]) == ["train"]
    assert train["file"].endswith("train.npz") and train["rows"] == "all" and train["num_samples"] == 24
    assert len(train["sha256"]) == 64 and train["class_counts"] == {"low": 8, "mid": 8, "high": 8}


def test_finetune_counts_classes_and_reuses_statistics(five):
    pre, ft = load_config(five["pre"] / "config.yaml"), load_config(five["ft"] / "config.yaml")
    assert ft.objective.options["num_classes"] == 3
    assert ft.data.mean == pre.data.mean and ft.data.std == pre.data.std
    rec = json.loads((five["ft"] / "data.json").read_text())["splits"]
    assert rec["test"]["file"].endswith("test.npz") and rec["test"]["num_samples"] == 12
    assert rec["train"]["file"].endswith("train.npz")


def test_results_speak_the_data_language(five):
    res = json.loads((five["ft"] / "results.json").read_text())
    assert res["class_names"] == list(NAMES) and "top5" not in res and res["num_samples"] == 12
    assert res["data"]["split"] == "test" and res["data"]["class_counts"] == {"low": 4, "mid": 4, "high": 4}
    probe = json.loads((five["pre"] / "probe.json").read_text())
    assert probe["linear"]["class_names"] == list(NAMES) and "top5" not in probe["knn"]
    assert probe["data"]["test"]["file"].endswith("test.npz")


def test_export_carries_the_preprocessing(five):
    side = json.loads((five["tmp"] / "model" / "config.json").read_text())
    ft = load_config(five["ft"] / "config.yaml")
    pre = side["preprocessing"]
    assert side["architecture"] == "part_vit1d" and pre["normalize"] == "dataset"
    assert pre["mean"] == ft.data.mean and pre["std"] == ft.data.std
    assert pre["signal_len"] == T and pre["in_chans"] == C and pre["length_policy"] == "none"


def test_finetune_with_other_data_keeps_the_pretrained_scale(five, tmp_path):
    """A fine-tune set on another scale: --init reuses the pretraining run's statistics; from scratch the
    fine-tune set's own train statistics are used."""
    other = write_folder(tmp_path / "other", scale=3.0)
    cfg = write_config(tmp_path / "ft.yaml", other, SUPERVISED)
    assert main(["finetune", "--config", cfg, "--init", str(five["pre"]), "--out", str(tmp_path / "a"),
                 "--no-progress", "--no-eval"]) == 0
    assert main(["finetune", "--config", cfg, "--init", "none", "--out", str(tmp_path / "b"),
                 "--no-progress", "--no-eval"]) == 0
    pre = load_config(five["pre"] / "config.yaml").data
    assert load_config(tmp_path / "a" / "config.yaml").data.mean == pre.mean
    own = channel_stats(np.load(other / "train.npz")["x"])[0]
    assert load_config(tmp_path / "b" / "config.yaml").data.mean == pytest.approx(own)


def test_resume_auto_of_a_finished_run_agrees_with_its_config(five, capsys):
    cfg = write_config(five["tmp"] / "pre2.yaml", five["root"], PART)
    assert main(["pretrain", "--config", cfg, "--out", str(five["pre"]), "--resume", "auto", "--no-progress"]) == 0


def test_held_out_groups(tmp_path):
    x, y = signals(30, 0)
    group = np.array([f"session{i % 3}" for i in range(30)])
    np.savez(tmp_path / "all.npz", x=x, y=y, group=group)
    cfg = write_config(tmp_path / "g.yaml", tmp_path / "all.npz", SUPERVISED,
                       options={"split_by": "group", "test_groups": ["session2"]})
    assert main(["finetune", "--config", cfg, "--init", "none", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    rec = json.loads((tmp_path / "run" / "data.json").read_text())["splits"]
    assert rec["test"]["groups"] == ["session2"] and rec["train"]["groups"] == ["session0", "session1"]
    assert rec["train"]["num_samples"] == 20 and rec["test"]["num_samples"] == 10
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["num_samples"] == 10 and "class_names" not in res  # the file names no classes


@pytest.mark.parametrize("case, words", [
    ("no_test", ["part finetune: error", "test.npz", "--no-eval"]),
    ("names_mismatch", ["num_classes=4", "names 3 classes"]),
    ("bad_option", ["unknown data.options", "normalise"]),
    ("wrong_length", ["T=20", "model.img_size is 25"]),
    ("nan", ["'x'", "NaN", "train.npz"]),
])
def test_finetune_errors_are_one_line(tmp_path, capsys, case, words):
    root = write_folder(tmp_path / "d", test=case != "no_test")
    objective, data = dict(SUPERVISED), {}
    if case == "names_mismatch":
        objective = {"name": "supervised", "options": {"num_classes": 4}}
    if case == "bad_option":
        data = {"options": {"normalise": "dataset"}}
    if case == "nan":
        x, y = signals(24, 0)
        x[3, 1, 7] = np.nan
        np.savez(root / "train.npz", x=x, y=y)
    cfg = write_config(tmp_path / "c.yaml", root, objective, **data)
    argv = ["finetune", "--config", cfg, "--init", "none", "--out", str(tmp_path / "run"), "--no-progress"]
    if case == "wrong_length":
        argv += ["--set", "model.img_size=25"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_part_load_of_the_export_alone_as_docs_signals_md_shows(five, tmp_path):
    """docs/signals.md "Using the exported model": part.load on the export folder alone normalises raw signals as
    the run did, pools as the export records, and gives the fine-tuned class scores of the run's objective."""
    import shutil

    import torch

    import part
    from part.engine import load_run

    alone = tmp_path / "model"
    shutil.copytree(five["tmp"] / "model", alone)
    model = part.load(alone)
    side = json.loads((alone / "config.json").read_text())
    assert model.pool == side["global_pool"] and model.class_names == list(NAMES) and model.num_classes == 3
    raw, _ = signals(6, seed=2)
    x = model.normalize(torch.from_numpy(raw))
    pre = side["preprocessing"]
    expected = (raw - np.array(pre["mean"])[:, None]) / np.array(pre["std"])[:, None]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    objective, cfg = load_run(five["ft"])
    torch.testing.assert_close(model.logits(x), objective.logits(x))
    with torch.no_grad():
        tokens = objective.backbone.forward_features(x)
    torch.testing.assert_close(model.features(x), objective.backbone.pool(tokens, side["global_pool"]))
