"""The one resolver (engine/resolve.py) and ``part.load``: a run folder, a weights file, an export folder or a
published folder -> (config, weights, preprocessing); the loaded model's ``features`` pooled as recorded and a
fine-tuned export's ``logits`` from the export folder alone; bad paths are one line (exit code 2 in the CLI)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import part
from part.cli import main
from part.engine import data_defaults, load_run
from part.engine.export import export_run
from part.engine.publish import export_with_encoder
from part.engine.resolve import resolve
from part.evaluation import finetune

from ..evaluation.conftest import finetune_config, pretrain_config, write_npz_splits


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = write_npz_splits(tmp_path_factory.mktemp("data"))
    base = tmp_path_factory.mktemp("runs")
    pre = part.pretrain(pretrain_config(root), out=base / "pre", progress=False).run_dir
    ft = finetune(finetune_config(root, global_pool="avg"), init=pre, out=base / "ft", progress=False).run_dir
    return {"pretrain": pre, "finetune": ft, "root": root, "base": base}


def _images(n=5, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_resolve_names_what_each_path_holds(runs, tmp_path):
    pre, ft = runs["pretrain"], runs["finetune"]
    src = resolve(pre)
    assert (src.kind, src.weights, src.run) == ("run", pre / "weights.safetensors", pre)
    assert src.config.objective.name == "part" and src.where == pre / "config.yaml"
    d = data_defaults(src.config)
    assert src.preprocessing == {"mean": d.mean, "std": d.std, "image_size": 8, "channels": 1}
    exp = resolve(ft / "export")
    assert exp.kind == "export" and exp.export["num_classes"] == 4 and exp.config is None
    assert exp.preprocessing["mean"] == exp.export["pretrained_cfg"]["mean"]
    assert resolve(ft / "export" / "model.safetensors").kind == "export"  # a file with its config.json beside it
    assert resolve(ft / "weights.safetensors").kind == "weights" and resolve(ft / "weights.safetensors").run == ft
    assert resolve(pre, checkpoint="last").weights.parent.name == "checkpoints"
    pub = export_with_encoder(pre, tmp_path / "pub")
    assert resolve(pub).kind == "published" and resolve(pub).config.objective.name == "part"


def test_load_from_an_export_folder_alone_gives_the_fine_tuned_class_scores(runs, tmp_path):
    ft = runs["finetune"]
    alone = tmp_path / "model"
    shutil.copytree(ft / "export", alone)  # nothing of the run folder beside it
    model = part.load(alone)
    objective, cfg = load_run(ft)
    x = model.normalize(_images())
    d = data_defaults(cfg)
    torch.testing.assert_close(x, (_images() - d.mean[0]) / d.std[0])
    torch.testing.assert_close(model.logits(x), objective.logits(x))
    assert model.num_classes == 4 and model.pool == "avg"  # the fine-tune's global_pool, as config.json records
    with torch.no_grad():
        tokens = objective.backbone.forward_features(x)
    torch.testing.assert_close(model.features(x), tokens[:, 1:].mean(1))
    torch.testing.assert_close(model.features(x, pool="token"), tokens[:, 0])
    torch.testing.assert_close(model.features(x, pool="flat"), tokens[:, 1:].flatten(1))  # as part probe --pool flat
    with pytest.raises(ValueError, match="pool must be one of 'avg', 'token', 'flat', got 'max'"):
        model.features(x, pool="max")
    torch.testing.assert_close(part.load(ft).logits(x), model.logits(x))  # the run folder: the same model
    assert torch.equal(model(x), model.logits(x))


def test_load_a_pretraining_pools_as_its_export_records(runs):
    pre = runs["pretrain"]
    model = part.load(pre / "export")
    assert model.pool == json.loads((pre / "export" / "config.json").read_text())["global_pool"] == "token"
    objective, _ = load_run(pre)
    x = model.normalize(_images())
    with torch.no_grad():
        expected = objective.backbone.forward_features(x)[:, 0]
    torch.testing.assert_close(model.features(x), expected)
    torch.testing.assert_close(part.load(pre).features(x), expected)
    torch.testing.assert_close(part.load(pre / "weights.safetensors").features(x), expected)
    with pytest.raises(ValueError, match="has no classifier") as info:
        model.logits(x)
    assert "\n" not in str(info.value)


def test_every_command_reads_through_the_resolver(runs, tmp_path):
    """probe and fine-tune --init take an export folder as they take a run folder."""
    pre = runs["pretrain"]
    export = export_run(pre, tmp_path / "exp")
    a = part.probe(pre, config=pretrain_config(runs["root"]), out=tmp_path / "a.json", epochs=3, verbose=False)
    b = part.probe(export, config=pretrain_config(runs["root"]), out=tmp_path / "b.json", epochs=3, verbose=False)
    assert a.knn["top1"] == b.knn["top1"] and a.linear["top1"] == b.linear["top1"]
    res = finetune(finetune_config(runs["root"], steps=1), init=export, out=tmp_path / "ft", progress=False,
                   evaluate=False)
    assert res.init["source"] == str(export / "model.safetensors")


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", ["part.load path not found", "missing"]),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", ["expected a .safetensors file"]),
    (lambda p: (p / "empty").mkdir() or p / "empty", ["no weights found", "not a run folder"]),
    (lambda p: (p / "nojson").mkdir() or (p / "nojson" / "model.safetensors").write_bytes(b"x") and p / "nojson",
     ["no architecture JSON beside it"]),
])
def test_bad_paths_are_one_line(tmp_path, make, words):
    with pytest.raises(ValueError) as info:
        part.load(make(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_a_run_folder_without_weights(runs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(runs["pretrain"] / "config.yaml", run / "config.yaml")
    with pytest.raises(ValueError, match=r"run folder .*run has no weights"):
        part.load(run)
    with pytest.raises(ValueError, match=r"has no weights"):
        load_run(run)


def test_cli_probe_of_a_random_encoder_and_its_errors(runs, tmp_path, capsys):
    cfg = tmp_path / "probe.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(pretrain_config(runs["root"])))
    out = tmp_path / "random.json"
    assert main(["probe", "--random", "--config", str(cfg), "--out", str(out), "--epochs", "3"]) == 0
    got = json.loads(out.read_text())
    assert got["source"] == "random" and got["init_seed"] == 0 and 0 <= got["linear"]["top1"] <= 1
    again = part.probe(random=True, config=str(cfg), out=tmp_path / "again.json", epochs=3, verbose=False)
    assert again.linear["top1"] == got["linear"]["top1"]  # seeded: the Python API gives the same number
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, words in (
        (["probe", "--random", "--out", str(out)], "--random needs --config"),
        (["probe", "--random", "--config", str(cfg)], "--random needs --out"),
        (["probe", "--run", str(tmp_path / "missing"), "--config", str(cfg)], "path not found"),
        (["probe", "--run", str(empty)], "no weights found"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err, err
