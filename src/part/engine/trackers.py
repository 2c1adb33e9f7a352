"""Experiment trackers: the training loop's scalars go to every backend of ``logging.backends``.

=============== ==================================================================================
``jsonl``       ``<run>/metrics.jsonl``, one JSON record per logged step (always on: resume, the loss plot
                and ``part info`` read it)
``tensorboard`` ``<run>/tb/``: scalars ``train/<name>``, the resolved config as text
``mlflow``      a local MLflow file store (default ``<parent of the run>/mlruns``, so the runs of one folder
                share it: ``mlflow ui --backend-store-uri runs/mlruns``; MLflow 3 wants
                ``MLFLOW_ALLOW_FILE_STORE=true`` for it, which is set unless already set; any other
                ``logging.mlflow_uri``, e.g. ``sqlite:///runs/mlflow.db``, works too); experiment ``logging.project``;
                scalars ``train/<name>``, the resolved config as params (dotted keys), the export as the
                artifact folder ``export/``; a resumed run continues its MLflow run
``wandb``       Weights & Biases, offline by default (``<run>/wandb/``, ``wandb sync`` uploads it later);
                the same scalars, config and export (a ``model`` artifact)
=============== ==================================================================================

``mlflow`` and ``wandb`` are optional extras (``pip install part[mlflow]`` / ``part[wandb]``): the third-party
package is imported only when its backend is asked for, and a missing one is a one-line error naming it.
Only rank 0 logs (the trainer builds trackers there alone).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..config import LOGGING_BACKENDS as BACKENDS  # the one list, checked at config load
from ..config import validate_logging as check_logging  # noqa: F401  (re-exported: the checks live in config)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"optim": {"lr": 1e-3}}`` -> ``{"optim.lr": 1e-3}`` (lists and None stay values)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def scalars(rec: dict) -> dict:
    """The ``train/<name>`` scalars of one JSONL record (``step`` is the x axis, not a scalar)."""
    return {f"train/{k}": float(v) for k, v in rec.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


class Tracker:
    """One backend. ``params`` once at start, ``log(rec)`` per logged step, ``artifacts`` for the export,
    ``close(ok)`` at the end (``ok=False``: the run failed or was interrupted)."""

    name = ""

    def params(self, params: dict) -> None:
        pass

    def log(self, rec: dict) -> None:
        pass

    def artifacts(self, folder: Path) -> None:
        pass

    def close(self, ok: bool = True) -> None:
        pass


class JsonlTracker(Tracker):
    name = "jsonl"

    def __init__(self, run: Path):
        self.f = open(run / "metrics.jsonl", "a")

    def log(self, rec: dict) -> None:
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def close(self, ok: bool = True) -> None:
        self.f.close()


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, run: Path):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard is a core dependency

        self.writer = SummaryWriter(str(run / "tb"))

    def params(self, params: dict) -> None:
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)

    def log(self, rec: dict) -> None:
        for k, v in scalars(rec).items():
            self.writer.add_scalar(k, v, rec["step"])

    def close(self, ok: bool = True) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """MLflow through its client API (no global active run is started or changed)."""

    name = "mlflow"
    RUN_TAG = "part.run_dir"

    def __init__(self, run: Path, lc, resume: bool):
        mlflow = _import("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self.uri = lc.mlflow_uri or (run.resolve().parent / "mlruns").as_uri()
        if self.uri.startswith("file:"):  # MLflow >= 3.x keeps its file store behind an opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(lc.project)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(lc.project)
        where = str(run.resolve())
        found = []
        if resume:  # continue this run folder's MLflow run
            found = self.client.search_runs([exp_id], filter_string=f"tags.`{self.RUN_TAG}` = '{where}'",
                                            order_by=["attributes.start_time DESC"], max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            self.known = set(found[0].data.params)
        else:
            r = self.client.create_run(exp_id, run_name=lc.run_name or run.name, tags={self.RUN_TAG: where})
            self.run_id, self.known = r.info.run_id, set()
        self.entities = mlflow.entities

    def params(self, params: dict) -> None:
        Param = self.entities.Param
        new = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in self.known]
        for i in range(0, len(new), 100):  # MLflow's batch limit for params
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def log(self, rec: dict) -> None:
        ts = int(time.time() * 1000)
        metrics = [self.entities.Metric(k, v, ts, int(rec["step"])) for k, v in scalars(rec).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def artifacts(self, folder: Path) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path=folder.name)

    def close(self, ok: bool = True) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if ok else "FAILED")


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, run: Path, lc, resume: bool, params: dict):
        wandb = _import("wandb", "wandb")
        id_file = run / "wandb" / "part_run_id"
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else None
        (run / "wandb").mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run = wandb.init(project=lc.project, name=lc.run_name or run.name, dir=str(lc.wandb_dir or run),
                              mode=lc.wandb_mode, config=params, id=run_id, resume="allow" if run_id else None,
                              reinit="create_new")
        id_file.write_text(self.run.id)

    def log(self, rec: dict) -> None:
        self.run.log(scalars(rec), step=int(rec["step"]))

    def artifacts(self, folder: Path) -> None:
        art = self.wandb.Artifact(f"{self.run.name}-{folder.name}".replace("/", "-"), type="model")
        art.add_dir(str(folder))
        self.run.log_artifact(art)

    def close(self, ok: bool = True) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def _import(module: str, extra: str):
    """The third-party tracker package, or a one-line ``ValueError`` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"logging.backends has {extra} but the {module} package is not installed; "
                         f"pip install 'part[{extra}]' (or remove {extra} from logging.backends)") from None


def build_trackers(cfg, run: Path, resume: bool = False, backends=None) -> list[Tracker]:
    """The trackers of ``cfg.logging`` (only those also in ``backends`` when given) for the run folder ``run``,
    each given the resolved config."""
    lc = cfg.logging
    check_logging(lc)
    params = flatten(cfg.to_dict())
    out: list[Tracker] = []
    try:
        for name in dict.fromkeys(lc.backends):
            if backends is not None and name not in backends:
                continue
            if name == "jsonl":
                out.append(JsonlTracker(run))
            elif name == "tensorboard":
                try:
                    out.append(TensorBoardTracker(run))
                except ImportError:  # a core dependency, but keep training if it is broken
                    print("warning: tensorboard unavailable; not logging to tb/", file=sys.stderr)
            elif name == "mlflow":
                out.append(MLflowTracker(run, lc, resume))
            elif name == "wandb":
                out.append(WandbTracker(run, lc, resume, params))
        for t in out:
            if t.name != "wandb":  # wandb took the config at init
                t.params(params)
    except BaseException:
        for t in out:
            t.close(ok=False)
        raise
    return out


__all__ = ["BACKENDS", "check_logging", "flatten", "scalars", "Tracker", "JsonlTracker", "TensorBoardTracker",
           "MLflowTracker", "WandbTracker", "build_trackers"]
