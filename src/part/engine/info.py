"""What a run folder holds, in one screen: ``part info RUN`` = ``part.info(RUN)``.

Reads only files (``config.yaml``, ``metrics.jsonl``, ``summary.json``, ``checkpoints/``, ``export/``,
``results.json``, ``probe.json``, ``init.json``); builds no model, so it works on a run still training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..io import read_json
from .checkpoint import list_checkpoints
from .runfolder import pending_run_replace
from .runs import read_run_config


@dataclass
class RunInfo:
    """``config``: a short summary (dotted keys); ``steps``/``total_steps``: logged so far / planned (None:
    set by epochs); ``metrics``: the last JSONL record; ``checkpoints``: ``(step, file)``, oldest first;
    ``export``: ``{path, architecture, files}`` or None; ``results``/``probe``: scalars of those files."""

    run: Path
    finished: bool
    config: dict
    steps: int
    total_steps: int | None
    metrics: dict = field(default_factory=dict)
    checkpoints: list = field(default_factory=list)
    export: dict | None = None
    results: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    init: str | None = None
    replace: list = field(default_factory=list)  # an unfinished replace of the run or its export (one line each)
    data_changes: list = field(default_factory=list)  # data_changes.jsonl: [{step, changes, ...}]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["run"] = str(self.run)
        d["checkpoints"] = [[s, str(p)] for s, p in self.checkpoints]
        return d


def last_record(path: Path) -> dict:
    """The last complete record of a ``metrics.jsonl`` (``{}`` when there is none); a half-written last line
    of a run still training is skipped."""
    if not path.is_file():
        return {}
    last = {}
    for line in path.read_text().splitlines():
        try:
            last = json.loads(line) if line.strip() else last
        except ValueError:  # a half-written last line of a run still training
            break
    return last


def scalar_values(d: dict, keys=None) -> dict:
    """The int/float entries of ``d`` (booleans left out), only ``keys`` when given."""
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and (keys is None or k in keys)}


def info(run: str | Path) -> RunInfo:
    """Summary of the run folder ``run`` (see :class:`RunInfo`); ``ValueError`` if it is not one. An unfinished
    replace of the run or of its export (:mod:`part.engine.folders`) is reported, not changed."""
    pending = pending_run_replace(run)
    if pending and not (Path(run) / "config.yaml").is_file():
        raise ValueError(f"{run} is not a run folder now: " + pending[0].split(": ", 1)[1])
    run, cfg = read_run_config(run)
    m, o, d, t = cfg.model, cfg.objective, cfg.data, cfg.train
    dims = "/".join(str(v) for v in (m.embed_dim, m.depth, m.num_heads) if v is not None)
    summary = {
        "objective": o.name + (f" (head {o.head}, {o.num_pairs} pairs)" if o.name.startswith("part") else ""),
        "model": f"{m.arch}{' ' + dims if dims else ''}, img {m.img_size}, patch {m.patch_size}, {m.in_chans} ch",
        "data": f"{d.kind}" + (f" at {d.root}" if d.root else "") + f", split {d.split}",
        "optim": f"lr {cfg.optim.lr:g}, wd {cfg.optim.weight_decay:g}, batch {t.batch_size}",
        "schedule": f"{t.max_steps} steps" if t.max_steps else f"{t.epochs:g} epochs",
        "logging": ", ".join(cfg.logging.backends),
    }
    if o.options:
        summary["options"] = ", ".join(f"{k}={v}" for k, v in o.options.items())
    last = last_record(run / "metrics.jsonl")
    summ = read_json(run / "summary.json")
    ckpts = []
    for p in list_checkpoints(run / "checkpoints"):
        ckpts.append((int(p.stem.split("_")[-1]), p.with_suffix(".safetensors")))
    export = None
    if (run / "export" / "config.json").is_file():
        ec = read_json(run / "export" / "config.json")
        export = {"path": str(run / "export"), "architecture": ec.get("architecture"),
                  "files": sorted(p.name for p in (run / "export").iterdir() if not p.name.startswith("."))}
    probe = read_json(run / "probe.json")
    init = read_json(run / "init.json")
    return RunInfo(
        run=run, finished=bool(summ.get("finished")), config=summary, steps=int(last.get("step", 0)),
        total_steps=t.max_steps, metrics=last, checkpoints=ckpts, export=export,
        results=scalar_values(read_json(run / "results.json"), ("top1", "top5", "kappa", "macro_f1", "err_x", "err_y",
                                                     "err_euclid", "loss", "num_samples")),
        probe={k: scalar_values(probe.get(k, {}), ("top1", "top5", "kappa")) for k in ("linear", "knn") if probe.get(k)},
        init=(init.get("source") or "none (from scratch)") if init else None, replace=pending,
        data_changes=_data_changes(run / "data_changes.jsonl"),
    )


def _data_changes(path: Path) -> list:
    """The records of ``data_changes.jsonl`` (a line that is not JSON is skipped)."""
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def format_value(v) -> str:
    """A float with 4 significant digits, anything else as ``str``."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_info(ri: RunInfo) -> str:
    """The one-screen text of ``part info``."""
    state = "finished" if ri.finished else ("not started" if ri.steps == 0 else "unfinished")
    total = f" of {ri.total_steps}" if ri.total_steps else ""
    lines = [f"run          {ri.run}  ({state})"]
    lines += [f"replace      {line}" for line in ri.replace]
    lines += [f"  {k:<11}{v}" for k, v in ri.config.items()]
    if ri.init:
        lines.append(f"  {'init':<11}{ri.init}")
    for ch in ri.data_changes:
        lines.append(f"  {'data from':<11}step {ch.get('step')}: " + "; ".join(map(str, ch.get("changes") or [])))
    epoch = f", epoch {format_value(ri.metrics['epoch'])}" if "epoch" in ri.metrics else ""
    lines.append(f"steps        {ri.steps}{total}{epoch}")
    shown = {k: v for k, v in ri.metrics.items() if k not in ("step", "epoch")}
    lines.append("last metrics " + (", ".join(f"{k} {format_value(v)}" for k, v in shown.items()) or "none logged"))
    if ri.results:
        lines.append("results      " + ", ".join(f"{k} {format_value(v)}" for k, v in ri.results.items()))
    for k, v in ri.probe.items():
        lines.append(f"probe {k:<7}" + ", ".join(f"{n} {format_value(x)}" for n, x in v.items()))
    lines.append("checkpoints  " + (", ".join(f"step {s}" for s, _ in ri.checkpoints) or "none")
                 + (f" (in {ri.checkpoints[-1][1].parent})" if ri.checkpoints else ""))
    lines.append("export       " + (f"{ri.export['path']}: {ri.export['architecture']} "
                                    f"({', '.join(ri.export['files'])})" if ri.export else "none (part export)"))
    return "\n".join(lines)


__all__ = ["RunInfo", "info", "format_info", "last_record", "scalar_values", "format_value"]
