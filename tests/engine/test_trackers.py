"""``logging.backends``: JSONL + TensorBoard by default, MLflow and W&B when their package is installed (the
tests of a missing package always run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import part
from part.config import LoggingConfig, config_from_dict, load_config
from part.engine.trackers import build_trackers, check_logging, flatten, scalars

from .conftest import tiny_config


def _records(run):
    return [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _config(npz_data, backends, **train):
    raw = tiny_config(npz_data, **train)
    raw["logging"] = {"backends": backends}
    return raw


def test_logging_section_defaults_and_checks():
    lc = config_from_dict({}).logging
    assert lc.backends == ["jsonl", "tensorboard"] and lc.wandb_mode == "offline" and lc.project == "part"
    with pytest.raises(ValueError, match=r"logging\.backends.*unknown backend.*'neptune'"):
        check_logging(LoggingConfig(backends=["jsonl", "neptune"]))
    with pytest.raises(ValueError, match=r"logging\.backends.*includes jsonl"):
        check_logging(LoggingConfig(backends=["tensorboard"]))
    with pytest.raises(ValueError, match=r"logging\.backends.*list"):
        check_logging(LoggingConfig(backends="jsonl"))
    with pytest.raises(ValueError, match=r"logging\.backends.*neptune"):  # at load, before anything runs
        load_config(None, ["logging.backends=[jsonl, neptune]"])
    with pytest.raises(ValueError, match="logging.wandb_mode.*'online!'"):
        check_logging(LoggingConfig(wandb_mode="online!"))
    with pytest.raises(ValueError, match="unknown.*logging.backend"):
        config_from_dict({"logging": {"backend": ["jsonl"]}})


def test_flatten_and_scalars():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None, "f": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": None,
                                                                              "f": {}}
    assert scalars({"step": 3, "loss": 0.5, "lr": 1e-3, "ok": True, "name": "x"}) == {"train/loss": 0.5,
                                                                                     "train/lr": 1e-3}


def test_unknown_backend_stops_before_training(tmp_path, npz_data):
    with pytest.raises(ValueError, match=r"logging\.backends.*unknown backend.*'nope'"):
        part.pretrain(_config(npz_data, ["jsonl", "nope"]), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "weights.safetensors").exists()


@pytest.mark.parametrize("module", ["mlflow", "wandb"])
def test_missing_package_is_one_line_error(module, tmp_path, npz_data, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import mlflow / wandb now raises ImportError
    cfg = config_from_dict(_config(npz_data, ["jsonl", module]))
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match=f"logging.backends has {module} but the {module} package is not installed"):
        build_trackers(cfg, tmp_path / "run")


def test_jsonl_only_writes_no_tensorboard(tmp_path, npz_data):
    run = part.pretrain(_config(npz_data, ["jsonl"], max_steps=2), out=tmp_path / "run", progress=False).run_dir
    assert [r["step"] for r in _records(run)] == [1, 2] and not (run / "tb").exists()


def _mlflow_client(run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run.parent / "mlruns").as_uri())
    exp = client.get_experiment_by_name("part")
    runs = client.search_runs([exp.experiment_id])
    return client, runs


@pytest.mark.slow
def test_mlflow_run_has_scalars_params_and_export(tmp_path, npz_data):
    pytest.importorskip("mlflow")
    raw = _config(npz_data, ["jsonl", "tensorboard", "mlflow"], max_steps=2, ckpt_every=2)
    run = part.pretrain(raw, out=tmp_path / "run", progress=False).run_dir
    client, runs = _mlflow_client(run)
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == "run"
    assert r.data.tags["part.run_dir"] == str(run.resolve())
    recs = _records(run)
    for key in ("loss", "err_x", "lr"):
        hist = sorted(client.get_metric_history(r.info.run_id, f"train/{key}"), key=lambda m: m.step)
        assert [(m.step, m.value) for m in hist] == [(x["step"], pytest.approx(x[key])) for x in recs], key
    assert r.data.params["optim.lr"] == "0.001" and r.data.params["objective.name"] == "part"
    assert r.data.params["logging.backends"] == "['jsonl', 'tensorboard', 'mlflow']"
    arts = {a.path for a in client.list_artifacts(r.info.run_id, "export")}
    assert arts == {"export/config.json", "export/model.safetensors", "export/README.md"}


def test_mlflow_resume_continues_the_same_run(tmp_path, npz_data):
    """A run killed after its step-2 checkpoint is FAILED in MLflow; --resume reopens that MLflow run, adds
    steps 3-4 (params are not logged twice) and finishes it."""
    pytest.importorskip("mlflow")
    from part.engine import build_objective
    from part.engine.trainer import train

    from .test_train import _FailAt, _Killed

    cfg = config_from_dict(_config(npz_data, ["jsonl", "mlflow"], max_steps=4, ckpt_every=2))
    with pytest.raises(_Killed):
        train(cfg, tmp_path / "run", objective=_FailAt(build_objective(cfg), 3, kill=True), progress=False)
    client, runs = _mlflow_client(tmp_path / "run")
    assert [r.info.status for r in runs] == ["FAILED"]
    run_id = runs[0].info.run_id
    part.pretrain(None, out=tmp_path / "run", resume=True, progress=False)
    client, runs = _mlflow_client(tmp_path / "run")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]
    hist = client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in hist) == [1, 2, 3, 4]
    assert [x["step"] for x in _records(tmp_path / "run")] == [1, 2, 3, 4]


def test_mlflow_failed_run_is_marked(tmp_path, npz_data):
    pytest.importorskip("mlflow")
    raw = _config(npz_data, ["jsonl", "mlflow"], max_steps=2)
    raw["optim"]["lr"] = 1e12  # diverges
    with pytest.raises(part.engine.TrainingDiverged):
        part.pretrain(raw, out=tmp_path / "run", progress=False)
    _, runs = _mlflow_client(tmp_path / "run")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_wandb_offline_run(tmp_path, npz_data):
    pytest.importorskip("wandb")
    run = part.pretrain(_config(npz_data, ["jsonl", "wandb"], max_steps=2), out=tmp_path / "run",
                        progress=False).run_dir
    run_id = (run / "wandb" / "part_run_id").read_text().strip()
    offline = [p for p in (run / "wandb").iterdir() if p.name.startswith("offline-run-") and run_id in p.name]
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
